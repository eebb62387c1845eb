"""Extractive answers: the retrieved sentences that answer the question, each cited, or a plain abstention."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from assistant.cite import Citation, content_words, primary_references
from assistant.index import LoadedIndex
from assistant.references import Reference
from assistant.retrieve import Passage, Retrieval

NOT_COVERED = "The indexed sources don't cover this question, so I can't answer it from them."
REDUNDANT = 0.86  # cosine above which a sentence repeats one already chosen


@dataclass
class Answer:
    question: str
    text: str
    abstained: bool
    citations: list[Citation] = field(default_factory=list)
    passages: list[Passage] = field(default_factory=list)
    backend: str = "extractive"
    timings_ms: dict = field(default_factory=dict)
    search_query: str | None = None
    notice: str | None = None
    error: str | None = None

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "answer": self.text,
            "abstained": self.abstained,
            "citations": [c.to_dict() for c in self.citations],
            "retrieved": [p.to_dict() for p in self.passages],
            "timings_ms": self.timings_ms,
            "backend": self.backend,
            "search_query": self.search_query,
            "notice": self.notice,
            "error": self.error,
        }


@dataclass
class ScoredSentence:
    row: int
    passage: Passage
    text: str
    similarity: float
    score: float


class ExtractiveAnswerer:
    """Chooses and orders sentences from retrieved passages; never writes a word of its own."""

    name = "extractive"

    def __init__(self, index: LoadedIndex, min_relevance: float, min_sentence_relevance: float, max_sentences: int, passages_considered: int = 6):
        self.index = index
        self.min_relevance = min_relevance
        self.min_sentence_relevance = min_sentence_relevance
        self.max_sentences = max_sentences
        self.passages_considered = passages_considered

    def answer(self, question: str, retrieval: Retrieval) -> Answer:
        if retrieval.relevance < self.min_relevance or not retrieval.passages:
            return self.abstain(question, retrieval)
        chosen = self._choose(question, retrieval)
        if not chosen:
            return self.abstain(question, retrieval)
        citations = [self._citation(n, s) for n, s in enumerate(chosen, start=1)]
        lead, points = chosen[0], chosen[1:]
        text = f"{lead.text} [1]"
        if points:
            text += "\n\n" + "\n".join(f"- {s.text} [{n}]" for n, s in enumerate(points, start=2))
        return Answer(question=question, text=text, abstained=False, citations=citations, passages=retrieval.passages)

    def abstain(self, question: str, retrieval: Retrieval, reason: str = NOT_COVERED) -> Answer:
        nearest = []
        for passage in retrieval.passages[:3]:
            where = passage.chunk.title + (f" > {passage.chunk.section}" if passage.chunk.section else "")
            if where not in nearest:
                nearest.append(where)
        text = reason
        if nearest:
            text += " The nearest sections are:\n" + "\n".join(f"- {w}" for w in nearest)
        return Answer(question=question, text=text, abstained=True, passages=retrieval.passages)

    def _choose(self, question: str, retrieval: Retrieval) -> list[ScoredSentence]:
        query_words = content_words(question)
        considered = retrieval.passages[: self.passages_considered]
        candidates: list[ScoredSentence] = []
        for position, passage in enumerate(considered):
            rows = self.index.sentences_by_chunk.get(passage.chunk.chunk_id, [])
            if not rows:
                continue
            similarities = self.index.sentence_vectors[rows] @ retrieval.query_vector
            for row, similarity in zip(rows, similarities):
                text = self.index.sentences[row][1]
                overlap = len(query_words & content_words(text)) / max(1, len(query_words))
                prior = 0.04 * (len(considered) - position) / len(considered)
                candidates.append(ScoredSentence(row, passage, text, float(similarity), float(similarity) + 0.15 * overlap + prior))
        candidates.sort(key=lambda s: -s.score)
        if not candidates or candidates[0].similarity < self.min_sentence_relevance:
            return []
        best = candidates[0].score
        chosen: list[ScoredSentence] = []
        seen_texts: set[str] = set()
        for candidate in candidates:
            if len(chosen) >= self.max_sentences:
                break
            if candidate.similarity < self.min_sentence_relevance or candidate.score < best - 0.22:
                break
            key = re.sub(r"\W+", " ", candidate.text.lower()).strip()
            if key in seen_texts:
                continue
            vector = self.index.sentence_vectors[candidate.row]
            if any(float(vector @ self.index.sentence_vectors[c.row]) > REDUNDANT for c in chosen):
                continue
            chosen.append(candidate)
            seen_texts.add(key)
        return chosen

    def _citation(self, n: int, sentence: ScoredSentence) -> Citation:
        chunk = sentence.passage.chunk
        document_refs = [
            Reference.from_dict(ref) for key in chunk.references if (ref := self.index.reference(chunk.source, key)) is not None
        ]
        primary = primary_references(sentence.text, chunk.text, document_refs)
        entry = self.index.manifest.get("documents", {}).get(chunk.source, {})
        return Citation(
            n=n,
            chunk_id=chunk.chunk_id,
            source=chunk.source,
            title=entry.get("short_title") or chunk.title,
            section=chunk.section,
            quote=sentence.text,
            page=chunk.page,
            reference=primary[0].to_dict() if primary else None,
            references=[r.to_dict() for r in primary],
            source_url=(entry.get("metadata") or {}).get("source_url"),
        )

