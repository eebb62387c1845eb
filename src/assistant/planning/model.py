"""The session plan as data: its parts, the request limits and their checks, and PlanError."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from assistant.service import Answer, Citation

FORMATS = ("md", "docx", "html", "json")
MIN_MINUTES, MAX_MINUTES = 15, 480
MAX_TOPIC_CHARS = 200
MAX_AUDIENCE_CHARS = 200
DEFAULT_AUDIENCE = "staff and patient partners"


class PlanError(ValueError):
    """A session plan request refused, with the reason in plain words."""


@dataclass
class AgendaItem:
    title: str
    minutes: int
    detail: str = ""
    start: int = 0  # minutes from the start of the session


@dataclass
class KeyMessage:
    text: str
    citations: list[Citation]
    question: str  # the sub-topic question whose answer supplied the citations
    relevance: float | None = None  # how well the quote addresses the topic (cross-encoder logit, or cosine)

    def to_dict(self) -> dict:
        return {
            "text": self.text,
            "citations": [c.to_dict() for c in self.citations],
            "question": self.question,
            "relevance": self.relevance,
        }


@dataclass
class Finding:
    text: str
    citations: list[Citation]
    question: str

    def to_dict(self) -> dict:
        return {"text": self.text, "citations": [c.to_dict() for c in self.citations], "question": self.question}


@dataclass
class AssumptionPair:
    assumption: Finding
    evidence: Finding | None
    challenge: str = ""  # the assumption phrased as a question; the evidence is the quote that best answers it
    score: float | None = None  # how well the evidence answers `challenge`

    def to_dict(self) -> dict:
        return {
            "assumption": self.assumption.to_dict(),
            "evidence": self.evidence.to_dict() if self.evidence else None,
            "challenge": self.challenge,
            "score": self.score,
        }


@dataclass
class RoleCard:
    role: str
    brief: str
    private_brief: str = ""  # read only by the person playing the role


@dataclass
class ObserverSheet:
    title: str
    instructions: str
    columns: list[str]  # e.g. the two rounds of a role play
    rows: list[str]  # what to watch for, one line each


@dataclass
class Activity:
    kind: str
    name: str
    purpose: str
    minutes: int
    materials: list[str]
    steps: list[str]
    facilitator_notes: list[str]
    debrief: list[str]
    role_cards: list[RoleCard] = field(default_factory=list)
    observer_sheet: ObserverSheet | None = None


@dataclass
class ReferenceEntry:
    kind: str  # "study" (a primary study a quote cites) or "document" (an indexed document quoted)
    label: str
    text: str
    url: str | None


@dataclass
class Handout:
    title: str
    key_messages: list[str]
    questions: list[str]
    read_more: list[ReferenceEntry]
    intro: str = ""  # one line addressed to this audience
    points: list[str] = field(default_factory=list)  # what it means for this audience: the planner's words, not evidence


@dataclass
class SessionPlan:
    topic: str
    audience: str
    minutes: int
    objectives: list[str]
    agenda: list[AgendaItem]
    key_messages: list[KeyMessage]
    assumptions_vs_evidence: list[AssumptionPair]
    activity: Activity
    discussion_questions: list[str]
    handout: Handout
    references: list[ReferenceEntry]
    evidence_notice: str | None = None
    nearest_sections: list[str] = field(default_factory=list)
    assumptions_notice: str | None = None
    backend: str = "extractive"
    evidence: dict[str, Answer] = field(default_factory=dict)  # every question asked -> its answer
    audience_profile: str = "mixed"  # the key in audiences.yaml the audience was matched to
    relevance_method: str = "cosine"  # "cross-encoder" or "cosine": what judged the quotes' relevance

    @property
    def evidence_is_thin(self) -> bool:
        return self.evidence_notice is not None

    def to_dict(self) -> dict:
        """The plan as JSON (render's json format); the keys keep this order."""
        plain = (
            "topic",
            "audience",
            "audience_profile",
            "minutes",
            "backend",
            "relevance_method",
            "evidence_notice",
            "nearest_sections",
            "objectives",
        )
        return {name: getattr(self, name) for name in plain} | {
            "agenda": [asdict(item) for item in self.agenda],
            "key_messages": [m.to_dict() for m in self.key_messages],
            "assumptions_vs_evidence": [p.to_dict() for p in self.assumptions_vs_evidence],
            "assumptions_notice": self.assumptions_notice,
            "activity": asdict(self.activity),
            "discussion_questions": self.discussion_questions,
            "handout": asdict(self.handout),
            "references": [asdict(r) for r in self.references],
            "questions_asked": [
                {"question": q, "abstained": a.abstained, "retrieved": [p.chunk.chunk_id for p in a.passages]}
                for q, a in self.evidence.items()
            ],
        }


def check_request(topic: str, audience: str | None, minutes) -> tuple[str, str, int]:
    topic = re.sub(r"\s+", " ", topic or "").strip().rstrip(".?!:;, ")
    if not topic:
        raise PlanError('Please give a topic for the session, e.g. --topic "power dynamics in co-design workshops".')
    if len(topic) > MAX_TOPIC_CHARS:
        raise PlanError(f"The topic is {len(topic):,} characters long; the limit is {MAX_TOPIC_CHARS}. Please name it in a short phrase.")
    audience = re.sub(r"\s+", " ", audience or "").strip() or DEFAULT_AUDIENCE
    if len(audience) > MAX_AUDIENCE_CHARS:
        raise PlanError(f"The audience description is {len(audience):,} characters long; the limit is {MAX_AUDIENCE_CHARS}.")
    if isinstance(minutes, bool) or not isinstance(minutes, int):
        try:
            minutes = int(str(minutes).strip())
        except ValueError:
            raise PlanError(f"The duration must be a whole number of minutes, not {minutes!r}.") from None
    if minutes < MIN_MINUTES or minutes > MAX_MINUTES:
        raise PlanError(
            f"A session of {minutes} minutes is outside what this planner supports: choose between {MIN_MINUTES} and "
            f"{MAX_MINUTES} minutes (8 hours)."
        )
    return topic, audience, minutes


def check_format(fmt: str) -> str:
    fmt = (fmt or "").strip().lower().lstrip(".")
    fmt = {"markdown": "md", "htm": "html"}.get(fmt, fmt)
    if fmt not in FORMATS:
        raise PlanError(f"Unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}.")
    return fmt
