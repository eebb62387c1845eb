"""Incremental ingestion: unchanged files are skipped, changes and deletions applied, bad files reported, crashes harmless."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from assistant.index.chroma_client import DOCUMENTS, PASSAGES, SENTENCES, Chroma
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


def assert_store_matches_tables(service) -> None:
    """Chroma holds exactly the committed documents' rows (nothing orphaned, nothing missing), and no markers."""
    index = service.index
    with service.store.chroma() as chroma:
        assert chroma.call(PASSAGES, "count") == len(index.chunks)
        assert chroma.call(SENTENCES, "count") == len(index.sentences)
        assert not chroma.call(DOCUMENTS, "get", where={"kind": "mark"})["ids"], "a finished run leaves no markers"
        stored = chroma.call(PASSAGES, "get", include=["documents"])
    assert sorted(stored["documents"]) == sorted(c.text for c in index.chunks)


def assert_each_document_whole(service, corpus) -> None:
    """Every document served is one complete version: its passages are exactly those of one indexed version."""
    fresh = AssistantService(service.settings)  # a new reader, as another process would open it
    index = fresh.index
    for source, entry in index.manifest["documents"].items():
        chunks = [c for c in index.chunks if c.source == source]
        assert len(chunks) == entry["chunks"], source
    texts = {source: " ".join(c.text for c in index.chunks if c.source == source) for source in index.manifest["documents"]}
    assert ("travel expenses" in texts["payment.md"]) != ("vouchers" in texts["payment.md"]), texts["payment.md"]


def test_first_run_adds_then_second_run_skips(tmp_path, small_corpus):
    service = service_for(tmp_path, small_corpus)
    first = service.ingest()
    assert statuses(first) == {"recruitment.md": "added", "payment.md": "added", "power.md": "added"}
    stamp = service.store.current_stamp()
    second = service.ingest()
    assert set(statuses(second).values()) == {"unchanged"}
    assert service.store.current_stamp() == stamp == second.generation, "nothing changed, so nothing is committed"
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
    assert_store_matches_tables(service)


def test_deleted_file_is_removed(tmp_path, small_corpus):
    service = service_for(tmp_path, small_corpus)
    service.ingest()
    (small_corpus / "power.md").unlink()
    report = service.ingest()
    assert statuses(report)["power.md"] == "removed"
    assert {c.source for c in service.index.chunks} == {"recruitment.md", "payment.md"}
    assert not any("consultants" in c.text for c in service.index.chunks)
    assert_store_matches_tables(service)


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


def _change_and_add(corpus):
    (corpus / "payment.md").write_text(
        "---\ntitle: Payment\n---\n## Vouchers\n\nOffer shopping vouchers as a thank-you to patient partners.\n", encoding="utf-8"
    )
    (corpus / "extra.md").write_text("---\ntitle: Extra\n---\n## Films\n\nA trigger film shows patients' stories.\n", encoding="utf-8")


# The steps of a commit, in order: new rows written -> documents committed -> stamp committed -> old rows deleted.
CRASH_POINTS = {
    "1 writing the new passages": lambda name, method, ids: name == PASSAGES and method == "upsert",
    "2 committing the documents": lambda name, method, ids: (
        name == DOCUMENTS and method == "upsert" and ids[:1] and ids[0].startswith("doc:")
    ),
    "3 committing the stamp": lambda name, method, ids: name == DOCUMENTS and method == "upsert" and ids == ["meta"],
    "4 deleting the old version": lambda name, method, ids: name == PASSAGES and method == "delete",
}


@pytest.mark.parametrize("point", sorted(CRASH_POINTS))
def test_ctrl_c_at_each_write_leaves_each_document_whole_and_the_next_run_completes(tmp_path, small_corpus, monkeypatch, point):
    service = service_for(tmp_path, small_corpus)
    service.ingest()
    before = service.store.current_stamp()
    _change_and_add(small_corpus)
    real = Chroma.call

    def interrupted(self, name, method, **kwargs):
        if CRASH_POINTS[point](name, method, list(kwargs.get("ids") or [])):
            raise KeyboardInterrupt
        return real(self, name, method, **kwargs)

    monkeypatch.setattr(Chroma, "call", interrupted)
    with pytest.raises(KeyboardInterrupt):
        service.ingest()
    monkeypatch.undo()

    assert_each_document_whole(service, small_corpus)
    if not point.startswith("4"):
        assert service.store.current_stamp() == before, "readers keep the previous index until the commit is complete"
        answer = service.ask("How do we reimburse travel expenses?")
        assert not answer.abstained and "extra.md" not in {p.chunk.source for p in answer.passages}

    report = service.ingest()
    assert report.failures == []
    texts = " ".join(c.text for c in service.index.chunks)
    assert "vouchers" in texts and "travel expenses" not in texts and "trigger film" in texts
    assert_store_matches_tables(service)  # the next run deleted what the interrupted one left


DRIVER = r"""
import sys
from assistant.index import chroma_client
from assistant.service import AssistantService

real = chroma_client.Chroma.call

def traced(self, name, method, **kwargs):
    result = real(self, name, method, **kwargs)
    ids = list(kwargs.get("ids") or [])
    print(f"{name} {method} {ids[0] if ids else '-'}", flush=True)
    sys.stdin.readline()  # the test kills us here, right after this write
    return result

chroma_client.Chroma.call = traced
AssistantService().ingest()
print("finished", flush=True)
"""


@pytest.mark.parametrize("point", sorted(CRASH_POINTS))
def test_kill_9_after_each_write_leaves_each_document_whole_and_the_rerun_completes(tmp_path, small_corpus, point):
    service = service_for(tmp_path, small_corpus)
    service.ingest()
    _change_and_add(small_corpus)
    env = dict(os.environ, ASSISTANT_DATA_DIR=str(tmp_path / "data"), ASSISTANT_CORPUS_DIR=str(small_corpus))
    process = subprocess.Popen(
        [sys.executable, "-c", DRIVER], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        for line in process.stdout:
            name, method, first_id = line.split()
            if CRASH_POINTS[point](name, method, [first_id]):
                process.send_signal(signal.SIGKILL)
                break
            process.stdin.write("\n")
            process.stdin.flush()
        else:
            raise AssertionError(f"the ingest never reached {point}")
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL

    assert_each_document_whole(service, small_corpus)
    report = service.ingest()
    assert report.failures == [] and statuses(report)["extra.md"] in ("added", "unchanged")
    texts = " ".join(c.text for c in service.index.chunks)
    assert "vouchers" in texts and "travel expenses" not in texts and "trigger film" in texts
    assert_store_matches_tables(service)


def test_killed_process_mid_run_then_rerun_completes(tmp_path, small_corpus):
    service = service_for(tmp_path, small_corpus)
    service.ingest()
    before = service.store.current_stamp()
    for n in range(20):
        (small_corpus / f"batch-{n:02d}.md").write_text(
            f"---\ntitle: Batch {n}\n---\n## Section {n}\n\n"
            + "".join(f"Patient story {n}.{i} is about waiting times and kindness. " for i in range(12)),
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

    assert service.store.current_stamp() == before
    assert {c.source for c in service.index.chunks} == set(NOTES)
    report = service.ingest()
    assert statuses(report)["batch-19.md"] == "added"
    assert "unchanged" in statuses(report).values(), "records finished before the kill are reused"
    assert len({c.source for c in service.index.chunks}) == len(NOTES) + 20
    assert_store_matches_tables(service)


def test_two_ingests_at_once_one_waits_and_nothing_is_lost(tmp_path, small_corpus):
    service = service_for(tmp_path, small_corpus)
    service.ingest()
    uploads = tmp_path / "data" / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    for n in range(6):
        (small_corpus / f"more-{n}.md").write_text(
            f"## Part {n}\n\nCo-design meeting {n} agreed on kindness and waiting times.\n", encoding="utf-8"
        )
    (uploads / "mine.md").write_text("## Mine\n\nAn uploaded note about volunteer drivers for patient partners.\n", encoding="utf-8")
    env = dict(os.environ, ASSISTANT_DATA_DIR=str(tmp_path / "data"), ASSISTANT_CORPUS_DIR=str(small_corpus))
    first = subprocess.Popen(
        [sys.executable, "-m", "assistant", "ingest"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    second = subprocess.Popen(
        [sys.executable, "-m", "assistant", "ingest", str(uploads)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    outputs = [p.communicate(timeout=300) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    assert any("Another ingest" in err and "waiting" in err for _, err in outputs), "the later one says why it waits"
    assert all("Traceback" not in err for _, err in outputs)
    fresh = AssistantService(service.settings)
    assert {c.source for c in fresh.index.chunks} == set(NOTES) | {f"more-{n}.md" for n in range(6)} | {"uploads/mine.md"}
    assert_store_matches_tables(fresh)


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
