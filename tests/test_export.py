"""Conversation export: Markdown with every citation's quote, location and full reference, all escaped."""

from __future__ import annotations

from assistant.export import conversation_markdown, safe_url

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
    assert "<script" not in text and "<img" not in text and "<svg" not in text and "<b>" not in text
    assert "&lt;script&gt;" in text and "&lt;img src=x onerror=" in text
    assert "javascript:" not in text
    assert "page 3" in text


def test_empty_conversation_and_safe_url():
    assert "_No questions were asked._" in conversation_markdown([])
    assert safe_url("https://doi.org/10.1/x") == "https://doi.org/10.1/x"
    assert safe_url("javascript:alert(1)") == "" and safe_url("data:text/html,hi") == "" and safe_url(None) == ""


def test_written_answers_say_who_wrote_them_and_any_notice():
    written = {"question": "Q?", "answer": {"answer": "A claim [1].", "model": "qwen <b>1.5b</b>", "abstained": False, "citations": [],
                                            "notice": "Checked against the sources: 1 sentence marked ⚠"}}
    quoted = {"question": "Q2?", "answer": {"answer": "A quote [1]", "model": None, "citations": []}}
    text = conversation_markdown([written, quoted])
    assert "_Written by qwen &lt;b&gt;1.5b&lt;/b&gt;; each sentence was checked against the passage it cites._" in text
    assert "_Checked against the sources: 1 sentence marked ⚠_" in text
    assert text.count("Written by") == 1, "a quoted answer is not said to be written"
