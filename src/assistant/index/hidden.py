"""Shipped documents a user has hidden from the library: a small JSON list under the data dir that ingest honours."""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

HIDDEN_FILE = "hidden.json"
_LOCK = threading.Lock()


def hidden_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / HIDDEN_FILE


def hidden_sources(data_dir: str | Path) -> set[str]:
    """The document ids hidden under `data_dir`; an unreadable list hides nothing (and says so) rather than stop indexing."""
    path = hidden_path(data_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return set()
    except (OSError, ValueError) as exc:
        print(f"Warning: {path} could not be read ({exc}); no document is hidden this time.", file=sys.stderr)
        return set()
    items = data.get("hidden") if isinstance(data, dict) else data
    return {str(s) for s in items or [] if isinstance(s, str) and s.strip()}


def _write(data_dir: str | Path, sources: set[str]) -> None:
    path = hidden_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except ValueError:  # keep a damaged list for a person to look at instead of overwriting it
            os.replace(path, path.with_suffix(".json.bad"))
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"hidden": sorted(sources)}, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)  # atomic: a crash leaves the old list or the new one, never half of either


def hide(data_dir: str | Path, source: str) -> None:
    with _LOCK:
        _write(data_dir, hidden_sources(data_dir) | {source})


def unhide(data_dir: str | Path, source: str) -> bool:
    """Show a hidden document again at the next ingest; False when it was not hidden."""
    with _LOCK:
        current = hidden_sources(data_dir)
        if source not in current:
            return False
        _write(data_dir, current - {source})
        return True


def is_upload(service, source: str) -> bool:
    entry = service.store.current_manifest().get("documents", {}).get(source) or {}
    path = Path(entry.get("path") or "")
    return source.startswith("uploads/") or service.settings.uploads_dir.resolve() in path.resolve().parents


def remove_or_hide(service, source: str) -> str:
    """Take a document out of the library: an upload is deleted ("removed"); a shipped or other document stays on
    disk and is hidden, so `assistant ingest` does not bring it back ("hidden"). KeyError if it is not indexed."""
    if source not in service.store.current_manifest().get("documents", {}):
        raise KeyError(f"no indexed document named {source!r}")
    upload = is_upload(service, source)
    if not upload:
        hide(service.settings.data_dir, source)  # first, so a crash mid-removal cannot bring it back
    service.remove_document(source)
    return "removed" if upload else "hidden"


def restore(service, source: str):
    """Show a hidden document again: unhide it and index the default folders. KeyError if it was not hidden."""
    if not unhide(service.settings.data_dir, source):
        raise KeyError(f"{source!r} is not hidden")
    return service.ingest()
