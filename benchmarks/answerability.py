"""Calibrates when to decline: the precision/recall of abstention over the suites in evals/ as the
cross-encoder threshold (min_answer_relevance) and the cosine gate (min_relevance) move.

Every turn is asked with both gates open, recording the retrieval cosine, the cross-encoder score of the
best unit of evidence and whether the answer was partly covered; the sweep then replays each threshold.
A partly covered answer says first that the sources lack what was asked, so it counts as declining.

    .venv/bin/python benchmarks/answerability.py [--data-dir DIR] [--suite review ...] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import assistant  # noqa: F401  (offline variables first)
from assistant.evaluation.suites import load_suites, suite_paths, turns_of
from assistant.locations import PROJECT_ROOT
from assistant.service import AssistantService, QuestionError
from assistant.settings import Settings


def collect(service: AssistantService, cases: list[dict]) -> list[dict]:
    rows = []
    for case in cases:
        history: list[str] = []
        for turn in turns_of(case, case.get("_suite", "")):
            try:
                answer = service.ask(turn.question, history=history)
            except QuestionError:
                history.append(turn.question)
                continue  # refused before searching (too long, empty): no threshold changes that
            cosine = max([p.dense_score or 0.0 for p in answer.passages] + [p.sentence_score or 0.0 for p in answer.passages] + [0.0])
            rows.append({
                "id": turn.id, "answerable": turn.answerable, "cosine": cosine,
                "relevance": answer.relevance, "partial": answer.coverage == "partial",
            })
            history.append(turn.question)
    return rows


def sweep(rows: list[dict], cosine_gate: float, thresholds: list[float]) -> list[dict]:
    curve = []
    for threshold in thresholds:
        tp = fp = fn = 0
        for row in rows:
            declined = row["cosine"] < cosine_gate or row["relevance"] is None or row["relevance"] < threshold or row["partial"]
            should = not row["answerable"]
            tp += declined and should
            fp += declined and not should
            fn += should and not declined
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        curve.append({"threshold": threshold, "precision": round(precision, 3), "recall": round(recall, 3), "f1": round(f1, 3),
                      "answerable_declined": fp})
    return curve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--suite", action="append", default=[])
    parser.add_argument("--cosine-gate", type=float, nargs="*", default=[0.0, 0.35, 0.40, 0.44])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    overrides = {"min_relevance": 0.0, "min_answer_relevance": -1000.0}
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
    service = AssistantService(Settings(**overrides))
    cases = load_suites(suite_paths(args.suite, PROJECT_ROOT / "evals"))
    rows = collect(service, cases)
    thresholds = [t / 2 for t in range(-20, 9)]
    report = {"turns": len(rows), "by_cosine_gate": {}}
    for gate in args.cosine_gate:
        curve = sweep(rows, gate, thresholds)
        best = max(curve, key=lambda c: (c["f1"], c["recall"], -abs(c["threshold"] + 4)))
        report["by_cosine_gate"][str(gate)] = {"best": best, "curve": curve}
        print(f"cosine gate {gate:.2f}: best threshold {best['threshold']:+.1f}  P {best['precision']:.3f}  R {best['recall']:.3f}  F1 {best['f1']:.3f}  "
              f"answerable declined {best['answerable_declined']}")
    print("\nthreshold  precision  recall  F1   (cosine gate %.2f)" % args.cosine_gate[-1])
    for c in report["by_cosine_gate"][str(args.cosine_gate[-1])]["curve"]:
        print(f"  {c['threshold']:+5.1f}     {c['precision']:.3f}    {c['recall']:.3f}  {c['f1']:.3f}")
    missed = [r for r in rows if not r["answerable"]]
    print("\nunanswerable turns (cosine, cross-encoder, partial):")
    for r in sorted(missed, key=lambda r: -(r["relevance"] or -99)):
        print(f"  {r['id']:<14} {r['cosine']:.3f} {r['relevance'] if r['relevance'] is None else round(r['relevance'], 2)!s:>7} {r['partial']}")
    low = sorted((r for r in rows if r["answerable"]), key=lambda r: (r["relevance"] or -99))[:15]
    print("\nlowest-scoring answerable turns:")
    for r in low:
        print(f"  {r['id']:<14} {r['cosine']:.3f} {r['relevance'] if r['relevance'] is None else round(r['relevance'], 2)!s:>7} {r['partial']}")
    if args.out:
        args.out.write_text(json.dumps({"rows": rows, **report}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
