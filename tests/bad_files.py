"""A generator of bad, odd and good files for ingestion tests: each kind with the outcome it must get."""

from __future__ import annotations

import os
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import write_docx, write_pdf

GOOD_TEXT = "Agree ground rules with patient partners before the first co-design workshop so everyone can speak."


@dataclass
class Kind:
    name: str  # file name written (the source id is the same under the target folder)
    expect: str  # "good" (indexed) or "failed"
    cause: str = ""  # regex the failure message must match (the real cause, in plain words)
    note: str = ""  # regex a good file's warning must match, if any
    vanish: bool = False  # delete it while the batch runs


def _png(width: int = 4, height: int = 4) -> bytes:
    """A real, tiny PNG (no imaging library needed)."""
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _md(front: str, body: str = f"## Ground rules\n\n{GOOD_TEXT}\n") -> str:
    return f"---\n{front}\n---\n{body}"


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(8)
)


def build(folder: Path, *, with_special: bool = True) -> list[Kind]:
    """Write every kind into `folder`; return what each must yield. `with_special` adds FIFOs and links."""
    folder.mkdir(parents=True, exist_ok=True)
    kinds: list[Kind] = []

    def text(name: str, content: str, expect: str, cause: str = "", note: str = "", encoding: str = "utf-8") -> None:
        (folder / name).write_bytes(content.encode(encoding))
        kinds.append(Kind(name, expect, cause, note))

    def raw(name: str, data: bytes, expect: str, cause: str = "", note: str = "") -> None:
        (folder / name).write_bytes(data)
        kinds.append(Kind(name, expect, cause, note))

    wrong = r"front matter has the wrong kind of value"
    # -- front matter with the wrong types --------------------------------------------------
    text("fm-themes-number.md", _md("themes: 5"), "failed", rf"{wrong}.*'themes' must be a list")
    text("fm-themes-bool.md", _md("themes: true"), "failed", rf"{wrong}.*'themes' must be a list")
    text("fm-themes-nested.md", _md("themes: [[ebcd]]"), "failed", rf"{wrong}.*'themes.0' must be text")
    text("fm-themes-mapping.md", _md("themes: {ebcd: yes}"), "failed", rf"{wrong}.*'themes' must be a list")
    text("fm-sources-number.md", _md("sources: 5"), "failed", rf"{wrong}.*'sources' must be a list")
    text("fm-sources-strings.md", _md("sources: [https://example.org]"), "failed", rf"{wrong}.*'sources.0' must be a mapping")
    text("fm-sources-url-number.md", _md("sources:\n  - url: 5"), "failed", rf"{wrong}.*'sources.0.url' must be text")
    text("fm-source-url-number.md", _md("source_url: 5"), "failed", rf"{wrong}.*'source_url' must be text")
    text("fm-source-url-list.md", _md("source_url: [a, b]"), "failed", rf"{wrong}.*'source_url' must be text")
    text("fm-title-list.md", _md("title: [a, b]"), "failed", rf"{wrong}.*'title' must be text")
    text("fm-title-mapping.md", _md("title: {a: b}"), "failed", rf"{wrong}.*'title' must be text")
    text("fm-licence-bool.md", _md("licence: yes"), "failed", rf"{wrong}.*'licence' must be text")
    text("fm-extra-mapping.md", _md("tags: {a: b}"), "failed", rf"{wrong}.*'tags' must be text, a number or a list")
    text("fm-not-mapping.md", _md("- just\n- a list"), "failed", r"front matter must be a YAML mapping")
    text("fm-scalar.md", _md("just a sentence"), "failed", r"front matter must be a YAML mapping")
    text("fm-invalid-yaml.md", _md("title: [unclosed"), "failed", r"front matter is not valid YAML")
    text("fm-python-tag.md", _md("title: !!python/object/apply:os.system ['true']"), "failed", r"front matter is not valid YAML")
    text("fm-alias-bomb.md", _md(ALIAS_BOMB), "failed", r"anchors or aliases")
    text("fm-small-alias.md", _md("base: &b hello\ntitle: *b"), "failed", r"anchors or aliases")
    text("fm-oversized.md", _md('title: big\nnotes: "' + "x" * 20_000 + '"'), "failed", r"front matter is \d+ kB; the limit is 16 kB")
    text("fm-deep-nesting.md", _md("deep: " + "[" * 2000 + "]" * 2000), "failed", r"front matter")
    # Odd but valid: unquoted dates, unknown themes, CRLF line ends, a self-declared primary upload.
    text("fm-unquoted-date.md", _md("title: Dated\nlast_reviewed: 2026-11-27\ndate: 2020-09-01"), "good")
    text("fm-unknown-theme.md", _md("themes: [cooking, ebcd]"), "good", note=r"unknown theme\(s\) ignored: cooking")
    text("fm-crlf.md", _md("title: Windows note").replace("\n", "\r\n"), "good")
    text("fm-claims-primary.md", _md("title: Self-promoting upload\nevidence: primary"), "good", note=r"'evidence: primary' ignored")

    # -- text and Markdown with no text or odd encodings ---------------------------------------
    raw("empty.md", b"", "failed", r"the file is empty")
    raw("empty.txt", b"", "failed", r"the file is empty")
    text("whitespace.txt", "   \n\t\n\n   \n", "failed", r"contains no text \(only spaces")
    text("headings-only.md", "# Title\n\n## Section one\n\n### Sub\n", "failed", r"contains no text \(only headings")
    text("front-matter-only.md", "---\ntitle: Nothing else\n---\n", "failed", r"contains no text")
    raw("binary.txt", bytes(range(256)) * 40, "failed", r"binary file")
    raw("png-named.md", _png(), "failed", r"binary file")
    raw("nul-laden.md", b"## Rules\n\x00\x00\x01\x02" * 300, "failed", r"binary file")
    text("utf16le-no-bom.txt", GOOD_TEXT + "\n" + GOOD_TEXT, "good", note=r"UTF-16-LE", encoding="utf-16-le")
    text("utf16be-no-bom.md", "## Rules\n\n" + GOOD_TEXT, "good", note=r"UTF-16-BE", encoding="utf-16-be")
    text("utf16-bom.txt", GOOD_TEXT, "good", encoding="utf-16")
    raw("bad-utf16-bom.txt", b"\xff\xfe" + b"\x00\xd8" * 3, "failed", r"not valid UTF-16")
    text("latin1.txt", "Café meetings: " + GOOD_TEXT, "good", note=r"Windows-1252", encoding="latin-1")
    text("control-chars.txt", "\x07\x1b[31m " + GOOD_TEXT, "good")
    raw("too-big.txt", b"co-design " * 120_000, "failed", r"the limit is 1 MB")

    # -- HTML ----------------------------------------------------------------------------------
    text(
        "script-only.html",
        "<html><head><script>alert('x')</script><style>p{}</style></head><body><script>var a=1;</script></body></html>",
        "failed",
        r"page contains no readable text",
    )
    text("empty-body.html", "<html><body><div></div></body></html>", "failed", r"page contains no readable text")
    text("nav-only.htm", "<nav><a href='/'>Home</a></nav><footer>(c) us</footer>", "failed", r"page contains no readable text")
    raw("binary.html", b"\x00\x01\x02\x03" * 500, "failed", r"binary file")
    text("deep-nesting.html", "<div>" * 5000 + GOOD_TEXT + "</div>" * 5000, "good")

    # -- PDF -------------------------------------------------------------------------------------
    raw("garbage.pdf", b"%PDF-1.4\n garbage that is not a pdf body", "failed", r"PDF")
    raw("not-a-pdf.pdf", b"Just some words in a text file named .pdf", "failed", r"PDF is damaged or not a PDF|PDF could not be read")
    raw("header-only.pdf", b"%PDF-1.7\n", "failed", r"PDF")
    raw("empty.pdf", b"", "failed", r"the file is empty")
    write_pdf(folder / "whole.pdf", [GOOD_TEXT])
    data = (folder / "whole.pdf").read_bytes()
    raw("truncated.pdf", data[: len(data) // 3], "failed", r"PDF|no text layer")
    _pdf_encrypted(folder / "password.pdf", user_password="secret")
    kinds.append(Kind("password.pdf", "failed", r"needs a password to open"))
    _pdf_encrypted(folder / "empty-password.pdf", user_password="")
    kinds.append(Kind("empty-password.pdf", "good"))
    _pdf_no_text(folder / "scan.pdf")
    kinds.append(Kind("scan.pdf", "failed", r"no text layer.*needs OCR"))

    # -- Word ------------------------------------------------------------------------------------
    _docx_image_only(folder / "image-only.docx")
    kinds.append(Kind("image-only.docx", "failed", r"Word file contains no text"))
    write_docx(folder / "empty.docx", "", [])
    kinds.append(Kind("empty.docx", "failed", r"Word file contains no text"))
    raw("zip-garbage.docx", b"PK\x03\x04" + b"\x00" * 200, "failed", r"Word file")
    with zipfile.ZipFile(folder / "plain-zip.docx", "w") as archive:
        archive.writestr("readme.txt", "not a word document")
    kinds.append(Kind("plain-zip.docx", "failed", r"Word file"))
    raw("text-named.docx", GOOD_TEXT.encode(), "failed", r"Word file")
    write_docx(folder / "broken-xml.docx", "Broken", [("p", GOOD_TEXT)])
    _corrupt_docx_part(folder / "broken-xml.docx")
    kinds.append(Kind("broken-xml.docx", "failed", r"Word file"))

    # -- names -------------------------------------------------------------------------------------
    long_name = "n" * 236 + ".md"
    text(long_name, f"## Long\n\n{GOOD_TEXT}\n", "good")
    text("odd name ünïcødé (1).md", f"## Odd\n\n{GOOD_TEXT}\n", "good")
    text("program.exe", "MZ", "failed", r"unsupported file type")

    # -- good ones ---------------------------------------------------------------------------------
    text("good-note.md", _md("title: Good note\nthemes: [ebcd]\nsources:\n  - url: https://example.org\n    publisher: Example"), "good")
    text("good.txt", GOOD_TEXT, "good")
    text("good.html", f"<html><head><title>Good page</title></head><body><h2>Rules</h2><p>{GOOD_TEXT}</p></body></html>", "good")
    write_docx(folder / "good.docx", "Good doc", [("h2", "Rules"), ("p", GOOD_TEXT)])
    kinds.append(Kind("good.docx", "good"))
    kinds.append(Kind("whole.pdf", "good"))
    text("vanishing.md", f"## Gone\n\n{GOOD_TEXT}\n", "failed", r"disappeared|does not exist")
    kinds[-1].vanish = True

    # -- not regular files ---------------------------------------------------------------------------
    if with_special:
        os.mkfifo(folder / "pipe.md")
        kinds.append(Kind("pipe.md", "failed", r"named pipe \(FIFO\)"))
        os.symlink("self-loop.md", folder / "self-loop.md")
        kinds.append(Kind("self-loop.md", "failed", r"symbolic link that loops"))
        os.symlink("loop-b.md", folder / "loop-a.md")
        os.symlink("loop-a.md", folder / "loop-b.md")
        kinds.append(Kind("loop-a.md", "failed", r"symbolic link that loops"))
        kinds.append(Kind("loop-b.md", "failed", r"symbolic link that loops"))
        os.symlink("nowhere.md", folder / "dangling.md")
        kinds.append(Kind("dangling.md", "failed", r"broken symbolic link"))
    return kinds


def _pdf_encrypted(path: Path, user_password: str) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    pdf.add_page()
    pdf.multi_cell(0, 6, GOOD_TEXT)
    pdf.set_encryption(owner_password="owner-secret", user_password=user_password)
    pdf.output(str(path))


def _pdf_no_text(path: Path) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.rect(20, 20, 100, 60, style="F")  # a drawing, as a scan would be: no text layer
    pdf.output(str(path))


def _docx_image_only(path: Path) -> None:
    import io

    import docx

    document = docx.Document()
    document.add_picture(io.BytesIO(_png(8, 8)))
    document.save(str(path))


def _corrupt_docx_part(path: Path) -> None:
    with zipfile.ZipFile(path) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    parts["word/document.xml"] = b"<w:document><unclosed"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
