"""Checks of the answer a facilitator reads: hygiene findings, and whether its lead answers the question."""

from __future__ import annotations

import re

from assistant.service import SOURCE_SEEKING, CrossEncoderUnavailable, cited_sentences, hygiene

# Markup that must never reach a reader anywhere in an answer, the fixed lines included: a Markdown link or
# its leftover "](", bold or underline markers, a link to "#", a heading marker at a line start, code ticks
# and HTML tags.
MARKDOWN_DEBRIS = (
    ("link", re.compile(r"\]\(")),
    ("link to #", re.compile(r"\(#[^)\s]*\)")),
    ("bold", re.compile(r"\*\*")),
    ("underline", re.compile(r"(?<!\w)__|__(?!\w)")),
    ("heading", re.compile(r"^\s*#{1,6}\s", re.MULTILINE)),
    ("code", re.compile(r"`")),
    ("html tag", re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*(?:\s[^<>]*)?>")),
)


def cited_claims(answer_text: str) -> list[str]:
    """The quoted claims: the text each [n] marker covers. Lines without a marker are the assistant's own."""
    return [claim for claim, numbers in cited_sentences(answer_text or "") if numbers]


def markdown_debris(answer_text: str) -> list[str]:
    """One finding per kind of markup left anywhere in the answer text."""
    findings = []
    for name, pattern in MARKDOWN_DEBRIS:
        match = pattern.search(answer_text or "")
        if match:
            start = max(0, match.start() - 30)
            findings.append(f"markdown debris ({name}): …{answer_text[start : match.end() + 30].strip()}…")
    return findings


def hygiene_findings(question: str, answer_text: str) -> list[str]:
    """Everything that makes the answer unfit to read: assistant.answering.hygiene over each quoted claim (reference
    entries allowed when the question asks for something to read), then Markdown debris in the whole text."""
    allow = bool(SOURCE_SEEKING.search(question or ""))
    findings: list[str] = []
    for claim in cited_claims(answer_text):
        # answer_findings reads a claim's first sentence; a reference entry split at an initial ("Robert G.") or
        # at the end of its title reads as prose or a fragment there, so the whole claim is tested as well.
        entry = hygiene.is_reference_entry(claim)
        found = hygiene.answer_findings([claim], allow_references=allow)
        if entry and allow:
            found = [f for f in found if f.split(":")[0] not in ("reference entry", "title or heading", "fragment")]
        elif entry and not any(f.startswith("reference entry:") for f in found):
            found.insert(0, f"reference entry: {claim[:90]}")
        findings += found
    return findings + markdown_debris(answer_text)


class RelevanceScorer:
    """ "Answers the question": the cross-encoder's logit of the answer's lead claim (its first cited claim)
    against the question, through ``service.relevance_scores``. Positive means the model reads the lead as
    answering it. Tried once: when the cross-encoder is unavailable every turn is "not run (reason)".
    """

    def __init__(self, service):
        self.service = service
        self.reason: str | None = None  # why it did not run
        self.ran = False

    @property
    def status(self) -> str:
        if self.reason:
            return f"answers-the-question: not run ({self.reason})"
        return (
            "answers-the-question: cross-encoder score of the lead claim"
            if self.ran
            else "answers-the-question: not run (no answer to score)"
        )

    def score(self, question: str, answer_text: str) -> float | None:
        if self.reason:
            return None
        claims = cited_claims(answer_text)
        if not claims:
            return None
        scorer = getattr(self.service, "relevance_scores", None)
        if scorer is None:
            self.reason = "the service has no cross-encoder"
            return None
        try:
            values = scorer(question, [claims[0]])
        except CrossEncoderUnavailable as exc:
            self.reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return None
        self.ran = True
        return round(float(values[0]), 3)
