"""Runs evaluation turns through the service and scores each one with the deterministic metrics.

Scores per turn (``TurnResult.scores``):

* ``abstained``, ``abstention_correct`` (abstained exactly when the turn is unanswerable), ``latency_ms``;
* answerable turns with evidence: ``hit@1``, ``hit@3``, ``hit@5``, ``recall@5``, ``mrr``, ``ndcg@5``,
  ``context_budget_hit`` (evidence inside the first :data:`CONTEXT_BUDGET_CHARS` characters of the ranked
  passages) and ``first_hit_rank``;
* answerable turns: ``keypoint_coverage`` (0.0 when the assistant abstained: the user got none of the points);
* turns that were answered: ``citation_markers``, ``citation_validity`` (share of ``[n]`` markers that name a
  citation whose passage was retrieved) and ``citation_support`` (share of valid markers whose passage
  supports the sentence carrying it, see :class:`SupportScorer`).

Judged metrics (``judged_*``) are added only when a :class:`~assistant.evaluation.judge.Judge` is given.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


from assistant.answer import Answer
from assistant.cite import SUPPORT_COSINE, SUPPORT_LEXICAL, SupportScorer, cited_sentences  # noqa: F401 (re-exported)
from assistant.evaluation import metrics
from assistant.evaluation.suites import Turn, turns_of

K_VALUES = (1, 3, 5)
#: Characters of ranked passages (laid end to end) that an answer can reasonably draw on.
CONTEXT_BUDGET_CHARS = 2000

RETRIEVAL_METRICS = ("hit@1", "hit@3", "hit@5", "recall@5", "mrr", "ndcg@5", "context_budget_hit")
ANSWER_METRICS = ("citation_validity", "citation_support", "keypoint_coverage")
#: Generative backends only: how often the model's answer was replaced by the extractive one, and the
#: share of the model's sentences that no passage supported (flagged or dropped by verification).
MODEL_METRICS = ("model_fallback", "sentences_unsupported")
ABSTENTION_METRICS = ("abstention_accuracy", "abstention_precision", "abstention_recall", "abstention_f1")
LATENCY_METRICS = ("latency_p50_ms", "latency_p95_ms")
#: Averaged over the turns a judge scored; present only when judged metrics ran.
JUDGED_METRICS = ("judged_groundedness", "judged_relevance")
#: Every figure a summary can hold for a group of turns (``--fail-under`` accepts the score-like ones).
SUMMARY_METRICS = RETRIEVAL_METRICS + ANSWER_METRICS + ABSTENTION_METRICS + LATENCY_METRICS + JUDGED_METRICS


@dataclass
class TurnResult:
    turn: Turn
    response: dict
    scores: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)  # per-citation checks and judge verdicts, for reports

    def to_dict(self) -> dict:
        return {
            "id": self.turn.id,
            "case_id": self.turn.case_id,
            "turn": self.turn.turn,
            "suite": self.turn.suite,
            "theme": self.turn.theme,
            "question": self.turn.question,
            "answerable": self.turn.answerable,
            "evidence": [{"document": d, "snippet": s} for d, s in self.turn.evidence],
            "key_points": self.turn.key_points,
            "scores": self.scores,
            "details": self.details,
            "response": self.response,
        }


def citation_scores(response: dict, scorer: SupportScorer) -> tuple[dict, list[dict]]:
    """Validity: every marker names a retrieved passage. Support: the cited passage backs the sentence."""
    retrieved = {p["chunk_id"]: p["text"] for p in response.get("retrieved", [])}
    by_number = {c["n"]: c for c in response.get("citations", [])}
    checks: list[dict] = []
    for sentence, numbers in cited_sentences(response.get("answer", "")):
        for n in numbers:
            citation = by_number.get(n)
            check = {"marker": n, "sentence": sentence, "valid": False, "supported": False}
            if citation is None:
                check["problem"] = f"[{n}] has no citation"
            elif citation.get("chunk_id") not in retrieved:
                check["problem"] = f"[{n}] cites {citation.get('chunk_id')}, which was not retrieved"
            else:
                check["valid"] = True
                check.update(scorer.check(sentence, citation["chunk_id"], retrieved[citation["chunk_id"]]))
                if not check["supported"]:
                    check["problem"] = f"[{n}] does not support its sentence"
            checks.append(check)
    markers = len(checks)
    valid = [c for c in checks if c["valid"]]
    scores = {
        "citation_markers": markers,
        "citation_validity": 1.0 if markers == 0 else len(valid) / markers,
        "citation_support": 1.0 if not valid else sum(c["supported"] for c in valid) / len(valid),
    }
    return scores, checks


def score_turn(turn: Turn, response: dict, scorer: SupportScorer) -> tuple[dict, dict]:
    """The deterministic scores of one answered turn, and the details behind them."""
    scores: dict = {
        "abstained": bool(response.get("abstained")),
        "latency_ms": float((response.get("timings_ms") or {}).get("total", 0.0)),
    }
    scores["abstention_correct"] = scores["abstained"] != turn.answerable
    details: dict = {}
    if turn.answerable and turn.evidence:
        ranked = [(p["source"], p["text"]) for p in response.get("retrieved", [])]
        for k in K_VALUES:
            scores[f"hit@{k}"] = float(metrics.hit_at_k(turn.evidence, ranked, k))
        scores["recall@5"] = metrics.recall_at_k(turn.evidence, ranked, 5)
        scores["mrr"] = metrics.reciprocal_rank(turn.evidence, ranked)
        scores["ndcg@5"] = metrics.ndcg_at_k(turn.evidence, ranked, 5)
        scores["context_budget_hit"] = float(metrics.context_budget_hit(turn.evidence, ranked, CONTEXT_BUDGET_CHARS))
        scores["first_hit_rank"] = metrics.first_hit_rank(turn.evidence, ranked)
    if turn.answerable:
        scores["keypoint_coverage"] = 0.0 if scores["abstained"] else metrics.keypoint_coverage(response.get("answer", ""), turn.key_points)
    if response.get("model") or response.get("fallback"):
        scores["model_fallback"] = 1.0 if response.get("fallback") else 0.0
    checked = response.get("verification") or []
    if checked:
        scores["sentences_unsupported"] = sum(c.get("action") in ("flagged", "dropped") for c in checked) / len(checked)
    if (response.get("timings_ms") or {}).get("first_token") is not None:
        scores["first_token_ms"] = float(response["timings_ms"]["first_token"])
    if not scores["abstained"]:
        citation, checks = citation_scores(response, scorer)
        scores.update(citation)
        details["citations"] = checks
    return scores, details


def run_cases(service, cases: list[dict], backend: str | None = None, progress: bool = True, judge=None) -> list[TurnResult]:
    """Ask every turn of every case, follow-ups with the case's earlier questions as history.

    A question the service refuses (``QuestionError``, e.g. an over-long input) is recorded as an
    abstention carrying the error message. With a ``judge``, each turn also gets judged scores.
    """
    from assistant.service import QuestionError

    all_turns = [turns_of(case, case.get("_suite", "")) for case in cases]
    total = sum(len(t) for t in all_turns)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="turn", desc="Evaluating", dynamic_ncols=True)
    try:
        index = service.index
    except Exception:  # noqa: BLE001 - an index that cannot open fails in ask() with a clear message
        index = None
    scorer = SupportScorer(service.embedder, index)
    results = []
    try:
        for turns in all_turns:
            history: list[str] = []
            for turn in turns:
                started = time.perf_counter()
                try:
                    response = service.ask(turn.question, history=history, backend=backend).to_dict()
                except QuestionError as exc:
                    response = Answer.refusal(turn.question, str(exc), (time.perf_counter() - started) * 1000).to_dict()
                scores, details = score_turn(turn, response, scorer)
                result = TurnResult(turn, response, scores, details)
                if judge is not None:
                    judged, verdicts = judge.score(turn, response)
                    result.scores.update(judged)
                    result.details["judge"] = verdicts
                results.append(result)
                history.append(turn.question)
                if bar is not None:
                    bar.set_postfix_str(turn.id, refresh=False)
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return results


def _figures(scores: list[dict], answerable: list[bool]) -> dict:
    out: dict = {"turns": len(scores), "answerable_turns": sum(answerable)}
    for name in RETRIEVAL_METRICS + ANSWER_METRICS + MODEL_METRICS + JUDGED_METRICS:
        values = [s[name] for s in scores if s.get(name) is not None]
        if values:
            out[name] = round(metrics.mean(values), 4)
    pairs = [(a, bool(s["abstained"])) for s, a in zip(scores, answerable)]
    if pairs:
        out["abstention_accuracy"] = round(metrics.mean(s["abstention_correct"] for s in scores), 4)
    # Precision, recall and F1 only where they mean something: some turn should or did abstain.
    if any(not a for a, _ in pairs) or any(ab for _, ab in pairs):
        out.update({f"abstention_{k}": round(v, 4) for k, v in metrics.abstention_scores(pairs).items()})
    latencies = [s["latency_ms"] for s in scores]
    if latencies:
        out["latency_p50_ms"] = round(metrics.percentile(latencies, 50), 1)
        out["latency_p95_ms"] = round(metrics.percentile(latencies, 95), 1)
    first_tokens = [s["first_token_ms"] for s in scores if s.get("first_token_ms") is not None]
    if first_tokens:
        out["first_token_p50_ms"] = round(metrics.percentile(first_tokens, 50), 1)
        out["first_token_p95_ms"] = round(metrics.percentile(first_tokens, 95), 1)
    return out


def summarise_cases(cases: list[dict]) -> dict:
    """Overall figures, and the same by theme and by suite, from ``TurnResult.to_dict()`` records."""

    def figures(group: list[dict]) -> dict:
        return _figures([c["scores"] for c in group], [c["answerable"] for c in group])

    themes = sorted({c["theme"] for c in cases})
    suites = sorted({c["suite"] for c in cases})
    return {
        "overall": figures(cases),
        "by_theme": {t: figures([c for c in cases if c["theme"] == t]) for t in themes},
        "by_suite": {s: figures([c for c in cases if c["suite"] == s]) for s in suites},
    }


def summarise(results: list[TurnResult]) -> dict:
    """Overall figures and the same broken down by theme (and by suite)."""
    return summarise_cases([r.to_dict() for r in results])
