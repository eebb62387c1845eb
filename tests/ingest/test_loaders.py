"""Loaders: every supported format yields titled sections with heading paths; bad files raise LoadError."""

from __future__ import annotations

import pytest

from assistant.ingest.loaders import LoadError, decode_text, load, split_front_matter
from tests.helpers import write_docx, write_pdf


def test_markdown_front_matter_and_heading_paths(tmp_path):
    path = tmp_path / "note.md"
    path.write_text(
        "---\ntitle: Running workshops\nthemes: [power-dynamics]\n---\n"
        "# Running workshops\n\nIntro text.\n\n## Power\n\nWatch the hierarchy.\n\n### Quiet voices\n\nUse round-robin.\n\n## Roles\n\nDefine roles early.\n",
        encoding="utf-8",
    )
    document = load(path)
    assert document.title == "Running workshops"
    assert document.metadata["themes"] == ["power-dynamics"]
    paths = [s.heading_path for s in document.sections]
    # The lone H1 is the title, not a section: paths start below it.
    assert paths == [(), ("Power",), ("Power", "Quiet voices"), ("Roles",)]
    assert document.sections[2].text == "Use round-robin."


def test_markdown_headings_inside_code_blocks_are_text(tmp_path):
    path = tmp_path / "code.md"
    path.write_text("## Setup\n\n```\n# not a heading\n```\n", encoding="utf-8")
    document = load(path)
    assert [s.heading_path for s in document.sections] == [("Setup",)]
    assert "# not a heading" in document.sections[0].text


def test_invalid_front_matter_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.md"
    path.write_text("---\ntitle: [unclosed\n---\nBody\n", encoding="utf-8")
    with pytest.raises(LoadError, match="front matter"):
        load(path)


def test_split_front_matter_without_any():
    assert split_front_matter("Just text") == ({}, "Just text")


def test_text_file_title_from_first_line(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("Meeting notes\n\nWe agreed to pay expenses.\n", encoding="utf-8")
    document = load(path)
    assert document.title == "Meeting notes"
    assert "pay expenses" in document.full_text()


def test_windows_1252_text_is_read_with_a_warning(tmp_path):
    path = tmp_path / "legacy.txt"
    path.write_bytes("Travel costs of £12 were reimbursed — café receipts kept.".encode("cp1252"))
    document = load(path)
    assert "£12" in document.full_text() and "café" in document.full_text()
    assert document.warnings and "Windows-1252" in document.warnings[0]


def test_utf16_with_bom_is_decoded():
    text, warnings = decode_text("Co-production".encode("utf-16"))
    assert text == "Co-production" and warnings == []


def test_binary_file_posing_as_text_is_refused(tmp_path):
    path = tmp_path / "image.txt"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    with pytest.raises(LoadError, match="binary"):
        load(path)


def test_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.md"
    path.write_bytes(b"")
    with pytest.raises(LoadError, match="empty"):
        load(path)


def test_whitespace_only_file_has_no_text(tmp_path):
    path = tmp_path / "blank.txt"
    path.write_text("   \n\n  \n", encoding="utf-8")
    with pytest.raises(LoadError, match="no text"):
        load(path)


def test_size_limit(tmp_path):
    path = tmp_path / "big.txt"
    path.write_text("word " * 1000, encoding="utf-8")
    with pytest.raises(LoadError, match="limit"):
        load(path, max_bytes=1000)


def test_unsupported_type(tmp_path):
    path = tmp_path / "sheet.xlsx"
    path.write_bytes(b"PK\x03\x04")
    with pytest.raises(LoadError, match="unsupported"):
        load(path)


def test_pdf_pages_and_outline(tmp_path):
    path = write_pdf(
        tmp_path / "guide.pdf",
        ["Recruiting patients from seldom heard groups takes time.", "Pay expenses promptly and in cash if needed."],
        outline=[("Recruitment", 1), ("Payment", 2)],
        title="Involvement guide",
    )
    document = load(path)
    assert document.title == "Involvement guide"
    assert [s.page for s in document.sections] == [1, 2]
    assert [s.heading_path for s in document.sections] == [("Recruitment",), ("Payment",)]
    assert "seldom heard" in document.sections[0].text


def test_corrupt_pdf_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.pdf"
    good = write_pdf(tmp_path / "good.pdf", ["Some text about co-design."]).read_bytes()
    path.write_bytes(good[:200] + b"\x00garbage" * 50)
    with pytest.raises(LoadError, match="PDF"):
        load(path)


def test_not_a_pdf_at_all(tmp_path):
    path = tmp_path / "fake.pdf"
    path.write_text("this is not a pdf", encoding="utf-8")
    with pytest.raises(LoadError, match="PDF"):
        load(path)


def test_docx_headings_lists_and_title(tmp_path):
    path = write_docx(
        tmp_path / "plan.docx",
        "Workshop plan",
        [("h1", "Preparation"), ("p", "Book an accessible room."), ("h2", "Invitations"), ("li", "Send letters in plain English.")],
    )
    document = load(path)
    assert document.title == "Workshop plan"
    paths = [s.heading_path for s in document.sections]
    assert ("Invitations",) in paths  # the lone H1 became part of the title level
    assert any("- Send letters in plain English." in s.text for s in document.sections)


def test_corrupt_docx_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.docx"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(LoadError, match="Word"):
        load(path)


def test_html_drops_scripts_and_keeps_structure(tmp_path):
    path = tmp_path / "page.html"
    path.write_text(
        "<html><head><title>Always Events page</title><script>alert('x')</script></head><body>"
        "<nav>Home | About</nav><h1>Always Events</h1><p>An Always Event is reliable.</p>"
        "<h2>Criteria</h2><ul><li>Important to patients</li><li>Evidence based</li></ul></body></html>",
        encoding="utf-8",
    )
    document = load(path)
    assert document.title == "Always Events page"
    text = document.full_text()
    assert "alert" not in text and "Home | About" not in text
    assert [s.heading_path for s in document.sections] == [(), ("Criteria",)]
    assert "- Important to patients" in document.sections[1].text
