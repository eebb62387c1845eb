"""Turns a file (Markdown, text, PDF, DOCX, HTML) into titled sections with heading paths and pages."""

from __future__ import annotations

import datetime as _dt
import errno
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, StrictStr, ValidationError
from pydantic_core import ErrorDetails

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
    size = check_regular_file(path)
    if size == 0:
        raise LoadError("the file is empty")
    if max_bytes is not None and size > max_bytes:
        raise LoadError(f"the file is {size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB (setting ASSISTANT_MAX_FILE_MB)")
    try:
        document = _LOADERS[suffix](path)
    except LoadError:
        raise
    except FileNotFoundError as exc:
        raise LoadError("the file disappeared while it was being read") from exc
    except OSError as exc:
        raise LoadError(f"cannot read the file: {exc.strerror or exc}") from exc
    except RecursionError as exc:
        raise LoadError("the file is nested too deeply to read") from exc
    except Exception as exc:  # a parser's own error on odd input must stay this file's problem
        raise LoadError(f"the file could not be read ({exc.__class__.__name__}: {exc})") from exc
    document.sections = [s for s in document.sections if s.text.strip()]
    if not document.sections:
        raise LoadError(_NO_TEXT.get(suffix, "the file contains no text"))
    return document


_NO_TEXT = {
    ".md": "the file contains no text (only headings, front matter or blank lines)",
    ".markdown": "the file contains no text (only headings, front matter or blank lines)",
    ".txt": "the file contains no text (only spaces or blank lines)",
    ".html": "the page contains no readable text (only scripts, styles, navigation or markup)",
    ".htm": "the page contains no readable text (only scripts, styles, navigation or markup)",
    ".docx": "the Word file contains no text (only images, drawings or empty paragraphs; text inside images is not read)",
    ".pdf": "the PDF has no text layer (it looks like a scan or images); it needs OCR, which is not supported: add a copy with selectable text",
}


def check_regular_file(path: Path) -> int:
    """The file's size; LoadError naming the cause for links that loop or dangle, pipes, devices, folders and unreadable files."""
    import stat

    try:
        info = os.stat(path)
    except FileNotFoundError as exc:
        if os.path.islink(path):
            raise LoadError(f"it is a broken symbolic link (it points to {os.readlink(path)!r}, which does not exist)") from exc
        raise LoadError("the file does not exist (it may have been moved or deleted)") from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LoadError("it is a symbolic link that loops back on itself") from exc
        raise LoadError(f"cannot read the file: {exc.strerror or exc}") from exc
    mode = info.st_mode
    if stat.S_ISFIFO(mode):
        raise LoadError("it is a named pipe (FIFO), not a regular file; copy the content into a file and add that")
    if stat.S_ISSOCK(mode):
        raise LoadError("it is a socket, not a regular file")
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        raise LoadError("it is a device, not a regular file")
    if stat.S_ISDIR(mode):
        raise LoadError("it is a folder, not a file")
    if not stat.S_ISREG(mode):
        raise LoadError("it is not a regular file")
    if not os.access(path, os.R_OK):
        raise LoadError("permission denied: the file is not readable by this user")
    return info.st_size


def decode_text(data: bytes) -> tuple[str, list[str]]:
    """Decode bytes as text; refuse binary data instead of indexing garbage."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), []
        except UnicodeDecodeError as exc:
            raise LoadError("the file starts like UTF-16 text but is not valid UTF-16") from exc
    if b"\x00" in data[:8192]:
        encoding = _utf16_without_bom(data)
        if encoding:
            return data.decode(encoding, errors="replace"), [f"no byte-order mark; read as {encoding.upper()} text"]
        raise LoadError("this looks like a binary file, not text (it contains NUL bytes and is not UTF-16 text)")
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return text, ["not valid UTF-8; read as Windows-1252, so check accented characters"]


def _utf16_without_bom(data: bytes) -> str | None:
    """'utf-16-le' or 'utf-16-be' when NULs sit in alternate bytes and the decoded sample is mostly printable text."""
    sample = data[:8192]
    sample = sample[: len(sample) // 2 * 2]
    if len(sample) < 4:
        return None
    even_nuls = sample[0::2].count(0)
    odd_nuls = sample[1::2].count(0)
    half = len(sample) // 2
    for encoding, nuls, other in (("utf-16-le", odd_nuls, even_nuls), ("utf-16-be", even_nuls, odd_nuls)):
        if nuls >= 0.3 * half and other <= 0.05 * half:
            text = sample.decode(encoding, errors="replace")
            printable = sum(1 for ch in text if ch.isprintable() or ch in "\n\r\t")
            if printable >= 0.95 * len(text):
                return encoding
    return None


def _read_text(path: Path) -> tuple[str, list[str]]:
    return decode_text(path.read_bytes())


MAX_FRONT_MATTER_BYTES = 16_384  # the shipped notes' longest is 8 kB (a glossary with 40 sources)


def split_front_matter(text: str) -> tuple[dict, str]:
    """Validated YAML front matter between '---' lines at the top, and the rest."""
    if not text.startswith("---"):
        return {}, text
    match = re.match(r"^---\s*\n(.*?)\n---\s*(?:\n|$)", text, flags=re.DOTALL)
    if not match:
        return {}, text
    return parse_front_matter(match.group(1)), text[match.end() :]


def parse_front_matter(raw: str) -> dict:
    """Front matter YAML checked against FrontMatter: a plain dict, or LoadError with a plain message."""
    size = len(raw.encode("utf-8", errors="replace"))
    if size > MAX_FRONT_MATTER_BYTES:
        raise LoadError(f"the front matter is {size / 1024:.0f} kB; the limit is {MAX_FRONT_MATTER_BYTES // 1024} kB of metadata")
    try:
        for token in yaml.scan(raw, Loader=yaml.SafeLoader):
            # Aliases let a few hundred bytes expand to gigabytes (a "billion laughs" bomb).
            if isinstance(token, (yaml.AnchorToken, yaml.AliasToken)):
                raise LoadError("the front matter uses YAML anchors or aliases (& or *), which are not allowed; write the values out")
        metadata = yaml.safe_load(raw)
    except LoadError:
        raise
    except yaml.YAMLError as exc:
        raise LoadError(f"the front matter is not valid YAML: {exc}") from exc
    except RecursionError as exc:
        raise LoadError("the front matter is nested too deeply") from exc
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise LoadError("the front matter must be a YAML mapping (key: value lines)")
    return validate_front_matter(metadata)


def validate_front_matter(metadata: dict) -> dict:
    """The metadata as FrontMatter allows it, or LoadError naming each wrong field."""
    try:
        model = FrontMatter.model_validate(metadata)
    except ValidationError as exc:
        problems = []
        for error in exc.errors()[:5]:
            where = ".".join(str(p) for p in error["loc"] if not (isinstance(p, str) and p.startswith(("function-", "union["))))
            problems.append(f"'{where or 'front matter'}' {_plain(error)}")
        raise LoadError("the front matter has the wrong kind of value: " + "; ".join(problems)) from None
    return model.as_metadata()


def _plain(error: ErrorDetails) -> str:
    kind = error.get("type", "")
    if kind in ("string_type", "str_type"):
        value = error.get("input")
        hint = "; put it in quotes" if isinstance(value, (bool, int, float)) else ""
        return f"must be text (got {_kind_of(value)}{hint})"
    if kind == "list_type":
        return f"must be a list like [a, b] (got {_kind_of(error.get('input'))})"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"must be a mapping of key: value lines (got {_kind_of(error.get('input'))})"
    if kind == "missing":
        return "is required"
    return str(error.get("msg", "is not valid")).replace("Value error, ", "")


def _kind_of(value) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return "text"
    return type(value).__name__


def _date_text(value):
    # YAML reads an unquoted 2020-09-01 as a date; the field still means text.
    return value.isoformat() if isinstance(value, (_dt.date, _dt.datetime)) else value


Text = Annotated[StrictStr, BeforeValidator(_date_text)]


def _plain_extra(key, value):
    """An undeclared field's value kept as is when it is text, a number or a list of them."""
    value = _date_text(value)
    if isinstance(value, list):
        value = [_date_text(v) for v in value]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, list) and all(isinstance(v, (str, bool, int, float)) for v in value):
        return value
    raise LoadError(
        f"the front matter has the wrong kind of value: '{key}' must be text, a number or a list of them (got {_kind_of(value)})"
    )


class SourceEntry(BaseModel):
    """One entry of `sources:`: where a paraphrased note's content comes from."""

    model_config = ConfigDict(extra="allow")
    url: Text | None = None
    publisher: Text | None = None
    licence: Text | None = None
    title: Text | None = None

    def as_dict(self) -> dict:
        data = {k: v for k, v in self.model_dump(exclude=set(self.model_extra or {})).items() if v is not None}
        for key, value in (self.model_extra or {}).items():
            value = _plain_extra(f"sources.{key}", value)
            if value is not None:
                data[str(key)] = value
        return data


class FrontMatter(BaseModel):
    """The front matter a document may declare: lists where lists belong, text where text belongs."""

    model_config = ConfigDict(extra="allow")
    title: Text | None = None
    short_title: Text | None = None
    author: Text | None = None
    publisher: Text | None = None
    date: Text | None = None
    last_reviewed: Text | None = None
    source_url: Text | None = None
    licence: Text | None = None
    attribution: Text | None = None
    evidence: Text | None = None
    themes: list[StrictStr] | None = None
    sources: list[SourceEntry] | None = None

    def as_metadata(self) -> dict:
        data = {k: v for k, v in self.model_dump(exclude={"sources", *(self.model_extra or {})}).items() if v is not None}
        if self.sources is not None:
            data["sources"] = [s.as_dict() for s in self.sources]
        for key, value in (self.model_extra or {}).items():
            value = _plain_extra(key, value)
            if value is not None:
                data[str(key)] = value
        return data


def clean_metadata(metadata) -> dict:
    """Metadata already in an index, made safe for readers: fields that fail the schema are dropped, never raised."""
    if not isinstance(metadata, dict):
        return {}
    try:
        return validate_front_matter(metadata)
    except LoadError:
        pass
    cleaned = {}
    for key, value in metadata.items():
        try:
            cleaned.update(validate_front_matter({key: value}))
        except Exception:  # noqa: BLE001 - a key that cannot be cleaned is dropped; the rest of the metadata is kept
            continue
    return cleaned


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
    from assistant.themes import THEMES

    unknown = [t for t in metadata.get("themes") or [] if t not in THEMES]
    if unknown:
        warnings = warnings + [f"unknown theme(s) ignored: {', '.join(unknown)} (known: {', '.join(THEMES)})"]
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
            _open_encrypted_pdf(reader)
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
    except Exception:  # noqa: BLE001 - pypdf raises many types on a damaged info dictionary; the title is optional
        info_title = ""
    sections = []
    current: tuple[str, ...] = ()
    for number, text in enumerate(pages, start=1):
        current = headings.get(number, current)
        sections.append(Section(current, _tidy_pdf_text(text), page=number))
    first_line = next((ln.strip() for p in pages for ln in p.splitlines() if ln.strip()), "")
    title = info_title or (first_line if len(first_line) <= 120 else "") or path.stem
    return LoadedDocument(title=title, sections=sections, metadata={"pages": len(pages)})


def _open_encrypted_pdf(reader) -> None:
    """Many PDFs are encrypted only against editing, with an empty password to open: read those."""
    from pypdf.errors import DependencyError

    try:
        opened = reader.decrypt("")
    except DependencyError as exc:
        raise LoadError(
            "the PDF uses AES encryption, which needs the 'cryptography' package to open; save an unencrypted copy and add that"
        ) from exc
    except Exception as exc:
        raise LoadError(f"the PDF's encryption could not be read ({exc.__class__.__name__}: {exc})") from exc
    if not opened:
        raise LoadError("the PDF needs a password to open; save a copy without a password and add that")


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
            except Exception:  # noqa: BLE001 - a bookmark pointing nowhere is skipped, not the whole outline
                continue
            found.setdefault(page, last)

    try:
        walk(reader.outline, ())
    except Exception:  # noqa: BLE001 - a broken outline only costs the section names; the pages still load
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
