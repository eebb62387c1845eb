"""What every evaluation report shares: metric labels and columns, number formatting, the run-stamp lines."""

from __future__ import annotations

from assistant.evaluation.runner import (
    ABSTENTION_METRICS,
    ANSWER_METRICS,
    CONTEXT_BUDGET_CHARS,
    JUDGED_METRICS,
    LATENCY_METRICS,
    MODEL_METRICS,
    READER_METRICS,
    RETRIEVAL_METRICS,
)

#: Columns of the per-theme tables and the charts.
THEME_COLUMNS = (
    "turns",
    "turns_passed",
    "hit@5",
    "mrr",
    "ndcg@5",
    "recall@5",
    "context_budget_hit",
    "keypoint_coverage",
    "citation_validity",
    "citation_support",
    "abstention_accuracy",
    "hygiene_findings",
    "answers_question",
    "latency_p50_ms",
    "latency_p95_ms",
)
CHART_METRICS = (
    "pass_rate",
    "hit@5",
    "mrr",
    "ndcg@5",
    "keypoint_coverage",
    "abstention_accuracy",
    "citation_support",
    "hygiene_clean",
    "answers_question_above_0",
)
OVERALL_ROWS = (
    ("turns_passed",)
    + READER_METRICS
    + ("hygiene_findings", "partial_turns")
    + RETRIEVAL_METRICS
    + ANSWER_METRICS
    + ABSTENTION_METRICS
    + LATENCY_METRICS
    + MODEL_METRICS
    + ("first_token_p50_ms", "first_token_p95_ms")
    + JUDGED_METRICS
)
#: Suite table columns (summary.md and report.html).
SUITE_COLUMNS = (
    "turns",
    "turns_passed",
    "keypoint_coverage",
    "abstention_precision",
    "abstention_recall",
    "abstention_f1",
    "hit@5",
    "hygiene_findings",
    "answers_question",
    "answers_question_above_0",
)
LABELS = {
    "hit@1": "Hit@1",
    "hit@3": "Hit@3",
    "hit@5": "Hit@5",
    "recall@5": "Recall@5",
    "mrr": "MRR",
    "ndcg@5": "nDCG@5",
    "context_budget_hit": f"Evidence in first {CONTEXT_BUDGET_CHARS} chars",
    "citation_validity": "Citation validity",
    "citation_support": "Citation support",
    "keypoint_coverage": "Key-point coverage",
    "abstention_accuracy": "Abstention accuracy",
    "abstention_precision": "Abstention precision",
    "abstention_recall": "Abstention recall",
    "abstention_f1": "Abstention F1",
    "latency_p50_ms": "Latency p50 (ms)",
    "latency_p95_ms": "Latency p95 (ms)",
    "judged_groundedness": "Groundedness (judged)",
    "judged_relevance": "Answer relevance (judged)",
    "turns": "Turns",
    "model_fallback": "Model answers replaced by quotes",
    "sentences_unsupported": "Model sentences unsupported",
    "first_token_p50_ms": "First token p50 (ms)",
    "first_token_p95_ms": "First token p95 (ms)",
    "turns_passed": "Turns passed",
    "pass_rate": "Share of turns passed",
    "hygiene_clean": "Answers without hygiene findings",
    "hygiene_findings": "Hygiene findings",
    "partial_turns": "Partly covered answers",
    "answers_question": "Answers the question (mean logit)",
    "answers_question_above_0": "Answers the question (share > 0)",
}
SHORT = {
    "context_budget_hit": "Evidence ≤ budget",
    "keypoint_coverage": "Key points",
    "citation_validity": "Cit. validity",
    "citation_support": "Cit. support",
    "abstention_accuracy": "Abst. accuracy",
    "latency_p50_ms": "p50 ms",
    "latency_p95_ms": "p95 ms",
    "turns_passed": "Passed",
    "hygiene_findings": "Hygiene",
    "answers_question": "Answers q.",
    "abstention_precision": "Abst. P",
    "abstention_recall": "Abst. R",
    "abstention_f1": "Abst. F1",
    "answers_question_above_0": "Answers q. > 0",
}
#: Counts, shown as integers.
COUNTS = ("turns", "answerable_turns", "turns_passed", "hygiene_findings", "partial_turns", "answers_question_turns")


def fmt(value, metric: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if metric.endswith("_ms"):
        return f"{value:,.0f}"
    if metric in COUNTS or isinstance(value, int):
        return str(value)
    return f"{value:.3f}"


def fmt_delta(delta, metric: str = "") -> str:
    if delta is None:
        return ""
    if abs(delta) < 1e-9:
        return "±0"
    return f"{delta:+,.0f}" if metric.endswith("_ms") else f"{delta:+.3f}"


def commit_label(stamp: dict) -> str:
    git = stamp.get("git", {})
    commit = git.get("commit", "unknown")
    label = commit[:12] if commit != "unknown" else commit
    return label + (" (uncommitted changes)" if git.get("dirty") else "")


def stamp_lines(stamp: dict) -> list[tuple[str, str]]:
    chunking = stamp.get("chunking") or {}
    chunk_text = ", ".join(f"{k} {v}" for k, v in chunking.items()) if isinstance(chunking, dict) else str(chunking)
    return [
        ("Time", str(stamp.get("timestamp", ""))),
        ("Git commit", commit_label(stamp)),
        ("Corpus hash", f"{str(stamp.get('corpus_hash', ''))[:16]} ({stamp.get('documents')} documents, {stamp.get('chunks')} chunks)"),
        ("Embedding model", str(stamp.get("embedding_model"))),
        ("Chunking", chunk_text),
        ("Backend", str(stamp.get("backend"))),
        ("Prompts", str(stamp.get("prompts"))[:16]),
        ("Suites", ", ".join(f"{s['name']} ({s['turns']} turns)" for s in stamp.get("suites", []))),
    ] + ([("Run time", f"{stamp['duration_s']} s")] if stamp.get("duration_s") is not None else [])


def status_lines(document: dict) -> list[str]:
    """What did not run or is model-graded: the judge's status and the answers-the-question status."""
    lines = [document["judged"]["status"]]
    status = (document.get("answers_question") or {}).get("status")
    if status:
        lines.append(status)
    return lines
