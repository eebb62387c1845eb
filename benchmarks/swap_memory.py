"""Memory and disk per index swap: one long-lived service (as the UI holds it) over 20 re-ingests.

    .venv/bin/python benchmarks/swap_memory.py [--swaps 20]

Each swap changes one small document, ingests (a new generation becomes current) and asks a
question, so the service opens the new generation and lets the old one go. The resident memory
after each swap (after garbage collection), the Chroma systems still cached and the generation
folders left on disk are printed; the growth per swap is the least-squares slope over swaps 6..N
(the first few include one-off warm-up allocations).
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def slope(values: list[float]) -> float:
    n = len(values)
    if n < 2:
        return 0.0
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    num = sum((x - mean_x) * (y - mean_y) for x, y in enumerate(values))
    den = sum((x - mean_x) ** 2 for x in range(n))
    return num / den


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--swaps", type=int, default=20)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "swap_memory.json"))
    args = parser.parse_args()

    import assistant  # noqa: F401  (offline variables first)
    from assistant.service import AssistantService
    from assistant.settings import Settings

    work = Path(tempfile.mkdtemp(prefix="swap-bench-"))
    corpus = work / "corpus"
    shutil.copytree(ROOT / "corpus" / "notes", corpus)
    service = AssistantService(Settings(data_dir=work / "data", corpus_dir=corpus))
    started = time.perf_counter()
    service.ingest()
    service.ask("How do we pay patient partners?")
    print(f"initial index built in {time.perf_counter() - started:.1f} s", file=sys.stderr)

    try:
        from chromadb.api.shared_system_client import SharedSystemClient
    except ImportError:  # pragma: no cover
        SharedSystemClient = None

    rows = []
    for n in range(1, args.swaps + 1):
        (corpus / "changing.md").write_text(
            f"---\ntitle: Changing note {n}\n---\n## Round {n}\n\nRound {n}: agree ground rules with patient partners before the workshop.\n",
            encoding="utf-8",
        )
        t0 = time.perf_counter()
        service.ingest()
        service.ask("How should ground rules be agreed with patient partners?")
        gc.collect()
        rows.append(
            {
                "swap": n,
                "seconds": round(time.perf_counter() - t0, 2),
                "rss_mb": round(rss_mb(), 1),
                "chroma_systems": len(SharedSystemClient._identifier_to_system) if SharedSystemClient else None,
                "generations_on_disk": len(list(service.store.index_dir.glob("gen-*"))),
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr)

    tail = [r["rss_mb"] for r in rows[5:]]
    result = {
        "swaps": args.swaps,
        "rss_first_mb": rows[0]["rss_mb"],
        "rss_last_mb": rows[-1]["rss_mb"],
        "growth_per_swap_mb": round(slope(tail), 2),
        "chroma_systems_at_end": rows[-1]["chroma_systems"],
        "generations_on_disk_at_end": rows[-1]["generations_on_disk"],
        "seconds_per_swap_median": sorted(r["seconds"] for r in rows)[len(rows) // 2],
        "rows": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print("| measure | value |\n|---|---|")
    for key in ("swaps", "rss_first_mb", "rss_last_mb", "growth_per_swap_mb", "chroma_systems_at_end", "generations_on_disk_at_end", "seconds_per_swap_median"):
        print(f"| {key} | {result[key]} |")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
