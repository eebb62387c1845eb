"""The persistent index: Chroma vectors and a BM25 index over the same chunks, swapped in atomically."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import threading
import time
import uuid
import weakref
from dataclasses import dataclass
from pathlib import Path

from functools import lru_cache

import numpy as np

from assistant.models.embeddings import Embedder, get_embedder
from assistant.locations import no_index_message
from assistant.ingest.splitter import Chunk

COLLECTION = "passages"
CURRENT_POINTER = "CURRENT"
GENERATION_PREFIX = "gen-"
TRASH_PREFIX = ".retired-"
LEASE_FILE = ".lease"
_BM25_STOPWORDS = "english"


class IndexMissing(Exception):
    """No complete index exists yet."""


def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def tokenize_for_bm25(texts: list[str], stemmer) -> list[list[str]]:
    import bm25s

    return bm25s.tokenize(texts, stopwords=_BM25_STOPWORDS, stemmer=stemmer, return_ids=False, show_progress=False)


def write_json_atomic(path: Path, data) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
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

    def prune(self, keep: set[str]) -> None:
        """Drop records no document uses any more, and temporary files of interrupted writes."""
        if not self.directory.exists():
            return
        for path in self.directory.iterdir():
            if path.name.split(".")[0] not in keep:  # temporary files start with "." and never match
                path.unlink(missing_ok=True)


class IndexStore:
    """Generations of the index under one directory; CURRENT names the complete one in use."""

    def __init__(self, index_dir: Path):
        self.index_dir = Path(index_dir)
        self.cache = DocumentCache(self.index_dir / "documents")

    def current_generation(self) -> Path | None:
        pointer = self.index_dir / CURRENT_POINTER
        try:
            name = pointer.read_text(encoding="utf-8").strip()
        except (FileNotFoundError, NotADirectoryError):
            return None
        generation = self.index_dir / name
        return generation if name and (generation / "manifest.json").exists() else None

    def current_manifest(self) -> dict:
        """The manifest of the current generation, made safe to read (odd metadata dropped, not raised)."""
        for attempt in range(2):
            generation = self.current_generation()
            if generation is None:
                return {"documents": {}}
            try:
                return tolerant_manifest(json.loads((generation / "manifest.json").read_text(encoding="utf-8")))
            except FileNotFoundError:
                if attempt:  # swapped twice while we read: report it rather than loop
                    raise IndexMissing("the index changed while it was being read; try again") from None
        return {"documents": {}}

    def remove_abandoned(self) -> None:
        """Delete generations a crashed or interrupted run left behind, and older ones no reader holds."""
        current = self.current_generation()
        for path in sorted(self.index_dir.glob(f"{TRASH_PREFIX}*")):
            shutil.rmtree(path, ignore_errors=True)
        for path in self.index_dir.glob(f"{GENERATION_PREFIX}*"):
            if current is not None and path.resolve() == current.resolve():
                continue
            retire_generation(path, self.index_dir)

    def kept_for_readers(self) -> list[Path]:
        """Old generations still on disk because a reader held them at the last ingest."""
        current = self.current_generation()
        return [p for p in self.index_dir.glob(f"{GENERATION_PREFIX}*") if current is None or p.resolve() != current.resolve()]

    def build_generation(self, records: list[DocumentRecord], manifest_meta: dict, embedder: Embedder) -> Path:
        """Write a complete new generation, then point CURRENT at it in one atomic rename."""
        import bm25s
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        self.index_dir.mkdir(parents=True, exist_ok=True)
        name = f"{GENERATION_PREFIX}{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        generation = self.index_dir / name
        generation.mkdir()

        chunks = [c for r in records for c in r.chunks]
        client = chromadb.PersistentClient(path=str(generation / "chroma"), settings=ChromaSettings(anonymized_telemetry=False))
        collection = client.create_collection(
            COLLECTION, embedding_function=sentence_transformer_function(embedder), configuration={"hnsw": {"space": "cosine"}}
        )
        batch = 1000
        for record in records:
            for start in range(0, len(record.chunks), batch):
                part = record.chunks[start : start + batch]
                collection.add(
                    ids=[c.chunk_id for c in part],
                    embeddings=record.chunk_vectors[start : start + batch],
                    documents=[c.text for c in part],
                    metadatas=[chroma_metadata(c) for c in part],
                )
        del collection
        client.close()  # Chroma caches a System per path until every client of it is closed

        if chunks:
            retriever = bm25s.BM25()
            retriever.index(bm25s.tokenize([c.embedding_text() for c in chunks], stopwords=_BM25_STOPWORDS, stemmer=_stemmer(), show_progress=False), show_progress=False)
            retriever.save(str(generation / "bm25"), show_progress=False)

        with open(generation / "chunks.jsonl", "w", encoding="utf-8") as handle:
            for chunk in chunks:
                handle.write(json.dumps(chunk.to_dict(), ensure_ascii=False) + "\n")
        sentence_rows = [s for r in records for s in r.sentences]
        vectors = [r.sentence_vectors for r in records if len(r.sentence_vectors)]
        np.save(generation / "sentence_vectors.npy", np.vstack(vectors) if vectors else np.zeros((0, 1), dtype=np.float32))
        write_json_atomic(generation / "sentences.json", sentence_rows)
        references = {ref["key"] + "@" + r.manifest_entry["source"]: ref for r in records for ref in r.references}
        write_json_atomic(generation / "references.json", references)

        manifest = dict(manifest_meta)
        manifest["documents"] = {r.manifest_entry["source"]: r.manifest_entry for r in records}
        manifest["chunk_count"] = len(chunks)
        write_json_atomic(generation / "manifest.json", manifest)

        (generation / LEASE_FILE).touch()
        pointer_tmp = self.index_dir / f".{CURRENT_POINTER}.{uuid.uuid4().hex}.tmp"
        pointer_tmp.write_text(name, encoding="utf-8")
        os.replace(pointer_tmp, self.index_dir / CURRENT_POINTER)
        return generation


class GenerationGone(Exception):
    """The generation was retired between reading CURRENT and opening it."""


def acquire_lease(generation: Path):
    """A shared lock on the generation's lease file, held while it is open for reading.

    The writer deletes an old generation only when it can take the lock exclusively, so a reader
    never has its files removed under it. Raises GenerationGone if the generation was retired first.
    """
    try:
        handle = open(generation / LEASE_FILE, "a+")
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise GenerationGone(str(generation)) from exc
    try:
        fcntl.flock(handle, fcntl.LOCK_SH)
        if not (generation / "manifest.json").exists():  # retired while we waited for the lock
            raise GenerationGone(str(generation))
    except BaseException:
        handle.close()
        raise
    return handle


def retire_generation(generation: Path, index_dir: Path) -> bool:
    """Delete a generation no reader holds (True), or leave it for a later run (False)."""
    try:
        handle = open(generation / LEASE_FILE, "a+")
    except (FileNotFoundError, NotADirectoryError):
        handle = None  # a partial generation from a crashed build: nobody can be reading it
    try:
        if handle is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
        # Renamed first, so a reader arriving now finds nothing rather than half a generation.
        trash = index_dir / f"{TRASH_PREFIX}{generation.name}-{uuid.uuid4().hex[:6]}"
        try:
            os.replace(generation, trash)
        except FileNotFoundError:
            return True
        shutil.rmtree(trash, ignore_errors=True)
        return True
    finally:
        if handle is not None:
            handle.close()


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
    """One generation opened for querying: dense search in its Chroma collection, BM25, chunk table."""

    def __init__(self, generation: Path, embedder: Embedder):
        self.generation = generation
        self._embedder = embedder
        self._guard = threading.Lock()
        self._searching = 0
        self.retired = False
        self._open_store()  # the lease first: nothing below may be deleted while we read it
        self.manifest = tolerant_manifest(json.loads((generation / "manifest.json").read_text(encoding="utf-8")))
        self.chunks: list[Chunk] = []
        with open(generation / "chunks.jsonl", encoding="utf-8") as handle:
            for line in handle:
                self.chunks.append(Chunk.from_dict(json.loads(line)))
        self.position = {c.chunk_id: i for i, c in enumerate(self.chunks)}
        self._stemmer = _stemmer()
        self.bm25 = None
        if self.chunks:
            import bm25s

            self.bm25 = bm25s.BM25.load(str(generation / "bm25"), load_vocab=True, show_progress=False)
        self.sentence_vectors = np.load(generation / "sentence_vectors.npy")
        self.sentences: list[tuple[str, str]] = [tuple(s) for s in json.loads((generation / "sentences.json").read_text(encoding="utf-8"))]
        self.sentences_by_chunk: dict[str, list[int]] = {}
        for row, (chunk_id, _) in enumerate(self.sentences):
            self.sentences_by_chunk.setdefault(chunk_id, []).append(row)
        self.references: dict[str, dict] = json.loads((generation / "references.json").read_text(encoding="utf-8"))

    def _open_store(self) -> None:
        """Lease the generation and open its Chroma store (the only part read from disk after loading)."""
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        lease = acquire_lease(self.generation)
        self._finalizer = weakref.finalize(self, _release, lease, [])
        self._client = chromadb.PersistentClient(path=str(self.generation / "chroma"), settings=ChromaSettings(anonymized_telemetry=False))
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _release, lease, [self._client])
        # The collection itself, not LangChain's Chroma wrapper: the wrapper wants an embedding model at
        # construction, which loaded torch before any question; we pass query vectors ourselves.
        self.collection = self._client.get_collection(COLLECTION)

    @property
    def vectorstore(self):
        """The Chroma collection (its get() takes the arguments LangChain's wrapper passed on to it)."""
        return self.collection

    def dense_search(self, query_vector: np.ndarray, k: int, where: dict | None) -> list[tuple[str, float]]:
        with self._guard:
            if not self._finalizer.alive:
                # Released after a swap while this caller still held the object: lease it again if it still exists.
                try:
                    self._open_store()
                except GenerationGone:
                    raise IndexMissing("the index was replaced while this question was being answered; please ask again") from None
            self._searching += 1
        try:
            return self._dense_search(query_vector, k, where)
        finally:
            with self._guard:
                self._searching -= 1
                if self.retired and not self._searching:
                    self._finalizer()

    def _dense_search(self, query_vector: np.ndarray, k: int, where: dict | None) -> list[tuple[str, float]]:
        """(chunk id, cosine distance) nearest first.

        Chroma hands back the raw distance, not a similarity; the retriever uses only the order and
        recomputes cosines from the stored vectors. The query is the one LangChain's wrapper made
        (similarity_search_by_vector_with_relevance_scores), hits without a document dropped as it did.
        """
        if not self.chunks:
            return []
        k = min(k, len(self.chunks))
        results = self.collection.query(
            query_embeddings=[query_vector.tolist()], n_results=k, where=where, include=["documents", "distances"]
        )
        return [
            (cid, float(distance))
            for cid, document, distance in zip(results["ids"][0], results["documents"][0], results["distances"][0], strict=False)
            if document is not None and cid in self.position
        ]

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
        """Let this generation go: its lease and Chroma system are released now, or when a search still
        running on it finishes. A caller that still holds the object and searches again re-leases it
        (if an ingest has deleted it meanwhile, that search raises IndexMissing)."""
        with self._guard:
            self.retired = True
            if not self._searching:
                self._finalizer()

    release = close


def _release(lease, clients: list) -> None:
    for client in clients:
        try:
            client.close()  # stops Chroma's cached System: without it each swap kept ~7 MB
        except Exception:
            pass
    lease.close()


def open_current(store: IndexStore, embedder: Embedder) -> LoadedIndex:
    """The current generation, opened and leased; if an ingest retires it in between, retry once."""
    for attempt in range(2):
        generation = store.current_generation()
        if generation is None:
            raise IndexMissing(no_index_message(store.index_dir))
        try:
            return LoadedIndex(generation, embedder)
        except GenerationGone:
            if attempt:
                raise IndexMissing("the index was replaced twice while opening it; please try again") from None
    raise IndexMissing("the index could not be opened")
