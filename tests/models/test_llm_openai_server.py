"""The `openai` backend against a real OpenAI-compatible server: llama_cpp.server on 127.0.0.1 serving the packaged GGUF."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from assistant.models.local_model import packaged_model_path
from assistant.service import AssistantService, Draft
from assistant.settings import PROJECT_ROOT
from tests.conftest import make_settings

MODEL = packaged_model_path(PROJECT_ROOT / "data")
QUESTION = "What is a trigger film in experience-based co-design?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    assert MODEL.exists(), f"{MODEL} is missing: run `make local-llm` (make test does)"
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(MODEL),
            "--model_alias",
            "qwen-local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "4096",
            "--verbose",
            "False",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=2) as reply:
                if reply.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"llama_cpp.server did not start: {process.stderr.read().decode()[-2000:]}")
        time.sleep(0.5)
    yield url
    process.terminate()
    process.wait(timeout=30)


def openai_service(data_dir, url, **overrides) -> AssistantService:
    return AssistantService(make_settings(data_dir, backend="openai", openai_base_url=url, openai_model="qwen-local", **overrides))


def test_openai_backend_answers_with_verified_citations(corpus_data_dir, server):
    events = list(openai_service(corpus_data_dir, server, openai_response_format="json_object").ask_stream(QUESTION))
    answer = events[-1].answer.to_dict()
    assert answer["backend"] == "openai", answer["notice"]
    assert "qwen-local" in answer["model"]
    assert not answer["abstained"] and answer["citations"]
    assert any(c["action"] in ("kept", "recited") for c in answer["verification"])
    assert sum(isinstance(e, Draft) for e in events) >= 3, "the server's stream reaches the caller as it is written"


def test_server_that_rejects_json_schema_requests_gets_a_clear_message(corpus_data_dir, server):
    # llama-cpp-python's server knows only {"type": "json_object", "schema": ...}
    answer = openai_service(corpus_data_dir, server, openai_response_format="json_schema").ask(QUESTION)
    assert answer.backend == "extractive" and answer.citations
    assert "ASSISTANT_OPENAI_RESPONSE_FORMAT" in answer.notice


def test_prose_with_markers_when_constrained_output_is_off(corpus_data_dir, server):
    answer = openai_service(corpus_data_dir, server, openai_response_format="off").ask(QUESTION)
    # unconstrained, a 1.5B model may or may not cite; either way nothing unverified is shown as cited
    if answer.backend == "openai":
        assert answer.citations and all(c["action"] in ("kept", "recited", "flagged") for c in answer.verification)
    else:
        assert answer.fallback and answer.notice and answer.citations
