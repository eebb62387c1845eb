"""Shared by the model tests: the packaged embedding model and its verified ONNX export."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.locations import default_data_dir
from assistant.models import query_encoder as onnx_query
from tests.conftest import make_settings


def packaged_embedding_model() -> tuple[str, str]:
    """(model path, model name) of the embedding model the settings choose by default."""
    settings = make_settings(default_data_dir())
    return settings.resolved_embedding_model(), settings.embedding_model_name()


@pytest.fixture(scope="session")
def query_export(tmp_path_factory) -> Path:
    """A verified export: the one `make query-encoder` wrote, else a fresh one (needs the onnx package)."""
    path, name = packaged_embedding_model()
    installed = onnx_query.packaged_dir(default_data_dir())
    try:
        onnx_query.load(installed, path, name)
        return installed
    except onnx_query.QueryEncoderUnavailable:
        target = tmp_path_factory.mktemp("query-export") / onnx_query.DIRNAME
        onnx_query.export(path, name, target)
        return target
