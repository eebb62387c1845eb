"""Cross-encoder benchmark: load time and scoring latency p50/p95 (8 passages, 24 sentences), 1 against 2 threads.

    .venv/bin/python benchmarks/cross_encoder.py [--runs 15] [--threads 1 2] [--batch-sizes 16]

Each configuration runs in a fresh subprocess, so the load time includes importing onnxruntime and
tokenizers as a first question meets them. Texts are real review passages (about 170 tokens each with
the question) and sentences; each run scores one question against them. Needs `make cross-encoder`.
Results are printed as a Markdown table and written to benchmarks/results/cross_encoder.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REVIEW = ROOT / "corpus" / "review" / "co-production-and-quality-improvement-2020.md"
QUESTIONS = [
    "How do we stop consultants dominating our co-design workshops?",
    "What makes co-production successful?",
    "How do we recruit people from seldom-heard groups?",
    "How do I measure whether our co-production actually improved care?",
    "What are the stages of experience-based co-design?",
]
PASSAGE_TOKENS = 160


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def _texts(tokenizer) -> tuple[list[str], list[str]]:
    """24 prose sentences and 8 passages of about PASSAGE_TOKENS tokens (question included), from the review."""
    from assistant.sentences import split_sentences

    body = REVIEW.read_text(encoding="utf-8").split("\n---\n", 1)[-1]
    paragraphs = [p for p in body.split("\n\n") if p.strip() and not p.lstrip().startswith(("#", "-", "|", ">"))]
    sentences = [s for p in paragraphs for s in split_sentences(p) if len(s.split()) >= 8]
    question_tokens = len(tokenizer.encode(QUESTIONS[0]).ids)
    passages, current = [], []
    for sentence in sentences[40:]:
        current.append(sentence)
        if question_tokens + len(tokenizer.encode(" ".join(current)).ids) >= PASSAGE_TOKENS:
            passages.append(" ".join(current))
            current = []
        if len(passages) == 8:
            break
    return sentences[:24], passages


def worker(model_dir: Path, threads: int, batch_size: int, runs: int) -> dict:
    started = time.perf_counter()
    from assistant.cross_encoder import CrossEncoder

    scorer = CrossEncoder(model_dir, threads=threads, batch_size=batch_size)
    load_s = time.perf_counter() - started
    sentences, passages = _texts(scorer._tokenizer)
    tokens = [len(scorer._tokenizer.encode(QUESTIONS[0], p).ids) for p in passages]
    scorer.score(QUESTIONS[0], sentences[:2])  # the first run allocates; a warm process is what users meet
    result = {"threads": threads, "batch_size": batch_size, "load_s": round(load_s, 3),
              "passage_tokens_mean": round(sum(tokens) / len(tokens)), "runs": runs}
    for name, texts in (("passages8", passages), ("sentences24", sentences)):
        times = []
        for i in range(runs):
            t = time.perf_counter()
            scorer.score(QUESTIONS[i % len(QUESTIONS)], texts)
            times.append((time.perf_counter() - t) * 1000)
        result[f"{name}_p50_ms"] = round(_percentile(times, 50), 1)
        result[f"{name}_p95_ms"] = round(_percentile(times, 95), 1)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--model-dir", type=Path, help="default: the configured or fetched model")
    parser.add_argument("--worker", nargs=3, type=int, metavar=("THREADS", "BATCH", "RUNS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.model_dir is None:
        from assistant.cross_encoder import resolve_model_dir, verify_model_dir
        from assistant.settings import get_settings

        args.model_dir = resolve_model_dir(get_settings())
        verify_model_dir(args.model_dir)
    if args.worker:
        print(json.dumps(worker(args.model_dir, *args.worker)))
        return 0
    rows = []
    for threads in args.threads:
        for batch_size in args.batch_sizes:
            cmd = [sys.executable, __file__, "--model-dir", str(args.model_dir),
                   "--worker", str(threads), str(batch_size), str(args.runs)]
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=dict(os.environ), check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"cross-encoder ({args.model_dir.name}), {os.cpu_count()} cores, load avg {os.getloadavg()[0]:.2f}, "
          f"{args.runs} runs each; passages average {rows[0]['passage_tokens_mean']} tokens with the question\n")
    print("| threads | batch | load s | 8 passages p50 / p95 ms | 24 sentences p50 / p95 ms |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['threads']} | {r['batch_size']} | {r['load_s']:.2f} | {r['passages8_p50_ms']:.0f} / "
              f"{r['passages8_p95_ms']:.0f} | {r['sentences24_p50_ms']:.0f} / {r['sentences24_p95_ms']:.0f} |")
    out_dir = ROOT / "benchmarks" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "cross_encoder.json").write_text(json.dumps(
        {"machine": platform.platform(), "cores": os.cpu_count(), "load_avg": os.getloadavg()[0], "rows": rows},
        indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
