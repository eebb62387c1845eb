"""Small real files for loader and ingestion tests, made on the fly."""

from __future__ import annotations

from pathlib import Path


def write_pdf(path: Path, pages: list[str], outline: list[tuple[str, int]] | None = None, title: str | None = None) -> Path:
    """A real PDF with one text page per entry (fpdf2), optionally with bookmarks (title, page)."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    if title:
        pdf.set_title(title)
    bookmarks = dict((page, name) for name, page in (outline or []))
    for number, text in enumerate(pages, start=1):
        pdf.add_page()
        if number in bookmarks:
            pdf.start_section(bookmarks[number])
        pdf.multi_cell(0, 6, text)
    pdf.output(str(path))
    return path


def write_docx(path: Path, title: str, blocks: list[tuple[str, str]]) -> Path:
    """A real .docx; blocks are (style, text) with style 'h1'..'h3', 'p' or 'li'."""
    import docx

    document = docx.Document()
    document.core_properties.title = title
    for style, text in blocks:
        if style.startswith("h"):
            document.add_heading(text, level=int(style[1]))
        elif style == "li":
            document.add_paragraph(text, style="List Bullet")
        else:
            document.add_paragraph(text)
    document.save(str(path))
    return path
