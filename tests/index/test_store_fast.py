"""The index of the fixture corpus: Chroma, BM25 and the chunk table agree, and a rebuild is picked up without a restart."""

from __future__ import annotations

import shutil

import numpy as np

from assistant.service import AssistantService
from tests.conftest import FIXTURE_CORPUS, fast_settings
from tests.fakes import FakeEmbedder


def test_chroma_bm25_and_the_chunk_table_hold_the_same_chunks(fast_service):
    index = fast_service.index
    ids = {c.chunk_id for c in index.chunks}
    assert len(ids) == len(index.chunks) == index.manifest["chunk_count"]
    with fast_service.store.chroma() as chroma:  # the store of record holds exactly the committed passages
        stored = chroma.call("passages", "get", include=["documents"])
    assert len(stored["ids"]) == len(ids) and sorted(stored["documents"]) == sorted(c.text for c in index.chunks)
    assert {c.source for c in index.chunks} == {"ground-rules.txt", "paying-participants.html", "trigger-films.md"}


def test_dense_search_finds_the_passage_with_the_query_words_first(fast_service, fast_embedder):
    index = fast_service.index
    hits = index.dense_search(np.asarray(fast_embedder.embed_query("trigger film patient interviews"), dtype=np.float32), 3, None)
    best = index.chunks[index.position[hits[0][0]]]
    assert best.source == "trigger-films.md" and "compilation of patient interviews" in best.text
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True), "cosines come best first"


def test_dense_search_keeps_to_the_allowed_passages(fast_service, fast_embedder):
    index = fast_service.index
    allowed = np.array([c.source == "ground-rules.txt" for c in index.chunks])
    hits = index.dense_search(np.asarray(fast_embedder.embed_query("trigger film"), dtype=np.float32), 10, allowed)
    assert hits and {index.chunks[index.position[cid]].source for cid, _ in hits} == {"ground-rules.txt"}


def test_keyword_search_ranks_by_bm25_and_drops_zero_scores(fast_service):
    index = fast_service.index
    hits = index.keyword_search("reimbursed travel parking", 10, None)
    assert hits and index.chunks[index.position[hits[0][0]]].source == "paying-participants.html"
    assert all(score > 0 for _, score in hits)
    assert index.keyword_search("zebra", 10, None) == []


def test_theme_tags_from_front_matter_reach_every_chunk_of_the_document(fast_service):
    for chunk in fast_service.index.chunks:
        if chunk.source == "trigger-films.md":
            assert "ebcd" in chunk.themes


def test_a_running_service_sees_a_new_generation(tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(FIXTURE_CORPUS, corpus)
    service = AssistantService(fast_settings(tmp_path / "data", corpus_dir=corpus), embedder=FakeEmbedder())
    service.ingest()
    first = service.index.stamp
    (corpus / "extra.txt").write_text("Always Events\n\nAn Always Event is something that should happen every time.\n", encoding="utf-8")
    service.ingest()
    assert service.index.stamp != first
    assert "extra.txt" in {c.source for c in service.index.chunks}
