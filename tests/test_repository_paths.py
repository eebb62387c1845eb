"""No code, test, script, benchmark, Makefile rule or CI step names a path above the repository root."""

# Why: every checkout here and CI's clone have a folder beside the repository that a user's clone
# does not; tests that read from it passed in CI and failed for everyone else (issue 11).

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCANNED = ("src", "tests", "scripts", "benchmarks", ".ci", "Makefile", "app.py")
SKIPPED_DIRS = {"__pycache__", ".pytest_cache"}

UP = "." + "."  # spelled so that this file passes its own scan
# Names of places outside the repository: the shared folder beside the checkouts, the workspace.
OUTSIDE_NAMES = ("shared" + "/seeds", UP + "/shared", "/wo" + "rk/")
# A relative path that climbs a folder: UP then a slash, or a slash then UP (in shell files also a lone UP).
CLIMB = re.compile(r"(?<![\w.])" + re.escape(UP) + r"[/\\]|[/\\]" + re.escape(UP) + r"(?![\w.])")
SHELL_CLIMB = re.compile(r"(?<![\w./])" + re.escape(UP) + r"(?![\w./])")
SHELL_FILES = ("Makefile", ".ci/")
SELF = "tests/test_repository_paths.py"
EXAMPLE = "# example"  # this file's own sample lines, which must match
PARENTS_INDEX = re.compile(r"\.parents\[(\d+)\]")
FILE_PARENT_CHAIN = re.compile(r"__file__\)(?:\.resolve\(\))?((?:\.parent\b)+)")
ROOT_PARENT = re.compile(r"\b(?:ROOT|REPO|REPO_ROOT|PROJECT_ROOT|SOURCE_ROOT)\.parents?\b")

# A test that feeds a hostile path to a guard (an upload name, a URL) marks the line with this comment;
# it exempts the line from the climb checks only, never from naming the places outside.
HOSTILE = "# hostile path"
# Climbs that stay inside the repository, each with the reason it is allowed.
ALLOWED = {
    (".ci/run", '"$(dirname "$0")/' + UP + '"'): "from .ci/ up to the repository root",
    ("tests/test_service.py", UP + "/" + UP + "/etc/passwd.md"): "a hostile upload name the service must flatten",
}


def scanned_files() -> list[Path]:
    files = []
    for name in SCANNED:
        path = REPO / name
        if path.is_file():
            files.append(path)
        for found in sorted(path.rglob("*")) if path.is_dir() else ():
            parts = set(found.relative_to(REPO).parts)
            if found.is_file() and not parts & SKIPPED_DIRS and not any(p.endswith(".egg-info") for p in parts):
                files.append(found)
    return files


def problems(relative: str, text: str) -> list[str]:
    """Each place in one file's text that names a path above the repository root."""
    depth = len(Path(relative).parts) - 1  # Path(__file__).parents[depth] is the repository root
    allowed = [snippet for (where, snippet) in ALLOWED if where == relative]
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        if relative == SELF and line.rstrip().endswith(EXAMPLE):
            continue
        checked = line
        for snippet in allowed:
            checked = checked.replace(snippet, "")
        where = f"{relative}:{number}: {line.strip()}"
        found += [f"{where}  (names {name!r})" for name in OUTSIDE_NAMES if name in checked]
        if HOSTILE in line and relative.startswith("tests/"):
            continue
        shell = relative.startswith(SHELL_FILES)
        if CLIMB.search(checked) or (shell and SHELL_CLIMB.search(checked)):
            found.append(f"{where}  (climbs with {UP!r})")
        found += [f"{where}  (parents[{k}] of a file {depth} folders deep)" for k in map(int, PARENTS_INDEX.findall(checked)) if k > depth]
        # Path(__file__).parent is parents[0]: n x .parent reaches parents[n - 1].
        found += [
            f"{where}  ({n} x .parent of a file {depth} folders deep)"
            for n in (chain.count(".parent") for chain in FILE_PARENT_CHAIN.findall(checked))
            if n - 1 > depth
        ]
        if ROOT_PARENT.search(checked):
            found.append(f"{where}  (the parent of the repository root)")
    return found


def test_the_scan_covers_the_project():
    names = {f.relative_to(REPO).as_posix() for f in scanned_files()}
    for expected in (
        "Makefile",
        ".ci/run",
        "scripts/build_review.py",
        "src/assistant/settings.py",
        "tests/test_review_corpus.py",
        "tests/evaluation/test_suites.py",
        "benchmarks/core.py",
        "tests/test_repository_paths.py",
    ):
        assert expected in names


def test_no_file_names_a_path_above_the_repository_root():
    found = []
    for path in scanned_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary: no paths to read
        found += problems(path.relative_to(REPO).as_posix(), text)
    assert not found, (
        "paths outside the repository (a user's clone has nothing beside it):\n"
        + "\n".join(found)
        + f"\n(a test line that feeds a hostile path to a guard, and reads nothing, may end with {HOSTILE!r})"
    )


def test_every_allowed_climb_is_still_there():
    """An exception that no longer matches anything is dropped, not left to excuse a later line."""
    for (where, snippet), reason in ALLOWED.items():
        assert snippet in (REPO / where).read_text(encoding="utf-8"), f"{where}: allowed ({reason}) but gone"


@pytest.mark.parametrize(
    ("relative", "line"),  # example
    [
        # The three lines that broke a clone placed elsewhere (issue 11), and their cousins.
        ("tests/test_review_corpus.py", 'SEED = Path(__file__).parents[2] / "shared' + '/seeds/000.txt"'),  # example
        ("tests/evaluation/test_suites.py", 'SEED = HERE.parents[3] / "corpus.txt"'),  # example
        ("scripts/build_review.py", 'DEFAULT_SEED = REPO_ROOT.parent / "x.txt"'),  # example
        ("tests/test_x.py", 'path = Path(__file__).resolve().parent.parent.parent / "x"'),  # example
        ("Makefile", "\tcp " + UP + "/shared/x data/"),  # example
        (".ci/run", "cd " + UP),  # example
        ("src/assistant/x.py", 'open("' + UP + '/notes.md")'),  # example
        ("benchmarks/x.py", 'Path("/wo' + 'rk/notes")'),
        ("tests/test_x.py", 'SEED = REPO / "' + UP + '/shared/x.txt"  ' + HOSTILE),  # the marker never excuses these
        ("src/assistant/x.py", 'open("' + UP + '/notes.md")  ' + HOSTILE),  # nor code outside tests/  # example
    ],
)
def test_the_scan_finds_paths_above_the_root(relative, line):
    assert problems(relative, line)


@pytest.mark.parametrize(
    ("relative", "line"),  # example
    [
        ("tests/test_review_corpus.py", "REPO = Path(__file__).resolve().parents[1]"),  # example
        ("tests/evaluation/test_suites.py", "REPO = HERE.parents[2]"),  # example
        ("src/assistant/settings.py", "_CHECKOUT = Path(__file__).resolve().parents[2]"),  # example
        ("tests/test_x.py", "ROOT = Path(__file__).resolve().parent.parent"),  # example
        (".ci/run", 'cd "$(dirname "$0")/' + UP + '"'),  # example
        ("src/assistant/x.py", 'text = "wait..." + "etc..."'),  # example
        ("src/assistant/x.py", "report.path.parent.mkdir()"),
        ("tests/test_guard.py", 'get("/files/' + UP + "/" + UP + '/etc/hostname")  ' + HOSTILE),  # example
    ],
)
def test_the_scan_allows_paths_inside_the_root(relative, line):
    assert not problems(relative, line)
