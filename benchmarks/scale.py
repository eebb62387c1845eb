"""How ingest and asking scale: synthetic corpora of 1k, 10k (and 100k) passages built from our own documents.

    .venv/bin/python benchmarks/scale.py --passages 10000            # one tier (what `make bench-scale` runs)
    .venv/bin/python benchmarks/scale.py --passages 1000 10000       # several tiers, one table
    .venv/bin/python benchmarks/scale.py --passages 100000 --stand-in-vectors

Each corpus is made of the shipped documents' paragraphs, shuffled and perturbed (words dropped and swapped,
numbers changed), about 20 passages per document, so every document is new text of the same kind. Per tier:

- first ingest: passages/s, wall and CPU seconds, peak RSS of the ingesting process; disk of the data folder;
- then one long-lived service process, as the UI runs: warm ask p50/p95 over the evaluation questions, its
  RSS, adding one small document (the ingest call), the first question after that update, and a re-run of
  the whole ingest with nothing changed.

--stand-in-vectors replaces the passage and sentence embeddings with deterministic random unit vectors (queries
stay real), for a tier whose real embedding does not fit the time available: every other stage is real.
Writes benchmarks/results/scale.json (one entry per tier; a re-run replaces that tier's entry).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "scale.json"
PASSAGES_PER_DOCUMENT = 20

# Loaded into every child: stand-in vectors when asked for, a peak-RSS report and CPU time on the way out.
PRELUDE = r"""
import hashlib, json, os, resource, sys, time
import numpy as np
import assistant  # offline and telemetry settings first
if os.environ.get("SCALE_STAND_IN") == "1":
    from assistant.models import embeddings as _emb
    def _stand_in(texts, dim=384):
        out = np.empty((len(texts), dim), np.float32)
        for i, t in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "little")
            v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
            out[i] = v / np.linalg.norm(v)
        return out
    _emb.Embedder.embed_documents = lambda self, texts: _stand_in(texts)
    _emb.Embedder.embed_chunks = lambda self, passages, sentences: (_stand_in(passages), _stand_in([s for g in sentences for s in g]))
def cpu_now():
    t = os.times(); return t.user + t.system
def rss_mb():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024
def done(result):
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print("RESULT " + json.dumps(result), flush=True)
from pathlib import Path
from assistant.service import AssistantService
from assistant.settings import Settings
data_dir, corpus = Path(sys.argv[1]), Path(sys.argv[2])
"""

FIRST_INGEST = PRELUDE + r"""
started, cpu = time.perf_counter(), cpu_now()
service = AssistantService(Settings(data_dir=data_dir))
report = service.ingest([corpus])
seconds = time.perf_counter() - started
failed = report.failures
if failed:
    raise SystemExit(f"{len(failed)} files failed, e.g. {failed[0].source}: {failed[0].message}")
passages = sum(o.chunks for o in report.outcomes)
done({"passages": passages, "documents": len(report.outcomes), "seconds": round(seconds, 1), "cpu_seconds": round(cpu_now() - cpu, 1),
      "passages_per_s": round(passages / seconds, 1)})
"""

SERVICE = PRELUDE + r"""
questions, new_document = json.loads(sys.argv[3]), Path(sys.argv[4])
def pct(values, p):
    values = sorted(values); k = (len(values) - 1) * p / 100; f = int(k)
    return values[f] + (values[min(f + 1, len(values) - 1)] - values[f]) * (k - f)
service = AssistantService(Settings(data_dir=data_dir))
t = time.perf_counter(); service.index; open_seconds = time.perf_counter() - t
t = time.perf_counter(); service.ask(questions[0]); first_ask = time.perf_counter() - t
warm, retrieve = [], []
for q in questions[1:]:
    t = time.perf_counter(); a = service.ask(q); warm.append((time.perf_counter() - t) * 1000)
    retrieve.append(a.timings_ms.get("retrieve", float("nan")))
rss_serving = rss_mb()
t = time.perf_counter(); add = service.ingest([new_document]); add_seconds = time.perf_counter() - t
assert add.count("added") == 1, add.summary()
t = time.perf_counter(); answer = service.ask("What did the new ward's patient panel change about discharge letters?")
after_update = time.perf_counter() - t
t = time.perf_counter(); rerun = service.ingest([corpus, new_document]); rerun_seconds = time.perf_counter() - t
assert not any(o.status in ("added", "updated", "removed", "failed") for o in rerun.outcomes), rerun.summary()
done({"open_index_s": round(open_seconds, 2), "first_ask_s": round(first_ask, 2), "warm_asks": len(warm),
      "warm_ask_p50_ms": round(pct(warm, 50), 1), "warm_ask_p95_ms": round(pct(warm, 95), 1),
      "warm_retrieve_p50_ms": round(pct(retrieve, 50), 1), "warm_retrieve_p95_ms": round(pct(retrieve, 95), 1), "serving_rss_mb": round(rss_serving),
      "add_one_document_s": round(add_seconds, 2), "first_question_after_update_s": round(after_update, 2),
      "rerun_nothing_changed_s": round(rerun_seconds, 2),
      "new_document_retrieved": "scale-new-document" in repr(answer.citations) + repr(getattr(answer, "retrieved", ""))})
"""

NEW_DOCUMENT = """---
title: Discharge letters rewritten with the ward's patient panel
---

# Discharge letters rewritten with the ward's patient panel

The patient panel on the new ward read twenty discharge letters and marked every sentence they could not
follow. Staff and panel members then rewrote the letter template together over three meetings.

## What changed

The new discharge letters open with what the patient should do next, in plain words, before the clinical
summary. Medicines are listed in a table with the reason for each one. The panel asked for a named contact
and a telephone number on the first page, and the ward now includes both.

## How it was measured

Before and after the change, the ward asked patients whether they understood their letter. The share who
said yes rose over six months, and calls to the ward about letters fell.
"""


def paragraphs_of(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    if text.startswith("---"):
        end = text.find("\n---", 3)
        text = text[end + 4 :] if end > 0 else text
    return [p.strip() for p in re.split(r"\n\s*\n", text) if len(p.strip()) > 80 and not p.lstrip().startswith("#")]


def perturb(paragraph: str, rng: random.Random) -> str:
    words = paragraph.split(" ")
    for _ in range(max(1, len(words) // 25)):  # swap neighbours and drop a word now and then
        i = rng.randrange(len(words))
        if rng.random() < 0.5 and i + 1 < len(words):
            words[i], words[i + 1] = words[i + 1], words[i]
        elif len(words) > 8:
            del words[i]
    text = " ".join(words)
    return re.sub(r"\b\d+\b", lambda m: str(int(m.group(0)) + rng.randint(1, 9)), text)


def build_corpus(target: Path, passages: int, seed: int = 16) -> int:
    """Write documents of about PASSAGES_PER_DOCUMENT passages each until about `passages` are written."""
    rng = random.Random(seed)
    pool = [p for path in sorted((ROOT / "corpus").rglob("*.md")) for p in paragraphs_of(path)]
    headings = ["Background", "What we did", "What we found", "Working with patients", "Measuring change", "Lessons"]
    target.mkdir(parents=True, exist_ok=True)
    chars_per_passage = 650  # measured: about 20 passages per document on these paragraphs
    documents = max(1, round(passages / PASSAGES_PER_DOCUMENT))
    for n in range(documents):
        parts = [f"---\ntitle: Synthetic report {n:06d}\n---\n", f"# Synthetic report {n:06d}\n"]
        size = 0
        while size < PASSAGES_PER_DOCUMENT * chars_per_passage:
            if rng.random() < 0.2:
                parts.append(f"## {rng.choice(headings)} {rng.randint(1, 99)}\n")
            paragraph = perturb(rng.choice(pool), rng)
            parts.append(paragraph + "\n")
            size += len(paragraph)
        sub = target / f"part{n // 1000:03d}"
        sub.mkdir(exist_ok=True)
        (sub / f"report-{n:06d}.md").write_text("\n".join(parts), encoding="utf-8")
    return documents


def questions(limit: int) -> list[str]:
    from assistant.evaluation.suites import load_suites, suite_paths, turns_of  # noqa: PLC0415

    cases = load_suites(suite_paths(["review", "practice"], ROOT / "evals"))
    return [t.question for c in cases for t in turns_of(c)][:limit]


def child_env(stand_in: bool) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", ANONYMIZED_TELEMETRY="False", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH", "")) if p)
    env.pop("ASSISTANT_DATA_DIR", None)
    env["SCALE_STAND_IN"] = "1" if stand_in else "0"
    return env


def run_child(code: str, args: list[str], stand_in: bool) -> dict:
    result = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=child_env(stand_in), capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"benchmark step failed ({result.returncode}):\n{result.stderr[-4000:]}")
    line = next(l for l in result.stdout.splitlines() if l.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def disk_mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink()) / 1e6, 1)


def run_tier(passages: int, stand_in: bool, asks: int, keep: Path | None) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"scale-{passages}-", dir=keep))
    try:
        corpus, data_dir, extra = work / "corpus", work / "data", work / "new"
        t = time.perf_counter()
        documents = build_corpus(corpus, passages)
        built = time.perf_counter() - t
        extra.mkdir()
        (extra / "scale-new-document.md").write_text(NEW_DOCUMENT, encoding="utf-8")
        print(f"[{passages}] {documents} documents written in {built:.1f} s; first ingest...", file=sys.stderr, flush=True)
        first = run_child(FIRST_INGEST, [str(data_dir), str(corpus)], stand_in)
        print(f"[{passages}] first ingest: {first}", file=sys.stderr, flush=True)
        disk = disk_mb(data_dir)
        serving = run_child(SERVICE, [str(data_dir), str(corpus), json.dumps(questions(asks + 1)), str(extra / "scale-new-document.md")], stand_in)
        print(f"[{passages}] service: {serving}", file=sys.stderr, flush=True)
        return {
            "target_passages": passages,
            "stand_in_vectors": stand_in,
            "first_ingest": first,
            "disk_mb": disk,
            "service": serving,
            "load_average": [round(x, 1) for x in os.getloadavg()],
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)


def table(tiers: list[dict]) -> str:
    def col(t):
        f, s = t["first_ingest"], t["service"]
        return [
            f"{f['passages']:,}" + (" (stand-in vectors)" if t["stand_in_vectors"] else ""),
            f"{f['seconds']:.0f} s ({f['passages_per_s']:.1f} passages/s, {f['cpu_seconds']:.0f} CPU-s)",
            f"{f['peak_rss_mb']:,} MB",
            f"{t['disk_mb']:,} MB",
            f"{s['warm_ask_p50_ms']:.0f} / {s['warm_ask_p95_ms']:.0f} ms",
            f"{s.get('warm_retrieve_p50_ms', float('nan')):.0f} / {s.get('warm_retrieve_p95_ms', float('nan')):.0f} ms",
            f"{s['serving_rss_mb']:,} MB",
            f"{s['add_one_document_s']:.2f} s",
            f"{s['rerun_nothing_changed_s']:.2f} s",
            f"{s['first_question_after_update_s']:.2f} s",
            f"{s['open_index_s']:.2f} s",
        ]

    rows = ["passages", "first ingest", "peak RSS, ingest", "disk", "warm ask p50 / p95", "of which retrieval p50 / p95", "service RSS", "add one document",
            "re-run, nothing changed", "first question after the update", "open the index (cold)"]
    cols = [col(t) for t in tiers]
    lines = ["| | " + " | ".join(f"{t['target_passages']:,}" for t in tiers) + " |", "|---|" + "---|" * len(tiers)]
    lines += [f"| {name} | " + " | ".join(c[i] for c in cols) + " |" for i, name in enumerate(rows)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, nargs="+", default=[10000], help="tiers (default: 10000)")
    parser.add_argument("--stand-in-vectors", action="store_true", help="random unit vectors instead of the embedding model (say so)")
    parser.add_argument("--asks", type=int, default=40, help="warm questions per tier (default 40)")
    parser.add_argument("--keep", type=Path, help="build the corpora under this folder and keep them")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    tiers = [run_tier(n, args.stand_in_vectors, args.asks, args.keep) for n in args.passages]
    previous = json.loads(args.out.read_text(encoding="utf-8")) if args.out.exists() else {}
    for tier in tiers:
        previous[f"{tier['target_passages']}{'-stand-in' if tier['stand_in_vectors'] else ''}"] = tier
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(previous, indent=1) + "\n", encoding="utf-8")
    print(table(tiers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
