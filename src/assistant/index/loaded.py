"""A reader's index: one published set of tables loaded whole into memory, searched densely and by BM25, updated in place for the next stamp."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from assistant.index.errors import IndexMissing
from assistant.index.records import DocumentCache, _stemmer, tokenize_for_bm25, tolerant_manifest
from assistant.index.store import IndexStore
from assistant.ingest.splitter import Chunk
from assistant.locations import no_index_message
from assistant.models.embeddings import Embedder


def top_k_stable(scores: np.ndarray, k: int) -> np.ndarray:
    """The first k of np.argsort(-scores, kind="stable") (ties in index order), without sorting them all.

    argpartition finds the k-th best score in O(n); only the rows at or above it are sorted. A full
    sort of 285k sentence scores took 25 ms per question, this about 1 ms.
    """
    n = len(scores)
    if k <= 0 or n == 0:
        return np.zeros(0, dtype=np.int64)
    negated = -np.asarray(scores)
    if k >= n:
        return np.argsort(negated, kind="stable")
    kth = negated[np.argpartition(negated, k - 1)[k - 1]]
    above = np.flatnonzero(negated < kth)
    tied = np.flatnonzero(negated == kth)[: k - len(above)]  # the lowest rows among equals, as a stable sort takes them
    chosen = np.sort(np.concatenate([above, tied]))
    return chosen[np.argsort(negated[chosen], kind="stable")]


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
            from assistant.index.sentence_tables import SentenceTables

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
    def updated(cls, previous: LoadedIndex, tables: Path, cache: DocumentCache) -> LoadedIndex | None:
        """The tables of a newer stamp, built from an index already loaded plus the documents that changed.

        Only the changed documents are read (from this folder's cache) and BM25 is loaded; the rest is
        reused from memory, so the first question after an update costs about the update's size, not
        the library's. The result equals a full load of `tables`; None when that cannot be done
        (an older table set, or a changed document missing from the cache): the caller loads in full.
        """
        from assistant.index.sentence_tables import SentenceTables, idf_table, question_weights, word_counts

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
            for word, count in word_counts(chunk.embedding_text() for chunk in previous.chunks[cs:ce]).items():
                vocabulary[word] -= count
            for ref_key in [k for k, o in owner.items() if o == source]:
                del references[ref_key]
        chunks, pvecs, sentences, svecs, weights, positions = [], [], [], [], [], []
        stems: list[set[str]] = []
        for source in sorted(new_keys):
            if source in records:
                record = records[source]
                derived = cache.derived(changed[source], record)
                chunks.extend(record.chunks)
                pvecs.append(record.chunk_vectors)
                sentences.extend(record.sentences)
                svecs.append(record.sentence_vectors)
                stems.extend(set(words) for words in derived["stems"])
                weights.append(question_weights(record.sentences))
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
        index.frequency = frequency
        idf, unseen_idf = idf_table(frequency, len(stems))
        index.loaded_sentence_tables = SentenceTables(
            positions=np.concatenate(positions) if positions else np.zeros(0, np.int64),
            weights=np.concatenate(weights) if weights else np.zeros(0, np.float32),
            stems=stems,
            idf=idf,
            unseen_idf=unseen_idf,
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
    return {source: (span[0], span[1], span[2], span[3]) for source, span in ranges.items()}


def open_current(
    store: IndexStore, embedder: Embedder | None, stamp: str | None = None, previous: LoadedIndex | None = None
) -> LoadedIndex:
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
