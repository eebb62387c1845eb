"""Core benchmarks: index build time, ask latency p50/p95, CLI cold start and peak memory.

    .venv/bin/python benchmarks/core.py [--runs 3]

Each measurement runs in a fresh subprocess so imports, model loading and memory are counted
the way a user meets them. Results are printed as a Markdown table and written to
benchmarks/results/core.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LATENCY_SCRIPT = r"""
import json, sys, time
from pathlib import Path
from assistant.service import AssistantService
from assistant.evaluation.suites import load_suites, suite_paths, turns_of
from assistant.evaluation import metrics
svc = AssistantService()
questions = [t.question for c in load_suites(suite_paths(["review", "out_of_scope"], Path("evals"))) for t in turns_of(c)]
svc.ask("warm up the model and index")
retrieve, answer, total = [], [], []
for q in questions:
    a = svc.ask(q)
    retrieve.append(a.timings_ms["retrieve"]); answer.append(a.timings_ms["answer"]); total.append(a.timings_ms["total"])
print(json.dumps({"questions": len(questions), **{f"{name}_p{p}_ms": round(metrics.percentile(v, p), 1)
      for name, v in (("retrieve", retrieve), ("answer", answer), ("total", total)) for p in (50, 95)}}))
"""


# Runs a module or code in-process and records that process's own peak RSS on the way out.
PEAK_WRAPPER = r"""
import atexit, os, resource, runpy, sys
atexit.register(lambda: open(os.environ["BENCH_PEAK_FILE"], "w").write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)))
if sys.argv[1] == "-c":
    code = sys.argv[2]; sys.argv = ["-c"]; exec(compile(code, "<bench>", "exec"), {"__name__": "__main__"})
else:
    sys.argv = sys.argv[2:]; runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


def run(args: list[str], env: dict) -> tuple[float, float, subprocess.CompletedProcess]:
    """Wall seconds, peak RSS in MB of that one child, and the result. args: ["-m", module, ...] or ["-c", code]."""
    with tempfile.NamedTemporaryFile(suffix=".peak") as peak_file:
        env = dict(env, BENCH_PEAK_FILE=peak_file.name)
        command = [sys.executable, "-c", PEAK_WRAPPER, *(args if args[0] == "-c" else ["-m", *args[1:]])]
        started = time.perf_counter()
        result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        peak_kb = int(Path(peak_file.name).read_text() or 0)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)[:200]} failed:\n{result.stderr[-2000:]}")
    return seconds, peak_kb / 1024, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"}
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, ASSISTANT_DATA_DIR=str(Path(tmp) / "data"))
        seconds, peak, _ = run(["-m", "assistant", "ingest"], env)
        results["index_build_s"] = round(seconds, 1)
        results["index_build_peak_mb"] = round(peak)
        seconds, _, _ = run(["-m", "assistant", "ingest"], env)
        results["reindex_unchanged_s"] = round(seconds, 1)

        cold = []
        for _ in range(args.runs):
            seconds, peak, _ = run(["-m", "assistant", "ask", "--json", "How do we involve patients early?"], env)
            cold.append(seconds)
        results["cold_ask_median_s"] = round(statistics.median(cold), 2)
        results["ask_peak_mb"] = round(peak)

        _, peak, latency = run(["-c", LATENCY_SCRIPT], env)
        results.update(json.loads(latency.stdout.strip().splitlines()[-1]))
        results["service_peak_mb"] = round(peak)

    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "core.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print("| measure | value |\n|---|---|")
    for key, value in results.items():
        print(f"| {key} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
