"""Cost of an update to the index: add one small document, re-run with nothing changed, the first question after it,
and what deriving the reader tables (BM25, sentence tables) costs as the library grows.

    python benchmarks/store_update.py [--copies 40] [--chroma-url http://127.0.0.1:8000]

Works on a copy of the shipped corpus in a temporary folder (never the project's data/). The table part
replicates the shipped corpus's records `--copies` times (no embedding) to time write + load at that size.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

NOTE = "---\ntitle: Tea\n---\n## Refreshments\n\nOffer tea and biscuits at every co-design meeting so patient partners feel welcome.\n"


def timed(fn):
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def main(argv=None) -> int:
    import assistant  # noqa: F401  (offline and telemetry settings first)
    from assistant.index.loaded import LoadedIndex
    from assistant.service import AssistantService
    from assistant.settings import PROJECT_ROOT, Settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=40, help="replicate the shipped records this many times for the table timings")
    parser.add_argument("--chroma-url", default="", help="a `chroma run` server (default: embedded)")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="store-update-"))
    try:
        corpus = work / "corpus"
        shutil.copytree(PROJECT_ROOT / "corpus", corpus)
        settings = Settings(data_dir=work / "data", corpus_dir=corpus, chroma_url=args.chroma_url)
        service = AssistantService(settings)
        out: dict[str, object] = {"mode": "server" if args.chroma_url else "embedded"}
        out["first_ingest_s"], report = timed(service.ingest)
        service.ask("How do we pay patient partners?")
        out["warm_ask_s"], _ = timed(lambda: service.ask("How do we pay patient partners?"))
        out["passages"] = len(service.index.chunks)
        (corpus / "notes" / "zz-tea.md").write_text(NOTE, encoding="utf-8")
        out["add_one_document_s"], report = timed(service.ingest)
        out["add_one_summary"] = report.summary()
        fresh = AssistantService(settings)  # a process that has loaded nothing yet
        other = AssistantService(settings)  # another process that was answering before the update (a UI replica)
        other.ask("How do we pay patient partners?")
        out["first_question_after_update_same_service_s"], _ = timed(lambda: service.ask("Should we offer tea and biscuits at co-design meetings?"))
        out["first_question_after_update_other_service_s"], answer = timed(lambda: other.ask("Should we offer tea and biscuits at co-design meetings?"))
        out["first_question_fresh_service_s"], _ = timed(lambda: fresh.ask("Should we offer tea and biscuits at co-design meetings?"))
        out["new_document_cited"] = any(p.chunk.source.endswith("zz-tea.md") for p in answer.passages)
        out["rerun_nothing_changed_s"], report = timed(service.ingest)
        out["rerun_summary"] = report.summary()

        # Derived tables at a larger size: the shipped records replicated (distinct sources and chunk ids).
        store = service.store
        manifest = json.loads((store.tables_for(store.current_stamp()) / "manifest.json").read_text(encoding="utf-8"))
        tea = [(key, store.cache.get(key)) for source, key in manifest["keys"].items() if source.endswith("zz-tea.md")]
        base = [(key, store.cache.get(key)) for source, key in manifest["keys"].items() if not source.endswith("zz-tea.md")]
        keyed = []
        for copy in range(args.copies):
            for key, record in base:
                source = f"copy-{copy}/{record.manifest_entry['source']}"
                chunks = [replace(c, chunk_id=f"{copy}-{c.chunk_id}", source=source) for c in record.chunks]
                sentences = [(f"{copy}-{cid}", text) for cid, text in record.sentences]
                entry = {**record.manifest_entry, "source": source}
                keyed.append((f"{copy}-{key}", replace(record, manifest_entry=entry, chunks=chunks, sentences=sentences)))
        passages = sum(len(r.chunks) for _, r in keyed)
        out["tables_passages"] = passages
        out["tables_sentences"] = sum(len(r.sentences) for _, r in keyed)
        keyed.sort(key=lambda pair: pair[1].manifest_entry["source"])
        out["tables_first_write_s"], before = timed(lambda: store.write_tables(keyed, {"format": 2}, f"bench-{passages}-a"))  # derives every document
        old_index = LoadedIndex(before)
        added = sorted(keyed + tea, key=lambda pair: pair[1].manifest_entry["source"])  # one small document added
        out["tables_write_s"], path = timed(lambda: store.write_tables(added, {"format": 2}, f"bench-{passages}-b"))  # as after an update
        out["tables_load_s"], index = timed(lambda: LoadedIndex(path))
        out["tables_update_loaded_index_s"], updated = timed(lambda: LoadedIndex.updated(old_index, path, store.cache))
        assert updated is not None and len(updated.chunks) == len(index.chunks)
        out["tables_disk_mb"] = round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6, 1)
        for key in [k for k in out if k.endswith("_s")]:
            out[key] = round(out[key], 3)
        print(json.dumps(out, indent=1))
        del index, old_index, updated
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
