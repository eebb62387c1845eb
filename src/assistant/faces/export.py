"""A conversation as a Markdown or Word file: each question, its cited answer, the quoted passages and full references."""

from __future__ import annotations

import io
import re
import time

from assistant.service import WRITTEN_BY
from assistant.text import escape_markdown as md
from assistant.themes import THEMES

TITLE = "Conversation with the co-production assistant"
INTRO = (
    "Answers quote the indexed sources, or were written by a language model and checked against them; check each quote against its source."
)
ABOUT_TAB = "An administrator can find how to set it up in the About tab."
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

# What a facilitator is told when a language model's answer could not be used (Answer.fallback -> sentence).
FALLBACK_NOTICES = {
    "not_installed": "The language model chosen under “Answers” is not set up on this computer, so this answer is quoted directly from the sources instead. "
    + ABOUT_TAB,
    "missing": "The language model chosen under “Answers” could not be found, so this answer is quoted directly from the sources instead. "
    + ABOUT_TAB,
    "unreachable": "The language model server could not be reached, so this answer is quoted directly from the sources instead. "
    + ABOUT_TAB,
    "auth": "The language model server refused this computer's login details, so this answer is quoted directly from the sources instead. "
    + ABOUT_TAB,
    "timeout": "The language model took too long to write an answer, so this answer is quoted directly from the sources instead. You can ask again, or choose “Quotes only” under “Answers”.",
    "context": "The question and the passages found for it were too long for the language model, so this answer is quoted directly from the sources instead. A shorter question may help.",
    "malformed": "The language model's reply could not be read, so this answer is quoted directly from the sources instead.",
    "unverified": "The language model's answer could not be checked against the sources, so this answer is quoted directly from them instead.",
    "failed": "The language model could not answer, so this answer is quoted directly from the sources instead. " + ABOUT_TAB,
}


def facilitator_notice(answer: dict) -> str:
    """The notice to show before an answer, in full sentences for a facilitator (no commands, no error codes)."""
    fallback = answer.get("fallback")
    if fallback:
        return FALLBACK_NOTICES.get(fallback, FALLBACK_NOTICES["failed"])
    notice = (answer.get("notice") or "").strip()
    return re.sub(r"\?\.", "?", notice)


def reference_link(reference: dict | None) -> str:
    """The best link for a reference: its URL, else its DOI as a doi.org link."""
    if not reference:
        return ""
    if reference.get("url"):
        return str(reference["url"])
    if reference.get("doi"):
        return f"https://doi.org/{reference['doi']}"
    return ""


def is_study(reference: dict) -> bool:
    """A study from a document's reference list (it has authors or a year), not a web page a paragraph links to."""
    if reference.get("url") and reference.get("key") == reference.get("url"):
        return False
    return bool(reference.get("authors") or reference.get("year"))


def reference_label(reference: dict) -> str:
    return "Primary study" if is_study(reference) else "Source"


def safe_url(url: str | None) -> str:
    """Only http(s) links are written out; anything else (javascript:, data:) is dropped."""
    url = (url or "").strip()
    return url if re.match(r"^https?://[^\s<>\"'`]+$", url) else ""


def _references(citation: dict) -> list[dict]:
    return citation.get("references") or ([citation["reference"]] if citation.get("reference") else [])


def _location(citation: dict) -> str:
    parts = [citation.get("title") or citation.get("source") or ""]
    if citation.get("section"):
        parts.append(citation["section"])
    if citation.get("page"):
        parts.append(f"page {citation['page']}")
    return " › ".join(p for p in parts if p)


def _ref_text(ref: dict) -> str:
    return ref.get("text") or ref.get("title") or ""


def _scope(turn: dict) -> str:
    scope = []
    if turn.get("document"):
        scope.append(f"document {turn['document']}")
    if turn.get("theme"):
        scope.append(f"theme {THEMES.get(turn['theme'], turn['theme'])}")
    return ", ".join(scope)


def _collect(turns: list[dict]) -> tuple[dict[str, dict], dict[str, dict]]:
    """Every reference and every document the conversation cites, each once."""
    refs: dict[str, dict] = {}
    documents: dict[str, dict] = {}
    for turn in turns:
        for c in (turn.get("answer") or {}).get("citations") or []:
            for ref in _references(c):
                refs.setdefault(ref.get("key") or _ref_text(ref) or reference_link(ref), ref)
            documents.setdefault(c.get("source"), c)
    ordered = dict(sorted(refs.items(), key=lambda kv: _ref_text(kv[1]).lower()))
    return ordered, dict(sorted(documents.items()))


def conversation_markdown(turns: list[dict], title: str = TITLE, exported_at: str | None = None) -> str:
    """Markdown for a conversation: `turns` holds {question, answer: Answer.to_dict(), document?, theme?}."""
    exported_at = exported_at or time.strftime("%Y-%m-%d %H:%M")
    lines = [f"# {md(title)}", "", f"Exported {exported_at}. {INTRO}", ""]
    if not turns:
        lines += ["_No questions were asked._", ""]
    for number, turn in enumerate(turns, start=1):
        answer = turn.get("answer") or {}
        lines += [f"## {number}. {md(turn.get('question', ''))}", ""]
        if _scope(turn):
            lines += [f"_Searched only: {md(_scope(turn))}._", ""]
        if facilitator_notice(answer):
            lines += [f"_{md(facilitator_notice(answer))}_", ""]
        lines += [md(answer.get("answer", "")), ""]
        if answer.get("model") and not answer.get("abstained"):
            lines += [f"_{WRITTEN_BY.format(model=md(answer['model']))}_", ""]
        citations = answer.get("citations") or []
        if citations:
            lines += ["**Sources**", ""]
        for c in citations:
            lines += [f"**[{c['n']}] {md(_location(c))}**", ""]
            lines += ["\n".join("> " + md(line) for line in (c.get("quote") or "").splitlines() or [""]), ""]
            url = safe_url(c.get("source_url"))
            lines.append(f"- Document: `{c.get('source') or ''}`" + (f" <{url}>" if url else ""))
            for ref in _references(c):
                link = safe_url(reference_link(ref))
                lines.append(
                    f"- {reference_label(ref)}: {md(_ref_text(ref))}" + (f" <{link}>" if link and link not in _ref_text(ref) else "")
                )
            lines.append("")
    refs, documents = _collect(turns)
    if refs:
        lines += ["## References", ""]
        for ref in refs.values():
            link = safe_url(reference_link(ref))
            lines.append(f"- {md(_ref_text(ref))}" + (f" <{link}>" if link and link not in _ref_text(ref) else ""))
        lines.append("")
    if documents:
        lines += ["## Documents cited", ""]
        for source, c in documents.items():
            url = safe_url(c.get("source_url"))
            lines.append(f"- {md(c.get('title') or source)} (`{source}`)" + (f" <{url}>" if url else ""))
        lines.append("")
    return "\n".join(lines)


# -- Word ------------------------------------------------------------------------------------------


def _x(text) -> str:
    """Text Word can store: XML forbids most control characters."""
    return _CONTROL.sub("", str(text or ""))


def _hyperlink(paragraph, url: str, label: str) -> None:
    """A clickable link run (python-docx has no API for one)."""
    from docx.opc.constants import RELATIONSHIP_TYPE
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    rel = paragraph.part.relate_to(url, RELATIONSHIP_TYPE.HYPERLINK, is_external=True)
    link = OxmlElement("w:hyperlink")
    link.set(qn("r:id"), rel)
    run = OxmlElement("w:r")
    props = OxmlElement("w:rPr")
    style = OxmlElement("w:rStyle")
    style.set(qn("w:val"), "Hyperlink")
    colour = OxmlElement("w:color")
    colour.set(qn("w:val"), "0563C1")
    underline = OxmlElement("w:u")
    underline.set(qn("w:val"), "single")
    props.extend([style, colour, underline])
    run.append(props)
    text = OxmlElement("w:t")
    text.text = _x(label)
    text.set(qn("xml:space"), "preserve")
    run.append(text)
    link.append(run)
    paragraph._p.append(link)


def conversation_docx(turns: list[dict], title: str = TITLE, exported_at: str | None = None) -> bytes:
    """The same conversation as a Word document (A4, real lists, clickable links); returns the .docx bytes."""
    import docx
    from docx.shared import Mm, Pt

    exported_at = exported_at or time.strftime("%Y-%m-%d %H:%M")
    document = docx.Document()
    for section in document.sections:
        section.page_width, section.page_height = Mm(210), Mm(297)
        section.left_margin = section.right_margin = Mm(20)
    document.core_properties.title = _x(title)
    document.add_heading(_x(title), level=0)
    document.add_paragraph(f"Exported {exported_at}. {INTRO}")

    def linked(paragraph, url: str, shown: str = "") -> None:
        url = safe_url(url)
        if url:
            paragraph.add_run(" ")
            _hyperlink(paragraph, url, "(open the link)" if url in shown else url)

    if not turns:
        document.add_paragraph("No questions were asked.").runs[0].italic = True
    for number, turn in enumerate(turns, start=1):
        answer = turn.get("answer") or {}
        document.add_heading(_x(f"{number}. {turn.get('question', '')}"), level=1)
        if _scope(turn):
            document.add_paragraph(_x(f"Searched only: {_scope(turn)}.")).runs[0].italic = True
        if facilitator_notice(answer):
            document.add_paragraph(_x(facilitator_notice(answer))).runs[0].italic = True
        for line in (answer.get("answer") or "").splitlines():
            item = re.match(r"^\s*[-*•]\s+(.*)", line)
            if item:
                document.add_paragraph(_x(item.group(1)), style="List Bullet")
            elif line.strip():
                document.add_paragraph(_x(line.strip()))
        if answer.get("model") and not answer.get("abstained"):
            document.add_paragraph(_x(WRITTEN_BY.format(model=answer["model"]))).runs[0].italic = True
        citations = answer.get("citations") or []
        if citations:
            document.add_heading("Sources", level=2)
        for c in citations:
            document.add_paragraph().add_run(_x(f"[{c['n']}] {_location(c)}")).bold = True
            quote = document.add_paragraph(_x(c.get("quote") or ""), style="Quote")
            quote.paragraph_format.left_indent = Pt(18)
            paragraph = document.add_paragraph(style="List Bullet")
            paragraph.add_run(_x(f"Document: {c.get('source') or ''}"))
            linked(paragraph, c.get("source_url") or "")
            for ref in _references(c):
                paragraph = document.add_paragraph(style="List Bullet")
                paragraph.add_run(_x(f"{reference_label(ref)}: {_ref_text(ref)}"))
                linked(paragraph, reference_link(ref), _ref_text(ref))
    refs, documents = _collect(turns)
    if refs:
        document.add_heading("References", level=1)
        for ref in refs.values():
            paragraph = document.add_paragraph(style="List Bullet")
            paragraph.add_run(_x(_ref_text(ref)))
            linked(paragraph, reference_link(ref), _ref_text(ref))
    if documents:
        document.add_heading("Documents cited", level=1)
        for source, c in documents.items():
            paragraph = document.add_paragraph(style="List Bullet")
            paragraph.add_run(_x(f"{c.get('title') or source} ({source})"))
            linked(paragraph, c.get("source_url") or "")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()
