"""The `assistant` command in-process over the fixture index: ask (text, JSON, a batch on stdin), sources, ingest."""

from __future__ import annotations

import io
import json
import shutil

import pytest

from assistant.faces import cli
from assistant.service import AssistantService
from tests.conftest import FIXTURE_CORPUS, fast_settings
from tests.fakes import FakeEmbedder


@pytest.fixture
def use_service(monkeypatch):
    def use(service):
        monkeypatch.setattr(cli, "_service", lambda: service)

    return use


def test_ask_prints_the_quoted_answer_and_its_sources(fast_service, use_service, capsys):
    use_service(fast_service)
    assert cli.main(["ask", "What is a trigger film?"]) == 0
    out = capsys.readouterr().out
    assert "A trigger film is a short compilation of patient interviews" in out
    assert "\nSources\n[1] Trigger films > What a trigger film is\n" in out  # the short title from the front matter


def test_ask_json_is_one_object_with_citations(fast_service, use_service, capsys):
    use_service(fast_service)
    assert cli.main(["ask", "--json", "What is a trigger film?"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["coverage"] == "answered" and data["citations"][0]["source"] == "trigger-films.md"


def test_a_batch_on_stdin_answers_every_line_in_order_even_a_bad_one(fast_service, use_service, monkeypatch, capsys):
    use_service(fast_service)
    lines = "What is a trigger film?\n\nShould carers be reimbursed for travel and parking?\n"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(lines.encode())))
    assert cli.main(["ask", "--json", "-"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["question"] for r in rows] == ["What is a trigger film?", "", "Should carers be reimbursed for travel and parking?"]
    assert rows[1]["error"] == "Line 2 is empty: no question was asked."
    assert rows[2]["citations"][0]["source"] == "paying-participants.html"


def test_an_unknown_document_names_the_indexed_ones(fast_service, use_service, capsys):
    use_service(fast_service)
    assert cli.main(["ask", "--document", "nope.md", "What is a trigger film?"]) == 2
    assert "Unknown document 'nope.md'" in capsys.readouterr().err


def test_sources_lists_the_three_documents(fast_service, use_service, capsys):
    use_service(fast_service)
    assert cli.main(["sources"]) == 0
    out = capsys.readouterr().out
    assert (
        "trigger-films.md" in out
        and "Trigger films" in out
        and out.rstrip().endswith("3 documents, " + f"{len(fast_service.index.chunks)} chunks.")
    )


def test_ingest_reports_each_file_and_fails_on_a_bad_one(tmp_path, use_service, capsys):
    corpus = tmp_path / "corpus"
    shutil.copytree(FIXTURE_CORPUS, corpus)
    (corpus / "empty.md").write_text("---\ntitle: Empty\n---\n", encoding="utf-8")
    use_service(AssistantService(fast_settings(tmp_path / "data", corpus_dir=corpus), embedder=FakeEmbedder()))
    assert cli.main(["ingest"]) == 1
    captured = capsys.readouterr()
    assert "added     trigger-films.md" in captured.out and "3 added, 1 failed" in captured.out
    assert "FAILED" in captured.err and "empty.md" in captured.err
