"""Shared fixtures: a real index of the shipped corpus, built once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import assistant  # noqa: F401  (sets the offline/telemetry variables first)
from assistant.service import AssistantService
from assistant.settings import PROJECT_ROOT, Settings

CORPUS = PROJECT_ROOT / "corpus"
REVIEW = "review/co-production-and-quality-improvement-2020.md"


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


@pytest.fixture(scope="session", autouse=True)
def _offline_environment():
    for name in ("HF_HUB_OFFLINE", "ANONYMIZED_TELEMETRY", "GRADIO_ANALYTICS_ENABLED", "ORT_DISABLE_TELEMETRY"):
        assert os.environ.get(name), f"{name} should be set by assistant.offline"
    yield
