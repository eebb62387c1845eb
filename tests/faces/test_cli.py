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


def run_cli_bytes(args, data_dir, stdin: bytes | None = None, extra_env=None):
    env = dict(os.environ, ASSISTANT_DATA_DIR=str(data_dir), **(extra_env or {}))
    return subprocess.run([sys.executable, "-m", "assistant", *args], input=stdin, capture_output=True, env=env, timeout=300)


def test_invalid_utf8_on_stdin_and_empty_lines_keep_the_batch_aligned(corpus_data_dir):
    lines = [b"What is co-production?", b"\xff\xfe\xfa broken \xc3( bytes about carers", b"", b"   ", b"How can we involve carers?"]
    result = run_cli_bytes(["ask", "--json", "-"], corpus_data_dir, stdin=b"\n".join(lines) + b"\n")
    assert result.returncode == 0, result.stderr.decode("utf-8", "replace")
    assert b"Traceback" not in result.stderr
    objects = [json.loads(line) for line in result.stdout.decode("utf-8").splitlines()]
    assert len(objects) == len(lines), "one object per input line, in order"
    assert objects[0]["question"] == "What is co-production?" and not objects[0]["abstained"]
    assert "\ufffd" in objects[1]["question"] and "broken" in objects[1]["question"]
    assert "error" not in objects[1] or not objects[1].get("error")
    assert "empty" in objects[2]["error"] and "empty" in objects[3]["error"]
    assert objects[4]["question"] == "How can we involve carers?" and not objects[4]["abstained"]


def test_invalid_utf8_in_argv_is_answered(corpus_data_dir):
    result = run_cli_bytes(["ask", b"How do we pay patient partners \xff\xfe?"], corpus_data_dir)
    assert result.returncode == 0, result.stderr.decode("utf-8", "replace")
    assert b"Traceback" not in result.stderr and b"Sources" in result.stdout
    as_json = run_cli_bytes(["ask", "--json", b"co-design \xc3("], corpus_data_dir)
    assert as_json.returncode == 0 and "\ufffd" in json.loads(as_json.stdout)["question"]


def test_unknown_document_is_an_error_naming_the_known_ones(corpus_data_dir):
    result = run_cli(["ask", "What is EBCD?", "--document", "no-such.md"], corpus_data_dir)
    assert result.returncode == 2
    assert "Unknown document 'no-such.md'" in result.stderr and "notes/ebcd.md" in result.stderr
    batch = run_cli(["ask", "--json", "-", "--document", "no-such.md"], corpus_data_dir, stdin="What is EBCD?\nWho pays?\n")
    objects = [json.loads(line) for line in batch.stdout.splitlines()]
    assert batch.returncode == 2 and len(objects) == 2 and all("Unknown document" in o["error"] for o in objects)
    known = run_cli(["ask", "--json", "What is EBCD?", "--document", "notes/ebcd.md"], corpus_data_dir)
    assert known.returncode == 0 and {c["source"] for c in json.loads(known.stdout)["citations"]} == {"notes/ebcd.md"}


def test_a_second_ingest_says_why_it_waits(tmp_path):
    import fcntl
    import time

    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / "good.md").write_text("## Roles\n\nAgree roles for patient partners before the first meeting.\n", encoding="utf-8")
    index_dir = tmp_path / "data" / "index"
    index_dir.mkdir(parents=True)
    with open(index_dir / ".lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a running ingest (the UI's, say) holds it
        held.write(str(os.getpid()))
        held.flush()
        env = dict(os.environ, ASSISTANT_DATA_DIR=str(tmp_path / "data"), ASSISTANT_CORPUS_DIR=str(corpus))
        process = subprocess.Popen(
            [sys.executable, "-m", "assistant", "ingest"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        first_line = process.stderr.readline()
        assert "Another ingest" in first_line and f"process {os.getpid()}" in first_line and "waiting" in first_line
        time.sleep(1)
        assert process.poll() is None, "it waits while the lock is held"
        fcntl.flock(held, fcntl.LOCK_UN)
    out, _ = process.communicate(timeout=300)
    assert process.returncode == 0 and "added" in out
