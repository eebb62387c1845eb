"""Extractive answers: the retrieved sentences that answer the question, each cited, or a plain abstention."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from assistant.cite import Citation, primary_references
from assistant.index import LoadedIndex
from assistant.references import Reference
from assistant.sentences import clean_markup
from assistant.retrieve import Passage, Retrieval, SentenceTables, is_question, sentence_tables, stems
from assistant.splitter import SECTION_SEPARATOR

NOT_COVERED = "The indexed sources don't cover this question, so I can't answer it from them."
REDUNDANT = 0.86  # cosine above which a sentence repeats one already chosen

# How a sentence is scored: its cosine to the question, plus
LEXICAL_WEIGHT = 0.3  # x the share of the question's word weight (IDF of stems) that the sentence repeats,
RANK_PRIOR = 0.08  # x how high its passage ranks (1 for the first passage, falling to 0 past the last one).
# Rare words carry the question ("consultants dominating"), common ones ("co-design", "patients") do not:
# a sentence that shares only common words with the question gains little from them.
HEADING_SHARE = 1.0  # a question word found only in the sentence's section heading ("Trigger film") counts too
SCORE_MARGIN = 0.22  # sentences scoring this far below the best one are not relevant enough to add
LEAD_IN = re.compile(r":\s*(?:\([^()]*\))?\s*$")  # ends with a colon, perhaps before its citation
LIST_ITEMS = 3  # list items quoted after a lead-in that was chosen
LIST_ITEM = re.compile(r"^\s*(?:[-*•–]|\d{1,2}[.)])\s+")
# An entry of a reference list answers a question that asks for something to read or cite, and can show that
# something has been tried ("Has EBCD been used in cancer services?"); for any other question it is a weak
# answer, so it loses this much score.
REFERENCE_PENALTY = 0.05
SOURCE_SEEKING = re.compile(
    r"\b(sources?|papers?|stud(?:y|ies)|articles?|reports?|toolkits?|guides?|guidance|read|reading|references?|"
    r"cite|citations?|publications?|published|journals?|evaluations?|books?|links?|blueprint|"
    r"where (?:can|could|do|would|should) (?:i|we|you) (?:find|get|look))\b",
    re.IGNORECASE,
)


@dataclass
class Answer:
    question: str
    text: str
    abstained: bool
    citations: list[Citation] = field(default_factory=list)
    passages: list[Passage] = field(default_factory=list)
    backend: str | None = "extractive"
    timings_ms: dict = field(default_factory=dict)
    search_query: str | None = None
    notice: str | None = None
    error: str | None = None
    model: str | None = None  # the language model that wrote the answer (None: quoted, not written)
    fallback: str | None = None  # why a model's answer was replaced by the extractive one
    citations_reported: list[dict] | None = None  # the model's own sentences and the passages it cited
    verification: list[dict] | None = None  # per model sentence: which passages support it, and what was done

    @classmethod
    def refusal(cls, question: str, message: str, total_ms: float | None = None) -> "Answer":
        """A question refused before searching (empty, too long): the reason is the answer and the error."""
        timings = {} if total_ms is None else {"total": round(total_ms, 1)}
        return cls(question=question, text=message, abstained=True, backend=None, timings_ms=timings, error=message)

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
            "model": self.model,
            "fallback": self.fallback,
            "citations_reported": self.citations_reported,
            "verification": self.verification,
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
        citations = [self.citation(n, s) for n, s in enumerate(chosen, start=1)]
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
        tables = sentence_tables(self.index)
        query_words = tables.query_weights(question)
        wants_sources = bool(SOURCE_SEEKING.search(question))
        considered = retrieval.passages[: self.passages_considered]
        candidates: list[ScoredSentence] = []
        for position, passage in enumerate(considered):
            penalty = REFERENCE_PENALTY if passage.chunk.is_reference_list and not wants_sources else 0.0
            rows = self.index.sentences_by_chunk.get(passage.chunk.chunk_id, [])
            if not rows:
                continue
            similarities = self.index.sentence_vectors[rows] @ retrieval.query_vector
            prior = RANK_PRIOR * (len(considered) - position) / len(considered)
            heading = stems(passage.chunk.section.split(SECTION_SEPARATOR)[-1]) if passage.chunk.section else set()
            for row, similarity in zip(rows, similarities):
                text = self.index.sentences[row][1]
                if is_question(text) or similarity < self.min_sentence_relevance:  # a question does not answer one
                    continue
                words = tables.stems[row]
                # the heading a sentence sits under says what it is about ("Trigger film: A compilation of ...")
                lexical = SentenceTables.overlap(query_words, words) + HEADING_SHARE * SentenceTables.overlap(query_words, heading - words)
                candidates.append(ScoredSentence(row, passage, text, float(similarity), float(similarity) + LEXICAL_WEIGHT * lexical + prior - penalty))
        if not candidates:
            return []
        candidates.sort(key=lambda s: (-s.score, s.row))
        chosen: list[ScoredSentence] = []
        seen_texts: set[str] = set()
        for candidate in candidates:
            if len(chosen) >= self.max_sentences or (chosen and candidate.score < chosen[0].score - SCORE_MARGIN):
                break
            key = re.sub(r"\W+", " ", candidate.text.lower()).strip()
            if key in seen_texts or any(c.row == candidate.row for c in chosen):
                continue
            vector = self.index.sentence_vectors[candidate.row]
            if any(float(vector @ self.index.sentence_vectors[c.row]) > REDUNDANT for c in chosen):
                continue
            if LEAD_IN.search(candidate.text):
                # a list's lead-in ("... from three perspectives:") says nothing alone: quote the list after it
                items = self._list_after(candidate, retrieval, chosen, self.max_sentences - len(chosen) - 1)
                if not items:
                    continue
                chosen.append(candidate)
                chosen.extend(items)
                seen_texts.update(re.sub(r"\W+", " ", s.text.lower()).strip() for s in [candidate, *items])
                continue
            chosen.append(candidate)
            seen_texts.add(key)
        return chosen

    def _list_after(self, lead_in: ScoredSentence, retrieval: Retrieval, chosen: list[ScoredSentence], room: int) -> list[ScoredSentence]:
        """Up to `room` (at most LIST_ITEMS) items of the list that follows a lead-in in its passage, in order."""
        text = lead_in.passage.chunk.text
        anchor = text.find(lead_in.text[:40])
        if anchor < 0 or room < 1:
            return []
        items: list[str] = []
        for line in text[anchor:].splitlines()[1:]:
            if LIST_ITEM.match(line):
                items.append(clean_markup(LIST_ITEM.sub("", line)))
            elif line.strip() and items:
                break  # the list has ended
        taken = {c.row for c in chosen} | {lead_in.row}
        rows = self.index.sentences_by_chunk.get(lead_in.passage.chunk.chunk_id, [])
        following = [
            r for r in rows if r > lead_in.row and r not in taken and any(self.index.sentences[r][1] in item for item in items)
        ][: min(room, LIST_ITEMS)]
        return [
            ScoredSentence(r, lead_in.passage, self.index.sentences[r][1], float(self.index.sentence_vectors[r] @ retrieval.query_vector), lead_in.score)
            for r in following
        ]

    def citation(self, n: int, sentence: ScoredSentence) -> Citation:
        """Citation number n for a quoted sentence: its passage, place in the document, and primary study."""
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
