"""Nothing a user adds can break ingestion or the service: 73 kinds of bad or odd files in one batch with good ones."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from assistant.service import AssistantService, UploadError
from tests.bad_files import GOOD_TEXT, build
from tests.conftest import make_settings

GENERIC = "could not be indexed ("  # the catch-all message: every cause below must be named more precisely


def small_corpus(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "shipped.md").write_text(
        "---\ntitle: Shipped review\nevidence: primary\n---\n## Ground rules\n\nShipped guidance: agree ground rules with patient partners early.\n",
        encoding="utf-8",
    )
    return folder


def by_name(report) -> dict[str, list]:
    found: dict[str, list] = {}
    for outcome in report.outcomes:
        found.setdefault(Path(outcome.path).name, []).append(outcome)
    return found


def test_one_batch_of_bad_and_good_files(tmp_path):
    corpus = small_corpus(tmp_path / "corpus")
    incoming = tmp_path / "incoming"
    kinds = build(incoming)
    assert len(kinds) >= 50
    service = AssistantService(make_settings(tmp_path / "data", corpus_dir=corpus, max_file_mb=1))

    def vanish(done, total, name):
        for kind in kinds:
            if kind.vanish and name == kind.name:
                (incoming / kind.name).unlink()  # deleted after it was listed, before it is read

    report = service.ingest([corpus, incoming, incoming / "program.exe", incoming / "missing.md"], progress=vanish)

    outcomes = by_name(report)
    problems = []
    for kind in kinds:
        got = outcomes.get(kind.name, [])
        if len(got) != 1:
            problems.append(f"{kind.name}: {len(got)} outcomes")
            continue
        outcome = got[0]
        if kind.expect == "good":
            if outcome.status != "added" or outcome.chunks < 1:
                problems.append(f"{kind.name}: expected indexed, got {outcome.status}: {outcome.message}")
            elif kind.note and not re.search(kind.note, outcome.message):
                problems.append(f"{kind.name}: warning {outcome.message!r} does not match {kind.note!r}")
        else:
            if outcome.status != "failed":
                problems.append(f"{kind.name}: expected FAILED, got {outcome.status}")
            elif not re.search(kind.cause, outcome.message, flags=re.DOTALL):
                problems.append(f"{kind.name}: message {outcome.message!r} does not name the cause {kind.cause!r}")
            elif GENERIC in outcome.message or "Traceback" in outcome.message:
                problems.append(f"{kind.name}: generic message {outcome.message!r}")
    assert not problems, "\n".join(problems)
    assert outcomes["missing.md"][0].status == "failed" and "no such file" in outcomes["missing.md"][0].message
    assert outcomes["shipped.md"][0].status == "added"

    bad = sum(1 for k in kinds if k.expect == "failed") + 1  # + the missing path (program.exe is a kind)
    good = sum(1 for k in kinds if k.expect == "good") + 1  # + the shipped note
    assert report.count("failed") == bad and report.count("added") == good
    assert f"{good} added" in report.summary() and f"{bad} failed" in report.summary()

    indexed = {Path(d["source"]).name for d in service.sources()}
    assert {k.name for k in kinds if k.expect == "good"} <= indexed
    assert not indexed & {k.name for k in kinds if k.expect == "failed"}
    answer = service.ask("How do we agree ground rules with patient partners?")
    assert not answer.abstained and answer.citations

    # Only the shipped corpus is primary evidence: the file outside it that claimed so lost the claim.
    documents = service.store.current_manifest()["documents"]
    claimed = next(e for s, e in documents.items() if s.endswith("fm-claims-primary.md"))
    assert "evidence" not in claimed["metadata"]
    assert documents["shipped.md"]["metadata"]["evidence"] == "primary"
    assert service.retriever(service.index).primary_sources == {"shipped.md"}


def run_cli(args, env, timeout=600):
    return subprocess.run([sys.executable, "-m", "assistant", *args], capture_output=True, text=True, env=env, timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_uploads_of_every_kind_leave_serve_sources_and_ingest_working(tmp_path):
    corpus = small_corpus(tmp_path / "corpus")
    data = tmp_path / "data"
    settings = make_settings(data, corpus_dir=corpus, max_file_mb=1)
    service = AssistantService(settings)

    # Regular files arrive through the upload path the UI uses (safe names, refusals of empty or odd types).
    staged = tmp_path / "staged"
    kinds = build(staged, with_special=False)
    refused, saved = {}, {}
    for kind in kinds:
        try:
            saved[kind.name] = service.save_upload(kind.name, (staged / kind.name).read_bytes())
        except UploadError as exc:
            refused[kind.name] = str(exc)
    assert set(refused) == {"empty.md", "empty.txt", "empty.pdf", "program.exe", "too-big.txt"}, refused
    long_upload = service.save_upload("u" * 240 + ".md", f"## Long upload\n\n{GOOD_TEXT}\n".encode())
    assert long_upload.suffix == ".md" and len(long_upload.name) <= 150
    # What cannot come through a browser can still sit in the folder: pipes and links.
    uploads = settings.uploads_dir
    os.mkfifo(uploads / "pipe.md")
    os.symlink("self-loop.md", uploads / "self-loop.md")
    os.symlink("gone.md", uploads / "dangling.md")

    env = dict(os.environ, ASSISTANT_DATA_DIR=str(data), ASSISTANT_CORPUS_DIR=str(corpus), ASSISTANT_MAX_FILE_MB="1")
    first = run_cli(["ingest"], env)
    assert "Traceback" not in first.stderr, first.stderr
    assert first.returncode == 1, "some files failed, so the exit code says so"
    failed_lines = [line for line in first.stderr.splitlines() if line.startswith("  FAILED ")]
    bad_saved = [k for k in kinds if k.name in saved and k.expect == "failed" and not k.vanish]
    assert len(failed_lines) == len(bad_saved) + 3, first.stderr
    for name in ("pipe.md", "self-loop.md", "dangling.md"):
        assert any(name in line for line in failed_lines)
    assert "uploads/good-note.md" in first.stdout
    assert re.search(r"\d+ added, .*\d+ failed", first.stdout)

    again = run_cli(["ingest"], env)
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert "unchanged" in again.stdout

    sources = run_cli(["sources", "--json"], env)
    assert sources.returncode == 0, sources.stderr
    listed = {d["source"] for d in json.loads(sources.stdout)}
    assert "uploads/good-note.md" in listed and f"uploads/{long_upload.name}" in listed
    plain = run_cli(["sources"], env)
    assert plain.returncode == 0 and "uploads/good.docx" in plain.stdout

    from assistant.faces.ui import build_app

    app = build_app(AssistantService(settings))
    assert app is not None

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "assistant", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline, status = time.monotonic() + 300, None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    status = response.status
                    break
            except OSError:
                time.sleep(1)
        assert server.poll() is None, server.communicate()[1][-3000:]
        assert status == 200
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    assert "Traceback" not in (server.stderr.read() if server.stderr else "")


def test_an_index_with_odd_metadata_from_before_still_reads(tmp_path):
    """Indexes written before validation may hold `sources: 5` or a self-declared primary upload: readers cope."""
    corpus = small_corpus(tmp_path / "corpus")
    settings = make_settings(tmp_path / "data", corpus_dir=corpus)
    service = AssistantService(settings)
    service.save_upload("old-upload.md", f"## Old\n\n{GOOD_TEXT}\n".encode())
    service.ingest()
    entry = dict(service.store.current_manifest()["documents"]["uploads/old-upload.md"])
    entry["metadata"] = {"sources": 5, "source_url": 5, "themes": 5, "licence": ["x"], "evidence": "primary", "title": "kept"}
    entry["themes"] = 5
    service.store.replace_entry("uploads/old-upload.md", entry)  # committed as stored, unchecked

    fresh = AssistantService(settings)
    listed = {d["source"]: d for d in fresh.sources()}
    old = listed["uploads/old-upload.md"]
    assert old["sources"] == [] and old["source_url"] is None and old["themes"] == []
    assert fresh.retriever(fresh.index).primary_sources == {"shipped.md"}
    answer = fresh.ask("How do we agree ground rules with patient partners?")
    assert not answer.abstained
    env = dict(os.environ, ASSISTANT_DATA_DIR=str(settings.data_dir), ASSISTANT_CORPUS_DIR=str(corpus))
    result = run_cli(["sources"], env)
    assert result.returncode == 0 and "uploads/old-upload.md" in result.stdout, result.stderr


def test_an_upload_cannot_declare_itself_primary_evidence(tmp_path):
    corpus = small_corpus(tmp_path / "corpus")
    service = AssistantService(make_settings(tmp_path / "data", corpus_dir=corpus))
    service.save_upload("claims.md", f"---\ntitle: Claims\nevidence: primary\n---\n## Rules\n\n{GOOD_TEXT}\n".encode())
    report = service.ingest()
    outcome = next(o for o in report.outcomes if o.source == "uploads/claims.md")
    assert outcome.status == "added" and "'evidence: primary' ignored" in outcome.message
    documents = service.store.current_manifest()["documents"]
    assert "evidence" not in documents["uploads/claims.md"]["metadata"]
    assert documents["shipped.md"]["metadata"]["evidence"] == "primary"
    assert service.retriever(service.index).primary_sources == {"shipped.md"}


@pytest.mark.parametrize("name", ["a" * 240 + ".md", "b" * 200 + ".docx", "c" * 300 + ".markdown"])
def test_long_upload_names_keep_their_extension(tmp_path, name):
    from assistant.service import safe_filename

    kept = safe_filename(name)
    assert len(kept) <= 150 and kept.endswith(Path(name).suffix)
