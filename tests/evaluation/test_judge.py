"""Judged metrics: the Judge hook, its answerability-aware rules, and how runs without an LLM say so.

No LLM backend exists yet and none can run offline here, so ChatModelJudge is driven by langchain-core's
tiny FakeListChatModel, which replays canned replies. That is the only part of the evaluation that cannot
run for real in this environment; everything else in these tests uses real code paths.
"""

from __future__ import annotations

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from assistant.evaluation.judge import NOT_RUN, ChatModelJudge, Judge, judge_for, parse_grade, parse_yes_no
from assistant.evaluation.runner import run_cases
from assistant.evaluation.suites import Turn
from tests.evaluation.eval_fakes import FILM, NOISE, TINY_SUITE, answered, declined, passage, standard_service, summarise


def _turn(answerable=True) -> Turn:
    return Turn(case_id="ebcd-001", turn=0, question="How long is a trigger film?", theme="ebcd", answerable=answerable)


class RecordingModel(FakeListChatModel):
    """FakeListChatModel that keeps the prompts it was sent."""

    prompts: list = []

    def invoke(self, messages, *args, **kwargs):
        self.prompts.append(messages)
        return super().invoke(messages, *args, **kwargs)


def test_parsers():
    assert parse_yes_no("YES.") is True and parse_yes_no("no - not in the passages") is False
    assert parse_yes_no("maybe") is None
    assert parse_grade("3") == 1.0 and parse_grade("Score: 2 out of 3") == pytest.approx(2 / 3) and parse_grade("ten") is None


def test_chat_model_judge_scores_sentences_and_relevance():
    retrieved = [passage(1, "c1", FILM), passage(2, "c2", NOISE)]
    response = answered("q", retrieved, [0, 1])  # two cited claims
    model = RecordingModel(responses=["YES", "NO", "2"], prompts=[])
    judge = ChatModelJudge(model, name="fake")
    assert isinstance(judge, Judge)
    scores, verdicts = judge.score(_turn(), response)
    assert scores == {"judged_groundedness": 0.5, "judged_relevance": pytest.approx(2 / 3)}
    assert [s["grounded"] for s in verdicts["sentences"]] == [True, False]
    # Each claim is judged against the passage it cites, not everything retrieved.
    first_prompt = model.prompts[0][1].content
    assert FILM[:40] in first_prompt and NOISE not in first_prompt
    # The relevance prompt says a correct "not covered" is a good answer.
    assert "do not cover the question scores 3" in model.prompts[2][0].content


def test_correct_not_covered_is_scored_correct_without_asking_the_model():
    model = RecordingModel(responses=["NO"], prompts=[])
    scores, verdicts = ChatModelJudge(model).score(_turn(answerable=False), declined("q"))
    assert scores == {"judged_groundedness": 1.0, "judged_relevance": 1.0} and verdicts == {"rule": "correctly declined"}
    assert model.prompts == []
    scores, _ = ChatModelJudge(model).score(_turn(answerable=True), declined("q"))
    assert scores == {"judged_groundedness": None, "judged_relevance": 0.0}


def test_unparseable_replies_are_not_counted():
    response = answered("q", [passage(1, "c1", FILM)], [0])
    scores, _ = ChatModelJudge(FakeListChatModel(responses=["I cannot say", "no idea"])).score(_turn(), response)
    assert scores == {"judged_groundedness": None, "judged_relevance": None}


def test_judge_for_extractive_is_not_run():
    service = standard_service()
    assert judge_for(service, "extractive") == (None, NOT_RUN)
    assert judge_for(service, None) == (None, NOT_RUN)
    assert judge_for(service, "none") == (None, NOT_RUN)
    assert NOT_RUN == "judged metrics: not run (no LLM backend configured)"
    judge, status = judge_for(service, "ollama")  # the fake service has no chat_model()
    assert judge is None and "not run" in status


def test_judge_for_uses_the_service_chat_model_hook():
    service = standard_service()
    service.chat_model = lambda backend: FakeListChatModel(responses=["YES", "3"]) if backend == "local" else None
    judge, status = judge_for(service, "local")
    assert isinstance(judge, ChatModelJudge) and "run with local" in status and "not deterministic" in status


def test_judged_metrics_flow_into_the_summary():
    service = standard_service()
    judge = ChatModelJudge(FakeListChatModel(responses=["YES", "3"]), name="fake")
    results = run_cases(service, [{**TINY_SUITE[0], "_suite": "t"}], progress=False, judge=judge)
    assert results[0].scores["judged_groundedness"] == 1.0 and results[0].details["judge"]["sentences"]
    overall = summarise(results)["overall"]
    assert overall["judged_groundedness"] == 1.0 and overall["judged_relevance"] == 1.0
    assert "judged_relevance" not in summarise(run_cases(service, [{**TINY_SUITE[0], "_suite": "t"}], progress=False))["overall"]
