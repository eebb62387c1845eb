"""The torch-free query path: the ONNX query encoder agrees with torch, asking imports no torch, and a bad export falls back to torch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from assistant.index.loaded import top_k_stable
from assistant.models import query_encoder as onnx_query
from assistant.models.embeddings import Embedder
from tests.models.conftest import packaged_embedding_model as _model

ROOT = Path(__file__).resolve().parents[2]
QUESTION = "How can staff and patients share power in a quality improvement project?"

# Not the export's own verification sentences: a fresh set, so this test checks more than the export did.
SENTENCES = [
    "How do we pay patient partners for attending a workshop?",
    "What is the difference between engagement and co-production?",
    "steering group terms of reference",
    "Which tools help us measure whether co-production made a difference?",
    "How do we recruit people who are seldom heard?",
    "What happens at a celebration event in experience-based co-design?",
    "Our board wants results in six weeks.\nIs that realistic?",
    "Can staff and patients disagree in a co-design meeting without it going wrong?",
    "Always Events in maternity services",
    "what does 'nothing about us without us' mean",
    "How long should a co-production project last, and who decides when it ends?",
    "Do we need ethics approval to film patient interviews for a trigger film?",
    "Power imbalance between clinicians and service users " * 20,
    "Ideas for making meetings accessible to people with learning disabilities",
    "x",
    "Über Qualitätsverbesserung — naïve résumé",
    "How do we feed back to patients what changed because of their input?",
    "Is a survey enough to count as co-production?",
    "Tokenism, burnout and consultation fatigue among volunteers",
    "What training do facilitators need before running a session?",
]


def test_onnx_and_torch_query_vectors_agree(query_export):
    path, name = _model()
    encoder = onnx_query.load(query_export, path, name)
    torch_model = Embedder(path, name).model  # LangChain's HuggingFaceEmbeddings: what ingestion and the old query path use
    expected = np.asarray([torch_model.embed_query(s) for s in SENTENCES], dtype=np.float32)
    single = np.vstack([encoder.embed([s]) for s in SENTENCES])
    batched = encoder.embed(SENTENCES)
    for got in (single, batched):
        assert got.shape == expected.shape == (20, 384)
        cosines = (got * expected).sum(axis=1)
        assert cosines.min() >= 0.9999, dict(zip(SENTENCES, cosines))
        assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_embedder_uses_the_export_for_queries_only(query_export):
    path, name = _model()
    embedder = Embedder(path, name, query_export)
    vector = embedder.embed_query(SENTENCES[0])
    assert embedder.query_encoder is not None
    assert embedder._model is None  # no torch model was loaded for the query
    assert vector.dtype == np.float32 and vector.shape == (384,)


def test_unusable_exports_are_refused(query_export, tmp_path):
    path, name = _model()
    with pytest.raises(onnx_query.QueryEncoderUnavailable, match="no ONNX query encoder"):
        onnx_query.load(tmp_path / "absent", path, name)
    other = tmp_path / "other-model"
    shutil.copytree(query_export, other)
    with pytest.raises(onnx_query.QueryEncoderUnavailable, match="another model"):
        onnx_query.load(other, path, "some other model")
    record = json.loads((other / onnx_query.SIDECAR).read_text(encoding="utf-8"))
    record["reference"][0]["vector"] = [-x for x in record["reference"][0]["vector"]]
    (other / onnx_query.SIDECAR).write_text(json.dumps(record), encoding="utf-8")
    with pytest.raises(onnx_query.QueryEncoderUnavailable, match="no longer reproduces"):
        onnx_query.load(other, path, name)


def test_top_k_stable_matches_a_stable_full_sort():
    rng = np.random.default_rng(7)
    for _ in range(500):
        n = int(rng.integers(1, 300))
        k = int(rng.integers(0, 350))
        scores = (rng.integers(-3, 4, size=n) / 2).astype(np.float32)  # many ties
        scores[rng.random(n) < 0.3] = -np.inf  # rows a filter excluded
        assert np.array_equal(top_k_stable(scores, k), np.argsort(-scores, kind="stable")[:k])
    scores = rng.standard_normal(10_000).astype(np.float32)
    assert np.array_equal(top_k_stable(scores, 240), np.argsort(-scores, kind="stable")[:240])


# -- the ask path in a fresh process -------------------------------------------------------------

ASK = r"""
import json, sys
from assistant.faces.cli import main
sys.argv = ["assistant", "ask", sys.argv[1]]
code = main()
sys.stdout.flush()
print("MODULES " + json.dumps({"exit": code, "loaded": [m for m in ("torch", "transformers", "sentence_transformers", "langchain_chroma") if m in sys.modules]}), file=sys.stderr)
"""


def _data_dir_with(tmp_path: Path, corpus_data_dir: Path, export: Path | None) -> Path:
    """A data folder reading the session's corpus index, with the given query encoder (or an empty folder for it)."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "index").symlink_to(corpus_data_dir / "index", target_is_directory=True)
    target = onnx_query.packaged_dir(data_dir)
    if export is None:
        target.mkdir(parents=True)  # present but empty: must not fall through to the installed export
    else:
        target.parent.mkdir(parents=True)
        shutil.copytree(export, target)
    return data_dir


def _ask(data_dir: Path) -> tuple[str, dict, str]:
    env = dict(os.environ, ASSISTANT_DATA_DIR=str(data_dir))
    result = subprocess.run([sys.executable, "-c", ASK, QUESTION], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(row for row in result.stderr.splitlines() if row.startswith("MODULES "))
    return result.stdout, json.loads(line[len("MODULES ") :]), result.stderr


@pytest.fixture(scope="module")
def onnx_answer(query_export, corpus_data_dir, tmp_path_factory):
    return _ask(_data_dir_with(tmp_path_factory.mktemp("ask-onnx"), corpus_data_dir, query_export))


def test_ask_imports_no_torch_with_the_onnx_encoder(onnx_answer):
    stdout, modules, _ = onnx_answer
    assert modules["exit"] == 0
    assert modules["loaded"] == [], f"the ask path imported {modules['loaded']}"
    assert "[1]" in stdout and "Sources" in stdout


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_a_bad_export_falls_back_to_torch_with_the_same_answer(damage, onnx_answer, query_export, corpus_data_dir, tmp_path):
    if damage == "corrupt":
        data_dir = _data_dir_with(tmp_path, corpus_data_dir, query_export)
        model = onnx_query.packaged_dir(data_dir) / onnx_query.MODEL_FILE
        with open(model, "r+b") as handle:  # same size, different bytes
            handle.seek(model.stat().st_size // 2)
            handle.write(b"\x00" * 4096)
    else:
        data_dir = _data_dir_with(tmp_path, corpus_data_dir, None)
    stdout, modules, stderr = _ask(data_dir)
    assert "torch" in modules["loaded"], "the fallback should have embedded the query with torch"
    assert stdout == onnx_answer[0]
    if damage == "corrupt":
        assert "fails its checksum" in stderr and "queries are embedded with torch" in stderr
