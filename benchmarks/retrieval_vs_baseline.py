"""Retrieval quality of the assistant against a plain LangChain tutorial pipeline, on the same questions.

Baseline: the corpus split into 1000-character chunks with 200 overlap (RecursiveCharacterTextSplitter),
embedded with the same MiniLM model into an in-memory Chroma, dense similarity only, top 8.
Both are scored with the evaluation metrics on every answerable turn of the chosen suites.

    .venv/bin/python benchmarks/retrieval_vs_baseline.py [--suites review adversarial] [--review-only]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import assistant  # noqa: F401  (offline settings first)
from assistant.retrieval.conversation import standalone_query
from assistant.evaluation import metrics
from assistant.evaluation.suites import load_suites, suite_paths, turns_of
from assistant.ingest.loaders import split_front_matter
from assistant.retrieval.retriever import Filters
from assistant.service import AssistantService
from assistant.settings import PROJECT_ROOT, Settings

REVIEW = "review/co-production-and-quality-improvement-2020.md"


def answerable_turns(suites: list[str]):
    cases = load_suites(suite_paths(suites, PROJECT_ROOT / "evals"))
    for case in cases:
        history: list[str] = []
        for turn in turns_of(case):
            query = standalone_query(turn.question, history)
            history.append(turn.question)
            if turn.answerable and turn.evidence:
                yield turn, query


def score(rankings: list[tuple[object, list[tuple[str, str]]]]) -> dict:
    evidence_ranked = [(turn.evidence, ranked) for turn, ranked in rankings]
    return {
        "questions": len(evidence_ranked),
        "hit@1": round(metrics.mean(metrics.hit_at_k(e, r, 1) for e, r in evidence_ranked), 3),
        "hit@5": round(metrics.mean(metrics.hit_at_k(e, r, 5) for e, r in evidence_ranked), 3),
        "mrr": round(metrics.mean(metrics.reciprocal_rank(e, r) for e, r in evidence_ranked), 3),
        "context_budget_hit@2000": round(metrics.mean(metrics.context_budget_hit(e, r, 2000) for e, r in evidence_ranked), 3),
    }


def baseline_store(documents: list[Path], corpus: Path, embedder):
    import chromadb
    from chromadb.config import Settings as ChromaSettings
    from langchain_chroma import Chroma
    from langchain_core.documents import Document
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
    docs = []
    for path in documents:
        _, body = split_front_matter(path.read_text(encoding="utf-8"))
        docs.append(Document(page_content=body, metadata={"source": path.relative_to(corpus).as_posix()}))
    chunks = splitter.split_documents(docs)
    client = chromadb.EphemeralClient(settings=ChromaSettings(anonymized_telemetry=False))
    store = Chroma(client=client, collection_name="tutorial", embedding_function=embedder.model, collection_metadata={"hnsw:space": "cosine"})
    store.add_documents(chunks)
    return store, len(chunks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suites", nargs="*", default=["review", "adversarial"])
    parser.add_argument("--review-only", action="store_true", help="index only the review (both pipelines)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    corpus = PROJECT_ROOT / "corpus"
    documents = [corpus / REVIEW] if args.review_only else sorted(corpus.rglob("*.md"))
    turns = list(answerable_turns(args.suites))

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp))
        service = AssistantService(settings)
        started = time.perf_counter()
        service.ingest(documents)
        build_seconds = time.perf_counter() - started
        ours, our_latencies = [], []
        for turn, query in turns:
            t0 = time.perf_counter()
            retrieval = service.retriever(service.index).retrieve(query, top_k=settings.top_k, filters=Filters())
            our_latencies.append((time.perf_counter() - t0) * 1000)
            ours.append((turn, [(p.chunk.source, p.chunk.text) for p in retrieval.passages]))

        store, baseline_chunks = baseline_store(documents, corpus, service.embedder)
        theirs, their_latencies = [], []
        for turn, query in turns:
            t0 = time.perf_counter()
            docs = store.similarity_search(query, k=8)
            their_latencies.append((time.perf_counter() - t0) * 1000)
            theirs.append((turn, [(d.metadata["source"], d.page_content) for d in docs]))

    result = {
        "corpus": "review only" if args.review_only else "review + notes",
        "suites": args.suites,
        "assistant": {**score(ours), "p50_ms": round(metrics.percentile(our_latencies, 50), 1)},
        "langchain_tutorial": {**score(theirs), "chunks": baseline_chunks, "p50_ms": round(metrics.percentile(their_latencies, 50), 1)},
        "index_build_seconds": round(build_seconds, 1),
    }
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"{result['corpus']}, {result['assistant']['questions']} answerable questions from {', '.join(args.suites)}")
        print(f"{'pipeline':<22}{'hit@1':>8}{'hit@5':>8}{'MRR':>8}{'ctx@2000':>10}{'p50 ms':>9}")
        for name in ("assistant", "langchain_tutorial"):
            r = result[name]
            print(f"{name:<22}{r['hit@1']:>8.3f}{r['hit@5']:>8.3f}{r['mrr']:>8.3f}{r['context_budget_hit@2000']:>10.3f}{r['p50_ms']:>9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
