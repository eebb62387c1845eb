"""Conversation export: Markdown and Word with every citation's quote, location and full reference, all inert."""

from __future__ import annotations

import io
import re

import docx

from assistant.faces.export import conversation_docx, conversation_markdown, facilitator_notice, md, safe_url

HOSTILE = {
    "question": "What about <script>alert(1)</script>?",
    "answer": {
        "answer": 'Use <img src=x onerror="alert(2)"> carefully [1]',
        "citations": [
            {
                "n": 1,
                "chunk_id": "x",
                "source": "uploads/evil.md",
                "title": "Evil <b>doc</b>",
                "section": "Part > <i>Sub</i>",
                "quote": 'Use <img src=x onerror="alert(2)"> carefully',
                "page": 3,
                "reference": {"key": "k", "text": "Smith (2020) <svg onload=alert(3)>", "url": "javascript:alert(4)", "doi": None},
                "references": [{"key": "k", "text": "Smith (2020) <svg onload=alert(3)>", "url": "javascript:alert(4)", "doi": None}],
                "source_url": "javascript:alert(5)",
            }
        ],
    },
}


def test_real_conversation_exports_with_citations_and_references(corpus_service):
    first = corpus_service.ask("How can a facilitator stop clinicians dominating a co-design workshop?")
    second = corpus_service.ask("What does the review say about involving patients early?")
    turns = [
        {"question": first.question, "answer": first.to_dict()},
        {"question": second.question, "answer": second.to_dict(), "theme": "running-co-production"},
    ]
    text = conversation_markdown(turns, exported_at="2026-01-01 10:00")
    assert text.startswith("# Conversation with the co-production assistant")
    assert "## 1. How can a facilitator stop clinicians dominating a co-design workshop?" in text
    assert "## 2. What does the review say about involving patients early?" in text
    assert "_Searched only: theme Running co-production._" in text
    for answer in (first, second):
        for c in answer.citations:
            assert f"**[{c.n}] " in text
            assert c.source in text
        refs = [r for c in answer.citations for r in c.references]
        for ref in refs:
            assert (ref.get("url") or "") in text
    if any(c.references for c in first.citations + second.citations):
        assert "## References" in text
    assert "## Documents cited" in text


def test_export_escapes_document_text_and_drops_unsafe_links():
    text = conversation_markdown([HOSTILE])
    assert not re.search(r"(?<!\\)<(script|img|svg|b>|i>)", text), "every tag is backslash-escaped"
    assert "\\<script>alert(1)\\</script>" in text and '\\<img src=x onerror="alert(2)">' in text
    assert "&lt;" not in text and "&gt;" not in text and "&amp;" not in text, "no HTML entities in Markdown"
    assert "javascript:" not in text
    assert "page 3" in text and "Part > \\<i>Sub\\</i>" in text


def test_markdown_escape_keeps_text_as_written():
    assert md("a > b & c") == "a > b & c"
    assert md("<b>") == "\\<b>" and md("&amp;") == "\\&amp;" and md("C:\\x") == "C:\\\\x"


def test_word_export_is_a4_with_lists_links_and_inert_text():
    turns = [
        HOSTILE,
        {
            "question": "Q2?",
            "answer": {
                "answer": "- First point [1]\n- Second point [2]",
                "citations": [
                    {
                        "n": 1,
                        "source": "notes/x.md",
                        "title": "X",
                        "section": "S",
                        "quote": "First point.",
                        "references": [
                            {
                                "key": "bombard-2018",
                                "authors": ["Bombard"],
                                "year": "2018",
                                "text": "Bombard Y (2018) Engaging patients.",
                                "url": "https://doi.org/10.1136/x",
                            }
                        ],
                    },
                    {
                        "n": 2,
                        "source": "notes/x.md",
                        "title": "X",
                        "section": "S",
                        "quote": "Second point.",
                        "references": [
                            {
                                "key": "https://www.kingsfund.org.uk/y",
                                "authors": [],
                                "text": "King's Fund",
                                "url": "https://www.kingsfund.org.uk/y",
                            }
                        ],
                    },
                ],
            },
        },
    ]
    document = docx.Document(io.BytesIO(conversation_docx(turns, exported_at="2026-01-01 10:00")))
    section = document.sections[0]
    assert (round(section.page_width.mm), round(section.page_height.mm)) == (210, 297)
    paragraphs = document.paragraphs
    text = "\n".join(p.text for p in paragraphs)
    assert 'Use <img src=x onerror="alert(2)"> carefully [1]' in text, "Word shows document text as written"
    bullets = [p.text for p in paragraphs if p.style.name == "List Bullet"]
    assert bullets.index("First point [1]") + 1 == bullets.index("Second point [2]"), "answer lists are Word lists"
    assert "Primary study: Bombard Y (2018) Engaging patients." in text and "Source: King's Fund" in text
    links = sorted(r.target_ref for r in document.part.rels.values() if r.reltype.endswith("/hyperlink"))
    assert links == ["https://doi.org/10.1136/x", "https://www.kingsfund.org.uk/y"], "javascript: links are dropped"


def test_facilitator_notice_is_plain():
    assert facilitator_notice({"fallback": "unreachable", "notice": "server down. Is it running?."}).endswith("About tab.")
    assert facilitator_notice({"notice": "Is it running?. Then"}) == "Is it running? Then"
    assert facilitator_notice({}) == ""


def test_empty_conversation_and_safe_url():
    assert "_No questions were asked._" in conversation_markdown([])
    assert safe_url("https://doi.org/10.1/x") == "https://doi.org/10.1/x"
    assert safe_url("javascript:alert(1)") == "" and safe_url("data:text/html,hi") == "" and safe_url(None) == ""


def test_written_answers_say_who_wrote_them_and_any_notice():
    written = {
        "question": "Q?",
        "answer": {
            "answer": "A claim [1].",
            "model": "qwen <b>1.5b</b>",
            "abstained": False,
            "citations": [],
            "notice": "Checked against the sources: 1 sentence marked ⚠",
        },
    }
    quoted = {"question": "Q2?", "answer": {"answer": "A quote [1]", "model": None, "citations": []}}
    text = conversation_markdown([written, quoted])
    from assistant.answering.cite import WRITTEN_BY

    assert "_" + WRITTEN_BY.format(model="qwen \\<b>1.5b\\</b>") + "_" in text
    assert "_Checked against the sources: 1 sentence marked ⚠_" in text
    assert text.count("Written by") == 1, "a quoted answer is not said to be written"
