"""Extractive answers on the real corpus index: format, honesty of every quote, choice of sentences, abstention."""

from __future__ import annotations

import re

import numpy as np
import pytest

from assistant.answer import LEAD_IN, NOT_COVERED, SOURCE_SEEKING, ExtractiveAnswerer
from assistant.cite import citation_problems
from assistant.retrieve import Filters, Retrieval, is_question

POINT = re.compile(r"^- (?P<text>.+) \[(?P<n>\d+)\]$")
LEAD = re.compile(r"^(?P<text>.+) \[1\]$")


def answer_lines(text: str) -> tuple[str, list[str]]:
    lead, _, rest = text.partition("\n\n")
    return lead, [line for line in rest.splitlines() if line]


def ask(service, question: str):
    return service.ask(question)


@pytest.mark.parametrize(
    "question",
    [
        "How do we stop consultants dominating co-design meetings?",
        "What is a trigger film?",
        "Why does early staff buy-in matter for co-production?",
        "Has EBCD been used in cancer services?",
    ],
)
def test_answer_is_a_cited_lead_then_cited_points_quoted_from_the_sources(corpus_service, question):
    answer = ask(corpus_service, question)
    assert not answer.abstained
    lead, points = answer_lines(answer.text)
    assert LEAD.match(lead), lead
    numbers = [1] + [int(POINT.match(p)["n"]) for p in points]
    assert numbers == list(range(1, len(answer.citations) + 1)), answer.text
    assert len(answer.citations) <= corpus_service.settings.answer_sentences
    assert citation_problems(answer.text, answer.citations, {p.chunk.chunk_id for p in answer.passages}) == []
    # never a word of its own: every line is a sentence of the passage its citation names
    quoted = [LEAD.match(lead)["text"]] + [POINT.match(p)["text"] for p in points]
    sentences = corpus_service.index.sentences
    for text, citation in zip(quoted, answer.citations):
        assert text == citation.quote
        assert (citation.chunk_id, text) in set(map(tuple, sentences))


def test_answer_never_quotes_a_question_or_a_lead_in_without_its_list(corpus_service):
    for question in ("What makes co-production successful?", "What counted as co-production for a study to get into the review?"):
        answer = ask(corpus_service, question)
        quotes = [c.quote for c in answer.citations]
        assert not any(is_question(q) for q in quotes), quotes
        for position, quote in enumerate(quotes):
            if LEAD_IN.search(quote):
                follower = answer.citations[position + 1]  # a lead-in is followed by its list, from the same passage
                assert follower.chunk_id == answer.citations[position].chunk_id


def test_reference_entries_answer_a_question_asking_for_something_to_read(corpus_service):
    question = "Where can I read the study that used EBCD in breast and lung cancer services?"
    assert SOURCE_SEEKING.search(question)
    answer = ask(corpus_service, question)
    assert any("Tsianakas" in c.quote for c in answer.citations), [c.quote for c in answer.citations]


def test_source_seeking_words():
    assert SOURCE_SEEKING.search("Is there a toolkit for running an Always Event?")
    assert SOURCE_SEEKING.search("where can we find the IHI guide")
    assert not SOURCE_SEEKING.search("How do we stop consultants dominating co-design meetings?")


@pytest.mark.parametrize(
    "question",
    ["Who won the Premier League in 2019?", "What's a good recipe for a vegetable lasagne for twelve people?", "what about it?"],
)
def test_abstains_when_the_corpus_does_not_cover_the_question(corpus_service, question):
    answer = ask(corpus_service, question)
    assert answer.abstained and not answer.citations
    assert answer.text.startswith(NOT_COVERED)
    assert "[1]" not in answer.text


def test_abstains_when_no_sentence_is_similar_enough(corpus_service):
    retrieval = corpus_service.retriever(corpus_service.index).retrieve("What is a trigger film?")
    strict = ExtractiveAnswerer(corpus_service.index, min_relevance=0.0, min_sentence_relevance=0.99, max_sentences=4)
    assert strict.answer("What is a trigger film?", retrieval).abstained
    lenient = ExtractiveAnswerer(corpus_service.index, min_relevance=0.0, min_sentence_relevance=0.3, max_sentences=4)
    assert not lenient.answer("What is a trigger film?", retrieval).abstained


def test_relevance_gate_uses_the_retrieval_relevance(corpus_service):
    retrieval = corpus_service.retriever(corpus_service.index).retrieve("What is a trigger film?")
    low = Retrieval(query=retrieval.query, passages=retrieval.passages, query_vector=retrieval.query_vector, relevance=0.1, filters=Filters())
    answerer = ExtractiveAnswerer(corpus_service.index, min_relevance=0.44, min_sentence_relevance=0.3, max_sentences=4)
    assert answerer.answer("What is a trigger film?", low).abstained
    assert not answerer.answer("What is a trigger film?", retrieval).abstained


def test_max_sentences_and_no_repeated_sentence(corpus_service):
    retrieval = corpus_service.retriever(corpus_service.index).retrieve("What do EBCD and Always Events have in common?")
    for limit in (1, 2, 6):
        answer = ExtractiveAnswerer(corpus_service.index, 0.0, 0.3, limit).answer("What do EBCD and Always Events have in common?", retrieval)
        rows = [c.quote for c in answer.citations]
        assert 1 <= len(rows) <= limit and len(set(rows)) == len(rows)
    vectors = corpus_service.index.sentence_vectors
    by_text = {text: row for row, (_, text) in enumerate(corpus_service.index.sentences)}
    quoted = [by_text[c.quote] for c in answer.citations]
    for i, a in enumerate(quoted):
        for b in quoted[i + 1 :]:
            assert float(np.dot(vectors[a], vectors[b])) <= 0.86 + 1e-6


def test_answers_are_deterministic(corpus_service):
    first = ask(corpus_service, "How should roles be defined for patient partners?")
    second = ask(corpus_service, "How should roles be defined for patient partners?")
    assert first.text == second.text and [c.chunk_id for c in first.citations] == [c.chunk_id for c in second.citations]
