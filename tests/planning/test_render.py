"""Rendering session plans: Markdown, a DOCX that python-docx opens, HTML with every document string escaped, JSON."""

from __future__ import annotations

import dataclasses
import io
import json
import re

import docx
import pytest
from docx.opc.constants import RELATIONSHIP_TYPE
from docx.oxml.ns import qn
from docx.shared import Mm

from assistant.models.cross_encoder import resolve_model_dir
from assistant.planning.render import HEADINGS, filename, render, safe_url
from assistant.planning.session import PlanError, ReferenceEntry, build_plan
from assistant.service import AssistantService
from assistant.settings import Settings
from tests.conftest import make_settings

POWER = "power dynamics in co-design workshops"
SCRIPT = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def plan(corpus_data_dir):
    service = AssistantService(make_settings(corpus_data_dir, cross_encoder_path=str(resolve_model_dir(Settings()))))
    plan = build_plan(service, POWER, "ward managers and patient partners", 90)
    assert plan.relevance_method == "cross-encoder", "run `make cross-encoder`"
    return plan


@pytest.fixture(scope="module")
def hostile_plan(tmp_path_factory):
    """A plan over a tiny index whose only document carries a script tag in its title, headings and text."""
    root = tmp_path_factory.mktemp("hostile")
    corpus = root / "corpus"
    (corpus / "notes").mkdir(parents=True)
    (corpus / "notes" / "meetings.md").write_text(
        f"""---
title: "Power in ward meetings {SCRIPT}"
themes: [power-dynamics]
source_url: "javascript:alert(1)"
---

## Who speaks in ward meetings {SCRIPT}

Power dynamics in ward meetings decide who speaks: senior staff often dominate the discussion while patient partners stay quiet {SCRIPT}.

Facilitators can reduce power imbalances in ward meetings by inviting patient partners to speak first and by agreeing a plain-language rule.

## Sharing power in meetings

Sharing power in ward meetings means patient partners help set the agenda, and their suggestions are written down in their own words {SCRIPT}.
""",
        encoding="utf-8",
    )
    service = AssistantService(Settings(data_dir=root / "data", corpus_dir=corpus))
    report = service.ingest()
    assert not report.failures, report.failures
    return build_plan(service, f"power in ward meetings {SCRIPT}", f"ward managers {SCRIPT}", 60)


# -- Markdown -----------------------------------------------------------------------------------------


def test_markdown_has_every_section_and_the_evidence(plan):
    text = render(plan, "md")
    assert text.startswith(f"# Session plan: {POWER}\n")
    for heading in HEADINGS:
        assert heading in text, heading
    for message in plan.key_messages:
        assert message.text in text
    assert "| **90** | **Total** |" in text
    assert "0:00–" in text
    assert "https://www.england.nhs.uk/" in text


def test_html_has_the_role_cards_and_observer_sheet(plan):
    page = render(plan, "html")
    assert page.count('class="card"') == len(plan.activity.role_cards)
    sheet = page.split('<table class="sheet">')[1].split("</table>")[0]
    assert sheet.count("<td></td>") == 2 * len(plan.activity.observer_sheet.rows)


def test_markdown_of_a_thin_plan_says_so(corpus_service):
    text = render(build_plan(corpus_service, "knitting techniques", None, 30), "md")
    assert "**Evidence is thin.**" in text and "Nearest sections" in text and "No key messages" in text


# -- DOCX ---------------------------------------------------------------------------------------------


def test_docx_opens_with_python_docx_and_has_the_headings(plan):
    data = render(plan, "docx")
    assert isinstance(data, bytes)
    document = docx.Document(io.BytesIO(data))
    headings = [p.text for p in document.paragraphs if p.style.name.startswith("Heading") or p.style.name == "Title"]
    assert headings[0] == f"Session plan: {POWER}"
    for heading in (
        "Learning objectives",
        "Agenda",
        "Key messages",
        "What staff often assume / what the evidence says",
        "Discussion questions",
        "References",
    ):
        assert heading in headings, heading
    assert any(h.startswith("Activity: Role play") for h in headings)
    assert any(h.startswith("Handout:") for h in headings)
    agenda = document.tables[0]
    assert [c.text for c in agenda.rows[0].cells] == ["Time", "Minutes", "Item"]
    assert sum(int(row.cells[1].text) for row in agenda.rows[1:-1]) == 90
    body = "\n".join(p.text for p in document.paragraphs)
    assert plan.key_messages[0].text in body


def _docx(plan):
    return docx.Document(io.BytesIO(render(plan, "docx")))


def test_docx_is_a4(plan):
    for section in _docx(plan).sections:
        assert abs(section.page_width - Mm(210)) < Mm(1) and abs(section.page_height - Mm(297)) < Mm(1)


def test_docx_links_are_real_hyperlinks(plan):
    document = _docx(plan)
    targets = {rel.rId: rel.target_ref for rel in document.part.rels.values() if rel.reltype == RELATIONSHIP_TYPE.HYPERLINK}
    assert any(t.startswith("https://www.england.nhs.uk/") for t in targets.values())
    links = document.element.body.findall(".//" + qn("w:hyperlink"))
    assert links and all(link.get(qn("r:id")) in targets for link in links)
    cited = {url for r in plan.references if (url := safe_url(r.url))}
    assert cited <= set(targets.values())  # every reference with a public address can be clicked
    assert not any(t.startswith("javascript:") for t in targets.values())


def test_docx_lists_are_word_lists_that_restart(plan):
    document = _docx(plan)
    styles = {p.style.name for p in document.paragraphs}
    assert {"List Bullet", "List Number"} <= styles
    assert not any(p.text.startswith(("- ", "1. ", "2. ")) for p in document.paragraphs)
    objectives = [p for p in document.paragraphs if p.text in plan.objectives]
    assert len(objectives) == len(plan.objectives) and all(p.style.name == "List Number" for p in objectives)
    steps = [p for p in document.paragraphs if p.text in plan.activity.steps]
    assert steps and all(p.style.name == "List Number" for p in steps)

    def num_id(paragraph):
        found = paragraph._p.find(qn("w:pPr") + "/" + qn("w:numPr") + "/" + qn("w:numId"))
        return found.get(qn("w:val")) if found is not None else None

    # Each numbered list has its own numbering instance that starts at 1, so the steps do not continue the objectives.
    assert len({num_id(p) for p in objectives}) == 1 and num_id(objectives[0]) != num_id(steps[0])
    numbering = document.part.numbering_part.element
    instance = next(n for n in numbering.findall(qn("w:num")) if n.get(qn("w:numId")) == num_id(steps[0]))
    assert instance.find(".//" + qn("w:startOverride")).get(qn("w:val")) == "1"


def test_docx_has_printable_role_cards_and_observer_sheet(plan):
    document = _docx(plan)
    headings = [p.text for p in document.paragraphs if p.style.name.startswith("Heading")]
    assert "Role cards" in headings and plan.activity.observer_sheet.title in headings
    cells = {c.text for t in document.tables for row in t.rows for c in row.cells}
    for card in plan.activity.role_cards:
        assert any(card.role in c and card.private_brief in c for c in cells), card.role
    sheet = document.tables[-1]
    assert [c.text for c in sheet.rows[0].cells] == ["What to watch for", *plan.activity.observer_sheet.columns]
    assert [row.cells[0].text for row in sheet.rows[1:]] == plan.activity.observer_sheet.rows


def test_handout_names_public_addresses_in_every_format(plan):
    assert plan.handout.read_more and all(safe_url(r.url) for r in plan.handout.read_more)
    document = _docx(plan)
    body = [p.text for p in document.paragraphs]
    handout = body[next(i for i, t in enumerate(body) if t.startswith("Handout:")) :]
    handout = handout[: handout.index("References")]
    assert not any("library" in t.lower() for t in handout)
    for entry in plan.handout.read_more:
        assert any(entry.label in t and safe_url(entry.url) in t for t in handout), entry


# -- HTML ---------------------------------------------------------------------------------------------


def test_html_is_self_contained(plan):
    page = render(plan, "html")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<style>" in page and "<script" not in page and "<link" not in page and 'src="' not in page
    for heading in HEADINGS:
        assert f"{heading}</h2>" in page or f"<h2>{heading}" in page, heading


def test_html_escapes_all_document_text(hostile_plan):
    dumped = json.dumps(hostile_plan.to_dict(), ensure_ascii=False)
    assert "alert(1)" in dumped  # the hostile text did reach the plan: the check below is not vacuous
    assert any(SCRIPT in m.text or SCRIPT in m.citations[0].title for m in hostile_plan.key_messages)
    page = render(hostile_plan, "html")
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "javascript:" not in page


def test_markdown_escapes_document_text_too(hostile_plan):
    text = render(hostile_plan, "md")
    assert not re.search(r"(?<!\\)<(script|img|svg)", text, re.I), "every tag is backslash-escaped"
    assert "\\<script>alert(1)\\</script>" in text
    assert "&lt;" not in text, "no HTML entities in Markdown (the conversation export's rule)"
    assert "javascript:" not in text


def test_docx_keeps_hostile_text_as_plain_text(hostile_plan):
    document = docx.Document(io.BytesIO(render(hostile_plan, "docx")))
    body = "\n".join(p.text for p in document.paragraphs)
    assert SCRIPT in body  # Word shows it as text; nothing runs
    assert "javascript:" not in body
    targets = [rel.target_ref for rel in document.part.rels.values() if rel.reltype == RELATIONSHIP_TYPE.HYPERLINK]
    assert not any("javascript:" in t for t in targets)


def test_only_web_links_are_written(plan):
    evil = dataclasses.replace(plan, references=[ReferenceEntry("study", "Evil", "Evil study", "javascript:alert(1)"), *plan.references])
    for fmt in ("md", "html"):
        assert "javascript:" not in render(evil, fmt)
    assert safe_url("https://example.org/a") == "https://example.org/a"
    assert safe_url("javascript:alert(1)") == "" and safe_url('https://x.org/"onmouseover=') == ""


# -- JSON, formats and names --------------------------------------------------------------------------


def test_json_round_trips_the_plan(plan):
    data = json.loads(render(plan, "json"))
    assert data == json.loads(json.dumps(plan.to_dict()))
    assert data["topic"] == POWER and data["minutes"] == 90
    assert [item["minutes"] for item in data["agenda"]] == [item.minutes for item in plan.agenda]
    assert data["key_messages"][0]["citations"][0]["chunk_id"] == plan.key_messages[0].citations[0].chunk_id
    assert len(data["handout"]["questions"]) == 3


def test_unknown_format_is_a_plan_error(plan):
    with pytest.raises(PlanError, match="Unknown format"):
        render(plan, "pdf")


def test_download_name(plan):
    assert filename(plan, "docx") == "session-plan-power-dynamics-in-co-design-workshops-90min.docx"
