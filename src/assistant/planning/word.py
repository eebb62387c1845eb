"""A session plan as a Word document (python-docx): A4 pages, real bullet and numbered lists, clickable links, printable role cards."""

from __future__ import annotations

import io
import re

from assistant.planning import wording as w
from assistant.planning.model import PlanError, SessionPlan

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _x(text) -> str:
    """Text Word can store: XML forbids most control characters."""
    return _CONTROL.sub("", str(text or ""))


class _Writer:
    """Adds paragraphs, lists and links to one python-docx Document."""

    def __init__(self, document):
        from docx.oxml import OxmlElement
        from docx.oxml.ns import qn
        from docx.shared import Pt, RGBColor

        self.doc = document
        self._el, self._qn, self._pt, self._rgb = OxmlElement, qn, Pt, RGBColor

    # -- text and links ------------------------------------------------------------------------

    def paragraph(self, text: str = "", style: str | None = None, italic: bool = False, size: float | None = None, bold_lead: str = ""):
        paragraph = self.doc.add_paragraph(style=style)
        if bold_lead:
            paragraph.add_run(_x(bold_lead) + " ").bold = True
        if text:
            run = paragraph.add_run(_x(text))
            run.italic = italic
            if size:
                run.font.size = self._pt(size)
        return paragraph

    def link(self, paragraph, label: str, url: str | None, size: float | None = None) -> None:
        """A clickable hyperlink (an external relationship), or plain text when the URL is not a web link."""
        from docx.opc.constants import RELATIONSHIP_TYPE

        url = w.safe_url(url)
        if not url:
            run = paragraph.add_run(_x(label))
            if size:
                run.font.size = self._pt(size)
            return
        rel_id = paragraph.part.relate_to(url, RELATIONSHIP_TYPE.HYPERLINK, is_external=True)
        hyperlink = self._el("w:hyperlink")
        hyperlink.set(self._qn("r:id"), rel_id)
        run = self._el("w:r")
        props = self._el("w:rPr")
        color = self._el("w:color")
        color.set(self._qn("w:val"), "0563C1")
        underline = self._el("w:u")
        underline.set(self._qn("w:val"), "single")
        props.append(color)
        props.append(underline)
        if size:
            half_points = self._el("w:sz")
            half_points.set(self._qn("w:val"), str(int(size * 2)))
            props.append(half_points)
        run.append(props)
        text = self._el("w:t")
        text.text = _x(label)
        text.set(self._qn("xml:space"), "preserve")
        run.append(text)
        hyperlink.append(run)
        paragraph._p.append(hyperlink)

    def sources(self, citation, container=None, size: float = 9) -> None:
        """The "Source: ...; citing A, B" line, small and italic, each study a link."""
        lead, studies = w.source_parts(citation)
        paragraph = (container or self.doc).add_paragraph()
        run = paragraph.add_run(_x(lead))
        run.italic, run.font.size = True, self._pt(size)
        if studies:
            paragraph.add_run("; citing ").font.size = self._pt(size)
            for n, (label, url) in enumerate(studies):
                if n:
                    paragraph.add_run(", ").font.size = self._pt(size)
                self.link(paragraph, label, url, size)

    # -- lists ---------------------------------------------------------------------------------

    def bullets(self, items) -> list:
        return [self.paragraph(item, style="List Bullet") for item in items]

    def numbered(self, items) -> list:
        """A "List Number" list that starts again at 1 (each list gets its own numbering instance)."""
        paragraphs = [self.paragraph(item, style="List Number") for item in items]
        if paragraphs:
            self.restart(paragraphs)
        return paragraphs

    def restart(self, paragraphs) -> None:
        if not paragraphs:
            return
        qn = self._qn
        numbering = self.doc.part.numbering_part.element
        style = self.doc.styles["List Number"].element
        style_num = style.find(qn("w:pPr") + "/" + qn("w:numPr") + "/" + qn("w:numId"))
        if style_num is None:
            return  # a template without list numbering: the style still marks the list
        base = next(n for n in numbering.findall(qn("w:num")) if n.get(qn("w:numId")) == style_num.get(qn("w:val")))
        abstract = base.find(qn("w:abstractNumId")).get(qn("w:val"))
        new_id = str(max(int(n.get(qn("w:numId"))) for n in numbering.findall(qn("w:num"))) + 1)
        num = self._el("w:num")
        num.set(qn("w:numId"), new_id)
        abstract_ref = self._el("w:abstractNumId")
        abstract_ref.set(qn("w:val"), abstract)
        num.append(abstract_ref)
        override = self._el("w:lvlOverride")
        override.set(qn("w:ilvl"), "0")
        start = self._el("w:startOverride")
        start.set(qn("w:val"), "1")
        override.append(start)
        num.append(override)
        numbering.append(num)
        for paragraph in paragraphs:
            props = paragraph._p.get_or_add_pPr()
            num_pr = self._el("w:numPr")
            level = self._el("w:ilvl")
            level.set(qn("w:val"), "0")
            num_ref = self._el("w:numId")
            num_ref.set(qn("w:val"), new_id)
            num_pr.append(level)
            num_pr.append(num_ref)
            if props.pStyle is None:
                props.insert(0, num_pr)
            else:
                props.pStyle.addnext(num_pr)


def _a4(document) -> None:
    from docx.shared import Mm

    for section in document.sections:
        section.page_width, section.page_height = Mm(210), Mm(297)
        section.left_margin = section.right_margin = Mm(20)
        section.top_margin = section.bottom_margin = Mm(20)


def to_docx(plan: SessionPlan) -> bytes:
    try:
        import docx
        from docx.enum.text import WD_BREAK
    except ImportError as exc:  # pragma: no cover - python-docx is a dependency
        raise PlanError("DOCX output needs the python-docx package.") from exc

    document = docx.Document()
    _a4(document)
    out = _Writer(document)
    document.core_properties.title = _x(w.title(plan))
    document.add_heading(_x(w.title(plan)), level=0)
    out.paragraph(w.summary(plan))
    out.paragraph(w.PROVENANCE, italic=True)

    if plan.evidence_notice:
        out.paragraph(plan.evidence_notice, bold_lead=w.THIN_LABEL)
        if plan.nearest_sections:
            out.paragraph(w.NEAREST_LABEL)
            out.bullets(plan.nearest_sections)

    document.add_heading(w.OBJECTIVES_HEADING, level=1)
    out.paragraph(w.OBJECTIVES_LEAD)
    out.numbered(plan.objectives)

    document.add_heading(w.AGENDA_HEADING, level=1)
    table = document.add_table(rows=1, cols=3)
    table.style = "Table Grid"
    for cell, label in zip(table.rows[0].cells, w.AGENDA_COLUMNS):
        cell.paragraphs[0].add_run(label).bold = True
    for item in plan.agenda:
        cells = table.add_row().cells
        cells[0].text = w.time_span(item.start, item.minutes)
        cells[1].text = str(item.minutes)
        cells[2].paragraphs[0].add_run(_x(item.title)).bold = True
        if item.detail:
            cells[2].add_paragraph(_x(item.detail))
    cells = table.add_row().cells
    cells[1].paragraphs[0].add_run(str(sum(i.minutes for i in plan.agenda))).bold = True
    cells[2].paragraphs[0].add_run(w.TOTAL).bold = True

    document.add_heading(w.KEY_MESSAGES_HEADING, level=1)
    if not plan.key_messages:
        out.paragraph(w.NO_KEY_MESSAGES)
    items = []
    for message in plan.key_messages:
        items.append(out.paragraph(message.text, style="List Number"))
        for citation in message.citations:
            if w.quote_differs(message.text, citation):
                out.paragraph(f"“{citation.quote}”", style="Quote")
            out.sources(citation)
    out.restart(items)  # one list, its sources between the items

    document.add_heading(w.ASSUMPTIONS_HEADING, level=1)
    out.paragraph(plan.assumptions_notice or w.ASSUMPTIONS_LEAD)
    if plan.assumptions_vs_evidence:
        table = document.add_table(rows=1, cols=2)
        table.style = "Table Grid"
        for cell, label in zip(table.rows[0].cells, (w.ASSUMPTION_LABEL.rstrip(":"), w.EVIDENCE_LABEL.rstrip(":"))):
            cell.paragraphs[0].add_run(label).bold = True
        for pair in plan.assumptions_vs_evidence:
            cells = table.add_row().cells
            for cell, finding in zip(cells, (pair.assumption, pair.evidence)):
                if finding is None:
                    cell.text = w.NO_COUNTERPOINT
                    continue
                cell.text = _x(finding.text)
                out.sources(finding.citations[0], container=cell, size=8)

    activity = plan.activity
    document.add_heading(_x(w.activity_heading(plan)), level=1)
    out.paragraph(activity.purpose, bold_lead=w.PURPOSE_LABEL)
    for heading, items, numbered in w.activity_lists(plan):
        document.add_heading(heading, level=2)
        (out.numbered if numbered else out.bullets)(items)

    document.add_heading(w.QUESTIONS_HEADING, level=1)
    out.numbered(plan.discussion_questions)

    if activity.role_cards:
        document.add_paragraph().add_run().add_break(WD_BREAK.PAGE)
        document.add_heading(w.ROLE_CARDS_HEADING, level=1)
        out.paragraph(w.ROLE_CARDS_LEAD, italic=True)
        cards = document.add_table(rows=0, cols=2)
        cards.style = "Table Grid"
        for n, card in enumerate(activity.role_cards):
            if n % 2 == 0:
                row = cards.add_row().cells
            cell = row[n % 2]
            cell.paragraphs[0].add_run(_x(card.role)).bold = True
            cell.add_paragraph(_x(card.brief))
            if card.private_brief:
                private = cell.add_paragraph()
                private.add_run(w.PRIVATE_LABEL + " ").bold = True
                private.add_run(_x(card.private_brief)).italic = True
    sheet = activity.observer_sheet
    if sheet:
        document.add_paragraph().add_run().add_break(WD_BREAK.PAGE)
        document.add_heading(_x(sheet.title), level=1)
        out.paragraph(sheet.instructions)
        grid = document.add_table(rows=1, cols=1 + len(sheet.columns))
        grid.style = "Table Grid"
        for cell, label in zip(grid.rows[0].cells, [w.WATCH_FOR, *sheet.columns]):
            cell.paragraphs[0].add_run(_x(label)).bold = True
        for line in sheet.rows:
            cells = grid.add_row().cells
            cells[0].text = _x(line)
            cells[1].add_paragraph()  # room to write

    document.add_paragraph().add_run().add_break(WD_BREAK.PAGE)
    handout = plan.handout
    document.add_heading(_x(w.handout_heading(plan)), level=1)
    if handout.intro:
        out.paragraph(handout.intro, italic=True)
    document.add_heading(w.HANDOUT_KEY_MESSAGES, level=2)
    if handout.key_messages:
        out.bullets(handout.key_messages)
    else:
        out.paragraph(w.HANDOUT_THIN)
    if handout.points:
        document.add_heading(w.HANDOUT_POINTS, level=2)
        out.paragraph(w.HANDOUT_POINTS_NOTE, italic=True)
        out.bullets(handout.points)
    document.add_heading(w.HANDOUT_QUESTIONS, level=2)
    out.numbered(handout.questions)
    if handout.read_more:
        document.add_heading(w.HANDOUT_READ_MORE, level=2)
        for entry in handout.read_more:
            paragraph = out.paragraph(style="List Bullet")
            out.link(paragraph, entry.label, entry.url)
            if w.safe_url(entry.url):
                paragraph.add_run(": ")
                out.link(paragraph, w.safe_url(entry.url), entry.url)

    document.add_heading(w.REFERENCES_HEADING, level=1)
    if not plan.references:
        out.paragraph(w.NOTHING_CITED)
    for heading, entries in w.reference_groups(plan):
        document.add_heading(heading, level=2)
        for entry in entries:
            text, url = w.reference_parts(entry)
            paragraph = out.paragraph(text, style="List Bullet")
            if url:
                paragraph.add_run(" ")
                out.link(paragraph, url, url)

    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()
