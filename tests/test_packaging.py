"""A non-editable install carries every module, the corpus, prompts, evals and activities, and finds them without the checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from assistant.locations import APP_NAME, SHIPPED_PACKAGE
from assistant.models.prompts import load_prompt

REPO = Path(__file__).resolve().parents[1]
# Folders mapped into the package at build time (pyproject.toml [tool.setuptools.package-dir]).
SHIPPED = ("corpus", "prompts", "evals")
BUILD_INPUTS = ("pyproject.toml", "README.md", "src", *SHIPPED)


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A copy of what the wheel is built from, so the checkout gets no build/ folder (and edits meanwhile don't race)."""
    source = tmp_path_factory.mktemp("wheel-build") / "source"
    for name in BUILD_INPUTS:
        origin = REPO / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(origin, source / name)
    return source


@pytest.fixture(scope="module")
def wheel(source) -> Path:
    out = source.parent / "dist"
    # --no-build-isolation: the venv's setuptools builds it, so the test needs no package index.
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (path,) = out.glob("assistant-*.whl")
    return path


@pytest.fixture(scope="module")
def wheel_names(wheel) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def test_the_wheel_holds_every_module_and_data_file(source, wheel_names):
    """Every file under src/assistant/: modules, and data such as data/activities.yaml and data/plan.html.j2."""
    files = {f"assistant/{name}" for name in _files(source / "src/assistant")}
    assert "assistant/faces/cli.py" in files
    assert files - wheel_names == set(), "add the subpackage or data pattern to [tool.setuptools] in pyproject.toml"


@pytest.mark.parametrize("folder", SHIPPED)
def test_the_wheel_holds_every_shipped_file(source, wheel_names, folder):
    expected = {f"assistant/{SHIPPED_PACKAGE}/{folder}/{name}" for name in _files(source / folder)}
    assert expected, f"{folder}/ is empty in the checkout"
    assert expected - wheel_names == set()


def test_the_wheel_holds_the_activities_and_leaves_out_sources_and_tests(wheel_names):
    assert "assistant/planning/data/activities.yaml" in wheel_names
    assert not [n for n in wheel_names if n.startswith(("sources/", "tests/", "data/")) or "/sources/" in n]


def test_the_entry_point_is_declared(wheel, wheel_names):
    with zipfile.ZipFile(wheel) as archive:
        entry_points = archive.read("assistant-0.1.0.dist-info/entry_points.txt").decode()
    assert "assistant = assistant.faces.cli:main" in entry_points


PROBE = r"""
import json, sys
from pathlib import Path
import assistant, assistant.locations as loc
from assistant.settings import Settings
from assistant.models.prompts import load_prompt
from assistant.evaluation.command import EVALS_DIR
from assistant.planning.catalogue import activity_texts, audience_texts
settings = Settings()
print(json.dumps({
    "package": assistant.__file__,
    "is_checkout": loc.IS_CHECKOUT,
    "project_root": str(loc.PROJECT_ROOT),
    "data_dir": str(settings.data_dir),
    "corpus": sorted(p.relative_to(settings.corpus_dir).as_posix() for p in settings.corpus_dir.rglob("*.md")),
    "prompt": load_prompt("answer").label,
    "evals": sorted(p.name for p in EVALS_DIR.glob("*.yaml")),
    "plan_data": [bool(activity_texts()), bool(audience_texts())],
}))
"""


def test_an_installed_package_finds_its_files_and_a_per_user_data_folder(source, wheel, tmp_path):
    """The wheel unpacked is what pip puts in site-packages; run from an unrelated folder with no checkout in sight."""
    site = tmp_path / "site-packages"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    # PYTHONPATH comes before the venv's editable install on sys.path, so this imports the unpacked wheel.
    env.update(PYTHONPATH=str(site), XDG_DATA_HOME=str(tmp_path / "xdg"), HOME=str(tmp_path / "home"))
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(found["package"]).is_relative_to(site)
    assert found["is_checkout"] is False
    assert Path(found["project_root"]) == site / "assistant" / SHIPPED_PACKAGE
    assert Path(found["data_dir"]) == tmp_path / "xdg" / APP_NAME
    assert set(found["corpus"]) == {n for n in _files(source / "corpus") if n.endswith(".md")}
    assert found["prompt"] == load_prompt("answer").label  # the newest version, as in the checkout
    assert found["evals"] == sorted(n for n in _files(source / "evals") if n.endswith(".yaml"))
    assert found["plan_data"] == [True, True]  # activities.yaml and audiences.yaml from the package
