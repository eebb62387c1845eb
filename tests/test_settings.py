"""Settings come from ASSISTANT_* variables over an optional TOML file; privacy defaults are set on import."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from assistant.settings import Settings


def test_defaults_are_private_and_local():
    settings = Settings()
    assert settings.host == "127.0.0.1"
    assert settings.backend == "extractive"
    assert settings.resolved_embedding_model().endswith("model")  # the packaged MiniLM, offline


def test_toml_file_then_environment_override(tmp_path, monkeypatch):
    config = tmp_path / "assistant.toml"
    config.write_text('top_k = 12\nchunk_size = 800\ndata_dir = "/srv/assistant"\n', encoding="utf-8")
    monkeypatch.setenv("ASSISTANT_CONFIG", str(config))
    settings = Settings()
    assert (settings.top_k, settings.chunk_size, str(settings.data_dir)) == (12, 800, "/srv/assistant")
    monkeypatch.setenv("ASSISTANT_TOP_K", "6")
    assert Settings().top_k == 6


def test_invalid_values_are_refused(monkeypatch):
    monkeypatch.setenv("ASSISTANT_CHUNK_SIZE", "10")
    with pytest.raises(ValidationError, match="chunk_size"):
        Settings()


def test_importing_the_package_turns_telemetry_off():
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("HF_HUB_OFFLINE", "ANONYMIZED_TELEMETRY", "GRADIO_ANALYTICS_ENABLED", "ORT_DISABLE_TELEMETRY")
    }
    code = "import os, assistant; print(os.environ['HF_HUB_OFFLINE'], os.environ['ANONYMIZED_TELEMETRY'], os.environ['GRADIO_ANALYTICS_ENABLED'], os.environ['ORT_DISABLE_TELEMETRY'])"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["1", "False", "False", "1"]
