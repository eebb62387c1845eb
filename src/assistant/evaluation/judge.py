"""Judged metrics: per-sentence groundedness and answer relevance, scored by an LLM chat model.

They run only when an LLM backend is configured; with the extractive backend every report says
"judged metrics: not run (no LLM backend configured)". Judged figures are named ``judged_*`` and are
marked as judged (model-graded, not deterministic) in every report.

The hook is the :class:`Judge` protocol: ``score(turn, response) -> (scores, verdicts)``.
:class:`ChatModelJudge` implements it over any LangChain chat model (anything with
``invoke(messages)`` returning a message with ``.content``), so the local, Ollama and OpenAI backends can
all serve as judges.

Abstention is judged by what the sources hold, not by how committal the answer sounds:

* the assistant declined and the turn is labelled unanswerable: relevance 1.0 and groundedness 1.0
  (a correct "not covered" is a correct answer; nothing is asked of the model);
* the assistant declined an answerable turn: relevance 0.0, groundedness not scored;
* otherwise the model is asked. Its prompts say that a sentence saying the sources do not cover
  something is grounded when the passages indeed lack it, and that such an answer is relevant when the
  passages indeed do not answer the question.
"""

from __future__ import annotations

import re
from typing import Protocol, runtime_checkable

from assistant.evaluation.suites import Turn

NOT_RUN = "judged metrics: not run (no LLM backend configured)"

GROUNDEDNESS_PROMPT = """You check whether a statement is supported by source passages.
Reply with one word: YES if every claim in the statement is stated in or directly follows from the passages,
NO otherwise. If the statement says the sources do not cover something, reply YES only if the passages
indeed do not contain that information."""

RELEVANCE_PROMPT = """You grade how well an answer addresses a question, given the passages it was drawn from.
Reply with one digit from 0 to 3: 3 = answers the question directly and fully, 2 = mostly, 1 = touches on it,
0 = does not address it. An answer that says the sources do not cover the question scores 3 if the passages
indeed do not answer it, and 0 if they do."""

PASSAGES_FOR_RELEVANCE = 5
PASSAGE_CHARS = 1500


@runtime_checkable
class Judge(Protocol):
    """Scores one answered turn; returns ``(scores, verdicts)``.

    ``scores`` holds ``judged_groundedness`` and ``judged_relevance`` (each in [0, 1], or None when not
    scored); ``verdicts`` is free-form detail for reports (e.g. the model's reply per sentence).
    """

    name: str

    def score(self, turn: Turn, response: dict) -> tuple[dict, dict]: ...


def _content(message) -> str:
    content = getattr(message, "content", message)
    if isinstance(content, list):  # content blocks
        content = " ".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
    return str(content)


def parse_yes_no(reply: str) -> bool | None:
    match = re.search(r"\b(yes|no)\b", reply.lower())
    return None if match is None else match.group(1) == "yes"


def parse_grade(reply: str) -> float | None:
    match = re.search(r"\b([0-3])\b", reply)
    return None if match is None else int(match.group(1)) / 3


class ChatModelJudge:
    """A :class:`Judge` over a LangChain chat model."""

    def __init__(self, chat_model, name: str | None = None):
        self.model = chat_model
        self.name = name or type(chat_model).__name__

    def _ask(self, system: str, user: str) -> str:
        from langchain_core.messages import HumanMessage, SystemMessage

        return _content(self.model.invoke([SystemMessage(content=system), HumanMessage(content=user)]))

    def score(self, turn: Turn, response: dict) -> tuple[dict, dict]:
        if response.get("abstained"):
            if not turn.answerable:
                return {"judged_groundedness": 1.0, "judged_relevance": 1.0}, {"rule": "correctly declined"}
            return {"judged_groundedness": None, "judged_relevance": 0.0}, {"rule": "declined an answerable question"}
        from assistant.service import cited_sentences

        retrieved = {p["chunk_id"]: p["text"] for p in response.get("retrieved", [])}
        chunk_of = {c["n"]: c.get("chunk_id") for c in response.get("citations", [])}
        top = [p["text"] for p in response.get("retrieved", [])[:PASSAGES_FOR_RELEVANCE]]
        sentences: list[dict] = []
        verdicts: list[bool] = []
        for sentence, numbers in cited_sentences(response.get("answer", "")):
            cited = [retrieved[chunk_of[n]] for n in numbers if chunk_of.get(n) in retrieved]
            passages = cited or top  # an uncited sentence must be grounded somewhere in what was retrieved
            reply = self._ask(GROUNDEDNESS_PROMPT, f"PASSAGES:\n{_join(passages)}\n\nSTATEMENT:\n{sentence}")
            grounded = parse_yes_no(reply)
            sentences.append({"sentence": sentence, "reply": reply.strip()[:200], "grounded": grounded})
            if grounded is not None:
                verdicts.append(grounded)
        groundedness = sum(verdicts) / len(verdicts) if verdicts else None
        reply = self._ask(
            RELEVANCE_PROMPT,
            f"QUESTION:\n{turn.question}\n\nPASSAGES:\n{_join(top)}\n\nANSWER:\n{response.get('answer', '')}",
        )
        relevance = parse_grade(reply)
        return (
            {"judged_groundedness": groundedness, "judged_relevance": relevance},
            {"sentences": sentences, "relevance_reply": reply.strip()[:200]},
        )


def _join(passages: list[str]) -> str:
    return "\n\n".join(f"[{i}] {p[:PASSAGE_CHARS]}" for i, p in enumerate(passages, start=1))


def judge_for(service, backend: str | None) -> tuple[Judge | None, str]:
    """The judge for a backend name and a one-line status for reports.

    A backend can judge when the service exposes ``chat_model(backend)`` returning a LangChain chat
    model (the LLM backends add this); ``None``, ``"none"`` and ``"extractive"`` never judge.
    """
    if backend in (None, "", "none", "extractive"):
        return None, NOT_RUN
    factory = getattr(service, "chat_model", None)
    try:
        model = factory(backend) if callable(factory) else None
    except Exception as exc:  # noqa: BLE001 - a judge that cannot start must not stop the run
        return None, f"judged metrics: not run ({exc})"
    if model is None:
        return None, f"judged metrics: not run (backend {backend!r} offers no chat model)"
    return ChatModelJudge(model, name=backend), f"judged metrics: run with {backend} (model-graded, not deterministic)"
