"""Session plans for trainers: the timed agenda and the assembly of a plan (objectives, cited key messages, activity, handout) through the service."""

from __future__ import annotations

import sys
from pathlib import Path

from assistant.planning.catalogue import (
    Audience,
    activity_kind,
    agenda_detail,
    build_activity,
    build_discussion_questions,
    build_objectives,
    handout_intro,
    handout_points,
    handout_questions,
    match_audience,
)
from assistant.planning.evidence import (
    MIN_KEY_MESSAGES,
    REVIEW_SOURCE,
    Relevance,
    choose_assumptions,
    choose_key_messages,
    collect_references,
    nearest_sections,
    reachable_reading,
    reference_url,
    study_label,
    sub_questions,
    tidy_quote,
    usable_quote,
)
from assistant.planning.model import (
    DEFAULT_AUDIENCE,
    FORMATS,
    MAX_AUDIENCE_CHARS,
    MAX_MINUTES,
    MAX_TOPIC_CHARS,
    MIN_MINUTES,
    Activity,
    AgendaItem,
    AssumptionPair,
    Finding,
    Handout,
    KeyMessage,
    ObserverSheet,
    PlanError,
    ReferenceEntry,
    RoleCard,
    SessionPlan,
    check_format,
    check_request,
)
from assistant.service import Answer, Citation

__all__ = [  # the planner's public names, importable from here as before the split
    "DEFAULT_AUDIENCE",
    "FORMATS",
    "MAX_AUDIENCE_CHARS",
    "MAX_MINUTES",
    "MAX_TOPIC_CHARS",
    "MIN_KEY_MESSAGES",
    "MIN_MINUTES",
    "REVIEW_SOURCE",
    "Activity",
    "AgendaItem",
    "AssumptionPair",
    "Audience",
    "ExtractiveWriter",
    "Finding",
    "Handout",
    "KeyMessage",
    "ObserverSheet",
    "PlanError",
    "ReferenceEntry",
    "RoleCard",
    "SessionPlan",
    "activity_kind",
    "allocate_minutes",
    "build_activity",
    "build_agenda",
    "build_plan",
    "check_format",
    "check_request",
    "cmd_prepare",
    "collect_references",
    "key_message_limit",
    "match_audience",
    "reference_url",
    "study_label",
    "sub_questions",
    "tidy_quote",
    "usable_quote",
]


class ExtractiveWriter:
    """Turns evidence into plan wording without writing any claim of its own: a key message is its quote.

    An LLM backend can later subclass this and override `key_message` to reword a quote (the citations
    stay as they are, and the renderers then show the verbatim quote beside the new wording).
    """

    name = "extractive"

    def key_message(self, citation: Citation, topic: str) -> str:
        return tidy_quote(citation.quote)


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


def build_agenda(
    minutes: int, topic: str, activity: Activity, thin: bool, has_assumptions: bool, key_count: int, audience: Audience | None = None
) -> list[AgendaItem]:
    audience = audience or match_audience(DEFAULT_AUDIENCE)
    breaks = _breaks(minutes)
    teaching = minutes - sum(m for _, m, _ in breaks)
    parts = [p for p in _AGENDA_PARTS if has_assumptions or p[0] != "assumptions"]
    while len(parts) * 5 > teaching:
        parts.remove(max(parts, key=lambda p: p[2]))
    keys = [p[0] for p in parts]
    allocated = allocate_minutes([p[1] for p in parts], teaching, largest=keys.index("activity"))
    titles = {
        "welcome": ("Welcome, purpose and ground rules", agenda_detail(audience, "welcome")),
        "evidence": (
            (
                "What the sources do and do not cover",
                "Say plainly that the indexed evidence on this topic is thin; show the nearest sections and invite participants' own experience, labelled as such.",
            )
            if thin
            else (
                "What the evidence says: key messages",
                f"Present the {key_count} key messages with their sources; ask which ones match participants' experience.",
            )
        ),
        "assumptions": (
            "What staff often assume / what the evidence says",
            "Read each assumption aloud, ask who has heard it, then reveal what the review found.",
        ),
        "activity": (f"Activity: {activity.name}", activity.purpose),
        "discussion": ("Discussion", agenda_detail(audience, "discussion")),
        "close": (
            "Actions, handout and close",
            "Each participant names one action; hand out the one-page handout; ask for feedback on the session.",
        ),
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


# -- building the plan -----------------------------------------------------------------------------


def key_message_limit(minutes: int) -> int:
    """About one key message per quarter of an hour, from three to five: more will not be taught well in one session."""
    return max(3, min(5, minutes // 18))


def _thin_notice(topic: str, count: int, off_topic: int, nearest: bool) -> str:
    found = (
        "no passage in the indexed sources is clearly about it, so this plan has no key messages"
        if not count
        else "only one passage in the indexed sources is clearly about it, so this plan has a single key message"
    )
    aside = (
        f" ({off_topic} quoted passage{'s' if off_topic != 1 else ''} on nearby subjects {'were' if off_topic != 1 else 'was'} left out because {'they do' if off_topic != 1 else 'it does'} not address the topic)"
        if off_topic
        else ""
    )
    return (
        f'The sources say little about "{topic}": {found}{aside}. '
        "Nothing else in this plan is evidence on the topic. "
        + ("The nearest sections in the sources are listed below. " if nearest else "")
        + "To teach this topic from evidence, add documents about it (`assistant ingest`), or choose a topic the sources cover."
    )


def build_plan(service, topic: str, audience: str | None = None, minutes: int = 90, writer: ExtractiveWriter | None = None) -> SessionPlan:
    """A session plan on `topic` for `audience` lasting `minutes`, its evidence retrieved through `service`.

    The audience is free text, matched to a profile of audiences.yaml that sets the objectives, the
    activity's wording and role cards, the discussion and the handout. Raises PlanError for a request it
    cannot plan (empty topic, duration out of range); service errors such as a missing index propagate.
    """
    topic, audience, minutes = check_request(topic, audience, minutes)
    profile = match_audience(audience)
    writer = writer or ExtractiveWriter()
    judge = Relevance(service)
    evidence: dict[str, Answer] = {}
    key_messages, answers, off_topic = choose_key_messages(service, topic, evidence, key_message_limit(minutes), writer, judge)
    sources = service.sources()
    assumptions, assumptions_notice = choose_assumptions(service, evidence, sources, judge)
    thin = len(key_messages) < MIN_KEY_MESSAGES
    nearest = nearest_sections(answers, {doc["title"]: doc["short_title"] for doc in sources})
    notice = _thin_notice(topic, len(key_messages), off_topic, bool(nearest)) if thin else None
    # With no evidence on the topic, the plan's own suggestions stay general rather than follow a kind the evidence cannot back.
    kind = "default" if thin else activity_kind(topic)
    has_assumptions = bool(assumptions)
    objectives = build_objectives(kind, topic, profile, thin, has_assumptions)
    discussion = build_discussion_questions(kind, topic, profile, thin, has_assumptions)
    activity = build_activity(kind, topic, profile, 0, thin)
    agenda = build_agenda(minutes, topic, activity, thin, has_assumptions, len(key_messages), profile)
    activity.minutes = next(item.minutes for item in agenda if item.title.startswith("Activity:"))

    cited = [c for m in key_messages for c in m.citations]
    cited += [c for pair in assumptions for f in (pair.assumption, pair.evidence) if f for c in f.citations]
    references = collect_references(cited, sources)
    handout_citations = [c for m in key_messages[:4] for c in m.citations] or cited
    handout = Handout(
        title=f"{topic[:1].upper()}{topic[1:]}: key points",
        key_messages=[m.text for m in key_messages[:4]],
        questions=handout_questions(kind, profile, has_assumptions, topic),
        read_more=reachable_reading(handout_citations, sources),
        intro=handout_intro(topic, profile),
        points=handout_points(profile),
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
        nearest_sections=nearest if thin else [],
        assumptions_notice=assumptions_notice,
        backend=writer.name,
        evidence=evidence,
        audience_profile=profile.key,
        relevance_method=judge.method,
    )


# -- the command -----------------------------------------------------------------------------------


def cmd_prepare(args) -> int:
    """`assistant prepare`: print the plan, or write it to --out. Bad requests exit 2 with a plain message."""
    from assistant.planning.render import render
    from assistant.service import AssistantService, IndexMissing

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
        assert isinstance(output, str), "only DOCX is binary, and it is refused above without --out"
        sys.stdout.write(output if output.endswith("\n") else output + "\n")
    if plan.evidence_notice:
        print(
            "Note: the sources say little about this topic; the plan says so at the top and has no invented key messages.", file=sys.stderr
        )
    return 0
