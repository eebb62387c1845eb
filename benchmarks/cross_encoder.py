"""Cross-encoder benchmark: load time and scoring latency p50/p95 (8 passages, 24 sentences), 1 against 2 threads.

    .venv/bin/python benchmarks/cross_encoder.py [--runs 20] [--threads 1 2] [--batch-sizes 1 16]

Load time is measured in fresh subprocesses, so it includes importing onnxruntime and tokenizers as a
first question meets them; latencies interleave every configuration in one process, so a busy machine
slows each alike. Texts are real review passages (about 170 tokens each with
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
    from assistant.text import split_sentences

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


def load_worker(model_dir: Path, threads: int) -> dict:
    """In a fresh process: import, verify (stat checks against the sidecar) and build the session."""
    started = time.perf_counter()
    from assistant.models.cross_encoder import CrossEncoder, verify_model_dir

    imported = time.perf_counter()
    verify_model_dir(model_dir)
    verified = time.perf_counter()
    CrossEncoder(model_dir, threads=threads)
    done = time.perf_counter()
    return {"threads": threads, "load_s": round(done - started, 3), "import_ms": round((imported - started) * 1000, 1),
            "verify_ms": round((verified - imported) * 1000, 1), "session_ms": round((done - verified) * 1000, 1)}


def latency(model_dir: Path, threads: list[int], batch_sizes: list[int], runs: int) -> list[dict]:
    """Every configuration in one process, timed in turn within each run, so a busy machine slows all alike."""
    from assistant.models.cross_encoder import CrossEncoder

    scorers = {(t, b): CrossEncoder(model_dir, threads=t, batch_size=b) for t in threads for b in batch_sizes}
    tokenizer = next(iter(scorers.values()))._tokenizer
    sentences, passages = _texts(tokenizer)
    tokens = [len(tokenizer.encode(QUESTIONS[0], p).ids) for p in passages]
    times: dict[tuple, list[float]] = {}
    for scorer in scorers.values():
        scorer.score(QUESTIONS[0], sentences[:2])  # the first run allocates; a warm process is what users meet
    for i in range(runs):
        question = QUESTIONS[i % len(QUESTIONS)]
        for key, scorer in scorers.items():
            for name, texts in (("passages8", passages), ("sentences24", sentences)):
                t = time.perf_counter()
                scorer.score(question, texts)
                times.setdefault((*key, name), []).append((time.perf_counter() - t) * 1000)
    rows = []
    for t, b in scorers:
        row = {"threads": t, "batch_size": b, "passage_tokens_mean": round(sum(tokens) / len(tokens)), "runs": runs}
        for name in ("passages8", "sentences24"):
            row[f"{name}_p50_ms"] = round(_percentile(times[(t, b, name)], 50), 1)
            row[f"{name}_p95_ms"] = round(_percentile(times[(t, b, name)], 95), 1)
        rows.append(row)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--model-dir", type=Path, help="default: the configured or fetched model")
    parser.add_argument("--load-worker", type=int, metavar="THREADS", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.model_dir is None:
        from assistant.models.cross_encoder import resolve_model_dir, verify_model_dir
        from assistant.settings import get_settings

        args.model_dir = resolve_model_dir(get_settings())
        verify_model_dir(args.model_dir)
    if args.load_worker:
        print(json.dumps(load_worker(args.model_dir, args.load_worker)))
        return 0
    loads = []
    for threads in args.threads:
        samples = []
        for _ in range(3):
            cmd = [sys.executable, __file__, "--model-dir", str(args.model_dir), "--load-worker", str(threads)]
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=dict(os.environ), check=True)
            samples.append(json.loads(out.stdout.strip().splitlines()[-1]))
        loads.append(sorted(samples, key=lambda r: r["load_s"])[1])  # the median of 3 fresh processes
    rows = latency(args.model_dir, args.threads, args.batch_sizes, args.runs)
    print(f"cross-encoder ({args.model_dir.name}), {os.cpu_count()} cores, load avg {os.getloadavg()[0]:.2f}, "
          f"{args.runs} runs each; passages average {rows[0]['passage_tokens_mean']} tokens with the question\n")
    print("| threads | load s (import / verify / session ms), median of 3 fresh processes |")
    print("|---|---|")
    for r in loads:
        print(f"| {r['threads']} | {r['load_s']:.2f} ({r['import_ms']:.0f} / {r['verify_ms']:.1f} / {r['session_ms']:.0f}) |")
    print("\n| threads | batch | 8 passages p50 / p95 ms | 24 sentences p50 / p95 ms |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['threads']} | {r['batch_size']} | {r['passages8_p50_ms']:.0f} / {r['passages8_p95_ms']:.0f} | "
              f"{r['sentences24_p50_ms']:.0f} / {r['sentences24_p95_ms']:.0f} |")
    out_dir = ROOT / "benchmarks" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "cross_encoder.json").write_text(json.dumps(
        {"machine": platform.platform(), "cores": os.cpu_count(), "load_avg": os.getloadavg()[0], "loads": loads,
         "rows": rows}, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
