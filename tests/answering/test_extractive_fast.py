"""Answering over the fixture index through the service: quoted, cited answers, declines, refusals, filters, follow-ups."""

from __future__ import annotations

import socket

import pytest

from assistant.service import AssistantService, Evidence, Final, QuestionError
from tests.conftest import fast_settings


def test_an_answer_quotes_the_source_verbatim_with_a_citation(fast_service):
    answer = fast_service.ask("What is a trigger film?")
    assert not answer.abstained and answer.coverage == "answered"
    assert [c.n for c in answer.citations] == [1]
    citation = answer.citations[0]
    chunk = fast_service.index.chunks[fast_service.index.position[citation.chunk_id]]
    assert citation.source == "trigger-films.md" and citation.quote.startswith("A trigger film is a short compilation")
    assert " ".join(citation.quote.split()) in " ".join(chunk.text.split()), "a quote is the source's own words"
    assert citation.quote in answer.text and "[1]" in answer.text
    assert citation.section == "What a trigger film is"
    assert answer.passages and {"retrieve", "answer", "total"} <= set(answer.timings_ms)


@pytest.mark.parametrize(
    ("question", "source", "words"),
    [
        ("How can a facilitator help quieter participants speak?", "ground-rules.txt", "invite quieter participants"),
        ("How should payment affect welfare benefits?", "paying-participants.html", "welfare benefits"),
    ],
)
def test_each_kind_of_document_answers(fast_service, question, source, words):
    answer = fast_service.ask(question)
    assert answer.coverage == "answered" and answer.citations[0].source == source and words in answer.text


def test_an_off_topic_question_is_declined_with_the_nearest_sections(fast_service):
    answer = fast_service.ask("What is the capital of France?")
    assert answer.abstained and answer.coverage == "declined" and not answer.citations
    assert "don't cover" in answer.text and "Trigger films in experience-based co-design" in answer.text


def test_a_follow_up_is_searched_with_the_earlier_question(fast_service):
    answer = fast_service.ask("Who sees it first?", history=["What is a trigger film?"])
    assert "trigger film" in answer.search_query


def test_a_filter_that_hides_the_answer_says_so_and_answers_from_everything(fast_service):
    answer = fast_service.ask("What is a trigger film?", document="ground-rules.txt")
    assert answer.notice.startswith("Nothing in the document 'ground-rules.txt' covers this question")
    assert answer.citations[0].source == "trigger-films.md"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"question": "   "}, "Please type a question"),
        ({"question": "x" * 2001}, "the limit is 2,000"),
        ({"question": "What is a trigger film?", "theme": "astrology"}, "Unknown theme 'astrology'"),
        ({"question": "What is a trigger film?", "backend": "oracle"}, "Unknown answer backend 'oracle'"),
    ],
)
def test_bad_questions_are_refused_in_plain_words(fast_service, kwargs, message):
    with pytest.raises(QuestionError, match=message):
        fast_service.ask(**kwargs)


def test_the_stream_gives_the_evidence_first_and_the_final_answer_last(fast_service):
    events = list(fast_service.ask_stream("What is a trigger film?"))
    assert [type(e) for e in events] == [Evidence, Final]
    assert events[-1].answer.text == events[0].answer.text


def test_an_unreachable_model_still_gets_the_quoted_answer(fast_data_dir, fast_embedder):
    with socket.socket() as probe:  # a port nothing listens on: the connection is refused at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = fast_settings(fast_data_dir, backend="ollama", ollama_url=f"http://127.0.0.1:{port}", llm_timeout=10)
    answer = AssistantService(settings, embedder=fast_embedder).ask("What is a trigger film?")
    assert answer.citations and answer.citations[0].source == "trigger-films.md"
    assert answer.fallback and answer.model is None
