"""Hand-computed checks of the evaluation metrics."""

import math

import pytest

from assistant.evaluation.metrics import (
    MIN_RUN_SHARE,
    abstention_scores,
    context_budget_hit,
    evidence_matches,
    first_hit_rank,
    hit_at_k,
    keypoint_coverage,
    mean,
    ndcg_at_k,
    normalise,
    percentile,
    recall_at_k,
    reciprocal_rank,
)

DOC = "review/co-production-and-quality-improvement-2020.md"
OTHER = "notes/ebcd.md"

SNIPPET_A = "Consider formal facilitation of the co-production process"  # 7 tokens after normalising
SNIPPET_B = "Pay attention to the group and power dynamics"  # 8 tokens

PASSAGE_A = "Make it easy for people to contribute.\n\n- Consider formal facilitation of the co-production process"
PASSAGE_B = "- Pay attention to the group and power dynamics\n- Invest in participants"
NOISE = "Co-production values different forms of knowledge and evidence."


# --- normalise -----------------------------------------------------------------


def test_normalise_lowercases_and_strips_punctuation():
    assert normalise("  Always Events®:  the 'Always'—rule! ") == "always events the always rule"


def test_normalise_nfkc_folds_compatibility_characters():
    # Full-width letters and the "ﬁ" ligature fold to plain ASCII under NFKC.
    assert normalise("ＥＢＣＤ ﬁnds") == "ebcd finds"


def test_normalise_curly_quotes_and_dashes_become_spaces():
    assert normalise("‘Existing national targets’ – co‑production") == "existing national targets co production"


def test_normalise_empty_and_symbols_only():
    assert normalise("") == ""
    assert normalise("*** — ...") == ""


def test_normalise_keeps_digits_and_non_latin_letters():
    assert normalise("64 papers, 2008-2020; café") == "64 papers 2008 2020 café"


# --- evidence_matches -------------------------------------------------------------


def test_evidence_matches_exact_substring_ignoring_case_and_punctuation():
    assert evidence_matches("CONSIDER formal facilitation of the co production process!", PASSAGE_A)


def test_evidence_matches_rejects_unrelated_passage():
    assert not evidence_matches(SNIPPET_A, NOISE)


def test_evidence_matches_snippet_split_by_chunk_boundary():
    snippet = "one two three four five six seven eight nine ten"
    chunk_1 = "alpha beta one two three"  # holds 3 of 10 tokens
    chunk_2 = "four five six seven eight nine ten omega"  # holds 7 of 10 tokens
    assert not evidence_matches(snippet, chunk_1)
    assert evidence_matches(snippet, chunk_2)


def test_evidence_matches_threshold_is_exactly_sixty_percent():
    assert MIN_RUN_SHARE == 0.6
    snippet = "a1 a2 a3 a4 a5"
    assert evidence_matches(snippet, "x a1 a2 a3 y")  # 3/5 = 60%: enough
    assert not evidence_matches(snippet, "x a1 a2 y a4 a5")  # longest run 2/5 = 40%


def test_evidence_matches_needs_contiguous_run_not_scattered_tokens():
    snippet = "the group and power dynamics"
    scattered = "dynamics power and group the"  # every token present, no run longer than 1
    assert not evidence_matches(snippet, scattered)


def test_evidence_matches_empty_snippet_never_matches():
    assert not evidence_matches("", PASSAGE_A)
    assert not evidence_matches("—", PASSAGE_A)
    assert not evidence_matches(SNIPPET_A, "")


# --- first_hit_rank / hit_at_k / reciprocal_rank ---------------------------------


def test_first_hit_rank_requires_same_document():
    evidence = [(DOC, SNIPPET_A)]
    ranked = [(OTHER, PASSAGE_A), (DOC, NOISE), (DOC, PASSAGE_A)]
    assert first_hit_rank(evidence, ranked) == 3


def test_first_hit_rank_any_evidence_item_counts():
    evidence = [(DOC, SNIPPET_A), (DOC, SNIPPET_B)]
    ranked = [(DOC, NOISE), (DOC, PASSAGE_B), (DOC, PASSAGE_A)]
    assert first_hit_rank(evidence, ranked) == 2


def test_first_hit_rank_empty_ranked_list():
    assert first_hit_rank([(DOC, SNIPPET_A)], []) is None


def test_hit_at_k():
    evidence = [(DOC, SNIPPET_A)]
    ranked = [(DOC, NOISE), (DOC, NOISE), (DOC, PASSAGE_A)]
    assert not hit_at_k(evidence, ranked, 2)
    assert hit_at_k(evidence, ranked, 3)
    assert hit_at_k(evidence, ranked, 10)  # k beyond the list is fine
    assert not hit_at_k(evidence, [], 5)


def test_reciprocal_rank():
    evidence = [(DOC, SNIPPET_A)]
    assert reciprocal_rank(evidence, [(DOC, PASSAGE_A)]) == 1.0
    assert reciprocal_rank(evidence, [(DOC, NOISE), (DOC, NOISE), (DOC, NOISE), (DOC, PASSAGE_A)]) == 0.25
    assert reciprocal_rank(evidence, [(DOC, NOISE)]) == 0.0
    assert reciprocal_rank(evidence, []) == 0.0


def test_retrieval_metrics_reject_empty_evidence_and_bad_k():
    ranked = [(DOC, PASSAGE_A)]
    for call in (
        lambda: hit_at_k([], ranked, 3),
        lambda: recall_at_k([], ranked, 3),
        lambda: reciprocal_rank([], ranked),
        lambda: ndcg_at_k([], ranked, 3),
        lambda: context_budget_hit([], ranked, 100),
        lambda: hit_at_k([(DOC, SNIPPET_A)], ranked, 0),
    ):
        with pytest.raises(ValueError):
            call()


# --- recall_at_k -----------------------------------------------------------------------


def test_recall_at_k_share_of_items_found():
    evidence = [(DOC, SNIPPET_A), (DOC, SNIPPET_B), (DOC, "a snippet that is nowhere in any passage")]
    ranked = [(DOC, PASSAGE_B), (DOC, NOISE), (DOC, PASSAGE_A)]
    assert recall_at_k(evidence, ranked, 1) == pytest.approx(1 / 3)
    assert recall_at_k(evidence, ranked, 2) == pytest.approx(1 / 3)
    assert recall_at_k(evidence, ranked, 3) == pytest.approx(2 / 3)
    assert recall_at_k(evidence, [], 3) == 0.0


def test_recall_at_k_duplicates_do_not_inflate():
    evidence = [(DOC, SNIPPET_A), (DOC, SNIPPET_B)]
    ranked = [(DOC, PASSAGE_A), (DOC, PASSAGE_A), (DOC, PASSAGE_A)]
    assert recall_at_k(evidence, ranked, 3) == 0.5


def test_recall_one_passage_can_hold_several_items():
    evidence = [(DOC, SNIPPET_A), (DOC, SNIPPET_B)]
    ranked = [(DOC, PASSAGE_A + "\n" + PASSAGE_B)]
    assert recall_at_k(evidence, ranked, 1) == 1.0


# --- ndcg_at_k ----------------------------------------------------------------------


def test_ndcg_single_item_found_at_rank_two():
    evidence = [(DOC, SNIPPET_A)]
    ranked = [(DOC, NOISE), (DOC, PASSAGE_A), (DOC, NOISE)]
    # DCG = 1/log2(3); ideal DCG = 1/log2(2) = 1.
    assert ndcg_at_k(evidence, ranked, 3) == pytest.approx(1 / math.log2(3))
    assert ndcg_at_k(evidence, ranked, 1) == 0.0


def test_ndcg_two_items_ideal_uses_min_k_and_evidence():
    evidence = [(DOC, SNIPPET_A), (DOC, SNIPPET_B)]
    ranked = [(DOC, PASSAGE_A), (DOC, NOISE), (DOC, PASSAGE_B)]
    dcg = 1 + 1 / math.log2(4)
    ideal = 1 + 1 / math.log2(3)
    assert ndcg_at_k(evidence, ranked, 3) == pytest.approx(dcg / ideal)
    # k = 1: ideal assumes min(1, 2) = 1 relevant passage, and rank 1 is relevant.
    assert ndcg_at_k(evidence, ranked, 1) == 1.0


def test_ndcg_duplicate_passages_earn_no_extra_gain():
    evidence = [(DOC, SNIPPET_A)]
    ranked = [(DOC, PASSAGE_A), (DOC, PASSAGE_A), (DOC, PASSAGE_A)]
    assert ndcg_at_k(evidence, ranked, 3) == 1.0


def test_ndcg_perfect_and_empty():
    evidence = [(DOC, SNIPPET_A), (DOC, SNIPPET_B)]
    assert ndcg_at_k(evidence, [(DOC, PASSAGE_B), (DOC, PASSAGE_A)], 5) == 1.0
    assert ndcg_at_k(evidence, [], 5) == 0.0


def test_ndcg_evidence_split_across_boundary_credits_majority_chunk():
    snippet = "one two three four five six seven eight nine ten"
    evidence = [(DOC, snippet)]
    ranked = [(DOC, "alpha one two three"), (DOC, "four five six seven eight nine ten omega")]
    assert ndcg_at_k(evidence, ranked, 2) == pytest.approx(1 / math.log2(3))
    assert first_hit_rank(evidence, ranked) == 2


# --- context_budget_hit -----------------------------------------------------------------


def test_context_budget_hit_within_and_beyond_budget():
    evidence = [(DOC, SNIPPET_A)]
    filler = "x" * 100
    ranked = [(DOC, filler), (DOC, PASSAGE_A)]
    needed = len(filler) + len(PASSAGE_A)
    assert context_budget_hit(evidence, ranked, needed)
    assert not context_budget_hit(evidence, ranked, len(filler))
    assert not context_budget_hit(evidence, ranked, 0)
    assert not context_budget_hit(evidence, [], 10_000)


def test_context_budget_hit_big_chunk_cannot_game_budget():
    evidence = [(DOC, SNIPPET_A)]
    big_chunk = "padding " * 500 + PASSAGE_A  # the snippet sits past character 4000
    assert not context_budget_hit(evidence, [(DOC, big_chunk)], 1000)
    assert context_budget_hit(evidence, [(DOC, big_chunk)], len(big_chunk))


def test_context_budget_hit_partial_snippet_at_the_cut():
    evidence = [(DOC, "one two three four five six seven eight nine ten")]
    text = "one two three four five six seven eight nine ten"
    # The first 34 characters hold "one ... seven" (7 of 10 tokens): enough.
    assert context_budget_hit(evidence, [(DOC, text)], len("one two three four five six seven"))
    # The first 13 characters hold 3 of 10 tokens: not enough.
    assert not context_budget_hit(evidence, [(DOC, text)], len("one two three"))


def test_context_budget_hit_wrong_document_does_not_count():
    assert not context_budget_hit([(DOC, SNIPPET_A)], [(OTHER, PASSAGE_A)], 10_000)


# --- keypoint_coverage -------------------------------------------------------------------


def test_keypoint_coverage_alternatives_and_stems():
    answer = "Use formal Facilitation and pay attention to hierarchical power dynamics."
    groups = [["hierarchy", "hierarchical"], ["facilitat"], ["payment", "budget"]]
    assert keypoint_coverage(answer, groups) == pytest.approx(2 / 3)


def test_keypoint_coverage_normalises_punctuation_both_sides():
    assert keypoint_coverage("Co-production works best when...", [["co production"]]) == 1.0
    assert keypoint_coverage("coproduction", [["co-production"]]) == 0.0


def test_keypoint_coverage_edge_cases():
    assert keypoint_coverage("anything", []) == 1.0
    assert keypoint_coverage("", [["x"]]) == 0.0
    assert keypoint_coverage("some answer", [[""]]) == 0.0  # empty alternatives never match


# --- abstention_scores ---------------------------------------------------------------------


def test_abstention_scores_hand_computed():
    pairs = [
        (False, True),  # tp
        (False, True),  # tp
        (False, False),  # fn
        (True, True),  # fp
        (True, False),  # tn
        (True, False),  # tn
    ]
    scores = abstention_scores(pairs)
    assert (scores["tp"], scores["fp"], scores["fn"], scores["tn"], scores["n"]) == (2, 1, 1, 2, 6)
    assert scores["precision"] == pytest.approx(2 / 3)
    assert scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 / 3)


def test_abstention_never_abstaining_scores_zero_f1():
    scores = abstention_scores([(False, False), (True, False)])
    assert scores["precision"] == 1.0  # nothing predicted
    assert scores["recall"] == 0.0
    assert scores["f1"] == 0.0


def test_abstention_nothing_to_find():
    perfect = abstention_scores([(True, False), (True, False)])
    assert (perfect["precision"], perfect["recall"], perfect["f1"]) == (1.0, 1.0, 1.0)
    wrong = abstention_scores([(True, True)])
    assert (wrong["precision"], wrong["recall"], wrong["f1"]) == (0.0, 1.0, 0.0)


def test_abstention_empty_input():
    scores = abstention_scores([])
    assert (scores["precision"], scores["recall"], scores["f1"], scores["n"]) == (1.0, 1.0, 1.0, 0)


# --- percentile and mean -------------------------------------------------------------------


def test_percentile_linear_interpolation_like_numpy():
    values = [15, 20, 35, 40, 50]
    assert percentile(values, 0) == 15
    assert percentile(values, 100) == 50
    assert percentile(values, 50) == 35
    assert percentile(values, 40) == pytest.approx(29.0)  # position 1.6: 20 + 0.6 * 15
    assert percentile([1, 2, 3, 4], 95) == pytest.approx(3.85)  # position 2.85
    assert percentile([3, 1, 2], 50) == 2  # unsorted input
    assert percentile([7.5], 95) == 7.5


def test_percentile_rejects_empty_and_bad_p():
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1, 2], 101)
    with pytest.raises(ValueError):
        percentile([1, 2], -1)


def test_mean():
    assert mean([]) == 0.0
    assert mean([1, 2, 3, 4]) == 2.5
    assert mean([True, False, False, True]) == 0.5
    assert mean(x for x in (0.2, 0.4)) == pytest.approx(0.3)
