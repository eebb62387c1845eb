"""The fast tier itself: the fake embedder is a fair stand-in, the fast fixtures load no model, the slow list is current."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np

from tests import conftest
from tests.fakes import FakeEmbedder

ROOT = Path(__file__).resolve().parents[1]


def test_the_fake_embedder_is_deterministic_normalised_and_topical():
    a, b = FakeEmbedder(), FakeEmbedder()
    vectors = a.embed_documents(["Trigger films start the conversation.", "Paying carers for their time.", ""])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(vectors, b.embed_documents(["Trigger films start the conversation.", "Paying carers for their time.", ""]))
    assert np.isclose(np.linalg.norm(vectors[0]), 1.0) and not vectors[2].any()
    query = a.embed_query("What is a trigger film?")
    assert query @ vectors[0] > 0.5 > query @ vectors[1]
    assert a.embed_documents([]).shape == (0, 384)


def test_the_fast_fixtures_build_and_answer_without_any_model(tmp_path):
    script = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from pathlib import Path
from tests.conftest import fast_settings
from tests.fakes import FakeEmbedder
from assistant.service import AssistantService
service = AssistantService(fast_settings(Path({str(tmp_path)!r})), embedder=FakeEmbedder())
assert not service.ingest().failures
assert service.ask("What is a trigger film?").citations
heavy = sorted(m for m in ("torch", "sentence_transformers", "transformers", "llama_cpp", "onnxruntime") if m in sys.modules)
print(heavy)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_every_test_listed_as_slow_still_exists():
    for module in conftest.SLOW_MODULES:
        assert (ROOT / module).is_file(), module
    for nodeid in conftest.SLOW_TESTS:
        path, _, name = nodeid.partition("::")
        tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
        names = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
        assert name in names, f"{nodeid} is listed in tests/conftest.py SLOW_TESTS but no longer exists"


def test_the_tier_markers_are_registered_and_make_test_fast_deselects_them():
    markers = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["pytest"]["ini_options"]["markers"]
    registered = {m.split(":")[0] for m in markers}
    assert {"corpus", "model", "slow", "browser"} <= registered
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert '-m "not corpus and not slow and not browser and not model"' in makefile
