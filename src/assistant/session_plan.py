"""Session plans for trainers: objectives, a timed agenda, cited key messages, an activity and a handout, built through the service."""

from __future__ import annotations

import re
import sys
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

from assistant.answer import Answer
from assistant.cite import Citation, content_words
from assistant.references import Reference
from assistant.sentences import clean_markup
from assistant.themes import detect_themes

FORMATS = ("md", "docx", "html", "json")
MIN_MINUTES, MAX_MINUTES = 15, 480
MAX_TOPIC_CHARS = 200
MAX_AUDIENCE_CHARS = 200
DEFAULT_AUDIENCE = "staff and patient partners"
REVIEW_SOURCE = "review/co-production-and-quality-improvement-2020.md"

# A quoted sentence backs a key message only if it is about the topic itself, not just about the
# question's framing ("How can we measure knitting?" retrieves measurement advice). Two cosine bars with
# the bare topic (all-MiniLM-L6-v2; on our corpus off-topic quotes score below 0.32): the best sentence
# the answers cite must reach TOPIC_MIN_SIMILARITY or the corpus does not cover the topic at all; each
# quote used must reach QUOTE_MIN_SIMILARITY.
TOPIC_MIN_SIMILARITY = 0.45
QUOTE_MIN_SIMILARITY = 0.30
REDUNDANT_SIMILARITY = 0.8  # two quotes this alike (cosine) say the same thing: keep the better one
MIN_KEY_MESSAGES = 2  # fewer than this and the plan says the evidence is thin
MAX_QUOTE_WORDS = 60

# The sub-topic questions asked of the service for every topic...
ANGLES: tuple[str, ...] = (
    "What does the evidence say about {topic}?",
    "Why does {topic} matter?",
    "What gets in the way of {topic}?",
    "What practical steps help with {topic}?",
    "What can facilitators do about {topic}?",
    "How can we measure {topic}?",
)
# ...and for topics of one kind (see activity_kind), questions that reach that kind's practical evidence.
KIND_ANGLES: dict[str, tuple[str, ...]] = {
    "power": (
        "How can facilitators stop one person dominating and help quieter people speak in {topic}?",
        "How can staff and patients work on a level playing field in {topic}?",
    ),
    "recruitment": ("How can we reach people who are seldom heard for {topic}?", "Who gets left out of {topic}, and why?"),
    "measurement": ("Which tools and methods can we use for {topic}?", "When should we plan {topic}?"),
    "experience": ("How are patients' experiences gathered and used in {topic}?", "How do staff and patients work together in {topic}?"),
    "default": (),
}
KIND_THEME = {"power": "power-dynamics", "recruitment": "recruitment", "measurement": "measurement", "experience": "ebcd"}

# "What staff often assume / what the evidence says": pairs of questions asked of the 2020 review only.
# The first finds a staff preconception the review reports, the second what the review says against it.
ASSUMPTION_QUESTIONS: tuple[tuple[str, str | None], ...] = (
    (
        "Why do providers adopt participatory approaches slowly?",
        "What skills and training do people with lived experience need as equal partners in improvement?",
    ),
    (
        "Do staff think the local population understands how the health system works?",
        "What happens when staff and patients are equal in a supportive workshop?",
    ),
    ("Did physicians fear being criticised by patients?", "What effort convinced healthcare professionals to join the project?"),
    ("Is narrative evidence from patients less valuable than data?", None),
)
_ASSUMPTION_CUE = re.compile(r"\b(assum\w*|perceiv\w*|see\b|feared|fear\b|thought of|believ\w*|reluctan\w*|doubt\w*)", re.I)
_CONTRAST = re.compile(r",\s+but\s+(?:in fact\s+)?", re.I)


class PlanError(ValueError):
    """A session plan request refused, with the reason in plain words."""


# -- the plan as data ------------------------------------------------------------------------------


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

    def to_dict(self) -> dict:
        return {"text": self.text, "citations": [c.to_dict() for c in self.citations], "question": self.question}


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

    def to_dict(self) -> dict:
        return {"assumption": self.assumption.to_dict(), "evidence": self.evidence.to_dict() if self.evidence else None}


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

    @property
    def evidence_is_thin(self) -> bool:
        return self.evidence_notice is not None

    def to_dict(self) -> dict:
        return {
            "topic": self.topic,
            "audience": self.audience,
            "minutes": self.minutes,
            "backend": self.backend,
            "evidence_notice": self.evidence_notice,
            "nearest_sections": self.nearest_sections,
            "objectives": self.objectives,
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


# -- checking the request --------------------------------------------------------------------------


def check_request(topic: str, audience: str | None, minutes) -> tuple[str, str, int]:
    topic = re.sub(r"\s+", " ", topic or "").strip().rstrip(".?!:;, ")
    if not topic:
        raise PlanError("Please give a topic for the session, e.g. --topic \"power dynamics in co-design workshops\".")
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


# -- the wording seam ------------------------------------------------------------------------------


class ExtractiveWriter:
    """Turns evidence into plan wording without writing any claim of its own: a key message is its quote.

    An LLM backend can later subclass this and override `key_message` to reword a quote (the citations
    stay as they are, and the renderers then show the verbatim quote beside the new wording).
    """

    name = "extractive"

    def key_message(self, citation: Citation, topic: str) -> str:
        return tidy_quote(citation.quote)


def tidy_quote(quote: str) -> str:
    """A quote as a statement: no wrapping quotation marks, no link markup, no trailing source in brackets."""
    text = re.sub(r"\[([^\]]+)\]\([^)\s]*\)", r"\1", quote.strip())  # [NESTA 2013](#) -> NESTA 2013
    for _ in range(2):
        text = re.sub(r"([.!?…][\"”’]?)\s*\([^()]*\)\s*$", r"\1", text)  # "... ideas. (King's Fund: groups)"
        text = re.sub(r"[\"”’]?\s*\([^()]*\b(?:19|20)\d\d[a-z]?\)\s*([.!?]?)\s*$", r"\1", text)  # "... expertise (Baker et al 2016)"
    text = text.strip().strip("“”\"").strip()
    if text and text[-1] not in ".!?…":
        text += "."
    return text[:1].upper() + text[1:]


# -- choosing evidence -----------------------------------------------------------------------------

_META = re.compile(r"\b(this note|this collection|the \w+ note\b|see the\b|note in this)", re.I)
# Not evidence, or not understandable without the sentence before it.
_OWN_ADVICE = re.compile(r"^\W*(our suggestion|we suggest|our advice|our view|in our view)\b", re.I)
_LEANS_BACK = re.compile(
    r"^\W*(it|this|these|those|they|their|hence|also|so|thus|the same|more specifically|in particular|however|moreover|furthermore|therefore)\b"
    r"|\bthe same (thing|way|point)\b",
    re.I,
)
_FORWARD = re.compile(r"\b(these|the following|below|as follows)\b", re.I)
_REFERENCE_SECTIONS = re.compile(r"^(references?|bibliography|sources|further reading|reference list)$", re.I)


def _headings(answer: Answer) -> set[str]:
    names = set()
    for passage in answer.passages:
        for part in (passage.chunk.section or "").split(" > "):
            names.add(re.sub(r"\W+", " ", part.lower()).strip())
    return names


def usable_quote(citation: Citation, headings: set[str] = frozenset()) -> bool:
    """A sentence that can stand alone as evidence: not a heading, lead-in, question, reference entry, our own advice, or leaning on the sentence before."""
    quote = tidy_quote(citation.quote)
    words = re.findall(r"\w+", quote)
    last_section = (citation.section or "").split(" > ")[-1].strip()
    if _REFERENCE_SECTIONS.match(last_section):
        return False
    if len(words) < 9 or len(words) > MAX_QUOTE_WORDS or citation.quote.rstrip().endswith("?"):
        return False
    bare = re.sub(r"\s*\([^()]*\)\s*$", "", citation.quote.strip()).strip(" .\"”")
    if bare.endswith(":") or _META.search(quote) or _OWN_ADVICE.search(quote) or _LEANS_BACK.search(quote):
        return False
    if _FORWARD.search(quote) and len(words) < 16:
        return False
    if not re.search(r"[.!?…][\"”’)]*\s*(\([^()]*\))?\s*$", citation.quote.strip()) and len(words) < 12:
        return False  # a short line with no full stop: a heading or a list label
    if re.sub(r"\W+", " ", bare.lower()).strip() in headings:
        return False
    return True


def _similar(a: str, b: str, threshold: float = 0.6) -> bool:
    wa, wb = content_words(a), content_words(b)
    return bool(wa and wb) and len(wa & wb) / len(wa | wb) >= threshold


@dataclass
class _Candidate:
    citation: Citation
    question: str
    themes: set[str]
    count: int = 1  # how many of the sub-topic answers cite this sentence: the more, the more central
    similarity: float = 0.0  # cosine with the bare topic
    score: float = 0.0


def _ask(service, question: str, evidence: dict[str, Answer], **filters) -> Answer:
    answer = service.ask(question, **filters)
    evidence[question] = answer
    return answer


def _nearest_sections(answers: list[Answer], short_titles: dict[str, str], limit: int = 5) -> list[str]:
    found: list[str] = []
    for depth in range(3):
        for answer in answers:
            if depth < len(answer.passages):
                chunk = answer.passages[depth].chunk
                last = (chunk.section or "").split(" > ")[-1]
                where = short_titles.get(chunk.title, chunk.title) + (f" › {last}" if last else "")
                if where not in found:
                    found.append(where)
    return found[:limit]


def sub_questions(topic: str) -> list[str]:
    kind = activity_kind(topic)
    templates = [t for t in ANGLES if not (kind == "measurement" and "measure {topic}" in t)] + list(KIND_ANGLES[kind])
    return [template.format(topic=topic) for template in templates]


def choose_key_messages(service, topic: str, evidence: dict[str, Answer], limit: int, writer: ExtractiveWriter) -> tuple[list[KeyMessage], list[Answer]]:
    """Ask the sub-topic questions; keep the cited sentences most about the topic, most often cited, on its theme.

    Each key message keeps the citation exactly as the answer that first cited it gave it, so its chunk
    is among that answer's retrieved passages.
    """
    kind = activity_kind(topic)
    topic_themes = detect_themes(topic)
    main_theme = KIND_THEME.get(kind)
    candidates: dict[str, _Candidate] = {}
    all_quotes: set[str] = set()  # every cited sentence, usable or not: how well the corpus covers the topic at all
    answers = []
    for question in sub_questions(topic):
        answer = _ask(service, question, evidence)
        answers.append(answer)
        if answer.abstained:
            continue
        headings = _headings(answer)
        themes_by_chunk = {p.chunk.chunk_id: set(p.chunk.themes) for p in answer.passages}
        for citation in answer.citations:
            all_quotes.add(citation.quote)
            if not usable_quote(citation, headings):
                continue
            if citation.quote in candidates:
                candidates[citation.quote].count += 1
            else:
                candidates[citation.quote] = _Candidate(citation, question, themes_by_chunk.get(citation.chunk_id, set()))
    if not candidates:
        return [], answers
    topic_vector = service.embedder.embed_query(topic)
    if float(max(service.embedder.embed_documents(sorted(all_quotes)) @ topic_vector)) < TOPIC_MIN_SIMILARITY:
        return [], answers
    pool = list(candidates.values())
    vectors = service.embedder.embed_documents([c.citation.quote for c in pool])
    similarities = vectors @ topic_vector
    for candidate, similarity in zip(pool, similarities):
        candidate.similarity = float(similarity)
        candidate.score = (
            candidate.similarity
            + 0.04 * (candidate.count - 1)
            + (0.12 if main_theme in candidate.themes else 0.0)
            + (0.04 if topic_themes & candidate.themes else 0.0)
        )
    order = sorted(
        (i for i, c in enumerate(pool) if c.similarity >= QUOTE_MIN_SIMILARITY), key=lambda i: (-pool[i].score, pool[i].citation.quote)
    )
    chosen: list[int] = []
    for allow_same_chunk in (False, True):
        for i in order:
            if len(chosen) >= limit:
                break
            if i in chosen or any(float(vectors[i] @ vectors[j]) >= REDUNDANT_SIMILARITY or _similar(pool[i].citation.quote, pool[j].citation.quote) for j in chosen):
                continue
            if not allow_same_chunk and any(pool[i].citation.chunk_id == pool[j].citation.chunk_id for j in chosen):
                continue
            chosen.append(i)
    messages = []
    for i in chosen:
        citation = Citation(**{**pool[i].citation.to_dict(), "n": 1})
        messages.append(KeyMessage(text=writer.key_message(citation, topic), citations=[citation], question=pool[i].question))
    return messages, answers


def choose_assumptions(service, evidence: dict[str, Answer], sources: list[dict]) -> tuple[list[AssumptionPair], str | None]:
    """Staff preconceptions the 2020 review reports, each beside what the review says against it."""
    if not any(doc["source"] == REVIEW_SOURCE for doc in sources):
        return [], "The 2020 NHS England review is not in the index, so this section is empty; add it with `assistant ingest`."
    pairs: list[AssumptionPair] = []
    used: set[str] = set()

    def pick(question: str, want_assumption: bool) -> Finding | None:
        answer = _ask(service, question, evidence, document=REVIEW_SOURCE)
        if answer.abstained:
            return None
        headings = _headings(answer)
        for citation in answer.citations:
            if citation.quote in used or not usable_quote(citation, headings):
                continue
            if bool(_ASSUMPTION_CUE.search(citation.quote)) != want_assumption:
                continue
            used.add(citation.quote)
            return Finding(tidy_quote(citation.quote), [Citation(**{**citation.to_dict(), "n": 1})], question)
        return None

    for assumption_question, evidence_question in ASSUMPTION_QUESTIONS:
        assumption = pick(assumption_question, True)
        if assumption is None:
            continue
        counter = pick(evidence_question, False) if evidence_question else None
        if counter is None:
            # One sentence can carry both sides: "X is often thought of as ..., but in fact ...".
            parts = _CONTRAST.split(assumption.text, maxsplit=1)
            if len(parts) == 2:
                cite = assumption.citations
                counter = Finding(parts[1][:1].upper() + parts[1][1:], cite, assumption.question)
                assumption = Finding(parts[0].rstrip(",;") + ".", cite, assumption.question)
        pairs.append(AssumptionPair(assumption, counter))
    notice = None if pairs else "The review's findings on staff preconceptions could not be retrieved from this index."
    return pairs, notice


# -- the teaching content (our own words: no facts, no figures) ------------------------------------

_KIND_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("power", ("power", "hierarch", "dominat", "speak up", "level playing field", "equal partner", "voice")),
    ("recruitment", ("recruit", "representat", "divers", "seldom", "hard to reach", "hard-to-reach", "inclusion", "outreach", "reach")),
    ("measurement", ("measur", "metric", "evaluat", "prem", "survey", "outcome", "impact", "data", "indicator")),
    (
        "experience",
        ("ebcd", "experience", "co-design", "codesign", "touchpoint", "trigger film", "journey", "always event", "emotional mapping"),
    ),
)


def activity_kind(topic: str) -> str:
    """The kind of activity a topic suits, by the first word stem it contains (power before recruitment, and so on)."""
    lowered = topic.lower()
    for kind, words in _KIND_WORDS:
        if any(re.search(r"\b" + re.escape(w), lowered) for w in words):
            return kind
    return "default"


def _mixed(audience: str) -> bool:
    return bool(re.search(r"patient|partner|carer|service user|lived experience|famil|people who use|public", audience, re.I))


ACTIVITIES_FILE = Path(__file__).with_name("data") / "activities.yaml"


@lru_cache(maxsize=1)
def activity_texts() -> dict[str, dict]:
    """The activities' words, kept as data: one per topic kind, plus `thin` and `default`."""
    import yaml

    return yaml.safe_load(ACTIVITIES_FILE.read_text(encoding="utf-8"))


def build_activity(kind: str, topic: str, audience: str, minutes: int, thin: bool = False) -> Activity:
    groups = "small groups that mix staff and patient partners" if _mixed(audience) else "small groups"
    texts = activity_texts()
    spec = texts[kind] if kind in texts and kind not in ("thin", "default") else texts["thin" if thin else "default"]

    def fill(value):
        return value.format(groups=groups, topic=topic) if isinstance(value, str) else [fill(v) for v in value]

    return Activity(kind=spec["kind"], minutes=minutes, **{k: fill(v) for k, v in spec.items() if k != "kind"})


def build_objectives(kind: str, topic: str, audience: str, thin: bool, has_assumptions: bool) -> list[str]:
    objectives = []
    if thin:
        objectives.append(f"Be clear about what the indexed sources do, and do not, say about {topic}.")
    else:
        objectives.append(f"Explain what the evidence says about {topic}, using the cited key messages in this plan.")
    objectives.append(
        {
            "power": "Recognise signs that one person or group is dominating a meeting, and practise ways to share the floor.",
            "experience": "Map a patient journey and identify the touchpoints that matter most to patients and staff.",
            "recruitment": "Identify who is missing from improvement work and plan one step to reach them.",
            "measurement": "Draft a measurement plan that covers both the results and the co-production process.",
            "default": f"Link {topic} to situations in participants' own service.",
        }[kind]
    )
    if has_assumptions:
        objectives.append("Name common staff assumptions about people with lived experience and compare them with what the 2020 review found.")
    objectives.append("Agree one change each participant will make in their next piece of co-production work.")
    return objectives


def build_discussion_questions(kind: str, topic: str, thin: bool, has_assumptions: bool) -> list[str]:
    specific = {
        "power": [
            "Who speaks first, longest and last in your meetings, and who sets the agenda?",
            "What would make it easier for a patient partner to disagree with a senior clinician in your meetings?",
        ],
        "experience": [
            "Which moments in your service matter most to patients, and how do you know?",
            "How could staff and patients look at the same touchpoint together?",
        ],
        "recruitment": [
            "Who uses your service but never takes part in improvement work?",
            "What would make taking part easier for them: time, place, payment, language or trust?",
        ],
        "measurement": [
            "What would a good result look like to patients, and to staff?",
            "How will you know whether the co-production process itself went well?",
        ],
        "default": [f"Where does {topic} show up in your own service?", f"Who else should be part of a conversation about {topic}?"],
    }[kind]
    questions = list(specific)
    if not thin:
        questions.append("Which key message surprised you, and why?")
    if has_assumptions:
        questions.append("Which of the staff assumptions in this plan have you heard, or held yourself?")
    questions.append("What is one thing you will do differently after this session?")
    return questions


def handout_questions(kind: str, has_assumptions: bool) -> list[str]:
    first = {
        "power": "In my next meeting, who will speak first, and how will I make room for patient partners?",
        "experience": "Which touchpoint in my service would I most like patients and staff to look at together?",
        "recruitment": "Who is missing from our improvement work, and what is one step to reach them?",
        "measurement": "How will we know whether our co-production made a difference, and who decides what counts?",
        "default": "Where could I use what I learned today in my own service?",
    }[kind]
    second = (
        "Which assumption about patients or staff will I check in myself?"
        if has_assumptions
        else "What do patient partners in my service say about this?"
    )
    return [first, second, "What one step will I take in the next month, and who will I tell?"]


# -- the agenda ------------------------------------------------------------------------------------

# (key, weight, keep-priority: lower survives when a short session has room for fewer items)
_AGENDA_PARTS: tuple[tuple[str, float, int], ...] = (
    ("welcome", 1.0, 3),
    ("evidence", 2.0, 1),
    ("assumptions", 1.5, 4),
    ("activity", 3.5, 0),
    ("discussion", 2.0, 5),
    ("close", 1.0, 2),
)


def allocate_minutes(weights: list[float], total: int, largest: int | None = None) -> list[int]:
    """Minutes in proportion to `weights`, each a multiple of 5 and at least 5, summing exactly to `total`.

    Whole 5-minute units go by largest remainder; the leftover 1-4 minutes (when `total` is not a
    multiple of 5) go to item `largest` (default: the heaviest). Needs total >= 5 * len(weights).
    """
    units = total // 5
    if units < len(weights) or not weights:
        raise ValueError(f"{total} minutes cannot hold {len(weights)} items of at least 5 minutes")
    whole = sum(weights)
    ideal = [units * w / whole for w in weights]
    alloc = [max(1, int(x)) for x in ideal]
    while sum(alloc) < units:
        i = max(range(len(alloc)), key=lambda k: (ideal[k] - alloc[k], -k))
        alloc[i] += 1
    while sum(alloc) > units:
        i = max((k for k in range(len(alloc)) if alloc[k] > 1), key=lambda k: (alloc[k] - ideal[k], -k))
        alloc[i] -= 1
    minutes = [5 * a for a in alloc]
    heaviest = largest if largest is not None else max(range(len(weights)), key=lambda k: (weights[k], -k))
    minutes[heaviest] += total - sum(minutes)
    return minutes


def _breaks(minutes: int) -> list[tuple[str, int, float]]:
    """Breaks for a long session: (title, minutes, where it should fall as a share of the teaching time)."""
    if minutes >= 300:
        return [("Break", 15, 0.25), ("Lunch break", 45, 0.5), ("Break", 15, 0.75)]
    if minutes >= 120:
        return [("Break", 15, 0.5)]
    return []


def build_agenda(minutes: int, topic: str, activity: Activity, thin: bool, has_assumptions: bool, key_count: int) -> list[AgendaItem]:
    breaks = _breaks(minutes)
    teaching = minutes - sum(m for _, m, _ in breaks)
    parts = [p for p in _AGENDA_PARTS if has_assumptions or p[0] != "assumptions"]
    while len(parts) * 5 > teaching:
        parts.remove(max(parts, key=lambda p: p[2]))
    keys = [p[0] for p in parts]
    allocated = allocate_minutes([p[1] for p in parts], teaching, largest=keys.index("activity"))
    titles = {
        "welcome": ("Welcome, purpose and ground rules", "Introductions, the session's objectives, and how the group will work together (confidentiality, plain language, everyone's view counts)."),
        "evidence": (
            ("What the sources do and do not cover", "Say plainly that the indexed evidence on this topic is thin; show the nearest sections and invite participants' own experience, labelled as such.")
            if thin
            else ("What the evidence says: key messages", f"Present the {key_count} key messages with their sources; ask which ones match participants' experience.")
        ),
        "assumptions": ("What staff often assume / what the evidence says", "Read each assumption aloud, ask who has heard it, then reveal what the review found."),
        "activity": (f"Activity: {activity.name}", activity.purpose),
        "discussion": ("Discussion", "Work through the discussion questions in mixed groups, then hear one point from each group."),
        "close": ("Actions, handout and close", "Each participant names one action; hand out the one-page handout; ask for feedback on the session."),
    }
    # Each break goes at the boundary between items nearest its share of the teaching time.
    ends = [sum(allocated[: i + 1]) for i in range(len(allocated) - 1)]
    free = list(range(len(ends)))
    places = []
    for _, _, share in breaks:
        best = min(free, key=lambda i: (abs(ends[i] - share * teaching), i))
        free.remove(best)
        places.append(best)
    after = dict(zip(sorted(places), breaks))  # breaks keep their order: morning break, lunch, afternoon break
    agenda: list[AgendaItem] = []
    clock = 0
    for i, (key, length) in enumerate(zip(keys, allocated)):
        title, detail = titles[key]
        agenda.append(AgendaItem(title, length, detail, clock))
        clock += length
        if i in after:
            break_title, break_minutes, _ = after[i]
            agenda.append(AgendaItem(break_title, break_minutes, "", clock))
            clock += break_minutes
    assert clock == minutes, (clock, minutes)
    return agenda


# -- references ------------------------------------------------------------------------------------


def reference_url(reference: dict) -> str | None:
    if reference.get("url"):
        return str(reference["url"])
    if reference.get("doi"):
        return f"https://doi.org/{reference['doi']}"
    return None


def study_label(reference: dict) -> str:
    ref = Reference.from_dict(reference)
    if not ref.authors and not ref.year:
        return ref.title or ref.text or ref.key
    return ref.label()


def _study_text(reference: dict) -> str:
    """The reference entry as written, without markup or its link (the link is shown on its own)."""
    text = clean_markup(reference.get("text") or "")
    text = re.sub(r"\s*(?:\[?From\s+)?(?:URL:\s*|DOI:\s*)?https?://\S+", "", text).strip(" ,;")
    return text or study_label(reference)


def collect_references(citations: list[Citation], sources: list[dict]) -> list[ReferenceEntry]:
    """The primary studies the quotes cite, then the indexed documents quoted, each once, with links."""
    studies: dict[str, ReferenceEntry] = {}
    documents: dict[str, ReferenceEntry] = {}
    by_source = {doc["source"]: doc for doc in sources}
    for citation in citations:
        for reference in citation.references or ([citation.reference] if citation.reference else []):
            key = reference_url(reference) or reference.get("key") or reference.get("text", "")
            if key and key not in studies:
                studies[key] = ReferenceEntry("study", study_label(reference), _study_text(reference), reference_url(reference))
        if citation.source not in documents:
            doc = by_source.get(citation.source, {})
            title = doc.get("title") or citation.title
            documents[citation.source] = ReferenceEntry("document", doc.get("short_title") or citation.title, title, citation.source_url or doc.get("source_url"))
    # A study that is itself an indexed document (the NHS England review linked from our notes) is listed once, as a document.
    document_urls = {d.url for d in documents.values() if d.url}
    study_list = sorted((s for s in studies.values() if s.url not in document_urls), key=lambda s: s.label.lower())
    return study_list + sorted(documents.values(), key=lambda d: d.label.lower())


# -- building the plan -----------------------------------------------------------------------------


def key_message_limit(minutes: int) -> int:
    """About one key message per quarter of an hour, from three to five: more will not be taught well in one session."""
    return max(3, min(5, minutes // 18))


def build_plan(service, topic: str, audience: str | None = None, minutes: int = 90, writer: ExtractiveWriter | None = None) -> SessionPlan:
    """A session plan on `topic` for `audience` lasting `minutes`, its evidence retrieved through `service`.

    Raises PlanError for a request it cannot plan (empty topic, duration out of range); service errors
    such as a missing index propagate unchanged.
    """
    topic, audience, minutes = check_request(topic, audience, minutes)
    writer = writer or ExtractiveWriter()
    evidence: dict[str, Answer] = {}
    key_messages, answers = choose_key_messages(service, topic, evidence, key_message_limit(minutes), writer)
    sources = service.sources()
    assumptions, assumptions_notice = choose_assumptions(service, evidence, sources)
    thin = len(key_messages) < MIN_KEY_MESSAGES
    short_titles = {doc["title"]: doc["short_title"] for doc in sources}
    nearest = _nearest_sections(answers, short_titles)
    notice = None
    if thin:
        found = (
            "no passage in the indexed sources is clearly about it, so this plan has no key messages"
            if not key_messages
            else "only one passage in the indexed sources is clearly about it, so this plan has a single key message"
        )
        notice = (
            f"The sources say little about \"{topic}\": {found}. "
            "Nothing else in this plan is evidence on the topic. "
            + ("The nearest sections in the sources are listed below. " if nearest else "")
            + "To teach this topic from evidence, add documents about it (`assistant ingest`), or choose a topic the sources cover."
        )
    kind = activity_kind(topic)
    has_assumptions = bool(assumptions)
    objectives = build_objectives(kind, topic, audience, thin, has_assumptions)
    discussion = build_discussion_questions(kind, topic, thin, has_assumptions)
    activity = build_activity(kind, topic, audience, 0, thin)
    agenda = build_agenda(minutes, topic, activity, thin, has_assumptions, len(key_messages))
    activity.minutes = next(item.minutes for item in agenda if item.title.startswith("Activity:"))

    cited = [c for m in key_messages for c in m.citations]
    cited += [c for pair in assumptions for f in (pair.assumption, pair.evidence) if f for c in f.citations]
    references = collect_references(cited, sources)
    handout_citations = [c for m in key_messages[:4] for c in m.citations] or cited
    handout_refs = collect_references(handout_citations, sources)
    read_more = [r for r in handout_refs if r.kind == "document"] + [r for r in handout_refs if r.kind == "study" and r.url]
    handout = Handout(
        title=f"{topic[:1].upper()}{topic[1:]}: key points",
        key_messages=[m.text for m in key_messages[:4]],
        questions=handout_questions(kind, has_assumptions),
        read_more=read_more[:5],
    )
    return SessionPlan(
        topic=topic,
        audience=audience,
        minutes=minutes,
        objectives=objectives,
        agenda=agenda,
        key_messages=key_messages,
        assumptions_vs_evidence=assumptions,
        activity=activity,
        discussion_questions=discussion,
        handout=handout,
        references=references,
        evidence_notice=notice,
        nearest_sections=nearest if (thin or not key_messages) else [],
        assumptions_notice=assumptions_notice,
        backend=writer.name,
        evidence=evidence,
    )


# -- the command -----------------------------------------------------------------------------------


def cmd_prepare(args) -> int:
    """`assistant prepare`: print the plan, or write it to --out. Bad requests exit 2 with a plain message."""
    from assistant.index import IndexMissing
    from assistant.plan_render import render
    from assistant.service import AssistantService

    try:
        fmt = check_format(args.format)
        check_request(args.topic, args.audience, args.minutes)
        if fmt == "docx" and not args.out:
            raise PlanError("DOCX is a binary file: give a file to write it to with --out, e.g. --out plan.docx.")
        plan = build_plan(AssistantService(), args.topic, args.audience, args.minutes)
    except (PlanError, IndexMissing) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    output = render(plan, fmt)
    if args.out:
        path = Path(args.out)
        if isinstance(output, bytes):
            path.write_bytes(output)
        else:
            path.write_text(output, encoding="utf-8")
        print(f"Wrote the session plan to {path}.")
    else:
        sys.stdout.write(output if output.endswith("\n") else output + "\n")
    if plan.evidence_notice:
        print("Note: the sources say little about this topic; the plan says so at the top and has no invented key messages.", file=sys.stderr)
    return 0
