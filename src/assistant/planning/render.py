"""A session plan as Markdown, self-contained HTML (a jinja2 template, autoescaped), JSON or DOCX (plan_docx); document text is always escaped."""

from __future__ import annotations

import json
from functools import lru_cache

from assistant.planning import wording as w
from assistant.planning.catalogue import DATA_DIR
from assistant.planning.model import PlanError, ReferenceEntry, SessionPlan, check_format
from assistant.planning.wording import ASSUMPTIONS_HEADING, HEADINGS, PROVENANCE, filename, safe_url  # noqa: F401  (public names)
from assistant.text import escape_markdown as esc  # one Markdown rule, the conversation export's too

HTML_TEMPLATE = "plan.html.j2"


def render(plan: SessionPlan, fmt: str) -> str | bytes:
    """The plan in `fmt`: "md", "html" and "json" give text, "docx" gives bytes. Unknown formats raise PlanError."""
    fmt = check_format(fmt)
    if fmt == "docx":
        from assistant.planning.word import to_docx

        return to_docx(plan)
    return {"md": to_markdown, "html": to_html, "json": to_json}[fmt](plan)


# -- Markdown --------------------------------------------------------------------------------------


def cell(text) -> str:
    """Escaped text for a Markdown table cell: a "|" would end the cell."""
    return esc(text).replace("|", "\\|").replace("\n", " ")


def _md_link(label: str, url: str | None) -> str:
    url = safe_url(url)
    return f"[{esc(label)}]({url})" if url else esc(label)


def _md_sources(citation) -> str:
    return w.sources_line(citation, esc, _md_link)


def _md_reference(entry: ReferenceEntry) -> str:
    text, url = w.reference_parts(entry)
    return esc(text) + (f" <{url}>" if url else "")


def _md_list(items, numbered: bool = False) -> list[str]:
    return [f"{n}. {esc(i)}" if numbered else f"- {esc(i)}" for n, i in enumerate(items, start=1)]


def to_markdown(plan: SessionPlan) -> str:
    out = [
        f"# {esc(w.title(plan))}",
        "",
        f"**{w.AUDIENCE_LABEL}** {esc(plan.audience)}  ",
        f"**{w.DURATION_LABEL}** {w.duration(plan)}",
        "",
    ]
    out += [f"_{PROVENANCE}_", ""]
    if plan.evidence_notice:
        out += [f"> **{w.THIN_LABEL}** {esc(plan.evidence_notice)}", ""]
        if plan.nearest_sections:
            out += [f"> {w.NEAREST_LABEL}"] + [f"> - {esc(s)}" for s in plan.nearest_sections] + [""]

    out += [f"## {w.OBJECTIVES_HEADING}", "", w.OBJECTIVES_LEAD, ""] + _md_list(plan.objectives, True) + [""]

    out += [f"## {w.AGENDA_HEADING}", "", "| " + " | ".join(w.AGENDA_COLUMNS) + " |", "|---|---:|---|"]
    for item in plan.agenda:
        label = f"**{cell(item.title)}**" + (f"<br>{cell(item.detail)}" if item.detail else "")
        out.append(f"| {w.time_span(item.start, item.minutes)} | {item.minutes} | {label} |")
    out += [f"| | **{sum(i.minutes for i in plan.agenda)}** | **{w.TOTAL}** |", ""]

    out += [f"## {w.KEY_MESSAGES_HEADING}", ""]
    if not plan.key_messages:
        out += [f"_{w.NO_KEY_MESSAGES}_", ""]
    for n, message in enumerate(plan.key_messages, start=1):
        out.append(f"{n}. {esc(message.text)}")
        for citation in message.citations:
            if w.quote_differs(message.text, citation):
                out.append(f'   > "{esc(citation.quote)}"')
            out.append(f"   - {_md_sources(citation)}")
        out.append("")

    out += [f"## {ASSUMPTIONS_HEADING}", "", f"_{esc(plan.assumptions_notice or w.ASSUMPTIONS_LEAD)}_", ""]
    for n, pair in enumerate(plan.assumptions_vs_evidence, start=1):
        out += [f"**{n}. {w.ASSUMPTION_LABEL}** {esc(pair.assumption.text)}  ", f"_{_md_sources(pair.assumption.citations[0])}_", ""]
        if pair.evidence:
            out += [f"**{w.EVIDENCE_LABEL}** {esc(pair.evidence.text)}  ", f"_{_md_sources(pair.evidence.citations[0])}_"]
        else:
            out.append(f"**{w.EVIDENCE_LABEL}** _{w.NO_COUNTERPOINT}_")
        out.append("")

    activity = plan.activity
    out += [f"## {esc(w.activity_heading(plan))}", "", f"**{w.PURPOSE_LABEL}** {esc(activity.purpose)}", ""]
    for heading, items, numbered in w.activity_lists(plan):
        out += [f"**{heading}:**", ""] + _md_list(items, numbered) + [""]
    if activity.role_cards:
        out += [f"### {w.ROLE_CARDS_HEADING}", "", f"_{w.ROLE_CARDS_LEAD}_", ""]
        for card in activity.role_cards:
            out += [f"> **{esc(card.role)}**  ", f"> {esc(card.brief)}  "]
            if card.private_brief:
                out.append(f"> _{w.PRIVATE_LABEL} {esc(card.private_brief)}_")
            out.append("")
    sheet = activity.observer_sheet
    if sheet:
        out += [f"### {esc(sheet.title)}", "", esc(sheet.instructions), ""]
        out += [f"| {w.WATCH_FOR} | " + " | ".join(cell(c) for c in sheet.columns) + " |", "|---|" + "---|" * len(sheet.columns)]
        out += [f"| {cell(row)} |" + " |" * len(sheet.columns) for row in sheet.rows] + [""]

    out += [f"## {w.QUESTIONS_HEADING}", ""] + _md_list(plan.discussion_questions, True) + [""]

    handout = plan.handout
    out += ["---", "", f"## {esc(w.handout_heading(plan))}", ""]
    if handout.intro:
        out += [f"_{esc(handout.intro)}_", ""]
    if handout.key_messages:
        out += [f"**{w.HANDOUT_KEY_MESSAGES}**", ""] + _md_list(handout.key_messages) + [""]
    else:
        out += [f"_{w.HANDOUT_THIN}_", ""]
    if handout.points:
        out += [f"**{w.HANDOUT_POINTS}** _({w.HANDOUT_POINTS_NOTE})_", ""] + _md_list(handout.points) + [""]
    out += [f"**{w.HANDOUT_QUESTIONS}**", ""] + _md_list(handout.questions, True) + [""]
    if handout.read_more:
        out += (
            [f"**{w.HANDOUT_READ_MORE}**", ""]
            + [f"- {_md_link(r.label, r.url)}" + (f" <{safe_url(r.url)}>" if safe_url(r.url) else "") for r in handout.read_more]
            + [""]
        )

    out += [f"## {w.REFERENCES_HEADING}", ""]
    if not plan.references:
        out += [f"_{w.NOTHING_CITED}_", ""]
    for heading, entries in w.reference_groups(plan):
        out += [f"**{heading}**", ""] + [f"- {_md_reference(r)}" for r in entries] + [""]
    return "\n".join(out).rstrip() + "\n"


# -- HTML ------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _html_template():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(DATA_DIR)),
        autoescape=True,  # every value is escaped unless the template says otherwise (it never does)
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["safe_url"] = safe_url
    return env.get_template(HTML_TEMPLATE)


def to_html(plan: SessionPlan) -> str:
    return _html_template().render(plan=plan, w=w) + "\n"


# -- JSON ------------------------------------------------------------------------------------------


def to_json(plan: SessionPlan) -> str:
    return json.dumps(plan.to_dict(), ensure_ascii=False, indent=2) + "\n"


__all__ = [
    "ASSUMPTIONS_HEADING",
    "HEADINGS",
    "PROVENANCE",
    "PlanError",
    "cell",
    "esc",
    "filename",
    "render",
    "safe_url",
    "to_html",
    "to_json",
    "to_markdown",
]
