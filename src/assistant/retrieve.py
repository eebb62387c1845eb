"""Hybrid retrieval: dense, sentence-level and BM25 rankings fused by reciprocal rank, then de-duplicated."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from assistant.embeddings import Embedder
from assistant.index import LoadedIndex
from assistant.splitter import Chunk


@dataclass
class Passage:
    chunk: Chunk
    score: float  # fused reciprocal-rank score
    dense_score: float | None = None  # cosine similarity of the passage
    sentence_score: float | None = None  # best cosine of any sentence in the passage
    keyword_score: float | None = None  # BM25
    rank: int = 0

    def to_dict(self) -> dict:
        c = self.chunk
        return {
            "rank": self.rank,
            "chunk_id": c.chunk_id,
            "text": c.text,
            "source": c.source,
            "title": c.title,
            "section": c.section,
            "page": c.page,
            "themes": c.themes,
            "score": round(self.score, 6),
            "dense_score": None if self.dense_score is None else round(self.dense_score, 4),
            "sentence_score": None if self.sentence_score is None else round(self.sentence_score, 4),
            "keyword_score": None if self.keyword_score is None else round(self.keyword_score, 4),
        }


@dataclass
class Filters:
    document: str | None = None
    theme: str | None = None

    def chroma_where(self) -> dict | None:
        clauses = []
        if self.document:
            clauses.append({"source": self.document})
        if self.theme:
            clauses.append({"themes": {"$contains": self.theme}})
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}

    def allows(self, chunk: Chunk) -> bool:
        return (not self.document or chunk.source == self.document) and (not self.theme or self.theme in chunk.themes)


@dataclass
class Retrieval:
    query: str
    passages: list[Passage]
    query_vector: np.ndarray
    relevance: float  # the best dense or sentence similarity seen: how well the corpus covers the query
    filters: Filters = field(default_factory=Filters)


def reciprocal_rank_fusion(rankings: list[list[str]], k: int = 60, weights: list[float] | None = None) -> list[tuple[str, float]]:
    """Fuse ranked id lists: score(id) = sum over lists of weight / (k + rank), rank starting at 1."""
    weights = weights or [1.0] * len(rankings)
    scores: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights):
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))


def _token_set(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def remove_near_duplicates(passages: list[Passage], threshold: float = 0.8) -> list[Passage]:
    """Keep the better-ranked of two passages whose word sets overlap by `threshold` (Jaccard) or more."""
    kept: list[Passage] = []
    kept_tokens: list[set[str]] = []
    for passage in passages:
        tokens = _token_set(passage.chunk.text)
        duplicate = any(len(tokens & other) / max(1, len(tokens | other)) >= threshold for other in kept_tokens)
        if not duplicate:
            kept.append(passage)
            kept_tokens.append(tokens)
    return kept


def guarantee_primary(passages: list[Passage], is_primary, quota: int, window: int) -> list[Passage]:
    """Make sure the first `window` places hold at least `quota` passages from primary sources.

    Our own notes paraphrase the evidence and often outrank it; a facilitator should still see the
    primary source next to them. Pulled-up passages take the last places of the window, so the
    best-ranked passages keep their positions.
    """
    head, rest = list(passages[:window]), list(passages[window:])
    missing = quota - sum(1 for p in head if is_primary(p))
    pulled = [p for p in rest if is_primary(p)][: max(0, missing)]
    if not pulled:
        return list(passages)
    displaced: list[Passage] = []
    for position in range(len(head) - 1, -1, -1):
        if len(displaced) == len(pulled):
            break
        if not is_primary(head[position]) and len(head) + len(pulled) - len(displaced) > window:
            displaced.insert(0, head.pop(position))
    return head + pulled + displaced + [p for p in rest if p not in pulled]


class Retriever:
    def __init__(self, index: LoadedIndex, embedder: Embedder, candidates: int = 30, rrf_k: int = 60, weights: tuple[float, float, float] = (1.0, 1.0, 1.0), primary_sources: set[str] | None = None, primary_quota: int = 2, window: int = 5, document_weights: dict[str, float] | None = None):
        self.document_weights = document_weights or {}
        self.primary_sources = primary_sources or set()
        self.primary_quota = primary_quota
        self.window = window
        self.index = index
        self.weights = list(weights)
        self.embedder = embedder
        self.candidates = candidates
        self.rrf_k = rrf_k

    def _sentence_ranking(self, query_vector: np.ndarray, allowed: np.ndarray | None) -> dict[str, float]:
        """Best sentence similarity per chunk: short, list-like passages are judged by their best line."""
        if len(self.index.sentences) == 0:
            return {}
        similarities = self.index.sentence_vectors @ query_vector
        best: dict[str, float] = {}
        for row in np.argsort(-similarities)[: self.candidates * 4]:
            chunk_id = self.index.sentences[row][0]
            position = self.index.position.get(chunk_id)
            if position is None or (allowed is not None and not allowed[position]):
                continue
            best.setdefault(chunk_id, float(similarities[row]))
            if len(best) >= self.candidates:
                break
        return best

    def retrieve(self, query: str, top_k: int = 8, filters: Filters | None = None) -> Retrieval:
        filters = filters or Filters()
        query_vector = self.embedder.embed_query(query)
        allowed = None
        if filters.document or filters.theme:
            allowed = np.array([filters.allows(c) for c in self.index.chunks], dtype=bool)
        dense = self.index.dense_search(query_vector, self.candidates, filters.chroma_where())
        by_sentence = self._sentence_ranking(query_vector, allowed)
        keyword = self.index.keyword_search(query, self.candidates, allowed)

        fused = reciprocal_rank_fusion(
            [[cid for cid, _ in dense], list(by_sentence), [cid for cid, _ in keyword]], k=self.rrf_k, weights=self.weights
        )
        if self.document_weights:
            fused = sorted(
                ((cid, score * self.document_weights.get(self.index.chunks[self.index.position[cid]].source, 1.0)) for cid, score in fused),
                key=lambda pair: (-pair[1], pair[0]),
            )
        dense_scores, keyword_scores = dict(dense), dict(keyword)
        passages = [
            Passage(
                chunk=self.index.chunks[self.index.position[cid]],
                score=score,
                dense_score=dense_scores.get(cid),
                sentence_score=by_sentence.get(cid),
                keyword_score=keyword_scores.get(cid),
            )
            for cid, score in fused
        ]
        passages = remove_near_duplicates(passages)
        if self.primary_sources:
            passages = guarantee_primary(passages, lambda p: p.chunk.source in self.primary_sources, self.primary_quota, self.window)
        passages = passages[:top_k]
        for rank, passage in enumerate(passages, start=1):
            passage.rank = rank
        relevance = max([s for _, s in dense[:3]] + list(by_sentence.values())[:3] + [0.0])
        return Retrieval(query=query, passages=passages, query_vector=query_vector, relevance=relevance, filters=filters)
