"""Ingest speed of the assistant against a plain LangChain pipeline on the same files, side by side in one run.

Baseline: every file read as text, RecursiveCharacterTextSplitter(1000, 200), HuggingFaceEmbeddings (the same
MiniLM model the assistant uses, found the same way) and Chroma.from_documents into a temporary folder.
Ours: the assistant's ingest of the same files into a temporary data folder (loading, splitting, themes,
references, passage and sentence vectors, Chroma, keyword index).

Each run is a fresh process, so model loading is counted on both sides (imports are not: they are the
same libraries). Runs alternate (LangChain, ours, LangChain, ours, ...) so a busy machine slows both alike;
the ratio of the medians and each pair's own ratio are reported, with CPU seconds, which swing less.

    .venv/bin/python benchmarks/ingest_vs_langchain.py [--runs 3] [--corpus corpus] [--json]

Writes benchmarks/results/ingest_vs_langchain.json.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Both children print one JSON line: passages, wall seconds and CPU seconds of the timed part, peak RSS.
COMMON = r"""
import json, os, resource, sys, time
import assistant  # offline and telemetry settings first
def finish(passages, wall, cpu):
    print("RESULT " + json.dumps({"passages": passages, "seconds": wall, "cpu_seconds": cpu,
          "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
def cpu_now():
    t = os.times(); return t.user + t.system
"""

LANGCHAIN = COMMON + r"""
from pathlib import Path
from langchain_chroma import Chroma
from langchain_core.documents import Document
from langchain_huggingface import HuggingFaceEmbeddings
from langchain_text_splitters import RecursiveCharacterTextSplitter
from assistant.settings import Settings
files, target = [Path(p) for p in json.loads(sys.argv[1])], sys.argv[2]
model_path = Settings().resolved_embedding_model()  # the packaged MiniLM, as models/embeddings.py gets it
started, cpu = time.perf_counter(), cpu_now()
docs = [Document(page_content=f.read_text(encoding="utf-8"), metadata={"source": str(f)}) for f in files]
chunks = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200).split_documents(docs)
embeddings = HuggingFaceEmbeddings(model_name=model_path, model_kwargs={"device": "cpu"}, encode_kwargs={"normalize_embeddings": True})
Chroma.from_documents(chunks, embeddings, persist_directory=target, collection_metadata={"hnsw:space": "cosine"})
finish(len(chunks), time.perf_counter() - started, cpu_now() - cpu)
"""

OURS = COMMON + r"""
from pathlib import Path
from assistant.service import AssistantService
from assistant.settings import Settings
files, target = [Path(p) for p in json.loads(sys.argv[1])], sys.argv[2]
started, cpu = time.perf_counter(), cpu_now()
service = AssistantService(Settings(data_dir=Path(target)))
report = service.ingest(files)
if report.failures:
    raise SystemExit(f"ingest failed: {[(o.source, o.message) for o in report.failures]}")
finish(sum(o.chunks for o in report.outcomes), time.perf_counter() - started, cpu_now() - cpu)
"""


def child_env() -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", ANONYMIZED_TELEMETRY="False", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH", "")) if p)
    env.pop("ASSISTANT_DATA_DIR", None)
    return env


def run_one(code: str, files: list[Path]) -> dict:
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as tmp:
        result = subprocess.run(
            [sys.executable, "-c", code, json.dumps([str(f) for f in files]), tmp], cwd=ROOT, env=child_env(), capture_output=True, text=True
        )
        if result.returncode != 0:
            raise SystemExit(f"benchmark child failed ({result.returncode}):\n{result.stderr[-3000:]}")
        line = next(l for l in result.stdout.splitlines() if l.startswith("RESULT "))
        data = json.loads(line[len("RESULT ") :])
        data["disk_mb"] = round(sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file()) / 1e6, 1)
    data["passages_per_s"] = data["passages"] / data["seconds"]
    return data


def corpus_files(corpus: Path) -> list[Path]:
    return sorted(p for p in corpus.rglob("*") if p.is_file() and p.suffix.lower() in {".md", ".txt"} and not any(s.startswith(".") for s in p.parts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="pairs of runs (default 3)")
    parser.add_argument("--corpus", type=Path, default=ROOT / "corpus", help="folder of .md/.txt files (default: the shipped corpus)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ingest_vs_langchain.json")
    args = parser.parse_args(argv)
    files = corpus_files(args.corpus.resolve())
    if not files:
        raise SystemExit(f"no .md or .txt files under {args.corpus}")
    pairs = []
    for n in range(args.runs):
        langchain = run_one(LANGCHAIN, files)
        ours = run_one(OURS, files)
        pairs.append({"langchain": langchain, "ours": ours, "ratio": ours["passages_per_s"] / langchain["passages_per_s"]})
        print(
            f"pair {n + 1}: LangChain {langchain['passages']} passages in {langchain['seconds']:.1f} s ({langchain['passages_per_s']:.1f}/s, "
            f"{langchain['cpu_seconds']:.1f} CPU-s); ours {ours['passages']} in {ours['seconds']:.1f} s ({ours['passages_per_s']:.1f}/s, "
            f"{ours['cpu_seconds']:.1f} CPU-s); ratio {pairs[-1]['ratio']:.2f}",
            file=sys.stderr,
            flush=True,
        )

    def median(side: str, key: str) -> float:
        return statistics.median(p[side][key] for p in pairs)

    def cpu_rate(side: str) -> float:
        return statistics.median(p[side]["passages"] / p[side]["cpu_seconds"] for p in pairs)

    summary = {
        "files": len(files),
        "corpus": str(args.corpus),
        "runs": args.runs,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_average": os.getloadavg()},
        "langchain": {k: round(median("langchain", k), 2) for k in ("passages", "seconds", "cpu_seconds", "passages_per_s", "peak_rss_mb", "disk_mb")},
        "ours": {k: round(median("ours", k), 2) for k in ("passages", "seconds", "cpu_seconds", "passages_per_s", "peak_rss_mb", "disk_mb")},
        "ratio_of_medians": round(median("ours", "passages_per_s") / median("langchain", "passages_per_s"), 2),
        "pair_ratios": [round(p["ratio"], 2) for p in pairs],
        "cpu_ratio": round(cpu_rate("ours") / cpu_rate("langchain"), 2),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "pairs": pairs}, indent=1) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(f"{len(files)} files, {args.runs} pairs of runs (median), load average {summary['machine']['load_average'][0]:.1f}")
        print(f"| pipeline | passages | seconds | passages/s | CPU-s | passages per CPU-s | peak RSS MB | disk MB |")
        print("|---|---|---|---|---|---|---|---|")
        for side, label in (("langchain", "LangChain (splitter + HuggingFaceEmbeddings + Chroma)"), ("ours", "assistant ingest")):
            s = summary[side]
            print(f"| {label} | {s['passages']:.0f} | {s['seconds']:.1f} | {s['passages_per_s']:.1f} | {s['cpu_seconds']:.1f} | "
                  f"{cpu_rate(side):.1f} | {s['peak_rss_mb']:.0f} | {s['disk_mb']:.1f} |")
        print(f"ratio (ours / LangChain, passages/s): {summary['ratio_of_medians']:.2f} (pairs: {', '.join(f'{r:.2f}' for r in summary['pair_ratios'])}); "
              f"per CPU-second: {summary['cpu_ratio']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
