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
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from functools import lru_cache

import numpy as np

from assistant.models.embeddings import Embedder, get_embedder
from assistant.locations import no_index_message
from assistant.ingest.splitter import Chunk
from assistant.index.errors import IndexMissing
from assistant.index import chroma_client
from assistant.index.chroma_client import DOCUMENTS, PASSAGES, SENTENCES

TABLES = "tables"
CURRENT_POINTER = "CURRENT"
LEGACY_PREFIXES = ("gen-", ".retired-")  # whole-index generations written before Chroma was updated in place
META_ID = "meta"
WRITE_BATCH = 1000  # passages per Chroma upsert: writes are batched across documents
_BM25_STOPWORDS = "english"

__all__ = ["IndexMissing", "IndexStore", "LoadedIndex", "open_current"]


def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def tokenize_for_bm25(texts: list[str], stemmer) -> list[list[str]]:
    import bm25s

    return bm25s.tokenize(texts, stopwords=_BM25_STOPWORDS, stemmer=stemmer, return_ids=False, show_progress=False)


def write_json_atomic(path: Path, data, indent: int | None = 1) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=indent), encoding="utf-8")
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)


@dataclass
class DocumentRecord:
    """Everything indexing one document produced; cached by content so unchanged files are never redone."""

    manifest_entry: dict
    chunks: list[Chunk]
    chunk_vectors: np.ndarray
    sentences: list[tuple[str, str]]  # (chunk_id, sentence)
    sentence_vectors: np.ndarray
    references: list[dict]


class DocumentCache:
    """Content-addressed store of DocumentRecords: written once, complete or absent."""

    def __init__(self, directory: Path):
        self.directory = directory

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.directory / f"{key}.json", self.directory / f"{key}.npz"

    def has(self, key: str) -> bool:
        json_path, npz_path = self._paths(key)
        return json_path.exists() and npz_path.exists()

    def put(self, key: str, record: DocumentRecord) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        json_path, npz_path = self._paths(key)
        tmp = npz_path.with_name(f".{key}.{uuid.uuid4().hex}.tmp.npz")
        np.savez(tmp, chunks=record.chunk_vectors, sentences=record.sentence_vectors)
        os.replace(tmp, npz_path)
        # The JSON is written last: its presence marks the record complete.
        write_json_atomic(
            json_path,
            {
                "manifest_entry": record.manifest_entry,
                "chunks": [c.to_dict() for c in record.chunks],
                "sentences": record.sentences,
                "references": record.references,
            },
        )

    def get(self, key: str) -> DocumentRecord:
        json_path, npz_path = self._paths(key)
        data = json.loads(json_path.read_text(encoding="utf-8"))
        with np.load(npz_path) as arrays:
            chunk_vectors, sentence_vectors = arrays["chunks"], arrays["sentences"]
        return DocumentRecord(
            manifest_entry=data["manifest_entry"],
            chunks=[Chunk.from_dict(c) for c in data["chunks"]],
            chunk_vectors=chunk_vectors,
            sentences=[tuple(s) for s in data["sentences"]],
            sentence_vectors=sentence_vectors,
            references=data.get("references", []),
        )

    def derived(self, key: str, record: DocumentRecord) -> dict:
        """What the reader tables need from one document besides its vectors (BM25 tokens, sentence stems, word
        counts), computed once per content key, so an update re-derives only the documents it changed."""
        path = self.directory / f"{key}.derived.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            pass
        data = derive(record)
        self.directory.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, data, indent=None)
        return data

    def prune(self, keep: set[str]) -> None:
        """Drop records no document uses any more, and temporary files of interrupted writes."""
        if not self.directory.exists():
            return
        for path in self.directory.iterdir():
            if path.name.split(".")[0] not in keep:  # temporary files start with "." and never match
                path.unlink(missing_ok=True)


def derive(record: DocumentRecord) -> dict:
    import re

    import bm25s

    from assistant.retrieval.retriever import stems

    texts = [c.embedding_text() for c in record.chunks]
    tokens = bm25s.tokenize(texts, stopwords=_BM25_STOPWORDS, stemmer=_stemmer(), return_ids=False, show_progress=False) if texts else []
    vocabulary: dict[str, int] = {}
    for text in texts:
        for word in re.findall(r"[a-z]+", text.lower()):
            vocabulary[word] = vocabulary.get(word, 0) + 1
    return {"bm25": [list(t) for t in tokens], "stems": [sorted(stems(text)) for _, text in record.sentences], "vocabulary": vocabulary}



def _write_sentence_tables(folder: Path, records: list[DocumentRecord], derived: list[dict]) -> None:
    """The retriever's sentence tables (stems, IDF, question weights, word counts), persisted with the rest."""
    import math

    from assistant.retrieval.retriever import QUESTION_SENTENCE_WEIGHT, is_question

    position = {c.chunk_id: i for i, c in enumerate(c for r in records for c in r.chunks)}
    sentences = [s for r in records for s in r.sentences]
    rows = [words for d in derived for words in d["stems"]]
    frequency: dict[str, int] = {}
    for words in rows:
        for word in words:
            frequency[word] = frequency.get(word, 0) + 1
    vocabulary: dict[str, int] = {}
    for d in derived:
        for word, count in d["vocabulary"].items():
            vocabulary[word] = vocabulary.get(word, 0) + count
    np.save(folder / "sentence_positions.npy", np.array([position.get(cid, -1) for cid, _ in sentences], dtype=np.int64))
    np.save(folder / "sentence_weights.npy", np.array([QUESTION_SENTENCE_WEIGHT if is_question(t) else 1.0 for _, t in sentences], dtype=np.float32))
    total = len(rows)
    write_json_atomic(folder / "sentence_tables.json", {
        "stems": rows,
        "idf": {word: math.log((1 + total) / (1 + count)) for word, count in frequency.items()},
        "unseen_idf": math.log(1 + total),
        "vocabulary": vocabulary,
        "frequency": frequency,  # lets a reader update its loaded tables for the next stamp without reloading them
    }, indent=None)


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
                DOCUMENTS, "upsert", ids=[f"mark:{k}" for k in part], embeddings=_one_vector(len(part)),
                documents=[""] * len(part), metadatas=[{"kind": "mark", "doc": k} for k in part],
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
                passages.append((passage_id(key, n), vector, chunk.text, {**chroma_metadata(chunk), "doc": key, "n": n, "chunk": _chunk_json(chunk)}))
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
                    name, "upsert", ids=[r[0] for r in part], embeddings=np.asarray([r[1] for r in part], dtype=np.float32),
                    documents=[r[2] for r in part], metadatas=[r[3] for r in part],
                )
        self._buffer.clear()

    def commit_meta(self, meta: dict) -> None:
        document = {k: v for k, v in meta.items() if k != "documents"}
        self.chroma.call(
            DOCUMENTS, "upsert", ids=[META_ID], embeddings=_one_vector(1),
            documents=[json.dumps(document, ensure_ascii=False)], metadatas=[{"kind": "meta", "stamp": str(meta["stamp"])}],
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
                DOCUMENTS, "upsert", ids=[f"doc:{s}" for s in part], embeddings=_one_vector(len(part)),
                documents=[json.dumps({"entry": records[s][1].manifest_entry, "references": records[s][1].references}, ensure_ascii=False) for s in part],
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
        self.store.prune_tables({stamp, previous} - {None})
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


def _chunk_json(chunk: Chunk) -> str:
    data = chunk.to_dict()
    data.pop("text")  # stored once, as the record's document
    return json.dumps(data, ensure_ascii=False)


def tolerant_manifest(manifest) -> dict:
    """A manifest as readers may rely on it: odd metadata written by older versions dropped, never raised.

    Only the shipped corpus may be primary evidence: an upload (or an outside path) that says so
    in an index built before that rule loses the claim here too.
    """
    from assistant.ingest.loaders import clean_metadata

    if not isinstance(manifest, dict):
        return {"documents": {}}
    documents = manifest.get("documents")
    cleaned: dict[str, dict] = {}
    for source, entry in (documents.items() if isinstance(documents, dict) else []):
        if not isinstance(entry, dict):
            continue
        entry = dict(entry)
        metadata = clean_metadata(entry.get("metadata"))
        if str(source).startswith(("uploads/", "/")):
            metadata.pop("evidence", None)
        entry["metadata"] = metadata
        for key in ("title", "short_title", "path", "sha256", "added_at", "indexed_at"):
            if key in entry and not isinstance(entry[key], str):
                entry[key] = str(entry[key])
        if not isinstance(entry.get("chunks", 0), int):
            entry["chunks"] = 0
        themes = entry.get("themes")
        entry["themes"] = [t for t in themes if isinstance(t, str)] if isinstance(themes, list) else []
        warnings = entry.get("warnings")
        entry["warnings"] = [str(w) for w in warnings] if isinstance(warnings, list) else []
        cleaned[str(source)] = entry
    return {**manifest, "documents": cleaned}


def chroma_metadata(chunk: Chunk) -> dict:
    """Chroma takes scalars and non-empty lists only."""
    metadata = {"source": chunk.source, "title": chunk.title, "section": chunk.section, "ordinal": chunk.ordinal}
    if chunk.page is not None:
        metadata["page"] = chunk.page
    if chunk.themes:
        metadata["themes"] = list(chunk.themes)
    return metadata


@lru_cache(maxsize=1)
def _sentence_transformer_function_class():
    # Built on first use: chromadb's import (about 0.6 s) is paid only by commands that open the index.
    from chromadb.api.types import EmbeddingFunction

    class SentenceTransformerFunction(EmbeddingFunction):
        """Chroma gets our model explicitly, so it never falls back to downloading its own."""

        def __init__(self, model: Embedder):
            self._model = model

        def __call__(self, input):  # noqa: A002 - Chroma's protocol names it 'input'
            return list(self._model.embed_documents(list(input)))

        @staticmethod
        def name() -> str:
            return "assistant-sentence-transformers"

        def get_config(self) -> dict:
            return {"model_path": self._model.model_path, "model_name": self._model.name}

        @staticmethod
        def build_from_config(config: dict) -> "SentenceTransformerFunction":
            return SentenceTransformerFunction(get_embedder(config["model_path"], config["model_name"]))

    return SentenceTransformerFunction


def sentence_transformer_function(model: Embedder):
    """Chroma's embedding function for our model (never called for stored vectors; declared so Chroma has no default)."""
    return _sentence_transformer_function_class()(model)


def __getattr__(name: str):
    if name == "SentenceTransformerFunction":
        return _sentence_transformer_function_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class LoadedIndex:
    """One published set of tables, loaded whole into memory: passages, their vectors, BM25, sentences, references.

    Nothing is read from disk after loading, so a writer may prune the folder at any time; nothing is
    held open, so there is no lease to release.
    """

    def __init__(self, tables: Path, embedder: Embedder | None = None):
        self.generation = Path(tables)  # the folder it was loaded from (named by its stamp)
        self.stamp = self.generation.name
        self._embedder = embedder
        self.manifest = tolerant_manifest(json.loads((tables / "manifest.json").read_text(encoding="utf-8")))
        self.chunks: list[Chunk] = [Chunk(**data) for data in json.loads((tables / "chunks.json").read_text(encoding="utf-8"))]
        self.position = {c.chunk_id: i for i, c in enumerate(self.chunks)}
        self.passage_vectors = np.load(tables / "passage_vectors.npy")
        self._stemmer = _stemmer()
        self.bm25 = None
        if self.chunks:
            import bm25s

            self.bm25 = bm25s.BM25.load(str(tables / "bm25"), load_vocab=True, show_progress=False)
        self.sentence_vectors = np.load(tables / "sentence_vectors.npy")
        self.sentences: list[tuple[str, str]] = [tuple(s) for s in json.loads((tables / "sentences.json").read_text(encoding="utf-8"))]
        self.sentences_by_chunk: dict[str, list[int]] = {}
        for row, (chunk_id, _) in enumerate(self.sentences):
            self.sentences_by_chunk.setdefault(chunk_id, []).append(row)
        self.references: dict[str, dict] = json.loads((tables / "references.json").read_text(encoding="utf-8"))
        self.keys: dict[str, str] = dict(json.loads((tables / "manifest.json").read_text(encoding="utf-8")).get("keys") or {})
        self.loaded_sentence_tables = None  # the retriever's SentenceTables, persisted by the writer
        self.frequency: dict[str, int] | None = None
        if (tables / "sentence_tables.json").exists():
            from assistant.retrieval.retriever import SentenceTables

            data = json.loads((tables / "sentence_tables.json").read_text(encoding="utf-8"))
            self.loaded_sentence_tables = SentenceTables(
                positions=np.load(tables / "sentence_positions.npy"),
                weights=np.load(tables / "sentence_weights.npy"),
                stems=[set(words) for words in data["stems"]],
                idf=data["idf"],
                unseen_idf=data["unseen_idf"],
                vocabulary=data["vocabulary"],
            )
            self.frequency = data.get("frequency")

    @classmethod
    def updated(cls, previous: "LoadedIndex", tables: Path, cache: DocumentCache) -> "LoadedIndex | None":
        """The tables of a newer stamp, built from an index already loaded plus the documents that changed.

        Only the changed documents are read (from this folder's cache) and BM25 is loaded; the rest is
        reused from memory, so the first question after an update costs about the update's size, not
        the library's. The result equals a full load of `tables`; None when that cannot be done
        (an older table set, or a changed document missing from the cache): the caller loads in full.
        """
        import math
        import re

        from assistant.retrieval.retriever import QUESTION_SENTENCE_WEIGHT, SentenceTables, is_question

        raw = json.loads((tables / "manifest.json").read_text(encoding="utf-8"))
        new_keys = raw.get("keys")
        old_tables = previous.loaded_sentence_tables
        if not new_keys or not previous.keys or old_tables is None or previous.frequency is None:
            return None
        if not (tables / "sentence_tables.json").exists():
            return None
        ranges = _ranges(previous)
        changed = {s: k for s, k in new_keys.items() if previous.keys.get(s) != k}
        if any(not cache.has(k) for k in changed.values()):
            return None
        records = {s: cache.get(k) for s, k in changed.items()}
        frequency = dict(previous.frequency)
        vocabulary = dict(old_tables.vocabulary)
        references = dict(previous.references)
        owner = {k: k[len(str(ref.get("key", ""))) + 1 :] for k, ref in references.items()}  # keys are "<ref key>@<source>"
        for source in previous.keys:
            if new_keys.get(source) == previous.keys[source]:
                continue
            cs, ce, ss, se = ranges.get(source, (0, 0, 0, 0))
            for words in old_tables.stems[ss:se]:
                for word in words:
                    frequency[word] -= 1
            for chunk in previous.chunks[cs:ce]:
                for word in re.findall(r"[a-z]+", chunk.embedding_text().lower()):
                    vocabulary[word] -= 1
            for ref_key in [k for k, o in owner.items() if o == source]:
                del references[ref_key]
        chunks, pvecs, sentences, svecs, stems, weights, positions = [], [], [], [], [], [], []
        for source in sorted(new_keys):
            if source in records:
                record = records[source]
                derived = cache.derived(changed[source], record)
                chunks.extend(record.chunks)
                pvecs.append(record.chunk_vectors)
                sentences.extend(record.sentences)
                svecs.append(record.sentence_vectors)
                stems.extend(set(words) for words in derived["stems"])
                weights.append(np.array([QUESTION_SENTENCE_WEIGHT if is_question(t) else 1.0 for _, t in record.sentences], dtype=np.float32))
                row_of = {c.chunk_id: n for n, c in enumerate(record.chunks)}
                positions.append(np.array([len(chunks) - len(record.chunks) + row_of[cid] for cid, _ in record.sentences], dtype=np.int64))
                for words in derived["stems"]:
                    for word in words:
                        frequency[word] = frequency.get(word, 0) + 1
                for word, count in derived["vocabulary"].items():
                    vocabulary[word] = vocabulary.get(word, 0) + count
                references.update({ref["key"] + "@" + source: ref for ref in record.references})
            else:
                cs, ce, ss, se = ranges[source]
                positions.append(old_tables.positions[ss:se] - cs + len(chunks))  # the same passages, moved as a block
                chunks.extend(previous.chunks[cs:ce])
                pvecs.append(previous.passage_vectors[cs:ce])
                sentences.extend(previous.sentences[ss:se])
                svecs.append(previous.sentence_vectors[ss:se])
                stems.extend(old_tables.stems[ss:se])
                weights.append(old_tables.weights[ss:se])
        for counts in (frequency, vocabulary):
            for word in [w for w, c in counts.items() if c <= 0]:
                del counts[word]

        index = cls.__new__(cls)
        index.generation = Path(tables)
        index.stamp = index.generation.name
        index._embedder = previous._embedder
        index.manifest = tolerant_manifest(raw)
        index.keys = dict(new_keys)
        index.chunks = chunks
        index.position = {c.chunk_id: i for i, c in enumerate(chunks)}
        dims = previous.passage_vectors.shape[1] if previous.passage_vectors.ndim == 2 else 1
        pvecs = [v for v in pvecs if len(v)]
        svecs = [v for v in svecs if len(v)]
        index.passage_vectors = np.vstack(pvecs).astype(np.float32) if pvecs else np.zeros((0, dims), np.float32)
        index.sentence_vectors = np.vstack(svecs) if svecs else np.zeros((0, dims), np.float32)
        index._stemmer = previous._stemmer
        index.bm25 = None
        if chunks:
            import bm25s

            index.bm25 = bm25s.BM25.load(str(tables / "bm25"), load_vocab=True, show_progress=False)
        index.sentences = sentences
        index.sentences_by_chunk = {}
        for row, (chunk_id, _) in enumerate(sentences):
            index.sentences_by_chunk.setdefault(chunk_id, []).append(row)
        index.references = references
        total = len(stems)
        index.frequency = frequency
        index.loaded_sentence_tables = SentenceTables(
            positions=np.concatenate(positions) if positions else np.zeros(0, np.int64),
            weights=np.concatenate(weights) if weights else np.zeros(0, np.float32),
            stems=stems,
            idf={word: math.log((1 + total) / (1 + count)) for word, count in frequency.items()},
            unseen_idf=math.log(1 + total),
            vocabulary=vocabulary,
        )
        return index

    def dense_search(self, query_vector: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity) of the k nearest passages, best first: exact, over the committed passages only.

        Exact search over the loaded vectors rather than Chroma's HNSW: it never sees rows a running
        ingest has written but not committed, never goes stale when another process writes, and is
        as fast at these sizes (100k x 384 floats in a few ms).
        """
        if not self.chunks:
            return []
        from assistant.retrieval.retriever import top_k_stable  # retrieve imports this module

        scores = self.passage_vectors @ query_vector
        if allowed is not None:
            scores = np.where(allowed, scores, -np.inf)
        order = top_k_stable(scores, min(k, len(self.chunks)))
        # Each reported cosine is one vector's dot product, as before (a matrix product rounds the last bit differently).
        return [(self.chunks[i].chunk_id, float(self.passage_vectors[i] @ query_vector)) for i in order if np.isfinite(scores[i])]

    def passage_vector(self, chunk_id: str) -> np.ndarray | None:
        row = self.position.get(chunk_id)
        return None if row is None else self.passage_vectors[row]

    def keyword_search(self, query: str, k: int, allowed: np.ndarray | None) -> list[tuple[str, float]]:
        """(chunk id, BM25 score) best first, zero scores dropped."""
        if self.bm25 is None:
            return []
        tokens = tokenize_for_bm25([query], self._stemmer)[0]
        if not tokens:
            return []
        scores = np.asarray(self.bm25.get_scores(tokens), dtype=np.float32)
        if allowed is not None:
            scores = np.where(allowed, scores, 0.0)
        from assistant.retrieval.retriever import top_k_stable  # retrieve imports this module

        order = top_k_stable(scores, k)  # no full sort of every passage's score per question
        return [(self.chunks[i].chunk_id, float(scores[i])) for i in order if scores[i] > 0]

    def reference(self, source: str, key: str) -> dict | None:
        return self.references.get(f"{key}@{source}")

    def close(self) -> None:
        """Nothing to release (kept so callers written for leased generations still work)."""

    release = close


def _ranges(index: LoadedIndex) -> dict[str, tuple[int, int, int, int]]:
    """Per source, its rows: (first passage, end, first sentence, end); a source's rows are contiguous."""
    ranges: dict[str, list[int]] = {}
    for row, chunk in enumerate(index.chunks):
        span = ranges.setdefault(chunk.source, [row, row + 1, 0, 0])
        span[1] = row + 1
    sentence_source = [index.chunks[index.position[cid]].source if cid in index.position else None for cid, _ in index.sentences]
    seen: set[str] = set()
    for row, source in enumerate(sentence_source):
        if source is None:
            continue
        span = ranges[source]
        if source not in seen:
            seen.add(source)
            span[2] = row
        span[3] = row + 1
    return {source: tuple(span) for source, span in ranges.items()}


def open_current(store: IndexStore, embedder: Embedder | None, stamp: str | None = None, previous: LoadedIndex | None = None) -> LoadedIndex:
    """The tables of the committed stamp, loaded (updated from `previous` when given and possible); if a writer
    prunes them while we load, read the stamp again."""
    for attempt in range(3):
        stamp = stamp if attempt == 0 and stamp else store.current_stamp()
        if stamp is None:
            raise IndexMissing(no_index_message(store.index_dir))
        try:
            tables = store.tables_for(stamp)
            if previous is not None:
                index = LoadedIndex.updated(previous, tables, store.cache)
                if index is not None:
                    return index
            return LoadedIndex(tables, embedder)
        except FileNotFoundError:
            continue
    raise IndexMissing("the index changed three times while it was being opened; please try again")
