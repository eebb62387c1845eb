"""The data folder does not depend on the working directory, and "no index" messages say where they looked and how to change it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from assistant.index.loaded import open_current
from assistant.index.store import IndexMissing, IndexStore
from assistant.locations import DATA_DIR_ENV, IS_CHECKOUT, PROJECT_ROOT, is_checkout, no_index_message

REPO = Path(__file__).resolve().parents[1]
PRINT_DATA_DIR = "from assistant.settings import Settings; print(Settings().data_dir)"


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    return env | extra


def _run(args: list[str], cwd: Path, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=_env(**extra), capture_output=True, text=True, timeout=180)


def test_this_checkout_is_recognised():
    assert IS_CHECKOUT and PROJECT_ROOT == REPO
    assert not is_checkout(REPO / "src")


def test_the_default_data_folder_is_the_checkouts_own_from_any_working_directory(tmp_path):
    for cwd in (tmp_path, REPO / "tests", Path("/")):
        done = _run(["-c", PRINT_DATA_DIR], cwd)
        assert done.returncode == 0, done.stderr
        assert Path(done.stdout.strip()) == REPO / "data", cwd
    assert not (tmp_path / "data").exists()


def test_assistant_data_dir_still_overrides(tmp_path):
    done = _run(["-c", PRINT_DATA_DIR], tmp_path, **{DATA_DIR_ENV: str(tmp_path / "mine")})
    assert Path(done.stdout.strip()) == tmp_path / "mine"


def test_the_message_names_the_folder_and_the_setting(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    message = no_index_message(Path("data/index"))
    assert str(tmp_path / "data" / "index") in message  # absolute: a relative folder would not say where
    assert DATA_DIR_ENV in message and "assistant ingest" in message


def test_opening_a_missing_index_names_the_folder(tmp_path):
    try:
        open_current(IndexStore(tmp_path / "index"), embedder=None)
    except IndexMissing as exc:
        assert str(tmp_path / "index") in str(exc) and DATA_DIR_ENV in str(exc)
    else:
        raise AssertionError("an empty folder has no index")


def test_ask_and_sources_without_an_index_say_where_they_looked(tmp_path):
    empty = tmp_path / "empty-data"
    ask = _run(["-m", "assistant", "ask", "--json", "What is experience-based co-design?"], tmp_path, **{DATA_DIR_ENV: str(empty)})
    assert ask.returncode == 2, ask.stderr
    answer = json.loads(ask.stdout.strip().splitlines()[-1])
    assert str(empty / "index") in answer["error"] and DATA_DIR_ENV in answer["error"]

    sources = _run(["-m", "assistant", "sources"], tmp_path, **{DATA_DIR_ENV: str(empty)})
    assert sources.returncode == 0, sources.stderr
    assert str(empty / "index") in sources.stdout and DATA_DIR_ENV in sources.stdout
    assert not (tmp_path / "data").exists()  # nothing was created in the working directory
