"""Splitting keeps section paths, pages and stable ids, links citations, and keeps reference entries whole."""

from __future__ import annotations

from assistant.ingest.loaders import LoadedDocument, Section, load
from assistant.ingest.references import parse_references
from assistant.ingest.splitter import SECTION_SEPARATOR, split_document
from tests.conftest import CORPUS, REVIEW


def _document(sections, themes=None):
    return LoadedDocument(title="Guide", sections=sections, metadata={"themes": themes} if themes else {})


def test_section_path_and_page_are_kept():
    document = _document([Section(("Running", "Roles"), "Write role descriptions for patient partners.", page=3)])
    [chunk] = split_document(document, "guide.pdf", 500, 50, [])
    assert chunk.section == "Running > Roles"
    assert chunk.page == 3
    assert chunk.source == "guide.pdf" and chunk.title == "Guide"
    assert chunk.embedding_text().startswith("Running > Roles\n")


def test_long_sections_split_with_overlap_and_stay_in_their_section():
    text = "\n\n".join(f"Paragraph {n} says something about co-design workshops and their planning." for n in range(30))
    chunks = split_document(_document([Section(("Workshops",), text)]), "w.md", 300, 60, [])
    assert len(chunks) > 5
    assert all(c.section == "Workshops" and len(c.text) <= 300 for c in chunks)
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))


def test_ids_are_stable_and_unique():
    sections = [Section(("A",), "Same words."), Section(("A",), "Same words."), Section(("B",), "Other words here.")]
    first = [c.chunk_id for c in split_document(_document(sections), "x.md", 500, 0, [])]
    second = [c.chunk_id for c in split_document(_document(sections), "x.md", 500, 0, [])]
    assert first == second
    assert len(set(first)) == 3


def test_themes_narrow_a_broad_document_and_keep_a_focused_one():
    broad = _document([Section(("Power",), "Watch the hierarchy in the room.")], themes=["power-dynamics", "recruitment", "measurement"])
    [chunk] = split_document(broad, "b.md", 500, 0, [])
    assert chunk.themes == ["power-dynamics"]
    focused = _document([Section(("Intro",), "A short note.")], themes=["ebcd"])
    [chunk] = split_document(focused, "f.md", 500, 0, [])
    assert chunk.themes == ["ebcd"]


def test_review_chunks_have_the_expected_section_path_and_linked_references():
    document = load(CORPUS / REVIEW)
    reference_text = "\n\n".join(s.text for s in document.sections if s.heading_path and s.heading_path[0] == "References")
    references = parse_references(reference_text)
    chunks = split_document(document, REVIEW, 1000, 150, references)
    power = [c for c in chunks if c.section.endswith("Pay attention to the group and power dynamics")]
    assert power, "the power dynamics recommendation should be its own section"
    assert power[0].section.split(SECTION_SEPARATOR) == [
        "Creating the conditions for genuine co-production at point of care",
        "3. Make it easy for people to contribute and extend value and respect for people's input",
        "Pay attention to the group and power dynamics",
    ]
    assert any(c.references for c in chunks), "in-text citations link to the reference list"
    reference_chunks = [c for c in chunks if c.is_reference_list]
    assert reference_chunks and all(not c.themes for c in reference_chunks)
    entries = reference_chunks[0].quotable_sentences()
    assert entries and all(len(e.split()) >= 3 for e in entries)
