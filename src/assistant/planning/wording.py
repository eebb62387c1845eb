"""The fixed sentences and labels of a rendered session plan, defined once for the Markdown, HTML and DOCX renderers."""

from __future__ import annotations

import re

from assistant.planning.evidence import reference_url, study_label
from assistant.planning.model import ReferenceEntry, SessionPlan
from assistant.service import Citation, content_words

OBJECTIVES_HEADING = "Learning objectives"
AGENDA_HEADING = "Agenda"
KEY_MESSAGES_HEADING = "Key messages"
ASSUMPTIONS_HEADING = "What staff often assume / what the evidence says"
ACTIVITY_HEADING = "Activity"  # the rendered heading names the activity: activity_heading()
QUESTIONS_HEADING = "Discussion questions"
HANDOUT_HEADING = "Handout"  # the rendered heading names the handout: handout_heading()
REFERENCES_HEADING = "References"
HEADINGS = (
    OBJECTIVES_HEADING,
    AGENDA_HEADING,
    KEY_MESSAGES_HEADING,
    ASSUMPTIONS_HEADING,
    ACTIVITY_HEADING,
    QUESTIONS_HEADING,
    HANDOUT_HEADING,
    REFERENCES_HEADING,
)
AUDIENCE_LABEL = "Audience:"
DURATION_LABEL = "Duration:"

PROVENANCE = (
    "Key messages and findings are sentences quoted from the indexed sources, each with its source; "
    "the objectives, activity, questions and facilitator notes are the planner's own suggestions, not evidence."
)
THIN_LABEL = "Evidence is thin."
NEAREST_LABEL = "Nearest sections in the sources:"
OBJECTIVES_LEAD = "By the end of the session, participants will be able to:"
AGENDA_COLUMNS = ("Time", "Minutes", "Item")
TOTAL = "Total"
NO_KEY_MESSAGES = "No key messages: the indexed sources do not cover this topic well enough to back any with a quote."
ASSUMPTIONS_LEAD = (
    "Findings of the 2020 NHS England literature review on staff preconceptions, each beside the quoted finding "
    "that best answers it; an assumption the review does not clearly answer is left out."
)
ASSUMPTION_LABEL = "What staff often assume:"
EVIDENCE_LABEL = "What the evidence says:"
NO_COUNTERPOINT = "The review gives no direct counterpoint; discuss with the group."
PURPOSE_LABEL = "Purpose:"
ACTIVITY_PARTS = ("You will need", "Facilitator instructions", "Keep it safe", "Debrief questions")
WATCH_FOR = "What to watch for"  # the observer sheet's first column
ROLE_CARDS_HEADING = "Role cards"
ROLE_CARDS_LEAD = "Print and cut out one card per player. The private brief is for the player only."
PRIVATE_LABEL = "Private brief:"
HANDOUT_KEY_MESSAGES = KEY_MESSAGES_HEADING
HANDOUT_THIN = "The sources hold little evidence on this topic; ask your facilitator about the nearest sources they found."
HANDOUT_POINTS = "What this means for you"
HANDOUT_POINTS_NOTE = "Suggestions from the session, not findings."
HANDOUT_QUESTIONS = "Three questions to take away"
HANDOUT_READ_MORE = "Where to read more"
NOTHING_CITED = "Nothing was cited."
STUDIES_HEADING = "Studies and sources cited by the quoted passages"
DOCUMENTS_HEADING = "Documents quoted"
SHIPPED_NOTE = "a toolkit note shipped with the assistant; not published elsewhere"


def title(plan: SessionPlan) -> str:
    return f"Session plan: {plan.topic}"


def duration(plan: SessionPlan) -> str:
    return f"{plan.minutes} minutes"


def summary(plan: SessionPlan) -> str:
    return f"Audience: {plan.audience}. Duration: {plan.minutes} minutes."


def activity_heading(plan: SessionPlan) -> str:
    return f"{ACTIVITY_HEADING}: {plan.activity.name} ({plan.activity.minutes} minutes)"


def handout_heading(plan: SessionPlan) -> str:
    return f"{HANDOUT_HEADING}: {plan.handout.title}"


def safe_url(url: str | None) -> str:
    """Only plain http(s) links are written out; anything else (javascript:, data:) is dropped."""
    url = (url or "").strip()
    return url if re.match(r"^https?://[^\s<>\"'`]+$", url) else ""


def clock(minutes: int) -> str:
    return f"{minutes // 60}:{minutes % 60:02d}"


def time_span(start: int, minutes: int) -> str:
    return f"{clock(start)}–{clock(start + minutes)}"


def where(citation: Citation) -> str:
    """Document > section (the last heading only), and page when known."""
    parts = [citation.title]
    last = (citation.section or "").split(" > ")[-1].strip()
    if last:
        parts.append(last)
    if citation.page:
        parts.append(f"page {citation.page}")
    return " › ".join(parts)


def study_names(citation: Citation) -> list[tuple[str, str]]:
    """(label, link) for each primary study the quoted sentence cites."""
    refs = citation.references or ([citation.reference] if citation.reference else [])
    return [(study_label(r), safe_url(reference_url(r))) for r in refs]


def source_parts(citation: Citation) -> tuple[str, list[tuple[str, str]]]:
    """("Source: where", [(study label, link), ...]): each renderer joins them as "...; citing A, B"."""
    return f"Source: {where(citation)}", study_names(citation)


def sources_line(citation: Citation, escape, link) -> str:
    """Where a quote sits and the studies it cites, in a format's own escaping and links."""
    lead, studies = source_parts(citation)
    line = escape(lead)
    if studies:
        line += "; citing " + ", ".join(link(label, url) for label, url in studies)
    return line


def quote_differs(text: str, citation: Citation) -> bool:
    """True when the message is reworded (a future writer), so the verbatim quote must be shown beside it."""
    return bool(content_words(text) - content_words(citation.quote))


def reference_parts(entry: ReferenceEntry) -> tuple[str, str]:
    """(text, link) for a reference line: a study as written, a document by its full title (with a note when it has no public link)."""
    text = entry.text or entry.label
    url = safe_url(entry.url)
    if entry.kind == "document" and not url:
        text = f"{text} ({SHIPPED_NOTE})"
    return text, url


def reference_groups(plan: SessionPlan) -> list[tuple[str, list[ReferenceEntry]]]:
    groups = [
        (STUDIES_HEADING, [r for r in plan.references if r.kind == "study"]),
        (DOCUMENTS_HEADING, [r for r in plan.references if r.kind == "document"]),
    ]
    return [(heading, entries) for heading, entries in groups if entries]


def activity_lists(plan: SessionPlan) -> list[tuple[str, list[str], bool]]:
    """(heading, items, numbered) for each part of the activity."""
    a = plan.activity
    return list(zip(ACTIVITY_PARTS, (a.materials, a.steps, a.facilitator_notes, a.debrief), (False, True, False, False)))


def filename(plan: SessionPlan, fmt: str) -> str:
    """A download name for the plan, e.g. "session-plan-power-dynamics-90min.md"."""
    from assistant.planning.model import check_format

    slug = re.sub(r"[^a-z0-9]+", "-", plan.topic.lower()).strip("-")[:60].rstrip("-") or "topic"
    return f"session-plan-{slug}-{plan.minutes}min.{check_format(fmt)}"
