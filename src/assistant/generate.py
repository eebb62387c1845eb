"""Written answers from a chat model: passages fitted to its context in, each sentence verified against the passage it cites out."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np
from langchain_core.messages import HumanMessage, SystemMessage

from assistant.answer import SOURCE_SEEKING, Answer, ExtractiveAnswerer, ScoredSentence
from assistant.cite import SupportScorer, cited_sentences
from assistant.llm import ModelError, model_label, stream_text
from assistant.prompts import load_prompt
from assistant.retrieve import Passage, Retrieval
from assistant.settings import Settings
from assistant.splitter import SECTION_SEPARATOR

MAX_SENTENCES = 6  # a longer reply from a small model is rambling, and each sentence costs a check
PROMPT_TOKEN_MARGIN = 64  # room for the chat template's own tokens
CHARS_PER_TOKEN = 3.5  # estimate for servers whose tokenizer we cannot call (English prose: 4 or more)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# Counts written as words are numbers too ("the four criteria"); "one" is left out: it is mostly a pronoun.
_NUMBER_WORDS = {
    w: str(n)
    for n, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve".split())
    if w not in ("zero", "one")
} | {"fifteen": "15", "twenty": "20", "thirty": "30", "fifty": "50", "hundred": "100"}
_NUMBER_WORD = re.compile(r"\b(" + "|".join(_NUMBER_WORDS) + r")\b", re.IGNORECASE)


def numbers_in(text: str) -> set[str]:
    """The numbers a text states, in digits or as words."""
    return set(_NUMBER.findall(text)) | {_NUMBER_WORDS[w.lower()] for w in _NUMBER_WORD.findall(text)}
UNSUPPORTED_NOTE = "(not verified: no passage shown supports this sentence)"


def answer_schema(passages: int) -> dict:
    """The reply's shape: whether the passages answer the question, then sentences each naming its passages."""
    return {
        "type": "object",
        "properties": {
            "covered": {"type": "boolean"},
            "sentences": {
                "type": "array",
                "maxItems": MAX_SENTENCES,
                "items": {
                    "type": "object",
                    "properties": {
                        "text": {"type": "string"},
                        "sources": {"type": "array", "items": {"type": "integer", "enum": list(range(1, passages + 1))}, "minItems": 1, "maxItems": 3},
                    },
                    "required": ["text", "sources"],
                },
            },
        },
        "required": ["covered", "sentences"],
    }


@dataclass
class ModelSentence:
    text: str
    sources: list[int] = field(default_factory=list)


@dataclass
class ModelReply:
    covered: bool | None
    sentences: list[ModelSentence]
    format: str  # "json", "repaired-json" or "markers"


# -- reading the model's reply ---------------------------------------------------------------------

_TEXT_FIELD = re.compile(r'"text"\s*:\s*"((?:[^"\\]|\\.)*)("?)')
_SOURCES_FIELD = re.compile(r'^\s*,\s*"sources"\s*:\s*\[([^\]]*)(\]?)')


def _unescape(raw: str) -> str:
    for cut in (0, 1, 2, 6):  # a stream can stop inside an escape sequence
        try:
            return json.loads(f'"{raw[: len(raw) - cut] if cut else raw}"')
        except json.JSONDecodeError:
            continue
    return raw


def sentences_so_far(buffer: str) -> list[ModelSentence]:
    """The sentences of a JSON reply still being written, the last perhaps unfinished."""
    found = []
    for match in _TEXT_FIELD.finditer(buffer):
        sources_match = _SOURCES_FIELD.match(buffer[match.end():])
        numbers = [int(n) for n in re.findall(r"\d+", sources_match.group(1))] if sources_match else []
        found.append(ModelSentence(_unescape(match.group(1)).strip(), numbers))
    return [s for s in found if s.text]


def _repair(text: str) -> dict | None:
    """A JSON object cut off mid-way (out of tokens or time): closed where it stopped, if that parses."""
    stack = []
    in_string = escaped = False
    for char in text:
        if in_string:
            escaped = not escaped and char == "\\"
            if char == '"' and not escaped:
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char in "[{":
            stack.append("]" if char == "[" else "}")
        elif char in "]}" and stack:
            stack.pop()
    tail = ('"' if in_string else "") + "".join(reversed(stack))
    for candidate in (text + tail, re.sub(r",\s*\{[^{}]*$", "", text) + "".join(reversed(stack[:-1] if stack else []))):
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def parse_reply(text: str) -> ModelReply:
    """The model's answer: JSON as the schema asks, else prose whose sentences carry [n] markers."""
    stripped = re.sub(r"^```(?:json)?\s*|\s*```$", "", text.strip())
    value, form = None, "json"
    if stripped.startswith("{"):
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError:
            value, form = _repair(stripped), "repaired-json"
    if isinstance(value, dict):
        sentences = []
        for item in value.get("sentences") or []:
            if isinstance(item, dict) and isinstance(item.get("text"), str) and item["text"].strip():
                numbers = item.get("sources") if isinstance(item.get("sources"), list) else []
                sentences.append(ModelSentence(item["text"].strip(), [int(n) for n in numbers if isinstance(n, (int, float)) or str(n).isdigit()]))
        covered = value.get("covered")
        return ModelReply(covered if isinstance(covered, bool) else None, sentences[:MAX_SENTENCES], form)
    return ModelReply(None, marker_sentences(stripped)[:MAX_SENTENCES], "markers")


def marker_sentences(text: str) -> list[ModelSentence]:
    """Prose with inline [n] markers: each marker group cites the text before it."""
    return [ModelSentence(claim, numbers) for claim, numbers in cited_sentences(text, keep_full_stops=True)]


def with_fallback_note(problem: str) -> str:
    return problem.rstrip(". ") + ". The sentences below are quoted from the sources instead."


def quoted_instead(evidence: Answer, notice: str, kind: str, reported: list | None = None, checks: list | None = None) -> Answer:
    """The extractive answer served in place of a model's, saying why (`kind` is the fallback reason)."""
    return replace(evidence, notice=notice, backend="extractive", model=None, fallback=kind, citations_reported=reported, verification=checks)


# -- the answerer ----------------------------------------------------------------------------------


@dataclass
class Given:
    """A passage as numbered in the prompt."""

    number: int
    passage: Passage
    text: str  # what the model saw (perhaps trimmed to its best sentences)


def _with_markers(text: str, numbers: list[int]) -> str:
    if not numbers:
        return text
    markers = "".join(f"[{n}]" for n in numbers)
    match = re.search(r"[.!?]+[\"”’)]*$", text)
    return f"{text[: match.start()]} {markers}{text[match.start():]}" if match else f"{text} {markers}"


class GenerativeAnswerer:
    """Asks a chat model to answer from the top passages, then keeps only what the passages support."""

    def __init__(self, settings: Settings, backend: str, model, index, embedder, extractive: ExtractiveAnswerer):
        self.settings = settings
        self.name = backend
        self.model = model
        self.index = index
        self.extractive = extractive
        self.scorer = SupportScorer(embedder, index)
        self.prompt = load_prompt("answer")

    # passages ---------------------------------------------------------------------------------

    def _trim(self, passage: Passage, query_vector: np.ndarray, limit: int) -> str:
        """The passage, or its sentences most like the question (in their order) when it is too long."""
        text = passage.chunk.text
        rows = self.index.sentences_by_chunk.get(passage.chunk.chunk_id) or []
        if len(text) <= limit or not rows:
            return text[:limit]
        similarity = self.index.sentence_vectors[rows] @ query_vector
        kept, used = [], 0
        for i in np.argsort(-similarity):
            sentence = self.index.sentences[rows[i]][1]
            if used + len(sentence) + 1 > limit and kept:
                continue
            kept.append(i)
            used += len(sentence) + 1
        return " … ".join(self.index.sentences[rows[i]][1] for i in sorted(kept))[: limit + 200]

    def choose_passages(self, question: str, retrieval: Retrieval) -> list[Given]:
        wants_sources = bool(SOURCE_SEEKING.search(question))
        chosen = [p for p in retrieval.passages if wants_sources or not p.chunk.is_reference_list][: self.settings.llm_passages]
        return [Given(n, p, self._trim(p, retrieval.query_vector, self.settings.llm_passage_chars)) for n, p in enumerate(chosen, start=1)]

    @staticmethod
    def _heading(passage: Passage) -> str:
        chunk = passage.chunk
        where = chunk.title + (f" > {chunk.section.split(SECTION_SEPARATOR)[-1]}" if chunk.section else "")
        return where + (f" (page {chunk.page})" if chunk.page else "")

    def messages(self, question: str, given: list[Given]) -> list:
        passages = "\n\n".join(f"[{g.number}] {self._heading(g.passage)}\n{g.text}" for g in given)
        system, user = self.prompt.render(passages=passages, question=question, count=len(given))
        return [SystemMessage(content=system), HumanMessage(content=user)]

    def _tokens(self, messages: list) -> int:
        text = "\n".join(str(m.content) for m in messages)
        counter = getattr(self.model, "count_tokens", None)
        return counter(text) if callable(counter) else int(len(text) / CHARS_PER_TOKEN)

    def fit(self, question: str, given: list[Given]) -> tuple[list, list[Given]]:
        """Messages that leave room for the answer in the context window: drop the lowest passages first."""
        budget = self.settings.llm_context - self.settings.llm_max_tokens - PROMPT_TOKEN_MARGIN
        while True:
            messages = self.messages(question, given)
            if self._tokens(messages) <= budget or len(given) == 1:
                break
            given = given[:-1]
        if self._tokens(messages) > budget:
            raise ModelError(f"The question and passages are too long for the {self.name} model's context window ({self.settings.llm_context} tokens).", "context")
        return messages, given

    # answering --------------------------------------------------------------------------------

    def stream(self, question: str, retrieval: Retrieval, evidence: Answer) -> Iterator[tuple[str, object]]:
        """("draft", text so far) while the model writes, then ("answer", Answer), verified."""
        if evidence.abstained:  # the sources do not reach the question: no model can answer it from them
            yield "answer", replace(evidence, backend=self.name)
            return
        started = time.perf_counter()
        try:
            messages, given = self.fit(question, self.choose_passages(question, retrieval))
            schema = answer_schema(len(given))
            buffer, first_token = "", None
            for piece in stream_text(self.model, messages, self.name, self.settings.llm_timeout, schema, self.settings.openai_response_format):
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
        answer = self.verify(question, retrieval, evidence, given, parse_reply(buffer))
        verified = time.perf_counter()
        answer.timings_ms.update(
            {
                "first_token": round(((first_token or written) - started) * 1000, 1),
                "generate": round((written - started) * 1000, 1),
                "verify": round((verified - written) * 1000, 1),
            }
        )
        yield "answer", answer

    @staticmethod
    def _draft(buffer: str) -> str:
        if buffer.lstrip().startswith("{"):
            # markers after the text, so each draft extends the one before (a terminal can print the difference)
            return " ".join(s.text + "".join(f" [{n}]" for n in s.sources) for s in sentences_so_far(buffer))
        return buffer.strip()

    def verify(self, question: str, retrieval: Retrieval, evidence: Answer, given: list[Given], reply: ModelReply) -> Answer:
        """Keep each sentence its cited passage supports; re-cite, flag or drop the rest."""
        by_number = {g.number: g for g in given}
        reported = [{"text": s.text, "sources": s.sources, "passages": [by_number[n].passage.chunk.chunk_id for n in s.sources if n in by_number]} for s in reply.sentences]
        if reply.covered is not False and not reply.sentences:
            return quoted_instead(
                evidence,
                with_fallback_note(f"The {self.name} model's reply held no sentences that could be read"),
                "malformed",
                reported=reported,
                checks=[],
            )
        if reply.covered is False:
            declined = self.extractive.abstain(question, retrieval)
            declined.backend, declined.model = self.name, model_label(self.settings, self.name)
            declined.citations_reported, declined.verification = reported, []
            return declined
        citations, keys, lines, checks = [], {}, [], []
        for sentence in reply.sentences:
            check, support = self._check(sentence, by_number)
            checks.append(check)
            if check["action"] == "dropped":
                continue
            numbers = []
            for number, row, cosine in support:
                g = by_number[number]
                key = (g.passage.chunk.chunk_id, row)
                if key not in keys:
                    keys[key] = len(citations) + 1
                    quote = self.index.sentences[row][1] if row is not None else g.passage.chunk.text[:300]
                    citations.append(self.extractive.citation(keys[key], ScoredSentence(-1 if row is None else row, g.passage, quote, cosine, cosine)))
                numbers.append(keys[key])
            lines.append(_with_markers(sentence.text, numbers) if numbers else f"⚠ {sentence.text} {UNSUPPORTED_NOTE}")
        if not citations:
            return quoted_instead(
                evidence,
                f"The {self.name} model's answer could not be verified against the sources, so the sentences below are quoted from them instead.",
                "unverified",
                reported=reported,
                checks=checks,
            )
        flagged = sum(c["action"] == "flagged" for c in checks)
        dropped = sum(c["action"] == "dropped" for c in checks)
        notice = None
        if flagged or dropped:
            parts = ([f"{flagged} sentence{'s' if flagged != 1 else ''} marked ⚠"] if flagged else []) + ([f"{dropped} left out"] if dropped else [])
            notice = f"Checked against the sources: {' and '.join(parts)}, because no passage shown supports {'it' if flagged + dropped == 1 else 'them'}."
        return Answer(
            question=question,
            text=" ".join(lines),
            abstained=False,
            citations=citations,
            passages=retrieval.passages,
            backend=self.name,
            model=model_label(self.settings, self.name),
            notice=notice,
            citations_reported=reported,
            verification=checks,
        )

    def _check(self, sentence: ModelSentence, by_number: dict[int, Given]) -> tuple[dict, list[tuple[int, int | None, float]]]:
        """Which passages support the sentence: those it cites if they do, else any other one given."""
        cited = [n for n in dict.fromkeys(sentence.sources) if n in by_number]
        check = {
            "text": sentence.text,
            "cited": sentence.sources,
            "missing": [n for n in sentence.sources if n not in by_number],
        }

        def supporting(numbers: list[int]) -> list[tuple[int, int | None, float]]:
            found = []
            for n in numbers:
                chunk = by_number[n].passage.chunk
                result = self.scorer.check(sentence.text, chunk.chunk_id, chunk.text)
                if result["supported"] and numbers_in(sentence.text) <= numbers_in(chunk.text):
                    row, cosine = self.scorer.closest_sentence(sentence.text, chunk.chunk_id)
                    found.append((n, row, cosine))
            return found

        support = supporting(cited)
        action = "kept"
        if not support:
            support = supporting([n for n in by_number if n not in cited])[:1]
            action = "recited" if support else ("dropped" if self.settings.unsupported_sentences == "drop" else "flagged")
        check["supported_by"] = [n for n, _, _ in support]
        check["similarity"] = [round(c, 3) for _, _, c in support]
        check["action"] = action
        return check, support
