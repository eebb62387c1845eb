"""Incremental ingestion: unchanged files are skipped, changes and deletions applied, bad files reported, crashes harmless."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from assistant.index.store import IndexStore
from assistant.service import AssistantService
from tests.conftest import make_settings
from tests.helpers import write_pdf

NOTES = {
    "recruitment.md": "---\ntitle: Recruitment\n---\n## Reaching people\n\nVisit community groups to recruit people from seldom heard communities.\n",
    "payment.md": "---\ntitle: Payment\n---\n## Expenses\n\nReimburse travel expenses on the day so nobody is out of pocket.\n",
    "power.md": "---\ntitle: Power\n---\n## Hierarchy\n\nSeat patients and consultants together and give patients the first word.\n",
}


@pytest.fixture
def small_corpus(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, text in NOTES.items():
        (corpus / name).write_text(text, encoding="utf-8")
    return corpus


def service_for(tmp_path, corpus, **overrides) -> AssistantService:
    return AssistantService(make_settings(tmp_path / "data", corpus_dir=corpus, **overrides))


def statuses(report) -> dict[str, str]:
    return {o.source: o.status for o in report.outcomes}


def test_first_run_adds_then_second_run_skips(tmp_path, small_corpus):
    service = service_for(tmp_path, small_corpus)
    first = service.ingest()
    assert statuses(first) == {"recruitment.md": "added", "payment.md": "added", "power.md": "added"}
    generation = service.store.current_generation()
    second = service.ingest()
    assert set(statuses(second).values()) == {"unchanged"}
    assert service.store.current_generation() == generation, "nothing changed, so no new index is built"
    assert {d["source"] for d in service.sources()} == set(NOTES)


def test_changed_file_is_reindexed_and_old_text_is_gone(tmp_path, small_corpus):
    service = service_for(tmp_path, small_corpus)
    service.ingest()
    (small_corpus / "payment.md").write_text(
        "---\ntitle: Payment\n---\n## Vouchers\n\nOffer shopping vouchers as a thank-you to patient partners.\n", encoding="utf-8"
    )
    report = service.ingest()
    assert statuses(report) == {"recruitment.md": "unchanged", "payment.md": "updated", "power.md": "unchanged"}
    texts = " ".join(c.text for c in service.index.chunks)
    assert "vouchers" in texts and "travel expenses" not in texts
    assert service.index.collection.count() == len(service.index.chunks)


def test_deleted_file_is_removed(tmp_path, small_corpus):
    service = service_for(tmp_path, small_corpus)
    service.ingest()
    (small_corpus / "power.md").unlink()
    report = service.ingest()
    assert statuses(report)["power.md"] == "removed"
    assert {c.source for c in service.index.chunks} == {"recruitment.md", "payment.md"}
    assert not any("consultants" in c.text for c in service.index.chunks)


def test_bad_files_are_reported_and_the_rest_indexed(tmp_path, small_corpus):
    (small_corpus / "empty.md").write_bytes(b"")
    (small_corpus / "broken.pdf").write_bytes(b"%PDF-1.4\n garbage that is not a pdf body")
    (small_corpus / "binary.txt").write_bytes(b"\x00\x01\x02" * 100)
    write_pdf(small_corpus / "guide.pdf", ["Co-design groups meet monthly to test changes."])
    service = service_for(tmp_path, small_corpus)
    report = service.ingest()
    status = statuses(report)
    assert status["empty.md"] == "failed" and status["broken.pdf"] == "failed" and status["binary.txt"] == "failed"
    assert status["guide.pdf"] == "added" and status["payment.md"] == "added"
    messages = {o.source: o.message for o in report.failures}
    assert "empty" in messages["empty.md"]
    assert "PDF" in messages["broken.pdf"]
    assert "binary" in messages["binary.txt"]
    pdf_chunks = [c for c in service.index.chunks if c.source == "guide.pdf"]
    assert pdf_chunks and pdf_chunks[0].page == 1


def test_a_file_that_breaks_keeps_its_last_good_version(tmp_path, small_corpus):
    service = service_for(tmp_path, small_corpus)
    service.ingest()
    (small_corpus / "power.md").write_bytes(b"")
    report = service.ingest()
    failure = next(o for o in report.outcomes if o.source == "power.md")
    assert failure.status == "failed" and "previously indexed version is kept" in failure.message
    assert any("consultants" in c.text for c in service.index.chunks)


def test_interrupted_build_leaves_the_previous_index_usable(tmp_path, small_corpus, monkeypatch):
    service = service_for(tmp_path, small_corpus)
    service.ingest()
    before = service.store.current_generation()
    (small_corpus / "extra.md").write_text("---\ntitle: Extra\n---\n## Films\n\nA trigger film shows patients' stories.\n", encoding="utf-8")

    original = IndexStore.build_generation

    def crash_midway(self, records, meta, embedder):
        # Let the real build write a partial generation, then die before CURRENT moves.
        monkeypatch.setattr("assistant.index.store.write_json_atomic", _raise_interrupt)
        return original(self, records, meta, embedder)

    monkeypatch.setattr(IndexStore, "build_generation", crash_midway)
    with pytest.raises(KeyboardInterrupt):
        service.ingest()
    monkeypatch.undo()

    assert service.store.current_generation() == before
    answer = service.ask("How do we reimburse travel expenses?")
    assert not answer.abstained and "extra.md" not in {p.chunk.source for p in answer.passages}
    partial = [p for p in before.parent.glob("gen-*") if p != before]
    assert partial, "the interrupted run left a partial generation behind"

    report = service.ingest()
    assert statuses(report)["extra.md"] == "added"
    assert not any(p.exists() for p in partial), "the next run clears abandoned generations"
    assert "extra.md" in {c.source for c in service.index.chunks}


def _raise_interrupt(*args, **kwargs):
    raise KeyboardInterrupt


def test_killed_process_mid_run_then_rerun_completes(tmp_path, small_corpus):
    service = service_for(tmp_path, small_corpus)
    service.ingest()
    before = service.store.current_generation()
    for n in range(20):
        (small_corpus / f"batch-{n:02d}.md").write_text(
            f"---\ntitle: Batch {n}\n---\n## Section {n}\n\n" + "".join(f"Patient story {n}.{i} is about waiting times and kindness. " for i in range(12)),
            encoding="utf-8",
        )
    env = dict(os.environ, ASSISTANT_DATA_DIR=str(tmp_path / "data"), ASSISTANT_CORPUS_DIR=str(small_corpus))
    process = subprocess.Popen([sys.executable, "-m", "assistant", "ingest"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cache = tmp_path / "data" / "index" / "documents"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if len(list(cache.glob("*.json"))) >= 5:  # 3 old records + 2 new ones
            break
        time.sleep(0.05)
    assert process.poll() is None, "ingest finished before it could be interrupted"
    process.send_signal(signal.SIGKILL)
    process.wait()

    assert service.store.current_generation() == before
    assert {c.source for c in service.index.chunks} == set(NOTES)
    report = service.ingest()
    assert statuses(report)["batch-19.md"] == "added"
    assert "unchanged" in statuses(report).values(), "records finished before the kill are reused"
    assert len({c.source for c in service.index.chunks}) == len(NOTES) + 20


def test_rebuild_and_settings_change_reprocess_everything(tmp_path, small_corpus):
    service = service_for(tmp_path, small_corpus)
    service.ingest()
    rebuilt = service.ingest(rebuild=True)
    assert set(statuses(rebuilt).values()) == {"unchanged"}  # same content, re-embedded
    resized = service_for(tmp_path, small_corpus, chunk_size=300, chunk_overlap=30)
    report = resized.ingest()
    assert report.generation != rebuilt.generation
    assert resized.store.current_manifest()["chunking"]["size"] == 300


def test_remove_document_on_request(tmp_path, small_corpus):
    service = service_for(tmp_path, small_corpus)
    service.ingest()
    service.remove_document("payment.md")
    assert "payment.md" not in {d["source"] for d in service.sources()}
    with pytest.raises(KeyError):
        service.remove_document("payment.md")
