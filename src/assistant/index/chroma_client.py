"""The Chroma connection: an embedded PersistentClient under the index folder, or an HttpClient for ASSISTANT_CHROMA_URL."""

from __future__ import annotations

import contextlib
import threading
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

from assistant.index.errors import IndexMissing

PASSAGES = "passages"
SENTENCES = "sentences"
DOCUMENTS = "documents"  # the manifest: one record per committed document, markers, and the stamp
COLLECTIONS = (PASSAGES, SENTENCES, DOCUMENTS)
_SPACE = {"hnsw": {"space": "cosine"}}


class ChromaUnavailable(IndexMissing):
    """The Chroma server cannot be reached (or answered with an error); nothing was changed."""


def parse_url(url: str) -> tuple[str, int, bool]:
    parsed = urlparse(url if "://" in url else f"http://{url}")
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"ASSISTANT_CHROMA_URL must look like http://127.0.0.1:8000, not {url!r}")
    ssl = parsed.scheme == "https"
    return parsed.hostname, parsed.port or (443 if ssl else 8000), ssl


def unreachable_message(url: str, exc: BaseException) -> str:
    host, port, _ = parse_url(url)
    reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else exc.__class__.__name__
    return (
        f"the Chroma server at {url} could not be reached ({reason}). Nothing was changed. Start it with "
        f"`chroma run --path <folder> --host {host} --port {port}`, or unset ASSISTANT_CHROMA_URL to use the "
        "embedded index, then try again"
    )


class Chroma:
    """The three collections of one Chroma database; every call turns a dead server into ChromaUnavailable."""

    def __init__(self, client, url: str | None):
        self.client = client
        self.url = url
        self._collections: dict[str, object] = {}
        self._guard = threading.Lock()

    def collection(self, name: str):
        with self._guard:
            if name not in self._collections:
                # Stored vectors are always given explicitly; declaring no embedding function means Chroma
                # never falls back to its default one (which downloads a model at the first add).
                self._collections[name] = self.client.get_or_create_collection(name, embedding_function=None, configuration=_SPACE)
            return self._collections[name]

    def call(self, name: str, method: str, **kwargs):
        try:
            return getattr(self.collection(name), method)(**kwargs)
        except Exception as exc:  # noqa: BLE001 - re-raised unless it is a dead server's
            if self.url and _is_connection_error(exc):
                raise ChromaUnavailable(unreachable_message(self.url, exc)) from None
            raise

    def close(self) -> None:
        if self.url is None:  # an HTTP client is shared by the process; an embedded one is closed after each use
            with contextlib.suppress(Exception):  # noqa: BLE001 - closing is best effort; the data is already written
                self.client.close()


def _is_connection_error(exc: BaseException) -> bool:
    import httpx

    if isinstance(exc, (httpx.TransportError, ConnectionError, TimeoutError)):
        return True
    text = f"{exc.__class__.__name__}: {exc}".lower()
    return any(word in text for word in ("connect", "timed out", "timeout", "unavailable", "502", "503", "504"))


_HTTP: dict[str, Chroma] = {}
_HTTP_LOCK = threading.Lock()


def _telemetry_off():
    from chromadb.config import Settings as ChromaSettings

    return ChromaSettings(anonymized_telemetry=False)


def http_chroma(url: str) -> Chroma:
    """One HttpClient per server URL and process (it holds no state that could go stale)."""
    with _HTTP_LOCK:
        cached = _HTTP.get(url)
        if cached is not None:
            return cached
        host, port, ssl = parse_url(url)
        try:
            import chromadb

            client = chromadb.HttpClient(host=host, port=port, ssl=ssl, settings=_telemetry_off())
            client.heartbeat()
        except ValueError as exc:  # chromadb reports a refused connection as ValueError("Could not connect ...")
            raise ChromaUnavailable(unreachable_message(url, exc)) from None
        except Exception as exc:
            if _is_connection_error(exc):
                raise ChromaUnavailable(unreachable_message(url, exc)) from None
            raise
        _HTTP[url] = Chroma(client, url)
        return _HTTP[url]


@contextmanager
def open_chroma(url: str | None, path: Path):
    """The database for one unit of work.

    Embedded, a fresh PersistentClient each time and closed after: a client kept open in one process
    does not see what another process wrote to its vector index since (measured with chromadb 1.5.9),
    so a writer must not work from a stale one. A server has no such problem; its client is kept.
    """
    if url:
        yield http_chroma(url)
        return
    import chromadb

    Path(path).mkdir(parents=True, exist_ok=True)
    chroma = Chroma(chromadb.PersistentClient(path=str(path), settings=_telemetry_off()), None)
    try:
        yield chroma
    finally:
        chroma.close()
