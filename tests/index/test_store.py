"""Index swaps never pull files from under a reader: the old generation stays while it is held; readers retry once."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys

from assistant.index.store import IndexStore, open_current
from assistant.service import AssistantService
from tests.conftest import make_settings


def _corpus(folder, round_: int = 0):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rules.md").write_text(f"## Ground rules\n\nRound {round_}: agree ground rules with patient partners before the workshop.\n", encoding="utf-8")
    (folder / "pay.md").write_text("## Expenses\n\nReimburse travel expenses on the day so nobody is out of pocket.\n", encoding="utf-8")
    return folder


def _generations(store: IndexStore) -> set[str]:
    return {p.name for p in store.index_dir.glob("gen-*")}


def test_a_held_generation_survives_swaps_and_goes_once_released(tmp_path):
    corpus = _corpus(tmp_path / "corpus")
    service = AssistantService(make_settings(tmp_path / "data", corpus_dir=corpus))
    service.ingest()
    reader = open_current(service.store, service.embedder)  # e.g. a CLI `ask` that has just opened the index
    held = reader.generation.name

    for round_ in (1, 2):
        _corpus(corpus, round_)
        service.ingest()
        assert service.store.current_generation().name != held
        assert held in _generations(service.store), "the generation a reader holds is kept"
    # The reader still works on its own generation, files and all.
    vector = service.embedder.embed_query("ground rules")
    assert reader.dense_search(vector, 2, None) and reader.keyword_search("ground rules", 2, None)

    reader.release()
    del reader
    gc.collect()
    _corpus(corpus, 3)
    service.ingest()
    assert held not in _generations(service.store), "released, it is deleted at the next ingest"
    assert len(_generations(service.store)) == 1

    after = open_current(service.store, service.embedder)  # a reader after the swap sees the new text
    assert any("Round 3" in c.text for c in after.chunks)


def test_a_reader_that_finds_its_generation_retired_retries_once(tmp_path, monkeypatch):
    corpus = _corpus(tmp_path / "corpus")
    service = AssistantService(make_settings(tmp_path / "data", corpus_dir=corpus))
    service.ingest()
    stale = service.store.current_generation()
    _corpus(corpus, 1)
    service.ingest()
    assert not stale.exists(), "nobody held it, so it was retired"

    calls = []
    real = IndexStore.current_generation

    def read_pointer_before_the_swap(self):
        calls.append(1)
        return stale if len(calls) == 1 else real(self)  # CURRENT was read just before ingest switched it

    monkeypatch.setattr(IndexStore, "current_generation", read_pointer_before_the_swap)
    index = open_current(service.store, service.embedder)
    assert len(calls) == 2 and index.generation == real(service.store)
    assert any("Round 1" in c.text for c in index.chunks)


def test_the_service_keeps_answering_in_one_process_across_swaps(tmp_path):
    corpus = _corpus(tmp_path / "corpus")
    service = AssistantService(make_settings(tmp_path / "data", corpus_dir=corpus))
    service.ingest()
    old_index = service.index  # a question still running on the old generation in another thread
    _corpus(corpus, 1)
    service.ingest()
    assert old_index.generation.exists()
    answer = service.ask("How should ground rules be agreed?")
    assert not answer.abstained and "Round 1" in " ".join(p.chunk.text for p in answer.passages)
    vector = service.embedder.embed_query("ground rules")
    assert old_index.dense_search(vector, 1, None), "the retired index still serves the question that holds it"


READER = r"""
import sys
from assistant.service import AssistantService
svc = AssistantService()
for line in sys.stdin:
    answer = svc.ask(line.strip())
    print(svc.index.generation.name, "|", " ".join(p.chunk.text for p in answer.passages)[:200], flush=True)
"""


def test_a_reader_in_another_process_holds_its_generation_through_a_rebuild(tmp_path):
    corpus = _corpus(tmp_path / "corpus")
    data = tmp_path / "data"
    service = AssistantService(make_settings(data, corpus_dir=corpus))
    service.ingest()
    env = dict(os.environ, ASSISTANT_DATA_DIR=str(data), ASSISTANT_CORPUS_DIR=str(corpus))
    reader = subprocess.Popen([sys.executable, "-c", READER], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        reader.stdin.write("How should ground rules be agreed?\n")
        reader.stdin.flush()
        first = reader.stdout.readline()
        held = first.split(" |")[0]
        assert held.startswith("gen-") and "Round 0" in first, reader.stderr.read() if not first else first

        _corpus(corpus, 1)
        service.ingest()
        _corpus(corpus, 2)
        service.ingest()  # a rebuild while the other process has the old generation open
        assert held in _generations(service.store)

        reader.stdin.write("How should ground rules be agreed?\n")
        reader.stdin.flush()
        second = reader.stdout.readline()
        assert "Round 2" in second and second.split(" |")[0] != held
        service.ingest(rebuild=True)
        assert held not in _generations(service.store), "once the reader moved on, the old generation went"
    finally:
        reader.stdin.close()
        reader.wait(timeout=60)
    assert reader.returncode == 0
