"""Turns a file (Markdown, text, PDF, DOCX, HTML) into titled sections with heading paths and pages."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

SUPPORTED_SUFFIXES = (".md", ".markdown", ".txt", ".pdf", ".docx", ".html", ".htm")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


class LoadError(Exception):
    """A file that cannot be indexed, with a message a facilitator can act on."""


@dataclass
class Section:
    heading_path: tuple[str, ...]
    text: str
    page: int | None = None


@dataclass
class LoadedDocument:
    title: str
    sections: list[Section]
    metadata: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def full_text(self) -> str:
        return "\n\n".join(s.text for s in self.sections)


def load(path: Path, max_bytes: int | None = None) -> LoadedDocument:
    """Load one file or raise LoadError saying what is wrong with it."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise LoadError(f"unsupported file type '{suffix or path.name}'; supported: {', '.join(SUPPORTED_SUFFIXES)}")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise LoadError(f"cannot read the file: {exc.strerror or exc}") from exc
    if size == 0:
        raise LoadError("the file is empty")
    if max_bytes is not None and size > max_bytes:
        raise LoadError(f"the file is {size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB (setting ASSISTANT_MAX_FILE_MB)")
    try:
        document = _LOADERS[suffix](path)
    except LoadError:
        raise
    except OSError as exc:
        raise LoadError(f"cannot read the file: {exc.strerror or exc}") from exc
    document.sections = [s for s in document.sections if s.text.strip()]
    if not document.sections:
        raise LoadError("no text could be extracted (a scanned PDF needs OCR, which is not supported)")
    return document


def decode_text(data: bytes) -> tuple[str, list[str]]:
    """Decode bytes as text; refuse binary data instead of indexing garbage."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16"), []
    if b"\x00" in data[:8192]:
        raise LoadError("this looks like a binary file, not text")
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return text, ["not valid UTF-8; read as Windows-1252, so check accented characters"]


def _read_text(path: Path) -> tuple[str, list[str]]:
    return decode_text(path.read_bytes())


def split_front_matter(text: str) -> tuple[dict, str]:
    """YAML front matter between '---' lines at the top, and the rest."""
    if not text.startswith("---"):
        return {}, text
    match = re.match(r"^---\s*\n(.*?)\n---\s*(?:\n|$)", text, flags=re.DOTALL)
    if not match:
        return {}, text
    try:
        metadata = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        raise LoadError(f"the front matter is not valid YAML: {exc}") from exc
    if not isinstance(metadata, dict):
        raise LoadError("the front matter must be a YAML mapping (key: value lines)")
    return metadata, text[match.end():]


def _sections_from_headings(lines: list[tuple[int | None, str]]) -> list[Section]:
    """Group (heading level or None, text) lines into sections keyed by their heading path."""
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    buffer: list[str] = []

    def flush() -> None:
        text = "\n".join(buffer).strip()
        if text:
            sections.append(Section(tuple(title for _, title in stack), text))
        buffer.clear()

    for level, text in lines:
        if level is None:
            buffer.append(text)
            continue
        flush()
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, text))
    flush()
    return sections


def _take_single_h1(lines: list[tuple[int | None, str]]) -> tuple[str, list[tuple[int | None, str]]]:
    """A lone level-1 heading is the document's title, not a section: it would prefix every path."""
    h1s = [text for level, text in lines if level == 1]
    if len(h1s) != 1:
        return "", lines
    return h1s[0], [(level, text) for level, text in lines if level != 1]


def load_markdown(path: Path) -> LoadedDocument:
    raw, warnings = _read_text(path)
    metadata, body = split_front_matter(raw)
    lines: list[tuple[int | None, str]] = []
    in_code = False
    first_heading = ""
    for line in body.splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
        match = None if in_code else _HEADING.match(line)
        if match:
            heading = match.group(2).strip()
            first_heading = first_heading or heading
            lines.append((len(match.group(1)), heading))
        else:
            lines.append((None, line))
    h1_title, lines = _take_single_h1(lines)
    title = str(metadata.get("title") or h1_title or first_heading or path.stem)
    return LoadedDocument(title=title, sections=_sections_from_headings(lines), metadata=metadata, warnings=warnings)


def load_text(path: Path) -> LoadedDocument:
    text, warnings = _read_text(path)
    first_line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    title = first_line if 0 < len(first_line) <= 120 else path.stem
    return LoadedDocument(title=title, sections=[Section((), text.strip())], warnings=warnings)


def load_pdf(path: Path) -> LoadedDocument:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted:
            raise LoadError("the PDF is password-protected; save an unprotected copy and add that")
        pages = [page.extract_text() or "" for page in reader.pages]
    except LoadError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise LoadError(f"the PDF is damaged or not a PDF ({exc.__class__.__name__}: {exc})") from exc
    except Exception as exc:  # pypdf raises many types on malformed input; none should abort a batch
        raise LoadError(f"the PDF could not be read ({exc.__class__.__name__}: {exc})") from exc
    headings = _pdf_outline_by_page(reader)
    info_title = ""
    try:
        info_title = (reader.metadata.title or "").strip() if reader.metadata else ""
    except Exception:
        info_title = ""
    sections = []
    current: tuple[str, ...] = ()
    for number, text in enumerate(pages, start=1):
        current = headings.get(number, current)
        sections.append(Section(current, _tidy_pdf_text(text), page=number))
    first_line = next((ln.strip() for p in pages for ln in p.splitlines() if ln.strip()), "")
    title = info_title or (first_line if len(first_line) <= 120 else "") or path.stem
    return LoadedDocument(title=title, sections=sections, metadata={"pages": len(pages)})


def _pdf_outline_by_page(reader) -> dict[int, tuple[str, ...]]:
    """Map page number to the bookmark path that starts on it, when the PDF has an outline."""
    found: dict[int, tuple[str, ...]] = {}

    def walk(items, parents: tuple[str, ...]) -> None:
        last: tuple[str, ...] = parents
        for item in items:
            if isinstance(item, list):
                walk(item, last)
                continue
            try:
                page = reader.get_destination_page_number(item) + 1
                last = parents + (str(item.title).strip(),)
            except Exception:
                continue
            found.setdefault(page, last)

    try:
        walk(reader.outline, ())
    except Exception:
        return {}
    return found


def _tidy_pdf_text(text: str) -> str:
    text = re.sub(r"(\w)-\n(\w)", r"\1\2", text)  # words hyphenated across lines
    return re.sub(r"[ \t]+", " ", text).strip()


def load_docx(path: Path) -> LoadedDocument:
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(str(path))
    except (PackageNotFoundError, KeyError, ValueError) as exc:
        raise LoadError(f"the Word file is damaged or not a .docx ({exc})") from exc
    except Exception as exc:  # zipfile and lxml errors on malformed packages
        raise LoadError(f"the Word file could not be read ({exc.__class__.__name__}: {exc})") from exc
    lines: list[tuple[int | None, str]] = []
    title = (document.core_properties.title or "").strip()
    for paragraph in document.paragraphs:
        text = paragraph.text.strip()
        if not text:
            lines.append((None, ""))
            continue
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        level = _docx_heading_level(style)
        if style == "Title":
            title = title or text
            continue
        lines.append((level, text) if level else (None, ("- " + text) if "List" in style else text))
    for table in document.tables:
        for row in table.rows:
            cells = [c.text.strip() for c in row.cells if c.text.strip()]
            if cells:
                lines.append((None, " | ".join(dict.fromkeys(cells))))
    h1_title, lines = _take_single_h1(lines)
    first_heading = next((t for lvl, t in lines if lvl), "")
    title = title or h1_title or first_heading or path.stem
    return LoadedDocument(title=title, sections=_sections_from_headings(lines))


def _docx_heading_level(style: str) -> int | None:
    match = re.match(r"Heading (\d)", style)
    return int(match.group(1)) if match else None


_HTML_BLOCKS = ["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "blockquote", "td", "th", "dt", "dd", "figcaption"]


def load_html(path: Path) -> LoadedDocument:
    from bs4 import BeautifulSoup

    raw, warnings = _read_text(path)
    soup = BeautifulSoup(raw, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "nav", "footer", "iframe", "svg"]):
        tag.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    lines: list[tuple[int | None, str]] = []
    for element in soup.find_all(_HTML_BLOCKS):
        if element.find(_HTML_BLOCKS):  # its inner blocks are visited on their own
            continue
        text = element.get_text(" ", strip=True)
        if not text:
            continue
        if element.name in ("h1", "h2", "h3", "h4", "h5", "h6"):
            lines.append((int(element.name[1]), text))
        else:
            lines.append((None, ("- " + text) if element.name == "li" else text))
            lines.append((None, ""))
    if not lines:
        body_text = soup.get_text("\n", strip=True)
        lines = [(None, body_text)]
    h1_title, lines = _take_single_h1(lines)
    first_heading = next((t for lvl, t in lines if lvl), "")
    title = title or h1_title or first_heading or path.stem
    return LoadedDocument(title=title, sections=_sections_from_headings(lines), warnings=warnings)


_LOADERS = {
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".txt": load_text,
    ".pdf": load_pdf,
    ".docx": load_docx,
    ".html": load_html,
    ".htm": load_html,
}
