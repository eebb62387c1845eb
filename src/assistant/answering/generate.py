"""Written answers from a chat model: a short direct answer over the quoted evidence, each sentence matched to the excerpt it cites."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.utils.json import parse_partial_json

from assistant.answering.cite import (  # noqa: F401 (numbers_in re-exported)
    _CARRIES_DISAGREEMENT,
    Citation,
    SupportScorer,
    cited_sentences,
    lexical_support,
    numbers_in,
    states_disagreement,
)
from assistant.answering.extractive import Answer, ExtractiveAnswerer, ScoredSentence
from assistant.ingest.splitter import SECTION_SEPARATOR
from assistant.models.llm import ModelError, explain, model_label, stream_text
from assistant.models.prompts import load_prompt
from assistant.retrieval.retriever import Passage, Retrieval
from assistant.settings import Settings
from assistant.text import split_sentences

MAX_SENTENCES = 4  # the written answer opens the evidence: 2-4 sentences; more is a small model rambling
PROMPT_TOKEN_MARGIN = 64  # room for the chat template's own tokens
CHARS_PER_TOKEN = 3.5  # estimate for servers whose tokenizer we cannot call (English prose: 4 or more)
# The per-question part of the prompt (excerpts and question), in tokens: the fixed instructions before
# it stay evaluated in the model (local backend), so this is what each question costs before the first word.
QUESTION_PROMPT_TOKENS = 350
EXCERPT_CHARS = 360  # an evidence point longer than this is cut at a sentence end for the prompt
EVIDENCE_HEADING = "Evidence quoted from the sources:"
UNSUPPORTED_NOTE = "(not verified: no passage shown supports this sentence as written)"


def answer_schema(numbers: int | list[int]) -> dict:
    """The reply's shape: 1 to MAX_SENTENCES sentences, each naming the excerpts it uses.

    `numbers`: the excerpt numbers shown, or how many were shown (numbered from 1)."""
    allowed = list(range(1, numbers + 1)) if isinstance(numbers, int) else sorted(numbers)
    return {
        "type": "object",
        "properties": {
            "sentences": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_SENTENCES,
                "items": {
                    "type": "object",
                    "properties": {
                        "text": {"type": "string"},
                        "sources": {"type": "array", "items": {"type": "integer", "enum": allowed}, "minItems": 1, "maxItems": 3},
                    },
                    "required": ["text", "sources"],
                },
            },
        },
        "required": ["sentences"],
    }


@dataclass
class ModelSentence:
    text: str
    sources: list[int] = field(default_factory=list)


@dataclass
class ModelReply:
    covered: bool | None  # what a reply in the v1/v2 shape said; the v3 shape has no such field
    sentences: list[ModelSentence]
    format: str  # "json", "repaired-json" or "markers"


# -- reading the model's reply ---------------------------------------------------------------------


def _reply_json(text: str) -> str:
    """The JSON object of a reply, without a Markdown code fence around it."""
    return re.sub(r"^```(?:json)?\s*|\s*```$", "", text.strip())


def _sentences(value) -> list[ModelSentence]:
    sentences = []
    for item in (value.get("sentences") if isinstance(value, dict) else None) or []:
        if isinstance(item, dict) and isinstance(item.get("text"), str) and item["text"].strip():
            sources = item.get("sources")
            numbers = sources if isinstance(sources, list) else []
            sentences.append(
                ModelSentence(item["text"].strip(), [int(n) for n in numbers if isinstance(n, (int, float)) or str(n).isdigit()])
            )
    return sentences


def _partial(text: str):
    """A JSON object cut off mid-way (out of tokens or time, or still streaming), closed where it stopped."""
    try:
        return parse_partial_json(text)
    except json.JSONDecodeError:
        return None


def sentences_so_far(buffer: str) -> list[ModelSentence]:
    """The sentences of a JSON reply still being written, the last perhaps unfinished."""
    text = _reply_json(buffer)
    text = re.sub(r"(?<!\\)((?:\\\\)*)\\u[0-9a-fA-F]{0,3}$", r"\1", text)  # a \u escape the stream has not finished
    return _sentences(_partial(text[text.find("{") :])) if "{" in text else []


def parse_reply(text: str) -> ModelReply:
    """The model's answer: JSON as the schema asks, else prose whose sentences carry [n] markers."""
    stripped = _reply_json(text)
    value, form = None, "json"
    if stripped.startswith("{"):
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError:
            value, form = _partial(stripped), "repaired-json"
    if isinstance(value, dict):
        covered = value.get("covered")
        return ModelReply(covered if isinstance(covered, bool) else None, _sentences(value)[:MAX_SENTENCES], form)
    return ModelReply(None, marker_sentences(stripped)[:MAX_SENTENCES], "markers")


def marker_sentences(text: str) -> list[ModelSentence]:
    """Prose with inline [n] markers: each marker group cites the text before it."""
    return [ModelSentence(claim, numbers) for claim, numbers in cited_sentences(text, keep_full_stops=True)]


def with_fallback_note(problem: str) -> str:
    return problem.rstrip(". ") + ". The sentences below are quoted from the sources instead."


def quoted_instead(evidence: Answer, notice: str, kind: str, reported: list | None = None, checks: list | None = None) -> Answer:
    """The extractive answer served in place of a model's, saying why (`kind` is the fallback reason)."""
    return replace(
        evidence, notice=notice, backend="extractive", model=None, fallback=kind, citations_reported=reported, verification=checks
    )


# -- the answerer ----------------------------------------------------------------------------------


@dataclass
class Excerpt:
    """An evidence point as numbered in the prompt: the number is its citation's [n] in the evidence."""

    number: int
    citation: Citation
    passage: Passage | None  # the retrieved passage the point quotes (None if it is not among them)
    text: str  # what the model saw

    @property
    def where(self) -> str:
        """The section the point sits in (the document title when it has none)."""
        return self.citation.section.split(SECTION_SEPARATOR)[-1].strip() if self.citation.section else self.citation.title

    @property
    def passage_text(self) -> str:
        """The passage a sentence citing this point is checked against: its heading and its text."""
        body = self.passage.chunk.text if self.passage is not None else self.citation.quote
        return f"{self.where}\n{body}"


def _cut(text: str, limit: int) -> str:
    """`text`, or its first sentences up to `limit` characters (at least one sentence)."""
    if len(text) <= limit:
        return text
    kept = ""
    for sentence in split_sentences(text) or [text]:
        if kept and len(kept) + len(sentence) + 1 > limit:
            break
        kept = f"{kept} {sentence}".strip()
    return kept[: limit + 200]


def _with_markers(text: str, numbers: list[int]) -> str:
    """`text` with [n] markers before its final full stop."""
    if not numbers:
        return text
    markers = "".join(f"[{n}]" for n in numbers)
    match = re.search(r"[.!?]+[\"”’)]*$", text)
    return f"{text[: match.start()]} {markers}{text[match.start() :]}" if match else f"{text} {markers}"


class GenerativeAnswerer:
    """Asks a chat model for a short direct answer over the chosen evidence, then keeps what the excerpts support."""

    def __init__(self, settings: Settings, backend: str, model, index, embedder, extractive: ExtractiveAnswerer | None):
        self.settings = settings
        self.name = backend
        self.model = model
        self.index = index
        self.extractive = extractive
        self.scorer = SupportScorer(embedder, index)
        self.prompt = load_prompt("answer")

    # the prompt -------------------------------------------------------------------------------

    def excerpts(self, evidence: Answer) -> list[Excerpt]:
        """The evidence's cited points, numbered as in the evidence, each cut to EXCERPT_CHARS."""
        passages = {p.chunk.chunk_id: p for p in evidence.passages}
        return [
            Excerpt(c.n, c, passages.get(c.chunk_id), _cut(re.sub(r"\s+", " ", c.quote).strip(), EXCERPT_CHARS)) for c in evidence.citations
        ]

    def messages(self, question: str, excerpts: list[Excerpt]) -> list:
        # the instructions (system) never change, so a backend can keep them evaluated; the rest comes last
        lines = "\n".join(f"[{e.number}] ({e.where}) {e.text}" for e in excerpts)
        system, user = self.prompt.render(excerpts=lines, question=question)
        return [SystemMessage(content=system), HumanMessage(content=user)]

    def _tokens(self, text: str) -> int:
        counter = getattr(self.model, "count_tokens", None)
        if not callable(counter):
            return int(len(text) / CHARS_PER_TOKEN)
        try:
            return counter(text)
        except Exception as exc:  # the local model loads here first: a bad file must not fail the question
            raise explain(exc, self.name, self.model) from exc

    def fit(self, question: str, excerpts: list[Excerpt]) -> tuple[list, list[Excerpt]]:
        """Messages whose per-question part stays under QUESTION_PROMPT_TOKENS and whose whole leaves room
        for the answer in the context window: the lowest points are dropped first."""
        budget = self.settings.llm_context - self.settings.llm_max_tokens - PROMPT_TOKEN_MARGIN
        while True:
            messages = self.messages(question, excerpts)
            user = self._tokens(str(messages[1].content))
            if len(excerpts) == 1 or user <= QUESTION_PROMPT_TOKENS:
                break
            excerpts = excerpts[:-1]
        if self._tokens(str(messages[0].content)) + user > budget:
            raise ModelError(
                f"The question and passages are too long for the {self.name} model's context window ({self.settings.llm_context} tokens).",
                "context",
            )
        return messages, excerpts

    # answering --------------------------------------------------------------------------------

    def stream(self, question: str, retrieval: Retrieval, evidence: Answer) -> Iterator[tuple[str, object]]:
        """("draft", text so far) while the model writes, then ("answer", Answer): the checked written
        answer followed by the evidence, or the evidence alone with a notice saying why."""
        if evidence.abstained or not evidence.citations:  # the sources do not reach the question: nothing to write over
            yield "answer", replace(evidence, backend=self.name)
            return
        started = time.perf_counter()
        try:
            messages, excerpts = self.fit(question, self.excerpts(evidence))
            schema = answer_schema([e.number for e in excerpts])
            buffer, first_token = "", None
            for piece in stream_text(
                self.model, messages, self.name, self.settings.llm_timeout, schema, self.settings.openai_response_format
            ):
                if first_token is None:
                    first_token = time.perf_counter()
                buffer += piece
                draft = self._draft(buffer)
                if draft:
                    yield "draft", draft
        except ModelError as exc:
            yield "answer", quoted_instead(evidence, with_fallback_note(str(exc)), exc.kind)
            return
        written = time.perf_counter()
        answer = self.verify(question, retrieval, evidence, excerpts, parse_reply(buffer))
        verified = time.perf_counter()
        answer.timings_ms = {
            **evidence.timings_ms,
            "first_token": round(((first_token or written) - started) * 1000, 1),
            "generate": round((written - started) * 1000, 1),
            "verify": round((verified - written) * 1000, 1),
        }
        yield "answer", answer

    @staticmethod
    def _draft(buffer: str) -> str:
        if buffer.lstrip().startswith("{"):
            # markers after the text, so each draft extends the one before (a terminal can print the difference)
            return " ".join(s.text + "".join(f" [{n}]" for n in s.sources) for s in sentences_so_far(buffer))
        return buffer.strip()

    def verify(self, question: str, retrieval: Retrieval, evidence: Answer, excerpts: list[Excerpt], reply: ModelReply) -> Answer:
        """Keep each sentence its cited excerpt's passage supports (re-cite, flag or drop the rest), make
        sure a disagreement the evidence states is carried, and put the evidence under it."""
        by_number = {e.number: e for e in excerpts}
        reported = [
            {"text": s.text, "sources": s.sources, "passages": [by_number[n].citation.chunk_id for n in s.sources if n in by_number]}
            for s in reply.sentences
        ]
        if not reply.sentences:
            if reply.covered is False or reply.format == "json":
                # the gate found the evidence answers the question: the quotes stand, and we say the model demurred
                return quoted_instead(
                    evidence,
                    f"The {self.name} model said the sources do not answer this, but the search found passages that do, so they are quoted below.",
                    "declined",
                    reported=reported,
                    checks=[],
                )
            return quoted_instead(
                evidence,
                with_fallback_note(f"The {self.name} model's reply held no sentences that could be read"),
                "malformed",
                reported=reported,
                checks=[],
            )
        lines, checks = [], []
        for sentence in reply.sentences:
            check, support = self._check(sentence, by_number)
            checks.append(check)
            if check["action"] == "dropped":
                continue
            lines.append(_with_markers(sentence.text, support) if support else f"⚠ {sentence.text} {UNSUPPORTED_NOTE}")
        citations = list(evidence.citations)
        carried = self._carry_disagreement(lines, checks, excerpts, citations)
        if carried is not None:
            lines.insert(0, carried)
        if not any(c["action"] in ("kept", "recited") for c in checks):
            return quoted_instead(
                evidence,
                f"The {self.name} model's answer could not be verified against the sources, so the sentences below are quoted from them instead.",
                "unverified",
                reported=reported,
                checks=checks,
            )
        flagged = sum(c["action"] == "flagged" for c in checks)
        dropped = sum(c["action"] == "dropped" for c in checks)
        notices = [evidence.notice] if evidence.notice else []
        if flagged or dropped:
            parts = ([f"{flagged} sentence{'s' if flagged != 1 else ''} marked ⚠"] if flagged else []) + (
                [f"{dropped} left out"] if dropped else []
            )
            notices.append(
                f"Checked against the sources: {' and '.join(parts)}, because no passage shown supports "
                f"{'it' if flagged + dropped == 1 else 'them'} as written (a point, number or qualification the passage does not give)."
            )
        return replace(
            evidence,
            text=f"{' '.join(lines)}\n\n{EVIDENCE_HEADING}\n{evidence.text}",
            abstained=False,
            citations=citations,
            backend=self.name,
            model=model_label(self.settings, self.name),
            notice=" ".join(notices) or None,
            fallback=None,
            citations_reported=reported,
            verification=checks,
        )

    def _check(self, sentence: ModelSentence, by_number: dict[int, Excerpt]) -> tuple[dict, list[int]]:
        """Which excerpts support the sentence: those it cites if their passages do, else any other one shown."""
        cited = [n for n in dict.fromkeys(sentence.sources) if n in by_number]
        check = {"text": sentence.text, "cited": sentence.sources, "missing": [n for n in sentence.sources if n not in by_number]}
        results = {}

        def supporting(numbers: list[int]) -> list[int]:
            found = []
            for n in numbers:
                excerpt = by_number[n]
                results[n] = self.scorer.check(sentence.text, excerpt.citation.chunk_id, excerpt.passage_text)
                if results[n]["supported"]:
                    found.append(n)
            return found

        support = supporting(cited)
        action = "kept"
        if not support:
            # the excerpt the sentence repeats most closely first: that is the one the model drew on
            others = sorted((n for n in by_number if n not in cited), key=lambda n: -lexical_support(sentence.text, by_number[n].text))
            support = supporting(others)[:1]
            action = "recited" if support else ("dropped" if self.settings.unsupported_sentences == "drop" else "flagged")
        check["supported_by"] = support
        check["action"] = action
        if action in ("flagged", "dropped"):
            # why the cited passages did not support it, for the reports
            problems = sorted({p for n in cited for p in results[n].get("qualifications_dropped", [])})
            missing = sorted({p for n in cited for p in results[n].get("numbers_missing", [])})
            if problems:
                check["qualifications_dropped"] = problems
            if missing:
                check["numbers_missing"] = missing
        return check, support

    def _carry_disagreement(self, lines: list[str], checks: list[dict], excerpts: list[Excerpt], citations: list[Citation]) -> str | None:
        """Where the evidence says its sources disagree (on a count), the written answer says so too: when no
        kept sentence does, the passage's own sentence saying it is quoted first, with its citation."""
        kept = [c["text"] for c in checks if c["action"] in ("kept", "recited")]
        if any(_CARRIES_DISAGREEMENT.search(t) for t in kept):
            return None
        wanted = [e for e in excerpts if states_disagreement(f"{e.where}\n{e.text}")]
        wanted += [
            e
            for c in checks
            if "the sources disagree on the count" in c.get("qualifications_dropped", [])
            for n in c["cited"]
            if (e := next((x for x in excerpts if x.number == n), None)) is not None and e not in wanted
        ]
        for excerpt in wanted:
            for sentence in split_sentences(excerpt.text) + (split_sentences(excerpt.passage.chunk.text) if excerpt.passage else []):
                if states_disagreement(sentence):
                    number = self._cite_sentence(sentence, excerpt, citations)
                    checks.insert(0, {"text": sentence, "cited": [number], "missing": [], "supported_by": [number], "action": "added"})
                    return _with_markers(sentence, [number])
        return None

    def _cite_sentence(self, sentence: str, excerpt: Excerpt, citations: list[Citation]) -> int:
        """The citation number quoting `sentence`: the excerpt's own when its quote holds it, else a new card."""
        if sentence in excerpt.citation.quote or excerpt.passage is None or self.extractive is None:
            return excerpt.number
        rows = self.index.sentences_by_chunk.get(excerpt.passage.chunk.chunk_id) or []
        row = next((r for r in rows if self.index.sentences[r][1] == sentence), -1)
        number = max(c.n for c in citations) + 1
        citations.append(self.extractive.citation(number, ScoredSentence(row, excerpt.passage, sentence, 1.0, 1.0)))
        return number
