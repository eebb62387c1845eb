"""Runs evaluation turns through the service and scores each one with the deterministic metrics."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import numpy as np

from assistant.cite import MARKER, lexical_support
from assistant.evaluation import metrics
from assistant.evaluation.suites import Turn, turns_of

K_VALUES = (1, 3, 5)
CONTEXT_BUDGET_CHARS = 2000
# A cited passage supports a sentence when it holds at least half the sentence's content words
# AND their embeddings agree at cosine >= 0.5 (verbatim quotes pass both trivially).
SUPPORT_LEXICAL = 0.5
SUPPORT_COSINE = 0.5


@dataclass
class TurnResult:
    turn: Turn
    response: dict
    scores: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "id": self.turn.id,
            "case_id": self.turn.case_id,
            "suite": self.turn.suite,
            "theme": self.turn.theme,
            "question": self.turn.question,
            "answerable": self.turn.answerable,
            "evidence": [{"document": d, "snippet": s} for d, s in self.turn.evidence],
            "key_points": self.turn.key_points,
            "scores": self.scores,
            "response": self.response,
        }


def cited_sentences(answer: str) -> list[tuple[str, list[int]]]:
    """Each sentence or list item of an answer with the [n] markers it carries."""
    pieces = []
    for line in answer.splitlines():
        line = re.sub(r"^\s*[-*]\s+", "", line).strip()
        if not line:
            continue
        for sentence in re.split(r"(?<=\])\s+(?=[A-Z])", line):
            numbers = [int(n) for n in MARKER.findall(sentence)]
            pieces.append((MARKER.sub("", sentence).strip(), numbers))
    return pieces


def citation_scores(response: dict, embedder) -> dict:
    """Validity: every marker names a retrieved passage. Support: the cited passage backs the sentence."""
    retrieved = {p["chunk_id"]: p["text"] for p in response.get("retrieved", [])}
    by_number = {c["n"]: c for c in response.get("citations", [])}
    markers, valid, supported, checked = 0, 0, 0, 0
    for sentence, numbers in cited_sentences(response.get("answer", "")):
        for n in numbers:
            markers += 1
            citation = by_number.get(n)
            if citation is None or citation["chunk_id"] not in retrieved:
                continue
            valid += 1
            checked += 1
            passage = retrieved[citation["chunk_id"]]
            if lexical_support(sentence, passage) >= SUPPORT_LEXICAL and _cosine(embedder, sentence, passage) >= SUPPORT_COSINE:
                supported += 1
    return {
        "citation_markers": markers,
        "citation_validity": 1.0 if markers == 0 else valid / markers,
        "citation_support": 1.0 if checked == 0 else supported / checked,
    }


def _cosine(embedder, a: str, b: str) -> float:
    if a.strip() and a.strip() in b:
        return 1.0
    vectors = embedder.embed_documents([a, b])
    return float(np.dot(vectors[0], vectors[1]))


def score_turn(turn: Turn, response: dict, embedder) -> dict:
    scores: dict = {"abstained": bool(response.get("abstained")), "latency_ms": response.get("timings_ms", {}).get("total", 0.0)}
    scores["abstention_correct"] = scores["abstained"] != turn.answerable
    if turn.answerable and turn.evidence:
        ranked = [(p["source"], p["text"]) for p in response.get("retrieved", [])]
        for k in K_VALUES:
            scores[f"hit@{k}"] = float(metrics.hit_at_k(turn.evidence, ranked, k))
        scores["recall@5"] = metrics.recall_at_k(turn.evidence, ranked, 5)
        scores["mrr"] = metrics.reciprocal_rank(turn.evidence, ranked)
        scores["ndcg@5"] = metrics.ndcg_at_k(turn.evidence, ranked, 5)
        scores["context_budget_hit"] = float(metrics.context_budget_hit(turn.evidence, ranked, CONTEXT_BUDGET_CHARS))
        scores["first_hit_rank"] = metrics.first_hit_rank(turn.evidence, ranked)
        if not scores["abstained"]:
            scores["keypoint_coverage"] = metrics.keypoint_coverage(response.get("answer", ""), turn.key_points)
    if not scores["abstained"]:
        scores.update(citation_scores(response, embedder))
    return scores


def run_cases(service, cases: list[dict], backend: str | None = None, progress: bool = True) -> list[TurnResult]:
    """Ask every turn of every case, follow-ups with the case's earlier questions as history."""
    from assistant.service import QuestionError

    all_turns = [(case, turns_of(case, case.get("_suite", ""))) for case in cases]
    total = sum(len(t) for _, t in all_turns)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="question", desc="Evaluating")
    results = []
    for _, turns in all_turns:
        history: list[str] = []
        for turn in turns:
            started = time.perf_counter()
            try:
                response = service.ask(turn.question, history=history, backend=backend).to_dict()
            except QuestionError as exc:
                response = {"question": turn.question, "answer": str(exc), "abstained": True, "citations": [], "retrieved": [],
                            "error": str(exc), "timings_ms": {"total": round((time.perf_counter() - started) * 1000, 1)}}
            results.append(TurnResult(turn, response, score_turn(turn, response, service.embedder)))
            history.append(turn.question)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return results


RETRIEVAL_METRICS = ("hit@1", "hit@3", "hit@5", "recall@5", "mrr", "ndcg@5", "context_budget_hit")
ANSWER_METRICS = ("citation_validity", "citation_support", "keypoint_coverage")


def summarise(results: list[TurnResult]) -> dict:
    """Overall figures and the same broken down by theme."""

    def figures(group: list[TurnResult]) -> dict:
        out: dict = {"turns": len(group)}
        for name in RETRIEVAL_METRICS + ANSWER_METRICS:
            values = [r.scores[name] for r in group if name in r.scores]
            if values:
                out[name] = round(metrics.mean(values), 4)
        pairs = [(r.turn.answerable, r.scores["abstained"]) for r in group]
        if any(not a for a, _ in pairs) or any(ab for _, ab in pairs):
            out.update({f"abstention_{k}": round(v, 4) for k, v in metrics.abstention_scores(pairs).items()})
        latencies = [r.scores["latency_ms"] for r in group]
        if latencies:
            out["latency_p50_ms"] = round(metrics.percentile(latencies, 50), 1)
            out["latency_p95_ms"] = round(metrics.percentile(latencies, 95), 1)
        return out

    themes = sorted({r.turn.theme for r in results})
    return {"overall": figures(results), "by_theme": {t: figures([r for r in results if r.turn.theme == t]) for t in themes}}
