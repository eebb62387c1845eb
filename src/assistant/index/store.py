"""The index: Chroma holds passages, sentence vectors and the manifest, written per document; readers load derived tables.

Chroma is the store of record, written incrementally: each document's passages (ids `<key>:<n>`) and
sentence vectors (`<key>:<n>:<m>`) are keyed by the document's content key (content hash, model,
chunking). Its `documents` collection is the manifest: one record per committed document names the key
in use, and the `meta` record carries the stamp readers poll. The write order is upsert the new keys
(marked pending first) -> commit the manifest records -> delete the old keys, so a kill at any moment
leaves each document in its old or its new version; the next ingest deletes what a dead one left.

Readers never search Chroma directly: after each commit the writer derives the tables a question needs
(passages, their vectors, sentence vectors, BM25, references) from the committed documents and
publishes them under `tables/<stamp>`; a reader loads the set named by the stamp, entirely into memory,
and reloads when the stamp changes. A reader with no local tables for the stamp (another data folder
on the same Chroma server) derives them from Chroma itself.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from assistant.index import chroma_client
from assistant.index.chroma_client import DOCUMENTS, PASSAGES, SENTENCES
from assistant.index.errors import IndexMissing
from assistant.index.records import (
    DocumentCache,
    DocumentRecord,
    _chunk_json,
    _write_sentence_tables,
    chroma_metadata,
    tolerant_manifest,
    write_json_atomic,
)
from assistant.ingest.splitter import Chunk
from assistant.locations import no_index_message

TABLES = "tables"
CURRENT_POINTER = "CURRENT"
LEGACY_PREFIXES = ("gen-", ".retired-")  # whole-index generations written before Chroma was updated in place
META_ID = "meta"
WRITE_BATCH = 1000  # passages per Chroma upsert: writes are batched across documents


__all__ = ["IndexMissing", "IndexStore", "IndexWriter"]


def new_stamp() -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"


def passage_id(key: str, n: int) -> str:
    return f"{key}:{n}"


def sentence_id(key: str, n: int, m: int) -> str:
    return f"{key}:{n}:{m}"


def _batches(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _one_vector(count: int) -> list[list[float]]:
    # Manifest records carry no meaning as vectors; Chroma still wants one per record.
    return [[1.0]] * count


def committed_stamp(chroma) -> str | None:
    got = chroma.call(DOCUMENTS, "get", ids=[META_ID], include=["metadatas"])
    return str(got["metadatas"][0].get("stamp")) if got["ids"] else None


def read_manifest(chroma) -> dict:
    """The committed manifest as stored: {"meta": {...} or None, "documents": {source: {"key", "entry", "references", "sentences"}}}."""
    got = chroma.call(DOCUMENTS, "get", where={"kind": {"$in": ["doc", "meta"]}}, include=["documents", "metadatas"])
    meta, documents = None, {}
    for text, metadata in zip(got["documents"], got["metadatas"]):
        if metadata.get("kind") == "meta":
            meta = json.loads(text)
            continue
        data = json.loads(text)
        documents[str(metadata["source"])] = {
            "key": str(metadata["doc"]),
            "entry": data.get("entry") or {},
            "references": data.get("references") or [],
            "sentences": int(metadata.get("sentences", 0)),
        }
    return {"meta": meta, "documents": documents}


def fetch_record(chroma, key: str, stored: dict) -> DocumentRecord | None:
    """A committed document read back from Chroma; None if its rows are incomplete (deleted while we read)."""
    entry = stored["entry"]
    got = chroma.call(PASSAGES, "get", where={"doc": key}, include=["embeddings", "documents", "metadatas"])
    rows = sorted(zip(got["metadatas"], got["documents"], list(got["embeddings"])), key=lambda row: int(row[0]["n"]))
    if len(rows) != int(entry.get("chunks", -1)):
        return None
    chunks = [Chunk.from_dict({**json.loads(meta["chunk"]), "text": text}) for meta, text, _ in rows]
    chunk_vectors = np.asarray([vector for _, _, vector in rows], dtype=np.float32)
    got = chroma.call(SENTENCES, "get", where={"doc": key}, include=["embeddings", "documents", "metadatas"])
    srows = sorted(zip(got["metadatas"], got["documents"], list(got["embeddings"])), key=lambda row: (int(row[0]["n"]), int(row[0]["m"])))
    if len(srows) != stored.get("sentences", len(srows)):
        return None
    sentences = [(chunks[int(meta["n"])].chunk_id, text) for meta, text, _ in srows]
    dims = chunk_vectors.shape[1] if chunk_vectors.ndim == 2 else 0
    sentence_vectors = np.asarray([v for _, _, v in srows], dtype=np.float32) if srows else np.zeros((0, dims), np.float32)
    return DocumentRecord(dict(entry), chunks, chunk_vectors, sentences, sentence_vectors, list(stored.get("references") or []))


class IndexStore:
    """Where the index lives: Chroma (embedded under index_dir/chroma, or a server) and the derived tables under index_dir/tables."""

    def __init__(self, index_dir: Path, chroma_url: str | None = None):
        self.index_dir = Path(index_dir)
        self.chroma_url = chroma_url or None
        self.cache = DocumentCache(self.index_dir / "documents")
        self.tables_dir = self.index_dir / TABLES

    def chroma(self):
        return chroma_client.open_chroma(self.chroma_url, self.index_dir / "chroma")

    # -- reading --------------------------------------------------------------------------

    def published_stamp(self) -> str | None:
        """The stamp whose tables this folder last published."""
        try:
            name = (self.tables_dir / CURRENT_POINTER).read_text(encoding="utf-8").strip()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return name if name and (self.tables_dir / name / "manifest.json").exists() else None

    def current_stamp(self) -> str | None:
        """The stamp of the committed index, cheap enough to poll before every question.

        Embedded, only ingests using this folder can write its Chroma, and they publish the stamp here
        after each commit (no Chroma import needed to read it). With a server, any writer may have
        committed, so the server's own stamp is asked.
        """
        if self.chroma_url is None:
            stamp = self.published_stamp()
            if stamp is not None or not (self.index_dir / "chroma").is_dir():
                return stamp
            # Tables lost or never published here (a run died just after its commit): Chroma knows.
        with self.chroma() as chroma:
            return committed_stamp(chroma)

    def tables_for(self, stamp: str) -> Path:
        """The tables of a stamp: published by a writer in this folder, or derived here from Chroma."""
        path = self.tables_dir / stamp
        if (path / "manifest.json").exists():
            return path
        for _ in range(3):
            with self.chroma() as chroma:
                stored = read_manifest(chroma)
                if stored["meta"] is None:
                    raise IndexMissing(no_index_message(self.index_dir))
                records: list[tuple[str, DocumentRecord]] = []
                for source in sorted(stored["documents"]):
                    doc = stored["documents"][source]
                    record = self.cache.get(doc["key"]) if self.cache.has(doc["key"]) else fetch_record(chroma, doc["key"], doc)
                    if record is None:
                        break  # a writer replaced it while we read: read the manifest again
                    self.cache.put(doc["key"], record)
                    records.append((doc["key"], record))
                else:
                    meta = stored["meta"]
                    return self.write_tables(records, meta, str(meta["stamp"]))
        raise IndexMissing("the index kept changing while it was being read from Chroma; please try again")

    def current_generation(self) -> Path | None:
        """The folder of the tables in use (None before the first ingest)."""
        stamp = self.current_stamp()
        return self.tables_for(stamp) if stamp else None

    def current_manifest(self) -> dict:
        """The committed manifest, made safe to read (odd metadata dropped, not raised)."""
        for _ in range(3):
            stamp = self.current_stamp()
            if stamp is None:
                return {"documents": {}}
            try:
                return tolerant_manifest(json.loads((self.tables_for(stamp) / "manifest.json").read_text(encoding="utf-8")))
            except FileNotFoundError:
                continue  # pruned between reading the stamp and the file: the stamp has moved on
        raise IndexMissing("the index changed while it was being read; try again")

    # -- derived tables -------------------------------------------------------------------

    def write_tables(self, keyed: list[tuple[str, DocumentRecord]], meta: dict, stamp: str) -> Path:
        """Write the tables readers load for `stamp` from (key, record) pairs in source order (built aside, then renamed into place)."""
        import bm25s

        records = [record for _, record in keyed]
        self.tables_dir.mkdir(parents=True, exist_ok=True)
        final = self.tables_dir / stamp
        if (final / "manifest.json").exists():
            return final
        building = self.tables_dir / f".building-{uuid.uuid4().hex}"
        building.mkdir()
        chunks = [c for r in records for c in r.chunks]
        derived = [self.cache.derived(key, record) for key, record in keyed]
        vectors = [r.chunk_vectors for r in records if len(r.chunk_vectors)]
        np.save(building / "passage_vectors.npy", np.vstack(vectors).astype(np.float32) if vectors else np.zeros((0, 1), np.float32))
        if chunks:
            retriever = bm25s.BM25()
            # Token lists cached per document: the same index (and scores) as tokenizing every passage again.
            retriever.index([tokens for d in derived for tokens in d["bm25"]], show_progress=False)
            retriever.save(str(building / "bm25"), show_progress=False)
        write_json_atomic(building / "chunks.json", [vars(chunk) for chunk in chunks], indent=None)  # one array: parsed in one call
        sentence_vectors = [r.sentence_vectors for r in records if len(r.sentence_vectors)]
        np.save(building / "sentence_vectors.npy", np.vstack(sentence_vectors) if sentence_vectors else np.zeros((0, 1), np.float32))
        write_json_atomic(building / "sentences.json", [s for r in records for s in r.sentences], indent=None)
        _write_sentence_tables(building, records, derived)
        references = {ref["key"] + "@" + r.manifest_entry["source"]: ref for r in records for ref in r.references}
        write_json_atomic(building / "references.json", references)
        manifest = {k: v for k, v in meta.items() if k != "documents"}
        manifest.update(stamp=stamp, chunk_count=len(chunks), documents={r.manifest_entry["source"]: r.manifest_entry for r in records})
        manifest["keys"] = {r.manifest_entry["source"]: key for key, r in keyed}
        write_json_atomic(building / "manifest.json", manifest)  # last: its presence marks the tables complete
        try:
            os.rename(building, final)
        except OSError:  # another process derived the same stamp first
            shutil.rmtree(building, ignore_errors=True)
        return final

    def publish(self, stamp: str) -> None:
        tmp = self.tables_dir / f".{CURRENT_POINTER}.{uuid.uuid4().hex}.tmp"
        tmp.write_text(stamp, encoding="utf-8")
        os.replace(tmp, self.tables_dir / CURRENT_POINTER)

    def prune_tables(self, keep: set[str]) -> None:
        """Delete table sets no reader should still open (readers load them whole, so deleting a loaded one is harmless)."""
        if not self.tables_dir.exists():
            return
        for path in self.tables_dir.iterdir():
            if not path.is_dir() or path.name in keep:
                continue
            if path.name.startswith(".building-") and time.time() - path.stat().st_mtime < 3600:
                continue  # perhaps another process deriving tables right now
            trash = self.tables_dir / f".retired-{uuid.uuid4().hex}"
            try:
                os.rename(path, trash)
            except OSError:
                continue
            shutil.rmtree(trash, ignore_errors=True)

    def remove_legacy(self) -> None:
        """Whole-index generations of the earlier design: their per-document records are reused from the cache."""
        for path in self.index_dir.glob("*"):
            if path.is_dir() and path.name.startswith(LEGACY_PREFIXES):
                shutil.rmtree(path, ignore_errors=True)
        (self.index_dir / CURRENT_POINTER).unlink(missing_ok=True)

    # -- writing --------------------------------------------------------------------------

    @contextmanager
    def writer(self, rebuild: bool = False):
        """The writer of one ingest (the caller holds the ingest lock): Chroma opened fresh, a dead run's rows cleaned."""
        self.index_dir.mkdir(parents=True, exist_ok=True)
        self.remove_legacy()
        with self.chroma() as chroma:
            yield IndexWriter(self, chroma, rebuild)

    def replace_entry(self, source: str, entry: dict) -> None:
        """Commit one manifest entry as given, unchecked (for tests of readers facing odd metadata from older versions)."""
        with self.writer() as writer:
            records = {s: (doc["key"], writer.record(doc["key"])) for s, doc in writer.manifest["documents"].items()}
            key, record = records[source]
            record.manifest_entry = entry
            writer._staged.add(key)  # its content is unchanged, its manifest record is not
            writer.commit(records, writer.manifest["meta"])


class IndexWriter:
    """Writes documents into Chroma in batches and commits them: upsert new keys, commit the manifest, delete old keys."""

    def __init__(self, store: IndexStore, chroma, rebuild: bool):
        self.store = store
        self.chroma = chroma
        self.rebuild = rebuild
        self.clean()
        self.manifest = read_manifest(chroma)
        self.committed_keys = {doc["key"] for doc in self.manifest["documents"].values()}
        self._buffer: list[tuple[str, DocumentRecord]] = []
        self._staged: set[str] = set()

    @property
    def stamp(self) -> str | None:
        return None if self.manifest["meta"] is None else str(self.manifest["meta"]["stamp"])

    def clean(self) -> None:
        """Delete the rows of keys a dead run wrote but never committed, or retired but never deleted."""
        marks = self.chroma.call(DOCUMENTS, "get", where={"kind": "mark"}, include=["metadatas"])
        if not marks["ids"]:
            return
        committed = self.chroma.call(DOCUMENTS, "get", where={"kind": "doc"}, include=["metadatas"])
        live = {m["doc"] for m in committed["metadatas"]}
        self._delete_rows(sorted({m["doc"] for m in marks["metadatas"]} - live))
        self.chroma.call(DOCUMENTS, "delete", ids=list(marks["ids"]))

    def _delete_rows(self, keys: list[str]) -> None:
        for part in _batches(keys, 100):
            where = {"doc": part[0]} if len(part) == 1 else {"doc": {"$in": part}}
            self.chroma.call(PASSAGES, "delete", where=where)
            self.chroma.call(SENTENCES, "delete", where=where)

    def _mark(self, keys: list[str]) -> None:
        for part in _batches(keys, WRITE_BATCH):
            self.chroma.call(
                DOCUMENTS,
                "upsert",
                ids=[f"mark:{k}" for k in part],
                embeddings=_one_vector(len(part)),
                documents=[""] * len(part),
                metadatas=[{"kind": "mark", "doc": k} for k in part],
            )

    def record(self, key: str) -> DocumentRecord | None:
        """A document's record: from this folder's cache, else (committed by a writer elsewhere) from Chroma."""
        if self.store.cache.has(key):
            return self.store.cache.get(key)
        if key not in self.committed_keys:
            return None
        stored = next(doc for doc in self.manifest["documents"].values() if doc["key"] == key)
        record = fetch_record(self.chroma, key, stored)
        if record is not None:
            self.store.cache.put(key, record)
        return record

    def stage(self, key: str, record: DocumentRecord) -> None:
        """Queue a document's rows for Chroma; written in batches across documents (none if already committed)."""
        if key in self._staged or (key in self.committed_keys and not self.rebuild):
            return
        self._staged.add(key)
        self._buffer.append((key, record))
        if sum(len(r.chunks) for _, r in self._buffer) >= WRITE_BATCH:
            self.flush()

    def flush(self) -> None:
        if not self._buffer:
            return
        self._mark([key for key, _ in self._buffer])  # first: if we die below, the next run knows what to delete
        passages, sentences = [], []
        for key, record in self._buffer:
            for n, (chunk, vector) in enumerate(zip(record.chunks, record.chunk_vectors)):
                passages.append(
                    (passage_id(key, n), vector, chunk.text, {**chroma_metadata(chunk), "doc": key, "n": n, "chunk": _chunk_json(chunk)})
                )
            row_of = {c.chunk_id: n for n, c in enumerate(record.chunks)}
            counts: dict[int, int] = {}
            for (chunk_id, text), vector in zip(record.sentences, record.sentence_vectors):
                n = row_of[chunk_id]
                m = counts.get(n, 0)
                counts[n] = m + 1
                sentences.append((sentence_id(key, n, m), vector, text, {"doc": key, "n": n, "m": m}))
        for name, rows in ((PASSAGES, passages), (SENTENCES, sentences)):
            for part in _batches(rows, WRITE_BATCH):
                self.chroma.call(
                    name,
                    "upsert",
                    ids=[r[0] for r in part],
                    embeddings=np.asarray([r[1] for r in part], dtype=np.float32),
                    documents=[r[2] for r in part],
                    metadatas=[r[3] for r in part],
                )
        self._buffer.clear()

    def commit_meta(self, meta: dict) -> None:
        document = {k: v for k, v in meta.items() if k != "documents"}
        self.chroma.call(
            DOCUMENTS,
            "upsert",
            ids=[META_ID],
            embeddings=_one_vector(1),
            documents=[json.dumps(document, ensure_ascii=False)],
            metadatas=[{"kind": "meta", "stamp": str(meta["stamp"])}],
        )

    def commit(self, records: dict[str, tuple[str, DocumentRecord]], meta: dict) -> str:
        """Make `records` (source -> (key, record)) the whole library; returns the new stamp.

        Each document's manifest record is its commit point: its new rows are in Chroma before it, and
        its old rows are deleted only after it (and after the tables that use the new ones are published).
        """
        self.flush()
        committed = self.manifest["documents"]
        new_keys = {key for key, _ in records.values()}
        changed = sorted(s for s, (key, _) in records.items() if s not in committed or committed[s]["key"] != key or key in self._staged)
        removed = sorted(set(committed) - set(records))
        old_keys = sorted({committed[s]["key"] for s in changed + removed if s in committed} - new_keys)
        stamp = new_stamp()
        meta = {**meta, "stamp": stamp}
        # Built before the commit, so readers that see the new stamp find its tables at once.
        self.store.write_tables([records[s] for s in sorted(records)], meta, stamp)
        self._mark(old_keys)
        for part in _batches(changed, WRITE_BATCH):
            self.chroma.call(
                DOCUMENTS,
                "upsert",
                ids=[f"doc:{s}" for s in part],
                embeddings=_one_vector(len(part)),
                documents=[
                    json.dumps({"entry": records[s][1].manifest_entry, "references": records[s][1].references}, ensure_ascii=False)
                    for s in part
                ],
                metadatas=[{"kind": "doc", "source": s, "doc": records[s][0], "sentences": len(records[s][1].sentences)} for s in part],
            )
        for part in _batches(removed, WRITE_BATCH):
            self.chroma.call(DOCUMENTS, "delete", ids=[f"doc:{s}" for s in part])
        self.commit_meta({**meta, "chunk_count": sum(len(r.chunks) for _, r in records.values())})
        previous = self.store.published_stamp()
        self.store.publish(stamp)
        self._delete_rows(old_keys)
        marks = [f"mark:{k}" for k in sorted(set(old_keys) | self._staged)]
        for part in _batches(marks, WRITE_BATCH):
            self.chroma.call(DOCUMENTS, "delete", ids=part)
        self.store.prune_tables({s for s in (stamp, previous) if s is not None})
        self.manifest = read_manifest(self.chroma)
        self.committed_keys = new_keys
        self._staged.clear()
        return stamp

    def tables_match(self) -> bool:
        """Whether the committed stamp's tables hold exactly the committed documents (not so after a run died mid-commit)."""
        if self.stamp is None:
            return False
        try:
            keys = json.loads((self.store.tables_for(self.stamp) / "manifest.json").read_text(encoding="utf-8")).get("keys")
        except (FileNotFoundError, ValueError, IndexMissing):
            return False
        return keys == {s: doc["key"] for s, doc in self.manifest["documents"].items()}

    def publish_committed(self) -> str | None:
        """Nothing to commit: make sure this folder points at the committed stamp (a run may have died just before)."""
        if self.stamp is not None and self.store.published_stamp() != self.stamp:
            self.store.tables_for(self.stamp)
            self.store.publish(self.stamp)
        return self.stamp
