"""The runner: claims and their markers, citation validity and support, per-turn scores, summaries, and a
real end-to-end run of a tiny suite against the shipped corpus."""

from __future__ import annotations

import math

import numpy as np
import pytest

from assistant.evaluation.runner import (
    SUPPORT_COSINE,
    SUPPORT_LEXICAL,
    SupportScorer,
    citation_scores,
    cited_sentences,
    run_cases,
    score_turn,
)
from assistant.evaluation.suites import Turn, load_suite
from tests.evaluation.eval_fakes import DOC, FILM, NOISE, TINY_SUITE, FakeEmbedder, answered, declined, passage, standard_service, summarise

# -- cited_sentences ------------------------------------------------------------------------------------


def test_cited_sentences_extractive_shape():
    answer = "Lead sentence here. [1]\n\n- First point [2]\n- Second point (Smith, 2020) [3]"
    assert cited_sentences(answer) == [("Lead sentence here.", [1]), ("First point", [2]), ("Second point (Smith, 2020)", [3])]


def test_cited_sentences_marker_cites_text_back_to_previous_marker():
    assert cited_sentences("A. B [1]. C [2][3] and D") == [("A. B", [1]), ("C", [2, 3]), ("and D", [])]


def test_cited_sentences_lone_marker_extends_previous_claim():
    assert cited_sentences("Claim one [1]\n[2]") == [("Claim one", [1, 2])]


def test_cited_sentences_numbered_list_and_blank():
    assert cited_sentences("1. Step one [1]\n\n\n2) Step two [2]") == [("Step one", [1]), ("Step two", [2])]
    assert cited_sentences("") == []


# -- support and validity --------------------------------------------------------------------------------


def test_support_thresholds_are_documented_values():
    assert (SUPPORT_LEXICAL, SUPPORT_COSINE) == (0.5, 0.5)


def test_support_verbatim_quote_ignores_markdown_links():
    scorer = SupportScorer(FakeEmbedder())
    text = "Plan early ([King's Fund](https://example.org/a)). Then **act** with care."
    check = scorer.check("Plan early (King's Fund).", "c1", text)
    assert check == {"lexical": 1.0, "cosine": 1.0, "supported": True}


def test_support_needs_both_lexical_and_cosine():
    scorer = SupportScorer(FakeEmbedder())
    # Content words: "trigger", "film", "lasts", "thirty", "minutes": 2 of 5 in the passage -> lexical 0.4.
    low = scorer.check("The trigger film lasts thirty minutes", "c1", "A trigger film shows patients. Nothing else.")
    assert low["lexical"] == pytest.approx(0.4) and low["cosine"] is None and not low["supported"]
    # Reordered words: lexical 1.0; bag-of-words cosine 4 / sqrt(4 * 5) = 0.894 ("of" is extra).
    high = scorer.check("minutes thirty film trigger", "c1", "trigger film of thirty minutes")
    assert high["lexical"] == 1.0 and high["cosine"] == pytest.approx(4 / math.sqrt(20), abs=1e-3) and high["supported"]
    # Every content word present (lexical 1.0) but lost in a long passage: cosine 2 / sqrt(2 * 10) = 0.447 < 0.5.
    diluted = scorer.check("alpha beta", "c1", "gamma delta epsilon zeta alpha theta iota kappa lambda beta")
    assert diluted["lexical"] == 1.0 and diluted["cosine"] == pytest.approx(2 / math.sqrt(20), abs=1e-3)
    assert not diluted["supported"]


def test_support_uses_closest_sentence_vector_of_the_chunk():
    embedder = FakeEmbedder()
    sentences = ["staff feedback event first", "patients see the film later"]
    index = type("Index", (), {})()
    index.sentences_by_chunk = {"c1": [0, 1]}
    index.sentence_vectors = embedder.embed_documents(sentences)
    scorer = SupportScorer(embedder, index)
    cosine = scorer.cosine("later the patients see film", "c1", "irrelevant passage text")
    assert cosine == pytest.approx(1.0)  # same bag of words as sentence 1
    # Embeddings are cached: asking again embeds nothing new.
    calls = []
    embedder.embed_documents = lambda texts: calls.append(texts) or np.zeros((len(texts), 256))
    scorer.cosine("later the patients see film", "c1", "irrelevant passage text")
    assert calls == []


def test_citation_scores_hand_computed():
    retrieved = [passage(1, "c1", FILM), passage(2, "c2", NOISE)]
    response = {
        "answer": "The interviews are edited into a trigger film. [1]\n- Unrelated claim about budgets [2]\n- Ghost [3]\n- Missing chunk [4]",
        "citations": [
            {"n": 1, "chunk_id": "c1"},
            {"n": 2, "chunk_id": "c2"},
            {"n": 4, "chunk_id": "not-retrieved"},
        ],
        "retrieved": retrieved,
    }
    scores, checks = citation_scores(response, SupportScorer(FakeEmbedder()))
    # 4 markers; [3] has no citation and [4] cites a passage not retrieved: validity 2/4.
    assert scores["citation_markers"] == 4
    assert scores["citation_validity"] == 0.5
    # Of the 2 valid markers, [1] is verbatim and [2] shares no content words: support 1/2.
    assert scores["citation_support"] == 0.5
    assert [c["valid"] for c in checks] == [True, True, False, False]
    assert "no citation" in checks[2]["problem"] and "not retrieved" in checks[3]["problem"]


def test_citation_scores_without_markers_are_vacuously_perfect():
    scores, checks = citation_scores({"answer": "No markers at all.", "citations": [], "retrieved": []}, SupportScorer(FakeEmbedder()))
    assert scores == {"citation_markers": 0, "citation_validity": 1.0, "citation_support": 1.0} and checks == []


# -- score_turn ------------------------------------------------------------------------------------------


def _turn(**kw) -> Turn:
    base = dict(
        case_id="ebcd-001",
        turn=0,
        question="q",
        theme="ebcd",
        answerable=True,
        evidence=[(DOC, "edited into a trigger film, a compilation of about 30 minutes")],
        key_points=[["30 minutes"], ["forty"]],
    )
    base.update(kw)
    return Turn(**base)


def test_score_turn_answerable_hit_at_rank_two():
    retrieved = [passage(1, "n", NOISE, "notes/glossary.md"), passage(2, "f", FILM)]
    scores, details = score_turn(_turn(), answered("q", retrieved, [1]), SupportScorer(FakeEmbedder()))
    assert scores["hit@1"] == 0.0 and scores["hit@3"] == 1.0 and scores["hit@5"] == 1.0
    assert scores["mrr"] == 0.5 and scores["first_hit_rank"] == 2
    assert scores["ndcg@5"] == pytest.approx(1 / math.log2(3))
    assert scores["keypoint_coverage"] == 0.5  # "30 minutes" yes, "forty" no
    assert scores["abstention_correct"] is True and scores["abstained"] is False
    assert scores["citation_validity"] == 1.0 and details["citations"][0]["supported"]
    assert scores["latency_ms"] == 12.0


def test_score_turn_abstaining_on_answerable_scores_zero_key_points_and_no_citations():
    scores, details = score_turn(_turn(), declined("q", [passage(1, "f", FILM)]), SupportScorer(FakeEmbedder()))
    assert scores["abstained"] and not scores["abstention_correct"]
    assert scores["hit@1"] == 1.0  # retrieval is still scored
    assert scores["keypoint_coverage"] == 0.0
    assert "citation_validity" not in scores and "citations" not in details


def test_score_turn_unanswerable_has_no_retrieval_metrics():
    turn = _turn(answerable=False, evidence=[], key_points=[])
    scores, _ = score_turn(turn, declined("q"), SupportScorer(FakeEmbedder()))
    assert scores["abstention_correct"] is True
    assert not {"hit@5", "mrr", "keypoint_coverage"} & set(scores)


# -- run_cases and summarise on the fake service --------------------------------------------------------------


def _tagged(cases):
    return [{**case, "_suite": "tiny"} for case in cases]


def test_run_cases_sends_history_and_records_refusals():
    service = standard_service()
    long_case = {"id": "adv-002", "question": "x" * 30, "repeat": 100, "theme": "adversarial", "answerable": False}
    results = run_cases(service, _tagged(TINY_SUITE + [long_case]), progress=False)
    assert [r.turn.id for r in results] == ["ebcd-001", "ebcd-001#1", "ebcd-002", "run-001", "oos-001", "adv-001", "adv-002"]
    assert service.asked[1] == ("And the stages?", ["How long is the film?"])  # the follow-up carries history
    assert service.asked[2][1] == []  # a new case starts a new conversation
    refused = results[-1]
    assert refused.response["error"] and refused.scores["abstained"] and refused.scores["abstention_correct"]


def test_summarise_hand_computed_overall_and_by_theme():
    results = run_cases(standard_service(), _tagged(TINY_SUITE), progress=False)
    summary = summarise(results)
    overall = summary["overall"]
    assert overall["turns"] == 6 and overall["answerable_turns"] == 4
    assert overall["hit@5"] == 0.75  # run-001 declined with nothing retrieved
    assert overall["mrr"] == pytest.approx(round((1 + 1 / 3 + 1 / 3 + 0) / 4, 4))
    assert overall["keypoint_coverage"] == pytest.approx(round((1 + 1 + 0.5 + 0) / 4, 4))
    # (answerable, abstained): (T,F) x3, (T,T), (F,T), (F,F) -> tp 1, fp 1, fn 1, tn 3.
    assert (overall["abstention_precision"], overall["abstention_recall"], overall["abstention_f1"]) == (0.5, 0.5, 0.5)
    assert overall["abstention_accuracy"] == pytest.approx(round(4 / 6, 4))
    assert overall["latency_p50_ms"] == 12.0
    ebcd = summary["by_theme"]["ebcd"]
    assert ebcd["turns"] == 3 and ebcd["hit@5"] == 1.0 and ebcd["mrr"] == pytest.approx(round(5 / 9, 4))
    assert "abstention_f1" not in ebcd  # nothing to abstain on and nothing abstained
    assert summary["by_theme"]["out-of-scope"]["abstention_recall"] == 1.0
    assert "hit@5" not in summary["by_theme"]["out-of-scope"]
    assert summary["by_suite"]["tiny"]["turns"] == 6


# -- end to end on the real corpus -----------------------------------------------------------------------------


@pytest.mark.slow
def test_runner_end_to_end_on_a_tiny_real_suite(corpus_service, tmp_path):
    suite = tmp_path / "tiny.yaml"
    suite.write_text(
        """
- id: ebcd-901
  question: "roughly how long should our EBCD trigger film be?"
  theme: ebcd
  answerable: true
  evidence:
    - document: notes/ebcd.md
      snippet: "a compilation of about 30 minutes"
  key_points:
    - ["30"]
  followups:
    - question: "And who watches it?"
      evidence:
        - document: notes/ebcd.md
          snippet: "The film is shown to staff so that they can see how patients experience the service"
- id: oos-901
  question: "What's the best recipe for sourdough bread?"
  theme: out-of-scope
  answerable: false
""",
        encoding="utf-8",
    )
    cases = [{**case, "_suite": "tiny"} for case in load_suite(suite)]
    results = run_cases(corpus_service, cases, progress=False)
    assert [r.turn.id for r in results] == ["ebcd-901", "ebcd-901#1", "oos-901"]
    first = results[0]
    assert first.scores["hit@5"] == 1.0 and not first.scores["abstained"]
    assert first.scores["citation_validity"] == 1.0 and first.scores["citation_support"] == 1.0
    assert first.response["retrieved"] and first.response["citations"]
    assert results[2].scores["abstained"] and results[2].scores["abstention_correct"]
    summary = summarise(results)
    assert summary["overall"]["turns"] == 3 and set(summary["by_theme"]) == {"ebcd", "out-of-scope"}
