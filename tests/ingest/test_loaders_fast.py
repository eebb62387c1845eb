"""The loaders on the three fixture documents: front matter, HTML boilerplate, plain-text titles."""

from __future__ import annotations

import pytest

from assistant.ingest.loaders import LoadError, load
from tests.conftest import FIXTURE_CORPUS


def test_markdown_front_matter_gives_title_themes_and_evidence():
    document = load(FIXTURE_CORPUS / "trigger-films.md")
    assert document.title == "Trigger films in experience-based co-design"
    assert document.metadata["short_title"] == "Trigger films"
    assert document.metadata["themes"] == ["ebcd"] and document.metadata["evidence"] == "primary"
    assert [s.heading_path for s in document.sections] == [("What a trigger film is",), ("Making the film",), ("Showing the film",)]
    assert not any("---" in s.text or "licence" in s.text for s in document.sections), "front matter leaked into the text"
    assert document.warnings == []


def test_html_drops_navigation_footer_and_script_and_keeps_list_items():
    document = load(FIXTURE_CORPUS / "paying-participants.html")
    text = "\n".join(s.text for s in document.sections)
    assert document.title == "Paying people who take part"
    assert [s.heading_path for s in document.sections] == [("Why payment matters",), ("Expenses and reimbursement",)]
    assert "- Agree the hourly rate before the first meeting." in text
    for boilerplate in ("Home | Guides", "Fixture page written", "never indexed", "font-family"):
        assert boilerplate not in text


def test_plain_text_is_titled_by_its_first_line():
    document = load(FIXTURE_CORPUS / "ground-rules.txt")
    assert document.title == "Ground rules for a fair workshop"
    assert len(document.sections) == 1 and "quieter participants" in document.sections[0].text


def test_front_matter_of_the_wrong_kind_is_refused_with_the_field_named(tmp_path):
    bad = tmp_path / "bad.md"
    bad.write_text(
        (FIXTURE_CORPUS / "trigger-films.md").read_text(encoding="utf-8").replace("themes: [ebcd]", "themes: {a: 1}"), encoding="utf-8"
    )
    with pytest.raises(LoadError, match="themes"):
        load(bad)
