"""Cold `assistant ask`: wall and CPU seconds of a fresh process answering one question, ONNX query path against torch.

    .venv/bin/python benchmarks/cold_ask.py [--runs 5] [--data-dir DIR] [--src OTHER/src]

Each run is a new interpreter (`python -m assistant ask QUESTION`) over an existing index (ingest
first; the data folder defaults to the data_dir setting). Modes run interleaved so a change in the
machine's load hits both alike:
  onnx   the verified ONNX query encoder (make query-encoder);
  torch  the same code with the ONNX encoder hidden, so queries load sentence-transformers.
--src times another checkout's src/ (e.g. `git archive <commit> src | tar -x -C /tmp/base`) as a
third mode, "src", for a before/after on one machine. CPU seconds (user+sys of the child) are steadier
than wall time on a shared machine; the load average is printed with each result. Writes
benchmarks/results/cold_ask.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUESTION = "How can staff and patients share power in a quality improvement project?"
HEAVY = ("torch", "transformers", "sentence_transformers", "langchain_chroma", "langchain_huggingface", "sklearn", "pandas")

# Runs the CLI in-process and reports which heavy modules it ended up importing.
ASK = r"""
import json, os, sys
if os.environ.get("BENCH_HIDE_ONNX"):
    import assistant.models.query_encoder as q
    q.resolve_dir = lambda settings: settings.data_dir / "models" / "no-query-encoder"
from assistant.faces.cli import main
sys.argv = ["assistant", "ask", sys.argv[1]]
code = main()
sys.stdout.flush()
print("BENCH " + json.dumps({"exit": code, "heavy": [m for m in %r if m in sys.modules]}), file=sys.stderr)
""" % (HEAVY,)


def one_run(mode: str, env: dict, src: str | None) -> dict:
    env = dict(env)
    if mode == "torch":
        env["BENCH_HIDE_ONNX"] = "1"
    if mode == "src":
        env["PYTHONPATH"] = src
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", ASK, QUESTION], env=env, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    info = {"exit": result.returncode, "heavy": None}
    for line in result.stderr.splitlines():
        if line.startswith("BENCH "):
            info = json.loads(line[6:])
    if result.returncode != 0:
        raise SystemExit(f"{mode}: ask failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return {
        "wall_s": wall,
        "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "load1": os.getloadavg()[0],
        "heavy_modules": info["heavy"],
        "answer_head": result.stdout[:120],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--data-dir", type=Path, help="data folder holding the index (default: the data_dir setting)")
    parser.add_argument("--src", help="another checkout's src/ folder, timed as mode 'src'")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "cold_ask.json")
    args = parser.parse_args()
    env = dict(os.environ, HF_HUB_OFFLINE="1", ORT_DISABLE_TELEMETRY="1", ANONYMIZED_TELEMETRY="False", TOKENIZERS_PARALLELISM="false")
    if args.data_dir:
        env["ASSISTANT_DATA_DIR"] = str(args.data_dir)
    modes = ["onnx", "torch"] + (["src"] if args.src else [])
    runs: dict[str, list[dict]] = {m: [] for m in modes}
    one_run("onnx", env, args.src)  # warms the page cache for the model files and index, counted in no mode
    for _ in range(args.runs):
        for mode in modes:
            runs[mode].append(one_run(mode, env, args.src))
    summary = {}
    print(f"Cold `assistant ask`, {args.runs} runs per mode, interleaved ({os.cpu_count()} cores)")
    print("| mode | wall median s | wall min s | CPU median s (user+sys) | load 1-min (median) | heavy modules imported |")
    print("|---|---|---|---|---|---|")
    for mode in modes:
        rows = runs[mode]
        summary[mode] = {
            "wall_median_s": round(statistics.median(r["wall_s"] for r in rows), 2),
            "wall_min_s": round(min(r["wall_s"] for r in rows), 2),
            "cpu_median_s": round(statistics.median(r["cpu_s"] for r in rows), 2),
            "load1_median": round(statistics.median(r["load1"] for r in rows), 1),
            "heavy_modules": rows[-1]["heavy_modules"],
        }
        s = summary[mode]
        heavy = ", ".join(s["heavy_modules"]) if s["heavy_modules"] else "none"
        print(f"| {mode} | {s['wall_median_s']} | {s['wall_min_s']} | {s['cpu_median_s']} | {s['load1_median']} | {heavy} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"question": QUESTION, "runs": args.runs, "summary": summary, "raw": runs,
                                    "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=1), encoding="utf-8")
    print(f"\nwritten {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
