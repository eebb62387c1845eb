"""Ingestion end to end with the fake embedder: a real Chroma index of a copy of the fixture corpus, kept in step with its files."""

from __future__ import annotations

import shutil

import pytest

from assistant.service import AssistantService
from tests.conftest import FIXTURE_CORPUS, fast_settings
from tests.fakes import FakeEmbedder


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    shutil.copytree(FIXTURE_CORPUS, folder)
    return folder


@pytest.fixture
def service(tmp_path, corpus):
    return AssistantService(fast_settings(tmp_path / "data", corpus_dir=corpus), embedder=FakeEmbedder())


def texts(service) -> str:
    return "\n".join(c.text for c in service.index.chunks)


def test_first_run_adds_every_file_and_stamps_the_embedder(service):
    report = service.ingest()
    assert sorted((o.source, o.status) for o in report.outcomes) == [
        ("ground-rules.txt", "added"),
        ("paying-participants.html", "added"),
        ("trigger-films.md", "added"),
    ]
    manifest = service.store.current_manifest()
    assert manifest["embedding_model"] == FakeEmbedder.name
    assert manifest["chunk_count"] == len(service.index.chunks) == sum(o.chunks for o in report.outcomes) > 3
    with service.store.chroma() as chroma:
        assert chroma.call("passages", "count") == manifest["chunk_count"]


def test_a_second_run_embeds_nothing(service):
    service.ingest()
    before, generation = service.embedder.calls, service.store.current_generation()
    report = service.ingest()
    assert report.count("unchanged") == 3
    assert service.embedder.calls == before
    assert service.store.current_generation() == generation, "nothing changed, so the index is not rebuilt"


def test_a_changed_file_is_reindexed_and_its_old_text_is_gone(service, corpus):
    service.ingest()
    rules = corpus / "ground-rules.txt"
    rules.write_text(rules.read_text(encoding="utf-8").replace("first names", "given names"), encoding="utf-8")
    report = service.ingest()
    assert {o.source: o.status for o in report.outcomes}["ground-rules.txt"] == "updated"
    assert "given names" in texts(service) and "first names" not in texts(service)


def test_a_deleted_file_leaves_the_index(service, corpus):
    service.ingest()
    (corpus / "paying-participants.html").unlink()
    report = service.ingest()
    assert {o.source: o.status for o in report.outcomes}["paying-participants.html"] == "removed"
    assert {c.source for c in service.index.chunks} == {"ground-rules.txt", "trigger-films.md"}
    assert "reimbursed" not in texts(service)


def test_a_bad_file_is_reported_and_the_rest_indexed(service, corpus):
    (corpus / "broken.md").write_text("---\ntitle: [unclosed\n---\n\nSome text.\n", encoding="utf-8")
    report = service.ingest()
    assert [o.source for o in report.failures] == ["broken.md"]
    assert "front matter" in report.failures[0].message
    assert report.count("added") == 3
    assert {c.source for c in service.index.chunks} == {"ground-rules.txt", "paying-participants.html", "trigger-films.md"}


def test_remove_document_takes_it_out_and_keeps_a_shipped_file(service, corpus):
    service.ingest()
    service.remove_document("ground-rules.txt")
    assert (corpus / "ground-rules.txt").exists(), "a corpus file is never deleted by removing it from the index"
    assert "ground-rules.txt" not in {s["source"] for s in service.sources()}
    with pytest.raises(KeyError, match="no indexed document"):
        service.remove_document("ground-rules.txt")
