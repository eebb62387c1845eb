"""Choosing a plan's evidence through the service: key messages that address the topic, assumptions with the quote that answers them, references."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from assistant.locations import REVIEW_SOURCE
from assistant.planning.catalogue import DATA_DIR, _load, activity_kind
from assistant.planning.model import AssumptionPair, Finding, KeyMessage, ReferenceEntry
from assistant.service import Answer, Citation, CrossEncoderUnavailable, Reference, content_words, is_reference_heading
from assistant.text import clean_markup
from assistant.themes import detect_themes, topic_theme

ASSUMPTIONS_FILE = DATA_DIR / "assumptions.yaml"

# Relevance is judged by the cross-encoder (ms-marco-MiniLM-L-12-v2 logits) when it is installed, else by
# the embedding cosine (all-MiniLM-L6-v2). Calibrated on the shipped corpus (see /work notes and README):
# for the bare topic as the query, quotes on the topic scored +3.5 ("power dynamics": "...lists attention to
# group and power dynamics...") down to about -0.2, while the co-design quotes retrieved for topics the
# corpus does not cover scored at most -2.6 ("virtual reality in co-design") and -4.8 ("Lego serious play").
TOPIC_MIN_LOGIT = -1.5
TOPIC_MIN_COSINE = 0.45  # the embedding fallback: off-topic quotes scored below about 0.45 (and the old bar)
# For an assumption phrased as a question, the quotes that answer it scored +3.4 and +4.7 ("At the
# organisational level, whole services are mobilising the skills and capacity of people with lived
# experience..." against "Do people with lived experience have knowledge and skills that can contribute to
# service redesign?"), while non-sequiturs scored +1.1 at most ("Not all quality improvement work claiming to
# be co-produced actually is" against a question about staff fearing criticism) and usually below -1.5.
ANSWER_MIN_LOGIT = 2.0
ANSWER_MIN_COSINE = 0.5
QUOTE_MIN_SIMILARITY = 0.30  # cosine with the bare topic below which a quote is never considered
REDUNDANT_SIMILARITY = 0.8  # two quotes this alike (cosine) say the same thing: keep the better one
MIN_KEY_MESSAGES = 2  # fewer key messages that address the topic than this, and the plan says the evidence is thin
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

_ASSUMPTION_CUE = re.compile(r"\b(assum\w*|perceiv\w*|see\b|feared|fear\b|thought of|believ\w*|reluctan\w*|doubt\w*)", re.I)
_CONTRAST = re.compile(r",\s+but\s+(?:in fact\s+)?", re.I)


# -- relevance -----------------------------------------------------------------------------------------


class Relevance:
    """How well texts address a query, through the service: the cross-encoder, or the embedding cosine without it.

    Once the cross-encoder fails the judge stays with the cosine, so one plan never mixes the two scales.
    """

    def __init__(self, service):
        self.service = service
        self.method = "cross-encoder"

    def scores(self, query: str, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0, dtype=np.float32)
        if self.method == "cross-encoder":
            try:
                return np.asarray(self.service.relevance_scores(query, texts), dtype=np.float32)
            except Exception as exc:  # CrossEncoderUnavailable (or the module missing): fall back, never fail the plan
                if not _unavailable(exc):
                    raise
                self.method = "cosine"
        return np.asarray(self.service.similarity(query, texts), dtype=np.float32)

    def threshold(self, purpose: str) -> float:
        """The bar for "addresses the topic" (purpose "topic") or "answers the question" ("answer")."""
        if self.method == "cross-encoder":
            return TOPIC_MIN_LOGIT if purpose == "topic" else ANSWER_MIN_LOGIT
        return TOPIC_MIN_COSINE if purpose == "topic" else ANSWER_MIN_COSINE


def _unavailable(exc: Exception) -> bool:
    return isinstance(exc, (ImportError, CrossEncoderUnavailable))


# -- quotes --------------------------------------------------------------------------------------------


def tidy_quote(quote: str) -> str:
    """A quote as a statement: no wrapping quotation marks, no link markup, no trailing source in brackets."""
    text = re.sub(r"\[([^\]]+)\]\([^)\s]*\)", r"\1", quote.strip())  # [NESTA 2013](#) -> NESTA 2013
    for _ in range(2):
        text = re.sub(r"([.!?…][\"”’]?)\s*\([^()]*\)\s*$", r"\1", text)  # "... ideas. (King's Fund: groups)"
        text = re.sub(r"[\"”’]?\s*\([^()]*\b(?:19|20)\d\d[a-z]?\)\s*([.!?]?)\s*$", r"\1", text)  # "... expertise (Baker et al 2016)"
    text = text.strip().strip('“”"').strip()
    if text and text[-1] not in ".!?…":
        text += "."
    return text[:1].upper() + text[1:]


_META = re.compile(r"\b(this note|this collection|the \w+ note\b|see the\b|note in this)", re.I)
# Not evidence, or not understandable without the sentence before it.
_OWN_ADVICE = re.compile(r"^\W*(our suggestion|we suggest|our advice|our view|in our view)\b", re.I)
_LEANS_BACK = re.compile(
    r"^\W*(it|this|these|those|they|their|hence|also|so|thus|the same|more specifically|in particular|however|moreover|furthermore|therefore)\b"
    r"|^\W*to (overcome|address|tackle|counter) (this|these|that|such)\b"
    r"|\bthe same (thing|way|point)\b",
    re.I,
)
_FORWARD = re.compile(r"\b(these|the following|below|as follows)\b", re.I)


def _headings(answer: Answer) -> set[str]:
    names = set()
    for passage in answer.passages:
        for part in (passage.chunk.section or "").split(" > "):
            names.add(re.sub(r"\W+", " ", part.lower()).strip())
    return names


def usable_quote(citation: Citation, headings: Collection[str] = frozenset(), leaning_ok: bool = False) -> bool:
    """A sentence that can stand alone as evidence: not a heading, lead-in, question, reference entry, our own advice, or
    leaning on the sentence before (unless `leaning_ok`: it is printed beside the sentence it leans on)."""
    quote = tidy_quote(citation.quote)
    words = re.findall(r"\w+", quote)
    last_section = (citation.section or "").split(" > ")[-1].strip()
    if is_reference_heading(last_section):
        return False
    if len(words) < 9 or len(words) > MAX_QUOTE_WORDS or citation.quote.rstrip().endswith("?"):
        return False
    bare = re.sub(r"\s*\([^()]*\)\s*$", "", citation.quote.strip()).strip(' ."”')
    if bare.endswith(":") or _META.search(quote) or _OWN_ADVICE.search(quote) or (_LEANS_BACK.search(quote) and not leaning_ok):
        return False
    if _FORWARD.search(quote) and len(words) < 16:
        return False
    if not re.search(r"[.!?…][\"”’)]*\s*(\([^()]*\))?\s*$", citation.quote.strip()) and len(words) < 12:
        return False  # a short line with no full stop: a heading or a list label
    return re.sub(r"\W+", " ", bare.lower()).strip() not in headings


def _similar(a: str, b: str, threshold: float = 0.6) -> bool:
    wa, wb = content_words(a), content_words(b)
    return bool(wa and wb) and len(wa & wb) / len(wa | wb) >= threshold


def _fresh(citation: Citation) -> Citation:
    return Citation(**{**citation.to_dict(), "n": 1})


def ask(service, question: str, evidence: dict[str, Answer], **filters) -> Answer:
    """One question to the service, always answered extractively (the planner quotes; it never lets a model write)."""
    answer = service.ask(question, backend="extractive", **filters)
    evidence[question] = answer
    return answer


def nearest_sections(answers: list[Answer], short_titles: dict[str, str], limit: int = 5) -> list[str]:
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


# -- key messages --------------------------------------------------------------------------------------


@dataclass
class _Candidate:
    citation: Citation
    question: str
    themes: set[str]
    count: int = 1  # how many of the sub-topic answers cite this sentence: the more, the more central
    similarity: float = 0.0  # cosine with the bare topic
    relevance: float = 0.0  # cross-encoder logit (or cosine) of the topic with the quote
    score: float = 0.0


def choose_key_messages(
    service, topic: str, evidence: dict[str, Answer], limit: int, writer, judge: Relevance
) -> tuple[list[KeyMessage], list[Answer], int]:
    """Ask the sub-topic questions; keep cited sentences that address the topic, most often cited, on its theme.

    Returns the messages, the answers, and how many usable quotes were found that do not address the
    topic. Each key message keeps the citation exactly as the answer that first cited it gave it, so its
    chunk is among that answer's retrieved passages.
    """
    topic_themes = detect_themes(topic)
    main_theme = topic_theme(topic)
    candidates: dict[str, _Candidate] = {}
    answers = []
    for question in sub_questions(topic):
        answer = ask(service, question, evidence)
        answers.append(answer)
        if answer.abstained:
            continue
        headings = _headings(answer)
        themes_by_chunk = {p.chunk.chunk_id: set(p.chunk.themes) for p in answer.passages}
        for citation in answer.citations:
            if not usable_quote(citation, headings):
                continue
            if citation.quote in candidates:
                candidates[citation.quote].count += 1
            else:
                candidates[citation.quote] = _Candidate(citation, question, themes_by_chunk.get(citation.chunk_id, set()))
    if not candidates:
        return [], answers, 0
    pool = sorted(candidates.values(), key=lambda c: c.citation.quote)
    quotes = [c.citation.quote for c in pool]
    vectors = service.text_vectors(quotes)
    similarities = service.similarity(topic, quotes)
    relevances = judge.scores(topic, [tidy_quote(q) for q in quotes])
    bar = judge.threshold("topic")
    # Bonuses in the judge's own units: a logit spans about 20, a cosine about 1.
    unit = 1.0 if judge.method == "cross-encoder" else 0.08
    for candidate, similarity, relevance in zip(pool, similarities, relevances):
        candidate.similarity, candidate.relevance = float(similarity), float(relevance)
        candidate.score = (
            candidate.relevance
            + unit * 0.5 * (candidate.count - 1)
            + (unit * 1.5 if main_theme in candidate.themes else 0.0)
            + (unit * 0.5 if topic_themes & candidate.themes else 0.0)
        )
    on_topic = [i for i, c in enumerate(pool) if c.relevance >= bar and c.similarity >= QUOTE_MIN_SIMILARITY]
    order = sorted(on_topic, key=lambda i: (-pool[i].score, pool[i].citation.quote))
    chosen: list[int] = []
    for allow_same_chunk in (False, True):
        for i in order:
            if len(chosen) >= limit:
                break
            if i in chosen or any(
                float(vectors[i] @ vectors[j]) >= REDUNDANT_SIMILARITY or _similar(pool[i].citation.quote, pool[j].citation.quote)
                for j in chosen
            ):
                continue
            if not allow_same_chunk and any(pool[i].citation.chunk_id == pool[j].citation.chunk_id for j in chosen):
                continue
            chosen.append(i)
    messages = []
    for i in chosen:
        citation = _fresh(pool[i].citation)
        messages.append(KeyMessage(writer.key_message(citation, topic), [citation], pool[i].question, round(pool[i].relevance, 3)))
    return messages, answers, len(pool) - len(on_topic)


# -- assumptions and the evidence that answers them ------------------------------------------------------


@lru_cache(maxsize=1)
def assumption_questions() -> list[dict]:
    entries = _load(ASSUMPTIONS_FILE)
    assert isinstance(entries, list), f"{ASSUMPTIONS_FILE} holds a list of assumptions"
    return entries


def choose_assumptions(
    service, evidence: dict[str, Answer], sources: list[dict], judge: Relevance
) -> tuple[list[AssumptionPair], str | None]:
    """Staff preconceptions the 2020 review reports, each beside the review's quote that best answers it.

    An assumption whose best answer does not score as answering it is left out.
    """
    if not any(doc["source"] == REVIEW_SOURCE for doc in sources):
        return [], "The 2020 NHS England review is not in the index, so this section is empty; add it with `assistant ingest`."
    pairs: list[AssumptionPair] = []
    used: set[str] = set()
    found = 0

    def usable(question: str, beside: Citation | None = None) -> list[Citation]:
        answer = ask(service, question, evidence, document=REVIEW_SOURCE)
        if answer.abstained:
            return []
        headings = _headings(answer)
        # A sentence from the assumption's own passage may lean on it ("These stories ..."): it is printed beside it.
        return [c for c in answer.citations if usable_quote(c, headings, leaning_ok=beside is not None and c.chunk_id == beside.chunk_id)]

    for entry in assumption_questions():
        assumption_cite = next((c for c in usable(entry["find"]) if c.quote not in used and _ASSUMPTION_CUE.search(c.quote)), None)
        if assumption_cite is None:
            continue
        found += 1
        assumption = Finding(tidy_quote(assumption_cite.quote), [_fresh(assumption_cite)], entry["find"])
        # Candidates: the review's sentences that answer the search questions, and the second half of an
        # assumption that carries its own answer ("X is often thought of as ..., but in fact ...").
        candidates: list[Finding] = []
        parts = _CONTRAST.split(assumption.text, maxsplit=1)
        if len(parts) == 2:
            candidates.append(Finding(parts[1][:1].upper() + parts[1][1:], assumption.citations, entry["find"]))
        for question in [entry["find"], *entry["search"]]:
            for citation in usable(question, beside=assumption_cite):
                if citation.quote in used or citation.quote == assumption_cite.quote or _ASSUMPTION_CUE.search(citation.quote):
                    continue
                if any(c.citations[0].quote == citation.quote for c in candidates):
                    continue
                candidates.append(Finding(tidy_quote(citation.quote), [_fresh(citation)], question))
        if not candidates:
            continue
        scores = judge.scores(entry["challenge"], [c.text for c in candidates])
        best = int(np.argmax(scores))
        if float(scores[best]) < judge.threshold("answer"):
            continue
        answer = candidates[best]
        if len(parts) == 2 and best == 0:
            assumption = Finding(parts[0].rstrip(",;") + ".", assumption.citations, assumption.question)
        used.update({assumption_cite.quote, answer.citations[0].quote})
        pairs.append(AssumptionPair(assumption, answer, entry["challenge"], round(float(scores[best]), 3)))
    if pairs:
        return pairs, None
    if found:
        return (
            [],
            "The review reports staff preconceptions, but no quoted passage in this index answers them clearly enough to print side by side.",
        )
    return [], "The review's findings on staff preconceptions could not be retrieved from this index."


# -- references ----------------------------------------------------------------------------------------


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
            documents[citation.source] = ReferenceEntry(
                "document", doc.get("short_title") or citation.title, title, citation.source_url or doc.get("source_url")
            )
    # A study that is itself an indexed document (the NHS England review linked from our notes) is listed once, as a document.
    document_urls = {d.url for d in documents.values() if d.url}
    study_list = sorted((s for s in studies.values() if s.url not in document_urls), key=lambda s: s.label.lower())
    return study_list + sorted(documents.values(), key=lambda d: d.label.lower())


_WEB = re.compile(r"^https?://[^\s<>\"'`]+$")


def reachable_reading(citations: list[Citation], sources: list[dict], limit: int = 5) -> list[ReferenceEntry]:
    """Where participants can read more, only at public addresses.

    A quoted document with a public link is named with it; one without (a toolkit note shipped with the
    assistant) is replaced by the linked studies its quoted sentences cite, else by the public sources the
    note lists; nothing points into the assistant.
    """
    entries = collect_references(citations, sources)
    public_docs = [r for r in entries if r.kind == "document" and r.url and _WEB.match(r.url)]
    studies = [r for r in entries if r.kind == "study" and r.url and _WEB.match(r.url)]
    listed = {r.url for r in public_docs + studies}
    by_source = {doc["source"]: doc for doc in sources}
    extra: list[ReferenceEntry] = []
    for citation in citations:
        doc = by_source.get(citation.source, {})
        if citation.source_url or doc.get("source_url"):
            continue
        cites_linked = any(reference_url(r) for r in citation.references or ([citation.reference] if citation.reference else []))
        if cites_linked:
            continue
        for listed_source in (doc.get("sources") or [])[:3]:
            url = str(listed_source.get("url") or "")
            if _WEB.match(url) and url not in listed:
                listed.add(url)
                label = str(listed_source.get("publisher") or url)
                extra.append(ReferenceEntry("study", label, label, url))
    return (public_docs + studies + extra)[:limit]
