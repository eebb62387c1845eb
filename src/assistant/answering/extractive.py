"""Extractive answers: the quoted, cited source sentences that best answer the question, grouped into
coherent units of evidence, with one of three outcomes: answered, partly covered, or declined."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from assistant.answering import hygiene
from assistant.answering.answerability import Gap, find_gap
from assistant.answering.cite import Citation, primary_references, states_disagreement
from assistant.answering.safety import suspicious_instruction
from assistant.index.loaded import LoadedIndex
from assistant.index.sentence_tables import SentenceTables, is_question, sentence_tables, stems
from assistant.ingest.references import Reference
from assistant.ingest.splitter import SECTION_SEPARATOR
from assistant.retrieval.retriever import Passage, Retrieval, clean_query
from assistant.text import clean_markup

NOT_COVERED = "The indexed sources don't cover this question, so I can't answer it from them."
REDUNDANT = 0.86  # cosine above which a sentence repeats one already chosen

# The first, cheap score of a sentence: its cosine to the question, plus
LEXICAL_WEIGHT = 0.3  # x the share of the question's word weight (IDF of stems) that the sentence repeats,
RANK_PRIOR = 0.08  # x how high its passage ranks (1 for the first passage, falling to 0 past the last one).
HEADING_SHARE = 1.0  # a question word found only in the sentence's section heading ("Trigger film") counts too
SCORE_MARGIN = 0.22  # without a cross-encoder: sentences this far below the best one are not added
# The cross-encoder then reads the best of them against the question (assistant.models.cross_encoder). Its raw
# logits are on a fixed scale: calibrated on the suites in evals/ (benchmarks/answerability.py).
UNITS_SCORED = 20  # units of evidence the cross-encoder reads per question
CHEAP_WEIGHT = 12.0  # x the cheap score, added to the cross-encoder's logit to rank units (not to judge them)
READING_BONUS = 3.0  # added for a reference entry when the question asks for something to read
ASKS_A_COUNT = re.compile(r"\b(?:how many|number of|stages?|steps?|phases?|count)\b", re.IGNORECASE)
CE_POINT = -6.5  # a further point must score at least this
CE_MARGIN = 6.0  # ... and at most this far below the lead
DISAGREEMENT_MARGIN = 4.0  # a unit saying the sources disagree leads if it is this close to the best one
LEAD_IN = re.compile(r":\s*(?:\([^()]*\))?\s*$")  # ends with a colon, perhaps before its citation
LIST_ITEMS = 4  # list items quoted after a lead-in that was chosen
LIST_ITEM = re.compile(r"^\s*(?:[-*•–]|\d{1,2}[.)])\s+")
SECTION_GROUP = 2  # this many points from one section are quoted together under its name
# An entry of a reference list answers a question that asks for something to read or cite; for any other
# question it is not an answer at all.
SOURCE_SEEKING = re.compile(
    r"\b(sources?|papers?|stud(?:y|ies)|articles?|reports?|toolkits?|guides?|guidance|read|reading|references?|"
    r"cite|citations?|publications?|published|journals?|evaluations?|books?|links?|blueprint|examples?|case stud(?:y|ies)|"
    r"(?:been|ever been) (?:used|tried|done|applied)|tried (?:in|on|with)|"
    r"where (?:can|could|do|would|should) (?:i|we|you) (?:find|get|look))\b",
    re.IGNORECASE,
)
REFERENCE_PENALTY = 0.05  # a reference entry loses this much cheap score when the question does not ask for reading


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
    coverage: str = "answered"  # answered | partial (the sources lack what was asked, said first) | declined
    lacking: list[str] = field(default_factory=list)  # what a partly covered question asked that the sources don't give
    relevance: float | None = None  # the cross-encoder's score of the best evidence against the question (None: not run)

    @classmethod
    def refusal(cls, question: str, message: str, total_ms: float | None = None) -> Answer:
        """A question refused before searching (empty, too long): the reason is the answer and the error."""
        timings = {} if total_ms is None else {"total": round(total_ms, 1)}
        return cls(question=question, text=message, abstained=True, backend=None, timings_ms=timings, error=message, coverage="declined")

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "answer": self.text,
            "abstained": self.abstained,
            "coverage": self.coverage,
            "lacking": self.lacking,
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
            "relevance": self.relevance,
        }


@dataclass
class ScoredSentence:
    """A unit of evidence: one sentence, or a sentence with the one before it that it refers back to."""

    row: int  # index row of the unit's main sentence
    passage: Passage
    text: str
    similarity: float
    score: float
    rows: tuple[int, ...] = ()  # every index row the unit quotes, in document order (empty: just `row`)
    relevance: float | None = None  # cross-encoder logit against the question

    @property
    def all_rows(self) -> tuple[int, ...]:
        return self.rows or (self.row,)

    @property
    def section(self) -> str:
        return self.passage.chunk.section


class ExtractiveAnswerer:
    """Chooses and orders quoted sentences from retrieved passages; never writes a word of its own
    beyond the fixed sentences that say what the sources do not cover."""

    name = "extractive"

    def __init__(
        self,
        index: LoadedIndex,
        min_relevance: float,
        min_sentence_relevance: float,
        max_sentences: int,
        passages_considered: int = 8,
        cross_encoder=None,
        trusted_sources: set[str] | None = None,
        min_answer_relevance: float = -8.0,
    ):
        self.index = index
        self.min_relevance = min_relevance
        self.min_sentence_relevance = min_sentence_relevance
        self.max_sentences = max_sentences
        self.passages_considered = passages_considered
        self.cross_encoder = cross_encoder  # None: the cheap score alone chooses, and no gap is checked by it
        self.trusted_sources = trusted_sources  # None: every document is trusted; else planted text is looked for outside these
        self.min_answer_relevance = min_answer_relevance  # the best unit's cross-encoder score below which we decline

    # -- the answer ------------------------------------------------------------------------------

    def answer(self, question: str, retrieval: Retrieval) -> Answer:
        if retrieval.relevance < self.min_relevance or not retrieval.passages:
            return self.abstain(question, retrieval)
        # a follow-up is read as the standalone question it was searched as, without any markup pasted in
        asked = clean_query(retrieval.query or question)
        wants_sources = bool(SOURCE_SEEKING.search(asked))
        units, suspicious = self._units(asked, retrieval, wants_sources)
        if not units:
            return self.abstain(question, retrieval, suspicious=suspicious)
        units = self._rank(asked, units, wants_sources)
        lead = units[0]
        best = max((u.relevance for u in units if u.relevance is not None), default=None)
        if best is not None and best < self.min_answer_relevance:
            return self.abstain(question, retrieval, suspicious=suspicious)
        chosen = self._choose(lead, units, retrieval)
        gap = find_gap(
            asked, [u.text for u in chosen] + [p.chunk.text for p in retrieval.passages[:3]], sentence_tables(self.index).vocabulary
        )
        citations = [self.citation(n, s) for n, s in enumerate(chosen, start=1)]
        text = self.layout(chosen, gap)
        return Answer(
            question=question,
            text=text,
            abstained=False,
            citations=citations,
            passages=retrieval.passages,
            coverage="partial" if gap else "answered",
            lacking=gap.unknown + gap.lacking + gap.unsupported_premise,
            relevance=None if best is None else round(float(best), 3),
        )

    def abstain(
        self, question: str, retrieval: Retrieval, reason: str = NOT_COVERED, suspicious: list[ScoredSentence] | None = None
    ) -> Answer:
        text = reason
        if suspicious:
            names = sorted({s.passage.chunk.title for s in suspicious})
            text += (
                " The closest match is an instruction in " + _join_quoted(names) + " asking the reader to hand over "
                "credentials, payment details or to contact an address; it is not quoted as advice."
            )
        nearest = []
        for passage in retrieval.passages:
            if passage.chunk.is_reference_list:
                continue  # a list of references is not a section anyone wants pointed to
            where = passage.chunk.title + (f" > {passage.chunk.section}" if passage.chunk.section else "")
            if where not in nearest:
                nearest.append(where)
            if len(nearest) == 3:
                break
        if nearest:
            text += " The nearest sections are:\n" + "\n".join(f"- {w}" for w in nearest)
        return Answer(question=question, text=text, abstained=True, passages=retrieval.passages, coverage="declined")

    def layout(self, chosen: list[ScoredSentence], gap: Gap | None = None) -> str:
        """The lead with [1]; then the other points, those from one section under its name."""
        lines: list[str] = []
        if gap:
            lines += [gap.sentence(), ""]
        lines.append(f"{chosen[0].text} [1]")
        rest = list(enumerate(chosen[1:], start=2))
        if rest:
            lines.append("")
        groups: dict[str, list[tuple[int, ScoredSentence]]] = {}
        for n, unit in rest:
            groups.setdefault(unit.passage.chunk.source + "\x00" + unit.section, []).append((n, unit))
        for members in groups.values():
            unit = members[0][1]
            if len(members) >= SECTION_GROUP and unit.section:
                heading = unit.section.split(SECTION_SEPARATOR)[-1].strip()
                if lines[-1]:
                    lines.append("")
                entry = self.index.manifest.get("documents", {}).get(unit.passage.chunk.source, {})
                lines.append(f"From “{heading}” in {entry.get('short_title') or unit.passage.chunk.title}:")
            lines += [f"- {u.text} [{n}]" for n, u in members]
        return "\n".join(lines)

    # -- choosing the evidence -------------------------------------------------------------------

    def _units(self, question: str, retrieval: Retrieval, wants_sources: bool) -> tuple[list[ScoredSentence], list[ScoredSentence]]:
        """Candidate units of evidence from the best passages, each able to stand alone, by cheap score."""
        tables = sentence_tables(self.index)
        query_words = tables.query_weights(question)
        considered = retrieval.passages[: self.passages_considered]
        units: list[ScoredSentence] = []
        suspicious: list[ScoredSentence] = []
        for position, passage in enumerate(considered):
            chunk = passage.chunk
            if chunk.is_reference_list and not wants_sources:
                continue
            rows = self.index.sentences_by_chunk.get(chunk.chunk_id, [])
            if not rows:
                continue
            similarities = self.index.sentence_vectors[rows] @ retrieval.query_vector
            prior = RANK_PRIOR * (len(considered) - position) / len(considered)
            heading = stems(chunk.section.split(SECTION_SEPARATOR)[-1]) if chunk.section else set()
            for i, (row, similarity) in enumerate(zip(rows, similarities)):
                text = self.index.sentences[row][1]
                if is_question(text) or similarity < self.min_sentence_relevance:  # a question does not answer one
                    continue
                unit_rows = self._standalone(rows, i, wants_sources or chunk.is_reference_list)
                if not unit_rows:
                    continue
                unit_text = " ".join(self.index.sentences[r][1] for r in unit_rows)
                words = tables.stems[row]
                lexical = SentenceTables.overlap(query_words, words) + HEADING_SHARE * SentenceTables.overlap(query_words, heading - words)
                penalty = REFERENCE_PENALTY if hygiene.is_reference_entry(text) and not wants_sources else 0.0
                unit = ScoredSentence(
                    row,
                    passage,
                    unit_text,
                    float(similarity),
                    float(similarity) + LEXICAL_WEIGHT * lexical + prior - penalty,
                    rows=tuple(unit_rows),
                )
                if self._planted(unit):
                    suspicious.append(unit)
                    continue
                units.append(unit)
        units.sort(key=lambda s: (-s.score, s.row))
        return units, suspicious

    def _planted(self, unit: ScoredSentence) -> bool:
        if self.trusted_sources is not None and unit.passage.chunk.source in self.trusted_sources:
            return False
        return any(suspicious_instruction(self.index.sentences[r][1]) for r in unit.all_rows)

    def _standalone(self, rows: list[int], i: int, references_allowed: bool) -> list[int]:
        """The rows to quote so that sentence i of a passage stands alone: itself, or with the one or two
        sentences before it that it refers back to; empty when it cannot stand alone at all."""
        text = self.index.sentences[rows[i]][1]
        problems = hygiene.problems(text)
        if references_allowed and "reference entry" in problems:
            return [rows[i]]
        blocking = [p for p in problems if p != "unresolved back-reference"]
        if blocking:
            return []
        if "unresolved back-reference" not in problems:
            return [rows[i]]
        unit = [rows[i]]
        for back in (1, 2):
            if i - back < 0:
                return []
            before = self.index.sentences[rows[i - back]][1]
            before_problems = hygiene.problems(before)
            if [p for p in before_problems if p != "unresolved back-reference"] or is_question(before):
                return []
            unit.insert(0, rows[i - back])
            if "unresolved back-reference" not in before_problems:
                return unit
        return []

    def _rank(self, question: str, units: list[ScoredSentence], wants_sources: bool = False) -> list[ScoredSentence]:
        """The units best first: by the cross-encoder's reading when it is there, else by the cheap score."""
        seen: set[tuple[int, ...]] = set()
        distinct = []
        for unit in units:
            if unit.all_rows not in seen:
                seen.add(unit.all_rows)
                distinct.append(unit)
        if self.cross_encoder is None:
            return distinct
        head = distinct[:UNITS_SCORED]
        # read with the heading it sits under, which says what a sentence is about ("How do we stop one
        # person dominating a co-design group?: Structured techniques help spread the airtime ...")
        scores = self.cross_encoder.score(focus(question), [_with_heading(u) for u in head])
        for unit, score in zip(head, scores):
            unit.relevance = float(score)
        head.sort(key=lambda u: (-self._rank_key(u, wants_sources), -u.score, u.row))
        # where the sources disagree on the count asked for, that comes first
        lead = head[0].relevance if head else None
        for position, unit in enumerate(head[1:6] if ASKS_A_COUNT.search(question) else [], start=1):
            if (
                unit.relevance is not None
                and lead is not None
                and unit.relevance >= lead - DISAGREEMENT_MARGIN
                and unit.relevance >= self.min_answer_relevance
                and states_disagreement(unit.text)
            ):
                head.insert(0, head.pop(position))
                break
        return head

    @staticmethod
    def _rank_key(unit: ScoredSentence, wants_sources: bool) -> float:
        # the cross-encoder reads meaning; the cheap score adds the question's rare words and the passage's
        # rank, which it misses on conversational questions; an entry of a reference list is what answers a
        # question asking for something to read, though it reads as no answer at all
        reading = READING_BONUS if wants_sources and hygiene.is_reference_entry(unit.text) else 0.0
        assert unit.relevance is not None, "ranked only after the cross-encoder has scored it"
        return unit.relevance + CHEAP_WEIGHT * unit.score + reading

    def _good_enough(self, unit: ScoredSentence, lead: ScoredSentence) -> bool:
        if unit.relevance is None or lead.relevance is None:
            return unit.score >= lead.score - SCORE_MARGIN
        return unit.relevance >= CE_POINT and unit.relevance >= max(lead.relevance, self.min_answer_relevance) - CE_MARGIN

    def _redundant(self, unit: ScoredSentence, chosen: list[ScoredSentence]) -> bool:
        taken = {r for c in chosen for r in c.all_rows}
        if taken & set(unit.all_rows):
            return True
        key = _key(unit.text)
        if any(_key(c.text) == key for c in chosen):
            return True
        vector = self.index.sentence_vectors[unit.row]
        return any(float(vector @ self.index.sentence_vectors[c.row]) > REDUNDANT for c in chosen)

    def _choose(self, lead: ScoredSentence, units: list[ScoredSentence], retrieval: Retrieval) -> list[ScoredSentence]:
        """The lead, the list its lead-in introduces, points from the lead's own section, then the best of the rest."""
        chosen = [lead]
        if LEAD_IN.search(lead.text):
            chosen += self._list_after(lead, retrieval, chosen, self.max_sentences - 1)
        same_section = [u for u in units[1:] if u.section == lead.section and u.passage.chunk.source == lead.passage.chunk.source]
        others = [u for u in units[1:] if u not in same_section]
        for unit in same_section + others:
            if len(chosen) >= self.max_sentences:
                break
            if not self._good_enough(unit, lead) or self._redundant(unit, chosen):
                continue
            if LEAD_IN.search(unit.text):
                # a list's lead-in ("... from three perspectives:") says nothing alone: quote the list after it
                items = self._list_after(unit, retrieval, chosen, self.max_sentences - len(chosen) - 1)
                if not items:
                    continue
                chosen += [unit, *items]
                continue
            chosen.append(unit)
        # points of one section read best together and in the document's order, the lead's own section first
        return chosen[:1] + _stable_sections(chosen[1:], first=(lead.passage.chunk.source, lead.section))

    def _list_after(self, lead_in: ScoredSentence, retrieval: Retrieval, chosen: list[ScoredSentence], room: int) -> list[ScoredSentence]:
        """Up to `room` (at most LIST_ITEMS) items of the list that follows a lead-in in its passage, in order."""
        text = lead_in.passage.chunk.text
        anchor = text.find(self.index.sentences[lead_in.row][1][:40])
        if anchor < 0:
            anchor = text.find(clean_markup(self.index.sentences[lead_in.row][1])[:20])
        if anchor < 0 or room < 1:
            return []
        items: list[str] = []
        for line in text[anchor:].splitlines()[1:]:
            if LIST_ITEM.match(line):
                items.append(clean_markup(LIST_ITEM.sub("", line)))
            elif line.strip() and items:
                break  # the list has ended
        taken = {r for c in chosen for r in c.all_rows} | set(lead_in.all_rows)
        rows = self.index.sentences_by_chunk.get(lead_in.passage.chunk.chunk_id, [])
        following = [
            r
            for r in rows
            if r > lead_in.row
            and r not in taken
            and any(self.index.sentences[r][1] in item for item in items)
            and not hygiene.about_itself(self.index.sentences[r][1])
            and not hygiene.has_markup(self.index.sentences[r][1])
        ][: min(room, LIST_ITEMS)]
        return [
            ScoredSentence(
                r,
                lead_in.passage,
                self.index.sentences[r][1],
                float(self.index.sentence_vectors[r] @ retrieval.query_vector),
                lead_in.score,
                relevance=lead_in.relevance,
            )
            for r in following
        ]

    def citation(self, n: int, sentence: ScoredSentence) -> Citation:
        """Citation number n for a quoted unit: its passage, place in the document, and primary study."""
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


# Words that ask what the sources say rather than what to do: they pull a reader of the question towards
# sentences about evidence in general ("What does the evidence say?" matches "Evidence from patients ...").
_ABOUT_THE_SOURCES = re.compile(
    r"\s*[-–—,:;]?\s*\b(?:what|how) (?:does|do|did) (?:the )?(?:evidence|research|review|literature|sources?|stud(?:y|ies)|guidance|toolkits?)"
    r" (?:say|show|tell us|suggest|recommend)(?: about(?: this| that| it)?)?\b\s*\??"
    r"|\baccording to the (?:evidence|review|research|literature|sources?)\b,?"
    r"|\bis there (?:any )?evidence (?:on|about|for|that)\b",
    re.IGNORECASE,
)


def focus(question: str) -> str:
    """The question without words asking what the sources say: what the cross-encoder should answer."""
    focused = _ABOUT_THE_SOURCES.sub(" ", question).strip(" -–—,;:")
    return focused if len(focused.split()) >= 3 else question


def _with_heading(unit: ScoredSentence) -> str:
    heading = unit.section.split(SECTION_SEPARATOR)[-1].strip() if unit.section else ""
    return f"{heading}: {unit.text}" if heading and not unit.passage.chunk.is_reference_list else unit.text


def _key(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


def _join_quoted(names: list[str]) -> str:
    quoted = [f"“{n}”" for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _stable_sections(units: list[ScoredSentence], first: tuple[str, str]) -> list[ScoredSentence]:
    """Units grouped by section (`first` leading), the others in the order their first unit was chosen,
    each group in document order."""
    order: dict[tuple[str, str], int] = {first: -1}
    for unit in units:
        order.setdefault((unit.passage.chunk.source, unit.section), len(order))
    return sorted(units, key=lambda u: (order[(u.passage.chunk.source, u.section)], u.row))
