"""Retrieval over the fixture index: fusion puts the right document first, filters restrict, coverage is measured."""

from __future__ import annotations

import pytest

from assistant.retrieval.retriever import Filters


@pytest.fixture(scope="module")
def retriever(fast_service):
    return fast_service.retriever(fast_service.index)


@pytest.mark.parametrize(
    ("question", "source"),
    [
        ("What is a trigger film?", "trigger-films.md"),
        ("Should carers be reimbursed for travel and parking?", "paying-participants.html"),
        ("How can a facilitator help quieter participants speak?", "ground-rules.txt"),
    ],
)
def test_the_document_that_answers_comes_first(retriever, question, source):
    retrieval = retriever.retrieve(question, top_k=5)
    assert retrieval.passages[0].chunk.source == source
    assert [p.rank for p in retrieval.passages] == list(range(1, len(retrieval.passages) + 1))


def test_primary_evidence_keeps_its_quota_in_the_top_five(retriever, fast_service):
    # trigger-films.md declares `evidence: primary`: it keeps places even for a question about another document
    retrieval = retriever.retrieve("Should carers be reimbursed for travel and parking?", top_k=5)
    primary = [p for p in retrieval.passages[:5] if p.chunk.source == "trigger-films.md"]
    assert len(primary) == fast_service.settings.primary_quota
    assert retrieval.passages[0].chunk.source == "paying-participants.html"


def test_coverage_is_high_on_topic_and_zero_off_topic(retriever, fast_service):
    on_topic = retriever.retrieve("What is a trigger film?").relevance
    off_topic = retriever.retrieve("Capital of France?").relevance
    assert on_topic > fast_service.settings.min_relevance > off_topic


def test_a_document_filter_returns_only_that_document(retriever):
    retrieval = retriever.retrieve("What is a trigger film?", filters=Filters(document="ground-rules.txt"))
    assert retrieval.passages and {p.chunk.source for p in retrieval.passages} == {"ground-rules.txt"}


def test_a_theme_filter_returns_only_passages_on_that_theme(retriever):
    retrieval = retriever.retrieve("How should staff be paid for meetings?", filters=Filters(theme="ebcd"))
    assert retrieval.passages and all("ebcd" in p.chunk.themes for p in retrieval.passages)


def test_markup_in_the_query_is_not_searched(retriever):
    plain = retriever.retrieve("What is a trigger film?")
    marked = retriever.retrieve("**What** is a `trigger film`?")
    assert [p.chunk.chunk_id for p in marked.passages][:1] == [p.chunk.chunk_id for p in plain.passages][:1]
