"""Deterministic retrieval, citation and abstention metrics for evaluation runs."""

# Conventions shared by every function here:
#
# * Evidence is a list of ``(document, snippet)`` pairs: where the answer sits,
#   written independently of how the corpus is chunked.  A ranked passage is a
#   ``(document, text)`` pair, best first.
# * A passage *matches* an evidence item when its document is the evidence
#   document and :func:`evidence_matches` accepts the snippet against its text.
# * Retrieval metrics (``hit_at_k`` … ``context_budget_hit``) are defined only for
#   cases with evidence, so empty evidence raises ``ValueError`` rather than
#   silently scoring 0 or 1.  Unanswerable cases are scored by
#   :func:`abstention_scores` instead.  ``k`` must be at least 1.
# * Ranks are 1-based.

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from assistant.text import normalise  # noqa: F401 (part of this module's vocabulary)

__all__ = [
    "MIN_RUN_SHARE",
    "normalise",
    "evidence_matches",
    "first_hit_rank",
    "hit_at_k",
    "recall_at_k",
    "reciprocal_rank",
    "ndcg_at_k",
    "context_budget_hit",
    "keypoint_coverage",
    "missing_key_points",
    "abstention_scores",
    "percentile",
    "mean",
]

Evidence = Sequence[tuple[str, str]]
Ranked = Sequence[tuple[str, str]]

#: A snippet also matches a passage when the longest run of its consecutive
#: tokens that appears contiguously in the passage covers at least this share
#: of the snippet's tokens.  60% means a snippet cut in two by a chunk boundary
#: still matches the chunk that holds most of it (and only that one: two
#: chunks can never both hold more than half).  A snippet split exactly
#: 50/50 matches neither chunk.
MIN_RUN_SHARE = 0.6


def _longest_common_run(needle: Sequence[str], haystack: Sequence[str]) -> int:
    """Length of the longest run of consecutive ``needle`` tokens that also
    appears contiguously in ``haystack`` (longest common substring on tokens)."""
    if not needle or not haystack:
        return 0
    wanted = set(needle)
    best = 0
    previous = [0] * (len(needle) + 1)
    for token in haystack:
        current = [0] * (len(needle) + 1)
        if token in wanted:
            for j, other in enumerate(needle, start=1):
                if other == token:
                    current[j] = previous[j - 1] + 1
                    if current[j] > best:
                        best = current[j]
        previous = current
    return best


def evidence_matches(snippet: str, passage_text: str) -> bool:
    """True if the snippet sits in the passage.

    Either the normalised snippet is a substring of the normalised passage, or
    the longest run of consecutive snippet tokens found contiguously in the
    passage covers at least :data:`MIN_RUN_SHARE` (60%) of the snippet's tokens,
    so a snippet cut by a chunk boundary still matches the chunk holding most of
    it.  An empty snippet (nothing alphanumeric) never matches.
    """
    needle = normalise(snippet)
    if not needle:
        return False
    haystack = normalise(passage_text)
    if needle in haystack:
        return True
    needle_tokens = needle.split()
    run = _longest_common_run(needle_tokens, haystack.split())
    return run / len(needle_tokens) >= MIN_RUN_SHARE


def _require_evidence(evidence: Evidence) -> None:
    if not evidence:
        raise ValueError("retrieval metrics need at least one evidence item")


def _require_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")


def _matched_items(evidence: Evidence, document: str, text: str) -> set[int]:
    """Indexes of the evidence items that this passage matches."""
    return {i for i, (ev_document, snippet) in enumerate(evidence) if ev_document == document and evidence_matches(snippet, text)}


def first_hit_rank(evidence: Evidence, ranked: Ranked) -> int | None:
    """1-based rank of the first passage matching any evidence item, or None."""
    for rank, (document, text) in enumerate(ranked, start=1):
        if _matched_items(evidence, document, text):
            return rank
    return None


def hit_at_k(evidence: Evidence, ranked: Ranked, k: int) -> bool:
    """True if any of the top ``k`` passages matches an evidence item."""
    _require_evidence(evidence)
    _require_k(k)
    rank = first_hit_rank(evidence, ranked[:k])
    return rank is not None


def recall_at_k(evidence: Evidence, ranked: Ranked, k: int) -> float:
    """Share of evidence items matched by at least one of the top ``k`` passages."""
    _require_evidence(evidence)
    _require_k(k)
    found: set[int] = set()
    for document, text in ranked[:k]:
        found |= _matched_items(evidence, document, text)
    return len(found) / len(evidence)


def reciprocal_rank(evidence: Evidence, ranked: Ranked) -> float:
    """1 / rank of the first matching passage; 0.0 if none matches."""
    _require_evidence(evidence)
    rank = first_hit_rank(evidence, ranked)
    return 0.0 if rank is None else 1.0 / rank


def ndcg_at_k(evidence: Evidence, ranked: Ranked, k: int) -> float:
    """Binary-relevance nDCG over the top ``k`` passages.

    A passage is relevant when it matches an evidence item that no higher-ranked
    passage has already matched.  Duplicate passages, or overlapping chunks that
    repeat evidence already found, therefore earn no further gain, and the score
    stays within [0, 1].  The ideal DCG assumes ``min(k, len(evidence))``
    relevant passages at the top.
    """
    _require_evidence(evidence)
    _require_k(k)
    found: set[int] = set()
    dcg = 0.0
    for position, (document, text) in enumerate(ranked[:k], start=1):
        new = _matched_items(evidence, document, text) - found
        if new:
            dcg += 1.0 / math.log2(position + 1)
            found |= new
    ideal = sum(1.0 / math.log2(position + 1) for position in range(1, min(k, len(evidence)) + 1))
    return dcg / ideal


def context_budget_hit(evidence: Evidence, ranked: Ranked, budget_chars: int) -> bool:
    """True if an evidence item is matched within the first ``budget_chars``
    characters of the ranked texts laid end to end.

    Passages are read in rank order; the passage that crosses the budget is cut
    at it and later ones are not read, so bigger chunks cannot buy a hit.
    Separators between passages are not counted.  The cut text is judged with
    :func:`evidence_matches`, so a snippet that is at least 60% inside the budget
    counts.
    """
    _require_evidence(evidence)
    remaining = budget_chars
    for document, text in ranked:
        if remaining <= 0:
            break
        if _matched_items(evidence, document, text[:remaining]):
            return True
        remaining -= len(text)
    return False


def keypoint_coverage(answer: str, key_points: Sequence[Sequence[str]]) -> float:
    """Share of key-point groups with at least one alternative in the answer.

    Matching is a substring test on normalised text, so word stems work
    ("facilitat" finds "facilitation").  Empty alternatives never match.
    Returns 1.0 when there are no groups.
    """
    if not key_points:
        return 1.0
    haystack = normalise(answer)
    covered = 0
    for group in key_points:
        alternatives = [normalise(alternative) for alternative in group]
        if any(alternative and alternative in haystack for alternative in alternatives):
            covered += 1
    return covered / len(key_points)


def missing_key_points(answer: str, key_points: Sequence[Sequence[str]]) -> list[list[str]]:
    """The key-point groups none of whose alternatives is in the answer (same matching as
    :func:`keypoint_coverage`)."""
    haystack = normalise(answer)
    return [
        list(group)
        for group in key_points
        if not any(normalise(alternative) and normalise(alternative) in haystack for alternative in group)
    ]


def abstention_scores(pairs: Iterable[tuple[bool, bool]]) -> dict[str, float]:
    """Precision, recall and F1 of abstention from ``(answerable, abstained)`` pairs.

    The positive class is "should abstain" (``answerable`` is False).  Zero
    divisions: precision is 1.0 when the system never abstained (it made no
    wrong abstentions) and recall is 1.0 when there was nothing to abstain on;
    F1 is 0.0 when precision and recall are both 0.  So never abstaining on a
    set with unanswerable cases still scores recall 0 and F1 0.  The counts
    ``tp``, ``fp``, ``fn``, ``tn`` and ``n`` are returned too.
    """
    tp = fp = fn = tn = 0
    for answerable, abstained in pairs:
        if not answerable and abstained:
            tp += 1
        elif answerable and abstained:
            fp += 1
        elif not answerable and not abstained:
            fn += 1
        else:
            tn += 1
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "n": tp + fp + fn + tn,
    }


def percentile(values: Iterable[float], p: float) -> float:
    """The ``p``-th percentile (0-100) with linear interpolation between closest
    ranks, as numpy's default method.  Raises ValueError on no values or a
    ``p`` outside [0, 100]."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of no values")
    if not 0 <= p <= 100:
        raise ValueError(f"p must be within [0, 100], got {p}")
    position = (len(ordered) - 1) * p / 100
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    fraction = position - lower
    return ordered[lower] + (ordered[upper] - ordered[lower]) * fraction


def mean(values: Iterable[float]) -> float:
    """Arithmetic mean; 0.0 for no values.  Booleans count as 0 and 1."""
    items = [float(value) for value in values]
    return sum(items) / len(items) if items else 0.0
