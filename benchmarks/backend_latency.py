"""Per backend: time to the quoted evidence, to the model's first words and to the checked answer, p50/p95, and peak memory.

Targets with the packaged local model on an otherwise idle 2-core machine: first words p50 <= 4 s; checked
answer p50 <= 8 s, p95 <= 15 s; peak memory <= 2.5 GB. The load average before and after the run is
recorded: figures taken with other work running are not the idle-machine figures.

Usage:
  python benchmarks/backend_latency.py --backend local --questions 8
  python benchmarks/backend_latency.py --backend extractive
Writes benchmarks/results/backend_latency_<backend>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import assistant  # noqa: E402,F401  (offline variables first)
from ui_latency import percentile, questions  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="local")
    parser.add_argument("--questions", type=int, default=8)
    args = parser.parse_args()

    from assistant.service import AssistantService, Draft, Evidence, Final

    service = AssistantService()
    load_before = os.getloadavg()
    started = time.perf_counter()
    service.ask("warm up the embedding model and index", backend="extractive")
    if args.backend != "extractive":
        service.chat_model(args.backend)
        service.ask("What is experience-based co-design?", backend=args.backend)  # loads the model
    warm_up_s = time.perf_counter() - started

    rows = []
    for question in questions(args.questions):
        t0 = time.perf_counter()
        evidence_at = first_draft_at = None
        answer = None
        for event in service.ask_stream(question, backend=args.backend):
            now = time.perf_counter() - t0
            match event:
                case Evidence():
                    evidence_at = now
                case Draft() if first_draft_at is None:
                    first_draft_at = now
                case Final(answer=final):
                    answer = final
        rows.append(
            {
                "question": question,
                "evidence_s": round(evidence_at, 3),
                "first_words_s": None if first_draft_at is None else round(first_draft_at, 3),
                "answer_s": round(time.perf_counter() - t0, 3),
                "backend": answer.backend,
                "abstained": answer.abstained,
                "actions": [c["action"] for c in answer.verification or []],
                "fallback": answer.fallback,
                "model_first_token_s": round(answer.timings_ms["first_token"] / 1000, 3) if "first_token" in answer.timings_ms else None,
            }
        )
        print(json.dumps(rows[-1]), flush=True)

    def stats(key: str) -> dict:
        values = [r[key] for r in rows if r[key] is not None]
        return {"n": len(values), "p50": round(percentile(values, 0.5), 3), "p95": round(percentile(values, 0.95), 3)} if values else {"n": 0}

    summary = {
        "backend": args.backend,
        "warm_up_s": round(warm_up_s, 1),
        "evidence_s": stats("evidence_s"),
        "first_words_s": stats("first_words_s"),
        "answer_s": stats("answer_s"),
        "written_by_model": sum(r["backend"] == args.backend and not r["abstained"] for r in rows),
        "fallbacks": sum(r["fallback"] is not None for r in rows),
        "load_average_before_after": [round(load_before[0], 1), round(os.getloadavg()[0], 1)],
        "cpus": os.cpu_count(),
        "questions": len(rows),
        "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "rows": rows,
    }
    out = ROOT / "benchmarks" / "results" / f"backend_latency_{args.backend}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1), encoding="utf-8")
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
