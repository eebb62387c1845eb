"""A session plan as Markdown, DOCX (python-docx), self-contained HTML or JSON; document text is always escaped."""

from __future__ import annotations

import html
import io
import json
import re

from assistant.cite import Citation, content_words
from assistant.session_plan import PlanError, ReferenceEntry, SessionPlan, check_format, reference_url, study_label

ASSUMPTIONS_HEADING = "What staff often assume / what the evidence says"
HEADINGS = (
    "Learning objectives",
    "Agenda",
    "Key messages",
    ASSUMPTIONS_HEADING,
    "Activity",
    "Discussion questions",
    "Handout",
    "References",
)


def render(plan: SessionPlan, fmt: str) -> str | bytes:
    """The plan in `fmt`: "md", "html" and "json" give text, "docx" gives bytes. Unknown formats raise PlanError."""
    fmt = check_format(fmt)
    return {"md": to_markdown, "html": to_html, "json": to_json, "docx": to_docx}[fmt](plan)


# -- shared wording --------------------------------------------------------------------------------


def safe_url(url: str | None) -> str:
    """Only plain http(s) links are written out; anything else (javascript:, data:) is dropped."""
    url = (url or "").strip()
    return url if re.match(r"^https?://[^\s<>\"'`]+$", url) else ""


def clock(minutes: int) -> str:
    return f"{minutes // 60}:{minutes % 60:02d}"


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


def quote_differs(text: str, citation: Citation) -> bool:
    """True when the message is reworded (a future writer), so the verbatim quote must be shown beside it."""
    words = content_words(text)
    return bool(words - content_words(citation.quote))


def _library(entry: ReferenceEntry) -> str:
    """A note for a document with no public link: it can still be read in the assistant."""
    return " (in the assistant's library)" if entry.kind == "document" and not safe_url(entry.url) else ""


def filename(plan: SessionPlan, fmt: str) -> str:
    """A download name for the plan, e.g. "session-plan-power-dynamics-90min.md"."""
    slug = re.sub(r"[^a-z0-9]+", "-", plan.topic.lower()).strip("-")[:60].rstrip("-") or "topic"
    return f"session-plan-{slug}-{plan.minutes}min.{check_format(fmt)}"


def _title(plan: SessionPlan) -> str:
    return f"Session plan: {plan.topic}"


def _summary(plan: SessionPlan) -> str:
    return f"Audience: {plan.audience}. Duration: {plan.minutes} minutes."


PROVENANCE = (
    "Key messages and findings are sentences quoted from the indexed sources, each with its source; "
    "the objectives, activity, questions and facilitator notes are the planner's own suggestions, not evidence."
)


# -- Markdown --------------------------------------------------------------------------------------


def esc(text) -> str:
    """Document text made inert in Markdown viewers: no raw HTML tags or entities ("<" and ">" become entities)."""
    text = re.sub(r"&(?=#?\w+;)", "&amp;", str(text or ""))
    return text.replace("<", "&lt;").replace(">", "&gt;")


def cell(text) -> str:
    """Escaped text for a Markdown table cell: a "|" would end the cell."""
    return esc(text).replace("|", "\\|").replace("\n", " ")


def _md_link(label: str, url: str | None) -> str:
    url = safe_url(url)
    return f"[{esc(label)}]({url})" if url else esc(label)


def sources_line(citation: Citation, escape, link) -> str:
    """Where a quote sits and the studies it cites, in a format's own escaping and links."""
    line = f"Source: {escape(where(citation))}"
    studies = study_names(citation)
    if studies:
        line += "; citing " + ", ".join(link(label, url) for label, url in studies)
    return line


def _md_sources(citation: Citation) -> str:
    return sources_line(citation, esc, _md_link)


def reference_parts(entry: ReferenceEntry) -> tuple[str, str]:
    """(text, link) for a reference line: a study as "Label. Title. Venue.", a document by its full title."""
    if entry.kind == "document":
        text = entry.text or entry.label
    else:
        text = entry.text or entry.label
    return text, safe_url(entry.url)


def _md_reference(entry: ReferenceEntry) -> str:
    text, url = reference_parts(entry)
    return esc(text) + (f" <{url}>" if url else "")


def to_markdown(plan: SessionPlan) -> str:
    out = [f"# {esc(_title(plan))}", "", f"**Audience:** {esc(plan.audience)}  ", f"**Duration:** {plan.minutes} minutes", ""]
    out += [f"_{PROVENANCE}_", ""]
    if plan.evidence_notice:
        out += [f"> **Evidence is thin.** {esc(plan.evidence_notice)}", ""]
        if plan.nearest_sections:
            out += ["> Nearest sections in the sources:"] + [f"> - {esc(s)}" for s in plan.nearest_sections] + [""]

    out += ["## Learning objectives", "", "By the end of the session, participants will be able to:", ""]
    out += [f"{n}. {esc(o)}" for n, o in enumerate(plan.objectives, start=1)] + [""]

    out += ["## Agenda", "", "| Time | Minutes | Item |", "|---|---:|---|"]
    for item in plan.agenda:
        label = f"**{cell(item.title)}**" + (f"<br>{cell(item.detail)}" if item.detail else "")
        out.append(f"| {clock(item.start)}–{clock(item.start + item.minutes)} | {item.minutes} | {label} |")
    out += [f"| | **{sum(i.minutes for i in plan.agenda)}** | **Total** |", ""]

    out += ["## Key messages", ""]
    if not plan.key_messages:
        out += ["_No key messages: the indexed sources do not cover this topic well enough to back any with a quote._", ""]
    for n, message in enumerate(plan.key_messages, start=1):
        out.append(f"{n}. {esc(message.text)}")
        for citation in message.citations:
            if quote_differs(message.text, citation):
                out.append(f"   > \"{esc(citation.quote)}\"")
            out.append(f"   - {_md_sources(citation)}")
        out.append("")

    out += [f"## {ASSUMPTIONS_HEADING}", ""]
    if plan.assumptions_notice:
        out += [f"_{esc(plan.assumptions_notice)}_", ""]
    else:
        out += ["Findings of the 2020 NHS England literature review on staff preconceptions, quoted.", ""]
    for n, pair in enumerate(plan.assumptions_vs_evidence, start=1):
        out.append(f"**{n}. What staff often assume:** {esc(pair.assumption.text)}  ")
        out.append(f"_{_md_sources(pair.assumption.citations[0])}_")
        out.append("")
        if pair.evidence:
            out.append(f"**What the evidence says:** {esc(pair.evidence.text)}  ")
            out.append(f"_{_md_sources(pair.evidence.citations[0])}_")
        else:
            out.append("**What the evidence says:** _the review gives no direct counterpoint; discuss with the group._")
        out.append("")

    activity = plan.activity
    out += [f"## Activity: {esc(activity.name)} ({activity.minutes} minutes)", "", f"**Purpose:** {esc(activity.purpose)}", ""]
    out += ["**You will need:**", ""] + [f"- {esc(m)}" for m in activity.materials] + [""]
    out += ["**Facilitator instructions:**", ""] + [f"{n}. {esc(s)}" for n, s in enumerate(activity.steps, start=1)] + [""]
    out += ["**Keep it safe:**", ""] + [f"- {esc(s)}" for s in activity.facilitator_notes] + [""]
    out += ["**Debrief questions:**", ""] + [f"- {esc(q)}" for q in activity.debrief] + [""]

    out += ["## Discussion questions", ""] + [f"{n}. {esc(q)}" for n, q in enumerate(plan.discussion_questions, start=1)] + [""]

    handout = plan.handout
    out += ["---", "", f"## Handout: {esc(handout.title)}", ""]
    if handout.key_messages:
        out += ["**Key messages**", ""] + [f"- {esc(m)}" for m in handout.key_messages] + [""]
    else:
        out += ["_The sources hold little evidence on this topic; see the nearest sections in the plan._", ""]
    out += ["**Three questions to take away**", ""] + [f"{n}. {esc(q)}" for n, q in enumerate(handout.questions, start=1)] + [""]
    if handout.read_more:
        out += ["**Where to read more**", ""] + [f"- {_md_link(r.label, r.url)}{_library(r)}" for r in handout.read_more] + [""]

    out += ["## References", ""]
    studies = [r for r in plan.references if r.kind == "study"]
    documents = [r for r in plan.references if r.kind == "document"]
    if not plan.references:
        out += ["_Nothing was cited._", ""]
    if studies:
        out += ["**Studies and sources cited by the quoted passages**", ""] + [f"- {_md_reference(r)}" for r in studies] + [""]
    if documents:
        out += ["**Documents quoted**", ""] + [f"- {_md_reference(r)}" for r in documents] + [""]
    return "\n".join(out).rstrip() + "\n"


# -- HTML ------------------------------------------------------------------------------------------


def h(text) -> str:
    return html.escape(str(text or ""), quote=True)


def _html_link(label: str, url: str | None) -> str:
    url = safe_url(url)
    return f'<a href="{h(url)}">{h(label)}</a>' if url else h(label)


def _html_sources(citation: Citation) -> str:
    return f'<div class="source">{sources_line(citation, h, _html_link)}</div>'


def _html_reference(entry: ReferenceEntry) -> str:
    text, url = reference_parts(entry)
    return f"<li>{h(text)}" + (f' <a href="{h(url)}">{h(url)}</a>' if url else "") + "</li>"


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Arial,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#1b1b1b}
h1{font-size:1.7rem;margin-bottom:.2rem}h2{margin-top:2rem;border-bottom:1px solid #ccc;padding-bottom:.2rem}
table{border-collapse:collapse;width:100%}th,td{border:1px solid #ccc;padding:.4rem .6rem;vertical-align:top;text-align:left}
td.num{text-align:right;white-space:nowrap}td.time{white-space:nowrap}.detail{color:#444;font-size:.92em}.source{color:#555;font-size:.9em;margin-top:.2rem}
.notice{border-left:4px solid #b45309;background:#fff7ed;padding:.6rem 1rem}.provenance{color:#555;font-style:italic}
blockquote{margin:.3rem 0 .3rem 1rem;color:#333}.handout{border:1px solid #999;padding:1rem 1.4rem;margin-top:2rem}
@media print{.handout{page-break-before:always;border:none}a{color:inherit}}
""".strip()


def to_html(plan: SessionPlan) -> str:
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{h(_title(plan))}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{h(_title(plan))}</h1>",
        f"<p><strong>Audience:</strong> {h(plan.audience)}<br><strong>Duration:</strong> {plan.minutes} minutes</p>",
        f'<p class="provenance">{h(PROVENANCE)}</p>',
    ]
    if plan.evidence_notice:
        out.append(f'<div class="notice"><p><strong>Evidence is thin.</strong> {h(plan.evidence_notice)}</p>')
        if plan.nearest_sections:
            out.append("<p>Nearest sections in the sources:</p><ul>" + "".join(f"<li>{h(s)}</li>" for s in plan.nearest_sections) + "</ul>")
        out.append("</div>")

    out.append("<h2>Learning objectives</h2><p>By the end of the session, participants will be able to:</p><ol>")
    out += [f"<li>{h(o)}</li>" for o in plan.objectives] + ["</ol>"]

    out.append("<h2>Agenda</h2><table><thead><tr><th>Time</th><th>Minutes</th><th>Item</th></tr></thead><tbody>")
    for item in plan.agenda:
        detail = f'<div class="detail">{h(item.detail)}</div>' if item.detail else ""
        out.append(
            f"<tr><td class=\"time\">{clock(item.start)}–{clock(item.start + item.minutes)}</td><td class=\"num\">{item.minutes}</td>"
            f"<td><strong>{h(item.title)}</strong>{detail}</td></tr>"
        )
    out.append(f'<tr><td></td><td class="num"><strong>{sum(i.minutes for i in plan.agenda)}</strong></td><td><strong>Total</strong></td></tr></tbody></table>')

    out.append("<h2>Key messages</h2>")
    if not plan.key_messages:
        out.append("<p><em>No key messages: the indexed sources do not cover this topic well enough to back any with a quote.</em></p>")
    else:
        out.append("<ol>")
        for message in plan.key_messages:
            parts = [h(message.text)]
            for citation in message.citations:
                if quote_differs(message.text, citation):
                    parts.append(f"<blockquote>“{h(citation.quote)}”</blockquote>")
                parts.append(_html_sources(citation))
            out.append(f"<li>{''.join(parts)}</li>")
        out.append("</ol>")

    out.append(f"<h2>{h(ASSUMPTIONS_HEADING)}</h2>")
    if plan.assumptions_notice:
        out.append(f"<p><em>{h(plan.assumptions_notice)}</em></p>")
    else:
        out.append("<p>Findings of the 2020 NHS England literature review on staff preconceptions, quoted.</p>")
    if plan.assumptions_vs_evidence:
        out.append("<table><thead><tr><th>What staff often assume</th><th>What the evidence says</th></tr></thead><tbody>")
        for pair in plan.assumptions_vs_evidence:
            left = h(pair.assumption.text) + _html_sources(pair.assumption.citations[0])
            right = (
                h(pair.evidence.text) + _html_sources(pair.evidence.citations[0])
                if pair.evidence
                else "<em>The review gives no direct counterpoint; discuss with the group.</em>"
            )
            out.append(f"<tr><td>{left}</td><td>{right}</td></tr>")
        out.append("</tbody></table>")

    activity = plan.activity
    out.append(f"<h2>Activity: {h(activity.name)} ({activity.minutes} minutes)</h2><p><strong>Purpose:</strong> {h(activity.purpose)}</p>")
    out.append("<h3>You will need</h3><ul>" + "".join(f"<li>{h(m)}</li>" for m in activity.materials) + "</ul>")
    out.append("<h3>Facilitator instructions</h3><ol>" + "".join(f"<li>{h(s)}</li>" for s in activity.steps) + "</ol>")
    out.append("<h3>Keep it safe</h3><ul>" + "".join(f"<li>{h(s)}</li>" for s in activity.facilitator_notes) + "</ul>")
    out.append("<h3>Debrief questions</h3><ul>" + "".join(f"<li>{h(q)}</li>" for q in activity.debrief) + "</ul>")

    out.append("<h2>Discussion questions</h2><ol>" + "".join(f"<li>{h(q)}</li>" for q in plan.discussion_questions) + "</ol>")

    handout = plan.handout
    out.append(f'<section class="handout"><h2>Handout: {h(handout.title)}</h2>')
    if handout.key_messages:
        out.append("<h3>Key messages</h3><ul>" + "".join(f"<li>{h(m)}</li>" for m in handout.key_messages) + "</ul>")
    else:
        out.append("<p><em>The sources hold little evidence on this topic; see the nearest sections in the plan.</em></p>")
    out.append("<h3>Three questions to take away</h3><ol>" + "".join(f"<li>{h(q)}</li>" for q in handout.questions) + "</ol>")
    if handout.read_more:
        out.append("<h3>Where to read more</h3><ul>" + "".join(f"<li>{_html_link(r.label, r.url)}{h(_library(r))}</li>" for r in handout.read_more) + "</ul>")
    out.append("</section>")

    out.append("<h2>References</h2>")
    studies = [r for r in plan.references if r.kind == "study"]
    documents = [r for r in plan.references if r.kind == "document"]
    if not plan.references:
        out.append("<p><em>Nothing was cited.</em></p>")
    if studies:
        out.append("<h3>Studies and sources cited by the quoted passages</h3><ul>" + "".join(_html_reference(r) for r in studies) + "</ul>")
    if documents:
        out.append("<h3>Documents quoted</h3><ul>" + "".join(_html_reference(r) for r in documents) + "</ul>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# -- JSON ------------------------------------------------------------------------------------------


def to_json(plan: SessionPlan) -> str:
    return json.dumps(plan.to_dict(), ensure_ascii=False, indent=2) + "\n"


# -- DOCX ------------------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _x(text) -> str:
    """Text Word can store: XML forbids most control characters."""
    return _CONTROL.sub("", str(text or ""))


def _plain_sources(citation: Citation) -> str:
    return sources_line(citation, str, lambda label, url: f"{label} ({url})" if url else label)


def _plain_reference(entry: ReferenceEntry) -> str:
    text, url = reference_parts(entry)
    return text + (f" {url}" if url else "")


def to_docx(plan: SessionPlan) -> bytes:
    try:
        import docx
        from docx.enum.text import WD_BREAK
        from docx.shared import Pt
    except ImportError as exc:  # pragma: no cover - python-docx is a dependency
        raise PlanError("DOCX output needs the python-docx package.") from exc

    document = docx.Document()
    document.core_properties.title = _x(_title(plan))
    document.add_heading(_x(_title(plan)), level=0)
    document.add_paragraph(_x(_summary(plan)))
    document.add_paragraph(_x(PROVENANCE)).runs[0].italic = True

    def bullets(items):
        for item in items:
            document.add_paragraph(_x(item), style="List Bullet")

    def numbered(items):
        # Numbers written out: Word's list numbering would run on from one list to the next.
        for n, item in enumerate(items, start=1):
            paragraph = document.add_paragraph(_x(f"{n}. {item}"))
            paragraph.paragraph_format.left_indent = Pt(18)
            paragraph.paragraph_format.first_line_indent = Pt(-14)

    def small(text):
        run = document.add_paragraph().add_run(_x(text))
        run.italic = True
        run.font.size = Pt(9)

    if plan.evidence_notice:
        paragraph = document.add_paragraph()
        paragraph.add_run("Evidence is thin. ").bold = True
        paragraph.add_run(_x(plan.evidence_notice))
        if plan.nearest_sections:
            document.add_paragraph("Nearest sections in the sources:")
            bullets(plan.nearest_sections)

    document.add_heading("Learning objectives", level=1)
    document.add_paragraph("By the end of the session, participants will be able to:")
    numbered(plan.objectives)

    document.add_heading("Agenda", level=1)
    table = document.add_table(rows=1, cols=3)
    table.style = "Table Grid"
    for cell, label in zip(table.rows[0].cells, ("Time", "Minutes", "Item")):
        cell.paragraphs[0].add_run(label).bold = True
    for item in plan.agenda:
        cells = table.add_row().cells
        cells[0].text = f"{clock(item.start)}–{clock(item.start + item.minutes)}"
        cells[1].text = str(item.minutes)
        cells[2].paragraphs[0].add_run(_x(item.title)).bold = True
        if item.detail:
            cells[2].add_paragraph(_x(item.detail))
    cells = table.add_row().cells
    cells[1].paragraphs[0].add_run(str(sum(i.minutes for i in plan.agenda))).bold = True
    cells[2].paragraphs[0].add_run("Total").bold = True

    document.add_heading("Key messages", level=1)
    if not plan.key_messages:
        document.add_paragraph("No key messages: the indexed sources do not cover this topic well enough to back any with a quote.")
    for n, message in enumerate(plan.key_messages, start=1):
        numbered_paragraph = document.add_paragraph(_x(f"{n}. {message.text}"))
        numbered_paragraph.paragraph_format.left_indent = Pt(18)
        numbered_paragraph.paragraph_format.first_line_indent = Pt(-14)
        for citation in message.citations:
            if quote_differs(message.text, citation):
                document.add_paragraph(_x(f"“{citation.quote}”"), style="Quote")
            small(_plain_sources(citation))

    document.add_heading(ASSUMPTIONS_HEADING, level=1)
    document.add_paragraph(_x(plan.assumptions_notice or "Findings of the 2020 NHS England literature review on staff preconceptions, quoted."))
    if plan.assumptions_vs_evidence:
        table = document.add_table(rows=1, cols=2)
        table.style = "Table Grid"
        for cell, label in zip(table.rows[0].cells, ("What staff often assume", "What the evidence says")):
            cell.paragraphs[0].add_run(label).bold = True
        for pair in plan.assumptions_vs_evidence:
            cells = table.add_row().cells
            for cell, finding in zip(cells, (pair.assumption, pair.evidence)):
                if finding is None:
                    cell.text = "The review gives no direct counterpoint; discuss with the group."
                    continue
                cell.text = _x(finding.text)
                run = cell.add_paragraph().add_run(_x(_plain_sources(finding.citations[0])))
                run.italic = True
                run.font.size = Pt(8)

    activity = plan.activity
    document.add_heading(_x(f"Activity: {activity.name} ({activity.minutes} minutes)"), level=1)
    paragraph = document.add_paragraph()
    paragraph.add_run("Purpose: ").bold = True
    paragraph.add_run(_x(activity.purpose))
    for heading, items, write in (
        ("You will need", activity.materials, bullets),
        ("Facilitator instructions", activity.steps, numbered),
        ("Keep it safe", activity.facilitator_notes, bullets),
        ("Debrief questions", activity.debrief, bullets),
    ):
        document.add_heading(heading, level=2)
        write(items)

    document.add_heading("Discussion questions", level=1)
    numbered(plan.discussion_questions)

    document.add_paragraph().add_run().add_break(WD_BREAK.PAGE)
    handout = plan.handout
    document.add_heading(_x(f"Handout: {handout.title}"), level=1)
    document.add_heading("Key messages", level=2)
    if handout.key_messages:
        bullets(handout.key_messages)
    else:
        document.add_paragraph("The sources hold little evidence on this topic; see the nearest sections in the plan.")
    document.add_heading("Three questions to take away", level=2)
    numbered(handout.questions)
    if handout.read_more:
        document.add_heading("Where to read more", level=2)
        bullets([f"{r.label}" + (f": {safe_url(r.url)}" if safe_url(r.url) else _library(r)) for r in handout.read_more])

    document.add_heading("References", level=1)
    studies = [r for r in plan.references if r.kind == "study"]
    documents = [r for r in plan.references if r.kind == "document"]
    if not plan.references:
        document.add_paragraph("Nothing was cited.")
    if studies:
        document.add_heading("Studies and sources cited by the quoted passages", level=2)
        bullets([_plain_reference(r) for r in studies])
    if documents:
        document.add_heading("Documents quoted", level=2)
        bullets([_plain_reference(r) for r in documents])

    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()
