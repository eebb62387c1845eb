"""Hybrid retrieval: passage vectors, sentence vectors and BM25 fused by weighted score, then de-duplicated.

Each of the three retrievers scores its `candidates` best passages; every score is divided by that
retriever's best score, so the three lie on one scale (1.0 = the best this retriever found), and a
passage's fused score is the weighted sum. Score fusion keeps how far apart passages are, which rank
fusion throws away: on our paraphrased questions it puts the right passage first more often
(benchmarks/quality/README.md). Documents marked as primary evidence have their fused score multiplied by
the primary boost; a quota keeps primary passages in the first places, and another keeps a place near
the top for the best of everything else (our notes), so neither kind of source crowds out the other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from assistant.index.loaded import LoadedIndex, top_k_stable
from assistant.index.sentence_tables import sentence_tables
from assistant.ingest.splitter import Chunk
from assistant.models.embeddings import Embedder


@dataclass
class Passage:
    chunk: Chunk
    score: float  # fused score: weighted sum of the retrievers' scores, each divided by that retriever's best
    dense_score: float | None = None  # cosine similarity of the passage
    sentence_score: float | None = None  # best cosine of any sentence in the passage (of those scored)
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
    """Keep to one document and/or one theme."""

    document: str | None = None
    theme: str | None = None

    def allows(self, chunk: Chunk) -> bool:
        return (not self.document or chunk.source == self.document) and (not self.theme or self.theme in chunk.themes)


@dataclass
class Retrieval:
    query: str
    passages: list[Passage]
    query_vector: np.ndarray
    relevance: float  # the best passage or sentence similarity seen: how well the corpus covers the query
    filters: Filters = field(default_factory=Filters)


def score_fusion(
    scored: list[list[tuple[str, float]]], weights: list[float] | None = None, floors: list[float | None] | None = None
) -> list[tuple[str, float]]:
    """Fuse scored id lists: score(id) = sum over lists of weight * score / best score of that list.

    An id missing from a list scores that list's floor: by default its lowest score, a bound on what
    the id would have scored had the list been longer (pass 0.0 for a list known to hold every id that
    scores above zero). A list whose best score is not positive contributes nothing. Ties break by id.
    """
    weights = weights or [1.0] * len(scored)
    floors = floors or [None] * len(scored)
    ids = sorted({item for ranking in scored for item, _ in ranking})
    fused = dict.fromkeys(ids, 0.0)
    for ranking, weight, floor in zip(scored, weights, floors):
        if not ranking or not weight:
            continue
        values = dict(ranking)
        best = max(values.values())
        if best <= 0:
            continue
        missing = min(values.values()) if floor is None else floor
        for item in ids:
            fused[item] += weight * values.get(item, missing) / best
    return sorted(fused.items(), key=lambda pair: (-pair[1], pair[0]))


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
    """Make sure the first `window` places hold at least `quota` passages for which `is_primary` is true.

    Our own notes paraphrase the evidence and often outrank it; a facilitator should still see the
    primary source next to them. Pulled-up passages take the last places of the window, so the
    best-ranked passages keep their positions. (Called with the test reversed, it keeps a place for the
    best note when the primary source leads.)
    """
    head, rest = list(passages[:window]), list(passages[window:])
    missing = quota - sum(1 for p in head if is_primary(p))
    pulled = [p for p in rest if is_primary(p)][: max(0, missing)]
    if not pulled:
        return list(passages)
    displaced: list[Passage] = []
    # make room from the end of the window, never moving a passage that already counts towards the quota
    # (an earlier version popped one passage too few, leaving the last pulled-up passage outside the window)
    for position in range(len(head) - 1, -1, -1):
        if len(head) + len(pulled) <= window:
            break
        if not is_primary(head[position]):
            displaced.insert(0, head.pop(position))
    return head + pulled + displaced + [p for p in rest if p not in pulled]


# A sentence is judged by its cosine to the question plus this much times the share of the question's
# word weight (IDF of the word stems) it repeats: meaning first, and the question's rare words as a tie-break.
SENTENCE_LEXICAL_WEIGHT = 0.4
# How many of the most similar sentences get the word-overlap score (the rest cannot reach the top).
SENTENCES_PER_CANDIDATE = 8


# Markup pasted into a question is not part of what is asked: script and style blocks go with their
# content, other tags go and their text stays.
_MARKUP_BLOCK = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"</?[A-Za-z][^<>]*>")
_LOWER_WORD = re.compile(r"(?<![\w'-])[a-z]{5,}(?![\w'-])")
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def clean_query(text: str) -> str:
    """The question without markup (the question itself when nothing else is left)."""
    cleaned = re.sub(r"\s+", " ", _TAG.sub(" ", _MARKUP_BLOCK.sub(" ", text))).strip()
    return cleaned or text


def _one_edit(word: str) -> set[str]:
    """Every string one deletion, transposition, substitution or insertion away (Norvig's speller)."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    return (
        {a + b[1:] for a, b in splits if b}
        | {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
        | {a + c + b[1:] for a, b in splits if b for c in _LETTERS}
        | {a + c + b for a, b in splits for c in _LETTERS}
    )


def correct_spelling(text: str, vocabulary: dict[str, int], known: frozenset[str] | set[str]) -> str:
    """Replace a lower-case word of five letters or more that is neither in the corpus `vocabulary` nor
    a `known` word by the corpus's most frequent word one edit away ("feild" -> "field", "managment" ->
    "management"). Capitalised words are left alone: they are names more often than typos."""

    def fix(match: re.Match) -> str:
        word = match.group(0)
        if word in vocabulary or word in known:
            return word
        nearby = [w for w in _one_edit(word) if w in vocabulary]
        return max(nearby, key=lambda w: (vocabulary[w], w)) if nearby else word

    return _LOWER_WORD.sub(fix, text)


@lru_cache(maxsize=4)
def known_words(model_path: str) -> frozenset[str]:
    """Whole words of the embedding model's WordPiece vocabulary: real words, never to be "corrected".

    Empty when the model has no vocab.txt; then no spelling is corrected, since a small corpus alone
    cannot tell a typo from an ordinary word it happens not to use ("bother" is not "other").
    """
    path = Path(model_path) / "vocab.txt"
    if not path.is_file():
        return frozenset()
    words = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return frozenset(w for w in words if w.isalpha() and w.islower())


def chunk_vectors(index: LoadedIndex, chunk_ids: list[str]) -> dict[str, np.ndarray]:
    """The stored passage vectors of these chunks (held by the loaded index)."""
    found = ((cid, index.passage_vector(cid)) for cid in chunk_ids)
    return {cid: vector for cid, vector in found if vector is not None}


class Retriever:
    def __init__(
        self,
        index: LoadedIndex,
        embedder: Embedder,
        candidates: int = 30,
        weights: tuple[float, float, float] = (0.25, 1.0, 0.75),
        primary_sources: set[str] | None = None,
        primary_quota: int = 2,
        window: int = 5,
        document_weights: dict[str, float] | None = None,
        secondary_window: int = 3,
    ):
        self.document_weights = document_weights or {}
        self.primary_sources = primary_sources or set()
        self.primary_quota = primary_quota
        self.window = window
        self.secondary_window = secondary_window
        self.index = index
        self.weights = list(weights)
        self.embedder = embedder
        self.candidates = candidates

    def _sentence_ranking(
        self, query: str, query_vector: np.ndarray, allowed: np.ndarray | None
    ) -> tuple[dict[str, float], dict[str, float]]:
        """Per chunk, best first: (the best sentence score, the best sentence cosine).

        Short, list-like passages are judged by their best line. A sentence's score is its cosine to the
        query (scaled down for a sentence that is itself a question) plus SENTENCE_LEXICAL_WEIGHT times the
        share of the query's rare words it repeats; the plain cosine measures how well the corpus covers
        the question.
        """
        if len(self.index.sentences) == 0:
            return {}, {}
        tables = sentence_tables(self.index)
        cosines = self.index.sentence_vectors @ query_vector
        scores = cosines * tables.weights
        usable = tables.positions >= 0
        if allowed is not None:
            usable &= allowed[np.clip(tables.positions, 0, None)]
        scores = np.where(usable, scores, -np.inf)
        rows = [int(r) for r in top_k_stable(scores, self.candidates * SENTENCES_PER_CANDIDATE) if usable[r]]
        if SENTENCE_LEXICAL_WEIGHT:
            query_weights = tables.query_weights(query)
            lexical = {r: tables.overlap(query_weights, tables.stems[r]) for r in rows}
            combined = {r: float(scores[r]) + SENTENCE_LEXICAL_WEIGHT * lexical[r] for r in rows}
        else:
            combined = {r: float(scores[r]) for r in rows}
        best: dict[str, float] = {}
        best_cosine: dict[str, float] = {}
        for row in sorted(rows, key=lambda r: (-combined[r], r)):
            chunk_id = self.index.sentences[row][0]
            if chunk_id not in best and len(best) >= self.candidates:
                continue
            best.setdefault(chunk_id, combined[row])
            best_cosine[chunk_id] = max(best_cosine.get(chunk_id, -1.0), float(cosines[row]))
        return best, dict(sorted(best_cosine.items(), key=lambda pair: (-pair[1], pair[0])))

    def _dense_ranking(self, query_vector: np.ndarray, allowed: np.ndarray | Filters | None = None) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity) of the nearest passage vectors the filters (or a mask of passages) allow, best first."""
        if isinstance(allowed, Filters):
            allowed = np.array([allowed.allows(c) for c in self.index.chunks], dtype=bool) if allowed.document or allowed.theme else None
        return sorted(self.index.dense_search(query_vector, self.candidates, allowed), key=lambda pair: (-pair[1], pair[0]))

    def search_text(self, query: str) -> str:
        """What is searched for: the query without markup, with obvious typos corrected against the corpus."""
        query = clean_query(query)
        known = known_words(str(getattr(self.embedder, "model_path", "") or ""))
        return correct_spelling(query, sentence_tables(self.index).vocabulary, known) if known else query

    def retrieve(self, query: str, top_k: int = 8, filters: Filters | None = None) -> Retrieval:
        filters = filters or Filters()
        search = self.search_text(query)
        query_vector = self.embedder.embed_query(search)
        allowed = None
        if filters.document or filters.theme:
            allowed = np.array([filters.allows(c) for c in self.index.chunks], dtype=bool)
        dense = self._dense_ranking(query_vector, allowed)
        by_sentence, sentence_cosines = self._sentence_ranking(search, query_vector, allowed)
        keyword = self.index.keyword_search(search, self.candidates, allowed)

        scored = [dense, list(by_sentence.items()), keyword]
        # BM25 drops passages sharing no word with the query: a short list holds every match there is
        keyword_floor = 0.0 if len(keyword) < self.candidates else None
        fused = score_fusion(scored, weights=self.weights, floors=[None, None, keyword_floor])
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
                sentence_score=sentence_cosines.get(cid),
                keyword_score=keyword_scores.get(cid),
            )
            for cid, score in fused
        ]
        passages = remove_near_duplicates(passages)
        if self.primary_sources:
            is_primary = lambda p: p.chunk.source in self.primary_sources  # noqa: E731
            if self.secondary_window:
                passages = guarantee_primary(passages, lambda p: not is_primary(p), 1, self.secondary_window)
            passages = guarantee_primary(passages, is_primary, self.primary_quota, self.window)
        passages = passages[:top_k]
        for rank, passage in enumerate(passages, start=1):
            passage.rank = rank
        relevance = max([s for _, s in dense[:3]] + list(sentence_cosines.values())[:3] + [0.0])
        return Retrieval(query=query, passages=passages, query_vector=query_vector, relevance=relevance, filters=filters)
