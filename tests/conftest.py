"""Shared fixtures: a real index of the shipped corpus (the corpus tier) and of a three-file fixture corpus
embedded by a fake (the fast tier, `make test-fast`), each built once per test session; and the tier markers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import assistant  # noqa: F401  (sets the offline/telemetry variables first)
from assistant.models.cross_encoder import resolve_model_dir
from assistant.service import AssistantService
from assistant.settings import PROJECT_ROOT, Settings
from tests.fakes import FakeEmbedder

CORPUS = PROJECT_ROOT / "corpus"
REVIEW = "review/co-production-and-quality-improvement-2020.md"
FIXTURE_CORPUS = Path(__file__).parent / "fixtures" / "corpus"

# Tests that need what the fast tier leaves out, by the fixtures they use (directly or through other fixtures)
# and by module; `make test-fast` deselects these markers, `make test` runs everything.
CORPUS_FIXTURES = frozenset({"corpus_data_dir", "corpus_service"})
MODEL_MODULES = frozenset({"test_local_chat.py"})  # load the packaged GGUF through llama-cpp-python
# Real ingests with the real embedding model, often in subprocesses: 2-56 s a test on a busy 2-core machine,
# 110 s for these three modules together. Marked slow here rather than in files other people own; the fast tier
# covers the same stages with the fake embedder (tests/*/test_*_fast.py).
SLOW_MODULES = frozenset({"tests/ingest/test_pipeline.py", "tests/ingest/test_bad_files.py", "tests/index/test_store.py"})
# Single tests of several seconds elsewhere; tests/test_tiers_fast.py checks that every name still exists, so a
# rename cannot quietly move one into the fast tier.
SLOW_TESTS = frozenset(
    {
        "tests/faces/test_cli.py::test_a_second_ingest_says_why_it_waits",
        "tests/faces/test_cli.py::test_ingest_reports_a_bad_file_and_indexes_the_rest",
        "tests/answering/test_extractive.py::test_planted_instructions_in_an_upload_are_not_quoted_as_advice",
        "tests/models/test_query_encoder.py::test_onnx_and_torch_query_vectors_agree",
        "tests/faces/test_ui.py::test_login_is_required_off_loopback",  # starts app.py, which imports Gradio
    }
)
SLOW_FIXTURES = frozenset({"hostile_plan"})  # a real index of one document with the real embedding model


def make_settings(data_dir: Path, **overrides) -> Settings:
    return Settings(data_dir=data_dir, corpus_dir=overrides.pop("corpus_dir", CORPUS), **overrides)


@pytest.fixture(scope="session")
def corpus_data_dir(tmp_path_factory) -> Path:
    """A data directory holding a complete index of corpus/ (about 25 s to build on 2 cores)."""
    data_dir = tmp_path_factory.mktemp("corpus-data")
    report = AssistantService(make_settings(data_dir)).ingest()
    assert not report.failures, report.failures
    return data_dir


@pytest.fixture(scope="session")
def corpus_service(corpus_data_dir) -> AssistantService:
    """The service over the shipped corpus; read-only: tests that change the index build their own."""
    return AssistantService(make_settings(corpus_data_dir))


@pytest.fixture(scope="module")
def ce_service(corpus_data_dir):
    """The corpus service with the packaged cross-encoder (fetched by `make cross-encoder` into the checkout's data/)."""
    model_dir = resolve_model_dir(Settings())
    assert (model_dir / "model.onnx").is_file(), f"the cross-encoder is missing at {model_dir}: run `make cross-encoder`"
    return AssistantService(make_settings(corpus_data_dir, cross_encoder_path=str(model_dir)))


@pytest.fixture(scope="session", autouse=True)
def _offline_environment():
    for name in ("HF_HUB_OFFLINE", "ANONYMIZED_TELEMETRY", "GRADIO_ANALYTICS_ENABLED", "ORT_DISABLE_TELEMETRY"):
        assert os.environ.get(name), f"{name} should be set by assistant.offline"
    yield


def fast_settings(data_dir: Path, **overrides) -> Settings:
    """Settings over the fixture corpus; the cross-encoder is off, so no model file is read."""
    return make_settings(data_dir, corpus_dir=overrides.pop("corpus_dir", FIXTURE_CORPUS), **{"cross_encoder": False, **overrides})


@pytest.fixture(scope="session")
def fast_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture(scope="session")
def fast_data_dir(tmp_path_factory, fast_embedder) -> Path:
    """A data directory holding a real Chroma + BM25 index of tests/fixtures/corpus, embedded by the fake."""
    data_dir = tmp_path_factory.mktemp("fast-data")
    report = AssistantService(fast_settings(data_dir), embedder=fast_embedder).ingest()
    assert not report.failures, report.failures
    return data_dir


@pytest.fixture(scope="session")
def fast_service(fast_data_dir, fast_embedder) -> AssistantService:
    """The service over the fixture corpus; read-only: tests that change the index build their own."""
    return AssistantService(fast_settings(fast_data_dir), embedder=fast_embedder)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if CORPUS_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.corpus)
        if item.path.name in MODEL_MODULES:
            item.add_marker(pytest.mark.model)
        module, _, _ = item.nodeid.partition("::")
        slow = module in SLOW_MODULES or item.nodeid.split("[")[0] in SLOW_TESTS
        if slow or SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
