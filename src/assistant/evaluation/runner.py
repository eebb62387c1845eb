"""Runs evaluation turns through the service and scores each one with the deterministic metrics.

Scores per turn (``TurnResult.scores``):

* ``abstained`` (fully declined), ``coverage`` ("answered", "partial" or "declined"), ``declined`` (coverage is
  not "answered": a partial answer says first that the sources lack what was asked, so it declines that),
  ``abstention_correct`` (declined exactly when the turn is unanswerable), ``latency_ms``;
* answerable turns with evidence: ``hit@1``, ``hit@3``, ``hit@5``, ``recall@5``, ``mrr``, ``ndcg@5``,
  ``context_budget_hit`` (evidence inside the first :data:`CONTEXT_BUDGET_CHARS` characters of the ranked
  passages) and ``first_hit_rank``;
* answerable turns: ``keypoint_coverage`` over the answer text, partial answers included (0.0 only when the
  assistant declined outright: the user got none of the points); the groups missing are in
  ``details["missing_key_points"]``;
* every turn: ``hygiene_findings`` (how many; the findings are the record's ``hygiene_findings`` list, see
  :mod:`assistant.evaluation.answer_checks`), ``answers_question`` (the cross-encoder's logit of the lead
  claim against the question; None when not run or nothing was cited) and ``passed``
  (:func:`assistant.evaluation.verdict.turn_failures` found nothing);
* turns that were answered: ``citation_markers``, ``citation_validity`` (share of ``[n]`` markers that name a
  citation whose passage was retrieved) and ``citation_support`` (share of valid markers whose passage
  supports the sentence carrying it, see :class:`SupportScorer`).

Judged metrics (``judged_*``) are added only when a :class:`~assistant.evaluation.judge.Judge` is given.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from assistant.evaluation import metrics
from assistant.evaluation.answer_checks import RelevanceScorer, hygiene_findings
from assistant.evaluation.suites import Turn, turns_of
from assistant.evaluation.verdict import declined, turn_failures
from assistant.service import SUPPORT_COSINE, SUPPORT_LEXICAL, Answer, QuestionError, SupportScorer, cited_sentences  # noqa: F401 (re-exported)

K_VALUES = (1, 3, 5)
#: Characters of ranked passages (laid end to end) that an answer can reasonably draw on.
CONTEXT_BUDGET_CHARS = 2000

RETRIEVAL_METRICS = ("hit@1", "hit@3", "hit@5", "recall@5", "mrr", "ndcg@5", "context_budget_hit")
ANSWER_METRICS = ("citation_validity", "citation_support", "keypoint_coverage")
#: Generative backends only: how often the model's answer was replaced by the extractive one, and the
#: share of the model's sentences that no passage supported (flagged or dropped by verification).
MODEL_METRICS = ("model_fallback", "sentences_unsupported")
ABSTENTION_METRICS = ("abstention_accuracy", "abstention_precision", "abstention_recall", "abstention_f1")
#: What a facilitator reads: share of turns passing, of turns without hygiene findings, the mean
#: "answers the question" logit over answered turns and the share of those above 0.
READER_METRICS = ("pass_rate", "hygiene_clean", "answers_question", "answers_question_above_0")
LATENCY_METRICS = ("latency_p50_ms", "latency_p95_ms")
#: Averaged over the turns a judge scored; present only when judged metrics ran.
JUDGED_METRICS = ("judged_groundedness", "judged_relevance")
#: Every figure a summary can hold for a group of turns (``--fail-under`` accepts the score-like ones).
SUMMARY_METRICS = RETRIEVAL_METRICS + ANSWER_METRICS + READER_METRICS + ABSTENTION_METRICS + LATENCY_METRICS + JUDGED_METRICS


@dataclass
class TurnResult:
    turn: Turn
    response: dict
    scores: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)  # per-citation checks, missing key points, judge verdicts
    hygiene_findings: list[str] = field(default_factory=list)

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
            "hygiene_findings": self.hygiene_findings,
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
    abstained = bool(response.get("abstained"))
    coverage = response.get("coverage") or ("declined" if abstained else "answered")
    scores: dict = {
        "abstained": abstained,
        "coverage": coverage,
        "declined": coverage != "answered",
        "latency_ms": float((response.get("timings_ms") or {}).get("total", 0.0)),
    }
    scores["abstention_correct"] = scores["declined"] != turn.answerable
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
        outright = coverage == "declined" or abstained
        text = "" if outright else response.get("answer", "")
        scores["keypoint_coverage"] = 0.0 if outright else metrics.keypoint_coverage(text, turn.key_points)
        missing = metrics.missing_key_points(text, turn.key_points)
        if missing:
            details["missing_key_points"] = missing
    if response.get("model") or response.get("fallback"):
        scores["model_fallback"] = 1.0 if response.get("fallback") else 0.0
    checked = response.get("verification") or []
    if checked:
        scores["sentences_unsupported"] = sum(c.get("action") in ("flagged", "dropped") for c in checked) / len(checked)
    if (response.get("timings_ms") or {}).get("first_token") is not None:
        scores["first_token_ms"] = float(response["timings_ms"]["first_token"])
    if not abstained:
        citation, checks = citation_scores(response, scorer)
        scores.update(citation)
        details["citations"] = checks
    return scores, details


def run_cases(
    service, cases: list[dict], backend: str | None = None, progress: bool = True, judge=None, relevance: RelevanceScorer | None = None
) -> list[TurnResult]:
    """Ask every turn of every case, follow-ups with the case's earlier questions as history.

    A question the service refuses (``QuestionError``, e.g. an over-long input) is recorded as an
    abstention carrying the error message. With a ``judge``, each turn also gets judged scores. Every
    answer gets its hygiene findings and its "answers the question" score (``relevance``; by default one
    over ``service``; read its ``status`` afterwards to know whether it ran).
    """
    relevance = relevance if relevance is not None else RelevanceScorer(service)
    all_turns = [turns_of(case, case.get("_suite", "")) for case in cases]
    total = sum(len(t) for t in all_turns)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="turn", desc="Evaluating", dynamic_ncols=True)
    scorer = service.support_scorer()
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
                result = TurnResult(turn, response, scores, details, hygiene_findings(turn.question, response.get("answer", "")))
                result.scores["hygiene_findings"] = len(result.hygiene_findings)
                # A follow-up is scored against the standalone question the service searched with.
                result.scores["answers_question"] = relevance.score(
                    response.get("search_query") or turn.question, response.get("answer", "")
                )
                if judge is not None:
                    judged, verdicts = judge.score(turn, response)
                    result.scores.update(judged)
                    result.details["judge"] = verdicts
                result.scores["passed"] = not turn_failures(result.to_dict())
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
    pairs = [(a, declined(s)) for s, a in zip(scores, answerable)]
    if pairs:
        out["abstention_accuracy"] = round(metrics.mean(s["abstention_correct"] for s in scores), 4)
    # Precision, recall and F1 only where they mean something: some turn should or did abstain.
    if any(not a for a, _ in pairs) or any(ab for _, ab in pairs):
        out.update({f"abstention_{k}": round(v, 4) for k, v in metrics.abstention_scores(pairs).items()})
    if any("passed" in s for s in scores):
        out["turns_passed"] = sum(bool(s.get("passed")) for s in scores)
        out["pass_rate"] = round(out["turns_passed"] / len(scores), 4)
    if any("hygiene_findings" in s for s in scores):
        out["hygiene_findings"] = sum(int(s.get("hygiene_findings") or 0) for s in scores)
        out["hygiene_clean"] = round(metrics.mean(not s.get("hygiene_findings") for s in scores), 4)
    out["partial_turns"] = sum(s.get("coverage") == "partial" for s in scores)
    relevance = [s["answers_question"] for s in scores if s.get("answers_question") is not None and not declined(s)]
    if relevance:
        out["answers_question"] = round(metrics.mean(relevance), 3)
        out["answers_question_above_0"] = round(metrics.mean(v > 0 for v in relevance), 4)
        out["answers_question_turns"] = len(relevance)
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
