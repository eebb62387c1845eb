"""Chroma is written per document and is the store of record; readers load published tables, and see a commit at their next question."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np

from assistant.index.chroma_client import PASSAGES, SENTENCES, Chroma
from assistant.index.loaded import open_current
from assistant.index.store import IndexStore
from assistant.service import AssistantService
from tests.conftest import make_settings


def _corpus(folder, round_: int = 0):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rules.md").write_text(
        f"## Ground rules\n\nRound {round_}: agree ground rules with patient partners before the workshop.\n", encoding="utf-8"
    )
    (folder / "pay.md").write_text("## Expenses\n\nReimburse travel expenses on the day so nobody is out of pocket.\n", encoding="utf-8")
    return folder


def _table_sets(store: IndexStore) -> set[str]:
    return {p.name for p in store.tables_dir.iterdir() if p.is_dir() and not p.name.startswith(".")}


def _count_writes(monkeypatch) -> dict[str, int]:
    written = {PASSAGES: 0, SENTENCES: 0}
    real = Chroma.call

    def counting(self, name, method, **kwargs):
        if method == "upsert" and name in written:
            written[name] += len(kwargs["ids"])
        return real(self, name, method, **kwargs)

    monkeypatch.setattr(Chroma, "call", counting)
    return written


def test_a_new_or_changed_document_writes_only_its_own_rows(tmp_path, monkeypatch):
    corpus = _corpus(tmp_path / "corpus")
    service = AssistantService(make_settings(tmp_path / "data", corpus_dir=corpus))
    service.ingest()
    written = _count_writes(monkeypatch)
    (corpus / "new.md").write_text(
        "## Tea\n\nOffer tea and biscuits at every meeting. Patient partners notice kindness.\n", encoding="utf-8"
    )
    service.ingest()
    new_chunks = [c for c in service.index.chunks if c.source == "new.md"]
    new_sentences = [s for s in service.index.sentences if s[0] in {c.chunk_id for c in new_chunks}]
    assert new_chunks and written == {PASSAGES: len(new_chunks), SENTENCES: len(new_sentences)}

    written.update({PASSAGES: 0, SENTENCES: 0})
    service.ingest()
    assert written == {PASSAGES: 0, SENTENCES: 0}, "a re-run with nothing changed writes nothing"

    _corpus(corpus, 1)  # rules.md changes
    service.ingest()
    assert written[PASSAGES] == len([c for c in service.index.chunks if c.source == "rules.md"])


def test_a_loaded_index_keeps_answering_after_updates_and_old_tables_are_pruned(tmp_path):
    corpus = _corpus(tmp_path / "corpus")
    service = AssistantService(make_settings(tmp_path / "data", corpus_dir=corpus))
    service.ingest()
    reader = open_current(service.store, service.embedder)  # e.g. a question being answered in another thread
    for round_ in (1, 2, 3):
        _corpus(corpus, round_)
        service.ingest()
    assert len(_table_sets(service.store)) <= 2, "only the current table set and the one before are kept"
    assert reader.stamp not in _table_sets(service.store)
    vector = service.embedder.embed_query("ground rules")
    assert reader.dense_search(vector, 2) and reader.keyword_search("ground rules", 2, None), "it was loaded whole"
    assert any("Round 0" in c.text for c in reader.chunks)
    after = open_current(service.store, service.embedder)
    assert any("Round 3" in c.text for c in after.chunks) and after.stamp == service.store.current_stamp()


def test_a_reader_that_finds_its_tables_pruned_reads_the_stamp_again(tmp_path, monkeypatch):
    corpus = _corpus(tmp_path / "corpus")
    service = AssistantService(make_settings(tmp_path / "data", corpus_dir=corpus))
    service.ingest()
    stale = service.store.current_stamp()
    for round_ in (1, 2):
        _corpus(corpus, round_)
        service.ingest()
    assert stale not in _table_sets(service.store)

    calls = []
    real = IndexStore.current_stamp
    real_tables = IndexStore.tables_for

    def read_stamp_before_the_commit(self):
        calls.append(1)
        return stale if len(calls) == 1 else real(self)

    def tables_gone(self, stamp):
        if stamp == stale:
            raise FileNotFoundError(stamp)  # pruned between reading the stamp and loading
        return real_tables(self, stamp)

    monkeypatch.setattr(IndexStore, "current_stamp", read_stamp_before_the_commit)
    monkeypatch.setattr(IndexStore, "tables_for", tables_gone)
    index = open_current(service.store, service.embedder)
    assert len(calls) == 2 and index.stamp == real(service.store)
    assert any("Round 2" in c.text for c in index.chunks)


def test_chroma_is_the_store_of_record_local_tables_and_cache_can_be_rebuilt_from_it(tmp_path):
    corpus = _corpus(tmp_path / "corpus")
    settings = make_settings(tmp_path / "data", corpus_dir=corpus)
    service = AssistantService(settings)
    service.ingest()
    before = service.index
    shutil.rmtree(service.store.tables_dir / before.stamp)
    shutil.rmtree(service.store.cache.directory)

    fresh = AssistantService(settings)
    rebuilt = fresh.index  # derived from Chroma alone
    assert rebuilt.stamp == before.stamp
    assert [c.to_dict() for c in rebuilt.chunks] == [c.to_dict() for c in before.chunks]
    assert rebuilt.sentences == before.sentences and rebuilt.references == before.references
    assert np.allclose(rebuilt.passage_vectors, before.passage_vectors) and np.allclose(rebuilt.sentence_vectors, before.sentence_vectors)
    assert not fresh.ask("How should ground rules be agreed?").abstained
    report = fresh.ingest()
    assert {o.status for o in report.outcomes} == {"unchanged"}, "records come back from Chroma, nothing is embedded again"


def test_the_service_keeps_answering_in_one_process_across_updates(tmp_path):
    corpus = _corpus(tmp_path / "corpus")
    service = AssistantService(make_settings(tmp_path / "data", corpus_dir=corpus))
    service.ingest()
    old_index = service.index  # a question still running on the old version in another thread
    _corpus(corpus, 1)
    service.ingest()
    answer = service.ask("How should ground rules be agreed?")
    assert not answer.abstained and "Round 1" in " ".join(p.chunk.text for p in answer.passages)
    vector = service.embedder.embed_query("ground rules")
    assert old_index.dense_search(vector, 1), "the old index still serves the question that holds it"


def test_legacy_generations_are_replaced_without_embedding_again(tmp_path):
    corpus = _corpus(tmp_path / "corpus")
    service = AssistantService(make_settings(tmp_path / "data", corpus_dir=corpus))
    service.ingest()
    legacy = service.store.index_dir / "gen-20260101-000000-abcdef"
    legacy.mkdir()
    (service.store.index_dir / "CURRENT").write_text(legacy.name, encoding="utf-8")
    service.ingest()
    assert not legacy.exists() and not (service.store.index_dir / "CURRENT").exists()


READER = r"""
import sys
from assistant.service import AssistantService
svc = AssistantService()
for line in sys.stdin:
    answer = svc.ask(line.strip())
    print(svc.index.stamp, "|", " ".join(p.chunk.text for p in answer.passages)[:200], flush=True)
"""


def test_a_reader_in_another_process_sees_an_update_at_its_next_question(tmp_path):
    corpus = _corpus(tmp_path / "corpus")
    data = tmp_path / "data"
    service = AssistantService(make_settings(data, corpus_dir=corpus))
    service.ingest()
    env = dict(os.environ, ASSISTANT_DATA_DIR=str(data), ASSISTANT_CORPUS_DIR=str(corpus))
    reader = subprocess.Popen(
        [sys.executable, "-c", READER], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        reader.stdin.write("How should ground rules be agreed?\n")
        reader.stdin.flush()
        first = reader.stdout.readline()
        held = first.split(" |")[0]
        assert "Round 0" in first, first or reader.stderr.read()

        _corpus(corpus, 1)
        service.ingest()
        _corpus(corpus, 2)
        service.ingest()

        reader.stdin.write("How should ground rules be agreed?\n")
        reader.stdin.flush()
        second = reader.stdout.readline()
        assert "Round 2" in second and second.split(" |")[0] == service.store.current_stamp() != held
    finally:
        reader.stdin.close()
        reader.wait(timeout=60)
    assert reader.returncode == 0


def test_the_persisted_sentence_tables_equal_the_ones_the_retriever_computes(tmp_path):
    from assistant.retrieval import retriever

    corpus = _corpus(tmp_path / "corpus")
    (corpus / "q.md").write_text("## Questions\n\nWho pays for travel? Patients should never be out of pocket.\n", encoding="utf-8")
    service = AssistantService(make_settings(tmp_path / "data", corpus_dir=corpus))
    service.ingest()
    index = service.index
    loaded = index.loaded_sentence_tables
    assert loaded is not None
    index.loaded_sentence_tables = None
    computed = retriever.sentence_tables(index)
    assert np.array_equal(loaded.positions, computed.positions) and np.array_equal(loaded.weights, computed.weights)
    assert loaded.stems == computed.stems and loaded.idf == computed.idf and loaded.unseen_idf == computed.unseen_idf
    assert loaded.vocabulary == computed.vocabulary and np.isclose(loaded.weights, 0.8).any()


def test_an_index_updated_in_memory_equals_the_full_load_of_the_new_tables(tmp_path):
    from assistant.index.loaded import LoadedIndex

    corpus = _corpus(tmp_path / "corpus")
    (corpus / "refs.md").write_text(
        "## Evidence\n\nCo-design improves care (Smith 2020).\n\n## References\n\nSmith, J. (2020) Co-design in practice. London: Kings Fund.\n",
        encoding="utf-8",
    )
    (corpus / "gone.md").write_text("## Gone\n\nThis note about parking permits will be deleted.\n", encoding="utf-8")
    service = AssistantService(make_settings(tmp_path / "data", corpus_dir=corpus))
    service.ingest()
    before = open_current(service.store, service.embedder)
    _corpus(corpus, 1)  # rules.md changes
    (corpus / "gone.md").unlink()
    (corpus / "new.md").write_text("## Tea\n\nWho brings the biscuits? Offer tea at every meeting.\n", encoding="utf-8")
    service.ingest()
    tables = service.store.tables_for(service.store.current_stamp())
    full = LoadedIndex(tables)
    updated = LoadedIndex.updated(before, tables, service.store.cache)
    assert updated is not None
    assert [c.to_dict() for c in updated.chunks] == [c.to_dict() for c in full.chunks] and updated.position == full.position
    assert np.array_equal(updated.passage_vectors, full.passage_vectors) and np.array_equal(updated.sentence_vectors, full.sentence_vectors)
    assert updated.sentences == full.sentences and updated.sentences_by_chunk == full.sentences_by_chunk
    assert full.references and updated.references == full.references and updated.manifest == full.manifest and updated.keys == full.keys
    a, b = updated.loaded_sentence_tables, full.loaded_sentence_tables
    assert np.array_equal(a.positions, b.positions) and np.array_equal(a.weights, b.weights) and a.stems == b.stems
    assert a.idf == b.idf and a.unseen_idf == b.unseen_idf and a.vocabulary == b.vocabulary and updated.frequency == full.frequency
    vector = service.embedder.embed_query("tea and biscuits")
    assert updated.dense_search(vector, 5) == full.dense_search(vector, 5)
    assert updated.keyword_search("tea biscuits", 5, None) == full.keyword_search("tea biscuits", 5, None)
    assert service.index.stamp == full.stamp and "gone.md" not in {c.source for c in service.index.chunks}
