"""ASSISTANT_CHROMA_URL: services share one library through a real `chroma run` server; a server that is down is a clear error and loses nothing."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from assistant.index.chroma_client import PASSAGES, SENTENCES, Chroma, ChromaUnavailable
from assistant.service import AssistantService
from tests.conftest import make_settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _chroma_command() -> str:
    beside = Path(sys.executable).with_name("chroma")  # installed with chromadb, in this environment
    return str(beside) if beside.exists() else shutil.which("chroma")


class ChromaServer:
    """A real `chroma run` on 127.0.0.1, stoppable and restartable on the same folder and port."""

    def __init__(self, path: Path):
        self.path, self.port = path, _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self) -> None:
        env = dict(os.environ, ANONYMIZED_TELEMETRY="False")
        self.log = open(self.path.parent / f"chroma-{self.port}.log", "ab")  # noqa: SIM115 - the server writes to it until stop()
        self.process = subprocess.Popen(
            [_chroma_command(), "run", "--path", str(self.path), "--host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.path.parent / f"chroma-{self.port}.log").read_text(errors="replace")[-2000:]
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/heartbeat", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise AssertionError("the Chroma server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        self.log.close()


@pytest.fixture
def server(tmp_path):
    chroma = ChromaServer(tmp_path / "chroma-server")
    chroma.start()
    yield chroma
    chroma.stop()


def _corpus(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rules.md").write_text(
        "## Ground rules\n\nAgree ground rules with patient partners before the first workshop.\n", encoding="utf-8"
    )
    (folder / "pay.md").write_text("## Expenses\n\nReimburse travel expenses on the day so nobody is out of pocket.\n", encoding="utf-8")
    return folder


def _run_cli(args: list[str], data: Path, corpus: Path, url: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ASSISTANT_DATA_DIR=str(data), ASSISTANT_CORPUS_DIR=str(corpus), ASSISTANT_CHROMA_URL=url)
    return subprocess.run([sys.executable, "-m", "assistant", *args], env=env, capture_output=True, text=True, timeout=300)


def _server_counts(service) -> tuple[int, int]:
    with service.store.chroma() as chroma:
        return chroma.call(PASSAGES, "count"), chroma.call(SENTENCES, "count")


def test_one_service_ingests_and_another_answers_from_the_same_server(tmp_path, server):
    corpus = _corpus(tmp_path / "corpus")
    writer = AssistantService(make_settings(tmp_path / "writer", corpus_dir=corpus, chroma_url=server.url))
    writer.ingest()
    assert not (tmp_path / "writer" / "index" / "chroma").exists(), "nothing is stored in an embedded Chroma"

    # Another replica: its own data folder, nothing local; everything it knows comes from the server.
    reader = AssistantService(make_settings(tmp_path / "reader", corpus_dir=corpus, chroma_url=server.url))
    answer = reader.ask("How do we reimburse travel expenses?")
    assert not answer.abstained and answer.passages[0].chunk.source == "pay.md"
    assert {d["source"] for d in reader.sources()} == {"rules.md", "pay.md"}

    (corpus / "tea.md").write_text("## Refreshments\n\nOffer tea and biscuits at every co-design meeting.\n", encoding="utf-8")
    writer.ingest()
    started = time.monotonic()
    later = reader.ask("Should we offer tea and biscuits at meetings?")
    assert time.monotonic() - started < 30
    assert "tea.md" in {p.chunk.source for p in later.passages}, "the reader sees the upload at its next question"
    assert reader.index.stamp == writer.store.current_stamp()
    assert _server_counts(reader) == (len(reader.index.chunks), len(reader.index.sentences))


def test_a_server_that_is_down_is_a_clear_error_and_loses_nothing(tmp_path, server):
    corpus = _corpus(tmp_path / "corpus")
    data = tmp_path / "data"
    assert _run_cli(["ingest"], data, corpus, server.url).returncode == 0
    server.stop()

    (corpus / "tea.md").write_text("## Refreshments\n\nOffer tea and biscuits at every co-design meeting.\n", encoding="utf-8")
    ingest = _run_cli(["ingest"], data, corpus, server.url)
    assert ingest.returncode == 2 and "Traceback" not in ingest.stderr, ingest.stderr
    assert f"Chroma server at {server.url} could not be reached" in ingest.stderr and "Nothing was changed" in ingest.stderr
    ask = _run_cli(["ask", "How do we reimburse travel expenses?"], data, corpus, server.url)
    assert ask.returncode == 2 and "Traceback" not in ask.stderr and "could not be reached" in ask.stderr, ask.stderr

    server.start()  # same folder, same port
    ask = _run_cli(["ask", "How do we reimburse travel expenses?"], data, corpus, server.url)
    assert ask.returncode == 0 and "travel" in ask.stdout.lower(), ask.stderr
    ingest = _run_cli(["ingest"], data, corpus, server.url)
    assert ingest.returncode == 0 and "added" in ingest.stdout and "tea.md" in ingest.stdout, ingest.stderr


def test_a_server_restart_during_an_ingest_loses_nothing_once_it_is_rerun(tmp_path, server, monkeypatch):
    corpus = _corpus(tmp_path / "corpus")
    service = AssistantService(make_settings(tmp_path / "data", corpus_dir=corpus, chroma_url=server.url))
    service.ingest()
    before = service.index
    (corpus / "pay.md").write_text("## Vouchers\n\nOffer shopping vouchers as a thank-you to patient partners.\n", encoding="utf-8")
    (corpus / "tea.md").write_text("## Refreshments\n\nOffer tea and biscuits at every co-design meeting.\n", encoding="utf-8")
    real = Chroma.call

    def server_dies_while_writing(self, name, method, **kwargs):
        if name == PASSAGES and method == "upsert" and server.process is not None:
            result = real(self, name, method, **kwargs)  # half the work reached the server...
            server.stop()  # ...then it went away
            return result
        return real(self, name, method, **kwargs)

    monkeypatch.setattr(Chroma, "call", server_dies_while_writing)
    with pytest.raises(ChromaUnavailable, match="could not be reached"):
        service.ingest()
    monkeypatch.undo()
    server.start()

    assert service.index.stamp == before.stamp, "nothing was committed"
    assert "travel expenses" in " ".join(c.text for c in service.index.chunks)
    report = service.ingest()
    assert {o.source: o.status for o in report.outcomes} == {"rules.md": "unchanged", "pay.md": "updated", "tea.md": "added"}
    texts = " ".join(c.text for c in service.index.chunks)
    assert "vouchers" in texts and "travel expenses" not in texts and "tea and biscuits" in texts
    assert _server_counts(service) == (len(service.index.chunks), len(service.index.sentences)), "no orphans left on the server"
