"""How long `assistant eval` takes over every suite in evals/ with the default backend.

Usage:
    .venv/bin/python benchmarks/eval_speed.py [--runs N] [--json OUT.json] [--target SECONDS]

Uses the configured data directory (ASSISTANT_DATA_DIR, default data/); run `assistant ingest` first.
Times, in a fresh process: opening the service (embedding model and index), asking and scoring every
turn, and writing the four reports. The target is the whole command in under 2 minutes on a 2-core CPU.
Exit status 1 when the total exceeds --target.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import assistant  # noqa: F401  (offline variables first)
from assistant.evaluation import report
from assistant.evaluation.runner import run_cases, summarise_cases
from assistant.evaluation.suites import load_suites, suite_paths
from assistant.service import AssistantService
from assistant.settings import PROJECT_ROOT


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="timed runs of the suites after the service is open")
    parser.add_argument("--json", type=Path, help="also write the timings here")
    parser.add_argument("--target", type=float, default=120.0, help="seconds the whole command should stay under")
    args = parser.parse_args()

    started = time.perf_counter()
    files = suite_paths([], PROJECT_ROOT / "evals")
    cases = load_suites(files)
    service = AssistantService()
    backend = service.settings.backend
    service.index  # noqa: B018 - open the index and load the model before timing the questions
    service.embedder.embed_query("warm up")
    opened = time.perf_counter() - started

    runs = []
    for _ in range(max(1, args.runs)):
        t0 = time.perf_counter()
        results = run_cases(service, cases, backend=backend, progress=False)
        t1 = time.perf_counter()
        records = [r.to_dict() for r in results]
        summary = summarise_cases(records)
        stamp = report.run_stamp(service, backend, files, cases, "judged metrics: not run (no LLM backend configured)", PROJECT_ROOT)
        with tempfile.TemporaryDirectory() as folder:
            report.write_reports(Path(folder), report.results_document(stamp, summary, records, stamp["judged"], None, []))
        t2 = time.perf_counter()
        runs.append({"turns": len(records), "ask_and_score_s": round(t1 - t0, 2), "reports_s": round(t2 - t1, 2),
                     "p50_ms": summary["overall"].get("latency_p50_ms"), "p95_ms": summary["overall"].get("latency_p95_ms")})

    first = runs[0]
    total = opened + first["ask_and_score_s"] + first["reports_s"]
    result = {
        "backend": backend,
        "suites": [Path(f).stem for f in files],
        "turns": first["turns"],
        "open_service_s": round(opened, 2),
        "runs": runs,
        "total_first_run_s": round(total, 2),
        "target_s": args.target,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load_average": os.getloadavg()[0]},
    }
    print(f"{first['turns']} turns over {', '.join(result['suites'])} with the {backend} backend")
    print(f"  open service (model + index): {opened:6.1f} s")
    for n, run in enumerate(runs, start=1):
        print(f"  run {n}: ask and score {run['ask_and_score_s']:6.1f} s, reports {run['reports_s']:4.1f} s "
              f"(per-turn latency p50 {run['p50_ms']} ms, p95 {run['p95_ms']} ms)")
    verdict = "within" if total <= args.target else "OVER"
    print(f"  total (open + first run + reports): {total:.1f} s, {verdict} the {args.target:.0f} s target "
          f"on {os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0 if total <= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
