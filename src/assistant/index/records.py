"""One document's indexed pieces (chunks, vectors, sentences, references), their on-disk cache, and what readers derive from them."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant.ingest.splitter import Chunk

_BM25_STOPWORDS = "english"


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
    from assistant.index.sentence_tables import stems, word_counts

    texts = [c.embedding_text() for c in record.chunks]
    tokens = tokenize_for_bm25(texts, _stemmer()) if texts else []
    return {
        "bm25": [list(t) for t in tokens],
        "stems": [sorted(stems(text)) for _, text in record.sentences],
        "vocabulary": word_counts(texts),
    }


def _write_sentence_tables(folder: Path, records: list[DocumentRecord], derived: list[dict]) -> None:
    """The retriever's sentence tables (stems, IDF, question weights, word counts), persisted with the rest."""
    from assistant.index.sentence_tables import idf_table, question_weights

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
    np.save(folder / "sentence_weights.npy", question_weights(sentences))
    idf, unseen_idf = idf_table(frequency, len(rows))
    write_json_atomic(
        folder / "sentence_tables.json",
        {
            "stems": rows,
            "idf": idf,
            "unseen_idf": unseen_idf,
            "vocabulary": vocabulary,
            "frequency": frequency,  # lets a reader update its loaded tables for the next stamp without reloading them
        },
        indent=None,
    )


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
    for source, entry in documents.items() if isinstance(documents, dict) else []:
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
