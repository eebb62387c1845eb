"""Hygiene findings over the answer a facilitator reads, and the answers-the-question score of its lead."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.answering.cite import SupportScorer
from assistant.evaluation.answer_checks import RelevanceScorer, cited_claims, hygiene_findings, markdown_debris
from assistant.evaluation.runner import run_cases, score_turn
from assistant.evaluation.suites import Turn
from assistant.models.cross_encoder import CrossEncoderUnavailable
from tests.evaluation.eval_fakes import DOC, FILM, TINY_SUITE, FakeEmbedder, answered, passage, standard_service, summarise

GAP = "The indexed sources don't give a payment rate for this question. Here is what they do say."


def test_cited_claims_leave_out_the_assistants_own_lines():
    text = (
        f"{GAP}\n\nPayment is one of the factors that support partnership. [1]\n\n"
        "From “Paying people” in Payment note:\n- Agree the offer in advance of the first meeting. [2]\n- Raise benefits early. [3]"
    )
    assert cited_claims(text) == [
        "Payment is one of the factors that support partnership.",
        "Agree the offer in advance of the first meeting.",
        "Raise benefits early.",
    ]


def test_hygiene_flags_reference_entries_titles_back_references_and_notes_about_themselves():
    text = (
        "Bate P, Robert G (2006) Experience-based design: from redesigning the system around the patient to "
        "co-designing services. Qual Saf Health Care, 15(5): 307-310. [1]\n"
        "- Co-production & Quality Improvement: A literature review [2]\n"
        "- They aim to find out whether the service has changed for patients and staff. [3]\n"
        "- This note summarises how NHS England reimburses expenses for partners. [4]\n"
        "- Staff and patients agree the priorities for change together at a joint event. [5]"
    )
    findings = hygiene_findings("How do I measure whether co-production improved care?", text)
    kinds = sorted(f.split(":")[0] for f in findings)
    assert kinds == [
        "about the document itself",
        "reference entry",
        "title or heading",
        "unresolved back-reference",
        "unresolved back-reference",
    ]  # "They aim…", and "This note…" leans back as well
    assert any(f.startswith("reference entry: Bate P, Robert G (2006)") for f in findings)
    # Asking for something to read allows the reference entry, and nothing else changes.
    reading = sorted(f.split(":")[0] for f in hygiene_findings("Which papers should I read on experience-based design?", text))
    assert reading == ["about the document itself", "title or heading", "unresolved back-reference", "unresolved back-reference"]


@pytest.mark.parametrize(
    "text, kind",
    [
        ("See [the toolkit](https://example.org) for more detail on every stage. [1]", "link"),
        ("Evidence from narrative accounts is valued (NESTA 2013)(#) by many boards. [1]", "link to #"),
        ("Patients are **equal partners** in every part of the design work. [1]", "bold"),
        ("## Trigger films\nA film of patients' stories is shown to staff at the event. [1]", "heading"),
        ("Staff use the `touchpoints` to map where experience is good or poor. [1]", "code"),
        ("Facilitators <b>must</b> give everyone a voice at the co-design event. [1]", "html tag"),
    ],
)
def test_markdown_debris_anywhere_in_the_answer(text, kind):
    assert [f.split(":")[0] for f in markdown_debris(text)] == [f"markdown debris ({kind})"]
    assert any(f.startswith(f"markdown debris ({kind})") for f in hygiene_findings("How do we run the event?", text))


def test_a_clean_answer_has_no_findings():
    text = (
        f"{GAP}\n\nStaff and patients agree the priorities for change together at a joint event (Bate and Robert 2006). [1]\n\n"
        "From “Trigger film” in EBCD note:\n- The interviews are edited into a film of about 30 minutes. [2]\n"
        "- The film is shown to staff so that they see how patients experience care. [3]"
    )
    assert hygiene_findings("How do we run a co-design event?", text) == []
    assert markdown_debris("The nearest sections are:\n- EBCD > Trigger film\n- Glossary > Touchpoints") == []


# -- answers the question ---------------------------------------------------------------------------


class ScoringService:
    """A service whose cross-encoder says how many question words the text repeats, minus two."""

    def __init__(self):
        self.calls = []

    def relevance_scores(self, query, texts):
        self.calls.append((query, list(texts)))
        words = set(query.lower().replace("?", "").split())
        return np.array([len(words & set(t.lower().rstrip(".").split())) - 2.0 for t in texts])


def test_relevance_scores_the_first_cited_claim_against_the_question():
    service = ScoringService()
    scorer = RelevanceScorer(service)
    text = f"{GAP}\n\nThe interviews are edited into a trigger film. [1]\n- Unrelated sentence about budgets. [2]"
    assert scorer.score("how long is the trigger film", text) == pytest.approx(1.0)  # "the", "trigger", "film", minus 2
    assert service.calls == [("how long is the trigger film", ["The interviews are edited into a trigger film."])]
    assert scorer.score("anything", "The indexed sources don't cover this question.") is None  # nothing cited
    assert scorer.status == "answers-the-question: cross-encoder score of the lead claim"


def test_relevance_not_run_names_the_reason_and_stops_trying():
    class Missing:
        calls = 0

        def relevance_scores(self, query, texts):
            Missing.calls += 1
            raise CrossEncoderUnavailable("The cross-encoder is missing at /x: run `make cross-encoder`.")

    scorer = RelevanceScorer(Missing())
    assert scorer.score("q", "A claim that is cited here. [1]") is None
    assert scorer.score("q", "A claim that is cited here. [1]") is None
    assert Missing.calls == 1
    assert scorer.status == "answers-the-question: not run (The cross-encoder is missing at /x: run `make cross-encoder`.)"
    assert RelevanceScorer(object()).score("q", "Claim. [1]") is None


def test_run_cases_records_hygiene_and_relevance_per_turn_and_in_the_summary():
    service = standard_service()
    service.relevance_scores = ScoringService().relevance_scores
    results = run_cases(service, [{**c, "_suite": "tiny"} for c in TINY_SUITE], progress=False)
    first = results[0]
    assert first.hygiene_findings == [] and first.scores["hygiene_findings"] == 0
    assert first.scores["answers_question"] is not None and first.to_dict()["hygiene_findings"] == []
    assert results[4].scores["answers_question"] is None  # oos-001 was declined: nothing cited
    overall = summarise(results)["overall"]
    scored = [r.scores["answers_question"] for r in results if r.scores["answers_question"] is not None and not r.scores["declined"]]
    assert overall["answers_question_turns"] == len(scored) == 4
    assert overall["answers_question"] == pytest.approx(round(sum(scored) / 4, 3))
    assert overall["answers_question_above_0"] == pytest.approx(sum(v > 0 for v in scored) / 4)
    assert overall["hygiene_findings"] == 0 and overall["hygiene_clean"] == 1.0
    assert overall["turns_passed"] == 3 and overall["pass_rate"] == 0.5


def test_run_cases_counts_hygiene_findings_and_fails_the_turn():
    film = [
        passage(
            1,
            "c-film",
            "Robert G, Cornwell J (2015) Patients and staff as codesigners of healthcare services, BMJ 350, doi 10.1136/bmj.g7714",
        )
    ]
    service = standard_service()
    service.table = {"film": lambda q: answered(q, film, [0])}
    case = {
        "id": "ebcd-001",
        "question": "How long is the film?",
        "theme": "ebcd",
        "answerable": True,
        "evidence": [{"document": DOC, "snippet": "Patients and staff as codesigners of healthcare services"}],
        "_suite": "tiny",
    }
    (result,) = run_cases(service, [case], progress=False)
    assert result.scores["hygiene_findings"] == 1 and result.hygiene_findings[0].startswith("reference entry: Robert G, Cornwell J")
    assert result.scores["passed"] is False
    assert summarise([result])["overall"]["hygiene_clean"] == 0.0


# -- partial answers --------------------------------------------------------------------------------


def _partial(question):
    response = answered(question, [passage(1, "f", FILM)], [0])
    response["answer"] = GAP + "\n\n" + response["answer"]
    return {**response, "coverage": "partial", "lacking": ["a payment rate"]}


def test_a_partial_answer_declines_what_was_asked_but_its_key_points_count():
    scorer = SupportScorer(FakeEmbedder())
    answerable = Turn("ebcd-001", 0, "q", "ebcd", True, [(DOC, "edited into a trigger film")], [["trigger film"], ["forty"]])
    scores, details = score_turn(answerable, _partial("q"), scorer)
    assert scores["coverage"] == "partial" and scores["declined"] and not scores["abstained"]
    assert not scores["abstention_correct"]
    assert scores["keypoint_coverage"] == 0.5 and details["missing_key_points"] == [["forty"]]
    assert scores["citation_validity"] == 1.0  # its quotes are still checked
    unanswerable = Turn("oos-001", 0, "q", "out-of-scope", False)
    scores, _ = score_turn(unanswerable, _partial("q"), scorer)
    assert scores["declined"] and scores["abstention_correct"]


def test_abstention_precision_and_recall_count_partial_answers_as_declining():
    service = standard_service()
    service.table = {"rate": _partial, "film": lambda q: answered(q, [passage(1, "f", FILM)], [0])}
    cases = [
        {"id": "oos-001", "question": "What hourly rate?", "theme": "out-of-scope", "answerable": False, "_suite": "s"},
        {"id": "oos-002", "question": "Which rate in 2026?", "theme": "out-of-scope", "answerable": False, "_suite": "s"},
        {"id": "oos-003", "question": "The film in Wales?", "theme": "out-of-scope", "answerable": False, "_suite": "s"},
        {
            "id": "ebcd-001",
            "question": "the film and its rate?",
            "theme": "ebcd",
            "answerable": True,
            "_suite": "s",
            "evidence": [{"document": DOC, "snippet": "edited into a trigger film, a compilation of about 30 minutes"}],
        },
    ]
    overall = summarise(run_cases(service, cases, progress=False))["overall"]
    # (answerable, declined): (F, partial) tp, (F, partial) tp, (F, answered) fn, (T, partial) fp.
    assert (overall["abstention_precision"], overall["abstention_recall"]) == (round(2 / 3, 4), round(2 / 3, 4))
    assert overall["partial_turns"] == 3
    assert overall["keypoint_coverage"] == 1.0  # the partial answer's text is scored, and this case has no key points
