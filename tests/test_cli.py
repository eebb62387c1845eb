"""The `assistant` command as a user runs it, in a real subprocess over the real index."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def run_cli(args, data_dir, stdin=None):
    env = dict(os.environ, ASSISTANT_DATA_DIR=str(data_dir))
    return subprocess.run([sys.executable, "-m", "assistant", *args], input=stdin, capture_output=True, text=True, env=env, timeout=300)


def test_ask_prints_an_answer_with_sources(corpus_data_dir):
    result = run_cli(["ask", "How should we handle power dynamics in a co-design group?"], corpus_data_dir)
    assert result.returncode == 0, result.stderr
    assert "[1]" in result.stdout and "Sources" in result.stdout


def test_ask_json_single(corpus_data_dir):
    result = run_cli(["ask", "--json", "What is an Always Event?"], corpus_data_dir)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["question"] == "What is an Always Event?"
    assert not data["abstained"] and data["citations"]


def test_ask_json_batch_from_stdin_one_object_per_line(corpus_data_dir):
    questions = ["What is co-production?", "", "How do I bake bread?", "x" * 50_000, "How can we involve carers?"]
    result = run_cli(["ask", "--json", "-"], corpus_data_dir, stdin="\n".join(questions) + "\n")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    # One object per input line, empty ones included, so inputs and outputs zip.
    assert [line["question"][:40] for line in lines] == [q[:40] for q in questions]
    assert not lines[0]["abstained"]
    assert lines[1]["abstained"] and "empty" in lines[1]["error"]
    assert lines[2]["abstained"]
    assert "limit" in lines[3]["error"] and lines[3]["abstained"]
    assert not lines[4]["abstained"]


def test_sources_lists_documents(corpus_data_dir):
    result = run_cli(["sources"], corpus_data_dir)
    assert result.returncode == 0
    assert "review/co-production-and-quality-improvement-2020.md" in result.stdout
    assert "chunks" in result.stdout


def test_ask_without_an_index_says_what_to_do(tmp_path):
    result = run_cli(["ask", "What is co-production?"], tmp_path / "empty")
    assert result.returncode == 2
    assert "assistant ingest" in result.stderr


def test_ingest_reports_a_bad_file_and_indexes_the_rest(tmp_path):
    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / "good.md").write_text("## Roles\n\nAgree roles for patient partners before the first meeting.\n", encoding="utf-8")
    (corpus / "bad.pdf").write_bytes(b"not a pdf")
    env_dir = tmp_path / "data"
    result = run_cli(["ingest", str(corpus)], env_dir)
    assert result.returncode == 1, "a failed file makes the exit code non-zero"
    assert "FAILED" in result.stderr and "bad.pdf" in result.stderr
    assert "1 added" in result.stdout and "1 failed" in result.stdout
    assert "added" in result.stdout and "good.md" in result.stdout


@pytest.mark.parametrize("args", [["ask"], ["ask", "q", "--theme", "cooking"]])
def test_usage_errors(args, tmp_path):
    result = run_cli(args, tmp_path)
    assert result.returncode == 2
