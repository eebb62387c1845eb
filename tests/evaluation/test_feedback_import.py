"""Feedback stored by the UI's FeedbackStore becomes candidate cases that load as a valid suite."""

from __future__ import annotations

import json

from assistant.evaluation.feedback_import import candidate_case, guess_theme, import_feedback, snippet_of
from assistant.evaluation.suites import load_suite
from assistant.feedback import FeedbackStore

CITATION = {
    "n": 1,
    "chunk_id": "c1",
    "source": "review/co-production-and-quality-improvement-2020.md",
    "quote": "Pay attention to the group and power dynamics so that everyone feels able to contribute to the work.",
}
RETRIEVED = [{"chunk_id": "c1", "themes": ["glossary", "power-dynamics"], "source": CITATION["source"], "text": "..."}]


def test_what_the_store_writes_imports_as_a_valid_suite(tmp_path):
    store = FeedbackStore(tmp_path / "feedback.sqlite3")
    store.add(-1, "How do we stop clinicians dominating?", "Answer [1]", [CITATION], RETRIEVED, "extractive", ["Who runs it?"], "too vague")
    store.add(1, "Good one?", "Answer [1]", [CITATION], [], "extractive")
    store.add(-1, "What is the capital of France?", "The indexed sources don't cover this question", [], [], "extractive")
    report = import_feedback(store.path, tmp_path / "evals", out=tmp_path / "cases.yaml")
    assert (report.read, report.written) == (2, 2)  # thumbs down only
    first, second = load_suite(report.path)
    assert [first["id"], second["id"]] == ["feedback-001", "feedback-002"]
    assert first["theme"] == "power-dynamics"  # the cited passage's topic theme (glossary is not one)
    assert first["answerable"] is True
    assert first["evidence"] == [{"document": CITATION["source"], "snippet": snippet_of(CITATION["quote"])}]
    assert len(first["evidence"][0]["snippet"].split()) == 12
    assert "too vague" in first["note"] and "thumbs down" in first["note"] and "Who runs it?" in first["note"]
    assert second["answerable"] is False and "evidence" not in second and "cited nothing" in second["note"]

    everything = import_feedback(store.path, tmp_path / "evals", out=tmp_path / "all.yaml", include_all=True)
    assert [c["question"] for c in load_suite(everything.path)][1] == "Good one?"


def test_candidate_case_deduplicates_evidence_and_defaults_the_theme():
    row = {"id": 7, "rating": -1, "question": "q", "citations_json": json.dumps([CITATION, dict(CITATION, n=2)]), "retrieved_json": "[]"}
    case = candidate_case(row, "feedback-007")
    assert len(case["evidence"]) == 1 and case["id"] == "feedback-007"
    assert case["theme"] == "running-co-production"  # no retrieved themes: the default topic theme
    assert guess_theme([CITATION], [{"chunk_id": "c1", "themes": ["ebcd", "running-co-production"]}]) == "ebcd"  # ties: the specific one
