"""The package's layering, read from every module's imports with `ast` (module level and inside functions).

The data's path is models <- ingest (loaders, references, splitter) <- index <- ingest.pipeline <- retrieval
<- answering; the service sits on the stages; the faces, planning and evaluation go through the service
only. A lower stage never imports a higher one, no stage imports the service or its clients, and the
clients never import a stage package nor reach into the service's store, index, embedder or private
attributes. Shared modules (settings, locations, offline, themes, text, feedback) may be imported by any
module and import only each other. Each failure names the file, the line and the rule it breaks.

An ast test rather than import-linter: it needs no extra dependency, sees imports inside functions and
`importlib.import_module("assistant...")` calls, and also checks attribute access on the service.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "assistant"

SHARED = {"settings", "locations", "offline", "themes", "text", "feedback"}
SERVICE = {"service", "events"}  # events.py is the service's vocabulary (Evidence, Draft, Final)
CLIENTS = {"faces", "planning", "evaluation", "__main__"}  # __main__ is `python -m assistant`: the CLI face
# Rank along the data's path; the longest matching prefix decides. The ingest pipeline writes the index,
# so it sits above the index, while the index reads the chunks the splitter makes.
STAGE_RANK = {
    "models": 0,
    "ingest": 1,
    "index": 2,
    "ingest.pipeline": 3,
    "retrieval": 4,
    "answering": 5,
}
STAGES = {name.split(".")[0] for name in STAGE_RANK}
SERVICE_INTERNALS = {"store", "index", "embedder"}

# Imports against the stage order that are known and accepted for now: (importing file, imported module,
# why). Each names the one helper it borrows; moving that helper down removes the entry.
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {}


def part_of(module: str) -> str:
    """The layer key of a dotted module name inside the package: 'service', 'faces', 'ingest.pipeline', ..."""
    parts = module.split(".")[1:]  # drop "assistant"
    if not parts:
        return ""
    if parts[0] in STAGES:
        longest = ".".join(parts[:2])
        return longest if longest in STAGE_RANK else parts[0]
    return parts[0]


def rank(key: str) -> int | None:
    return STAGE_RANK.get(key, STAGE_RANK.get(key.split(".")[0]))


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, dotted module) for every import of the package's own modules, wherever it is written."""
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from assistant import service` and `from assistant.answering import hygiene` import those modules
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names if alias.name != "*"]
            found.append((node.lineno, base))
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if (
                name in ("import_module", "__import__")
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                found.append((node.lineno, node.args[0].value))
    return [(line, name) for line, name in found if name == "assistant" or name.startswith("assistant.")]


def _resolve(name: str) -> str:
    """The module a dotted name refers to: `assistant.service.Answer` is assistant.service."""
    parts = name.split(".")
    for end in range(len(parts), 1, -1):
        candidate = PACKAGE.parent.joinpath(*parts[:end])
        if candidate.with_suffix(".py").is_file() or (candidate / "__init__.py").is_file():
            return ".".join(parts[:end])
    return name


def service_reaches(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, attribute) wherever `service.<internal>` or `service._private` is read (also `self.service.x`)."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        owner = node.value
        named = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else ""
        private = node.attr.startswith("_") and not node.attr.startswith("__")
        if named == "service" and (node.attr in SERVICE_INTERNALS or private):
            found.append((node.lineno, node.attr))
    return found


def violations(rel: str, source: str) -> list[str]:
    """Every layering rule `source` (the module at `rel` under src/assistant) breaks, as 'file:line: rule: detail'."""
    path = PACKAGE / rel
    module = module_name(path)
    here = part_of(module)
    top = here.split(".")[0]
    tree = ast.parse(source, filename=rel)
    problems = []

    def fail(line: int, rule: str, detail: str) -> None:
        problem = f"src/assistant/{rel}:{line}: {rule}: {detail}"
        if not any(p.startswith(problem.rsplit(": ", 1)[0]) for p in problems):  # one line, one rule: one failure
            problems.append(problem)

    seen = set()
    for line, name in imported_modules(tree, module, path.name == "__init__.py"):
        target_module = _resolve(name)
        if (line, target_module) in seen or target_module == "assistant":
            continue
        seen.add((line, target_module))
        target = part_of(target_module)
        target_top = target.split(".")[0]
        if target_top == top and top not in STAGES:
            continue  # within one face, one client package or one shared module
        if top in SHARED and target_top not in SHARED:
            fail(line, "a shared module imports only shared modules", f"imports {target_module}")
        elif top in STAGES and (target_top in SERVICE or target_top in CLIENTS):
            fail(line, "a stage never imports the service, a face, planning or evaluation", f"imports {target_module}")
        elif top in STAGES and target_top in STAGES:
            if rank(target) > rank(here) and (rel, target_module) not in KNOWN_EXCEPTIONS:
                fail(
                    line,
                    f"stage order models <- ingest <- index <- ingest.pipeline <- retrieval <- answering: {here} is below {target}",
                    f"imports {target_module}",
                )
        elif top in SERVICE and target_top in CLIENTS:
            fail(line, "the service never imports its clients (faces, planning, evaluation)", f"imports {target_module}")
        elif top in CLIENTS and target_top in STAGES:
            fail(
                line,
                "faces, planning and evaluation go through the service, never a stage package",
                f"imports {target_module}; use assistant.service",
            )
        elif top in ("planning", "evaluation") and target_top in CLIENTS:
            fail(line, "planning and evaluation import neither a face nor each other", f"imports {target_module}")
    if top in CLIENTS:
        for line, attribute in service_reaches(tree):
            fail(
                line,
                "the service is the only door: no reaching into its internals",
                f"service.{attribute}; ask the service for what you need",
            )
    return problems


def modules() -> list[str]:
    return sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py"))


def test_every_module_keeps_to_its_layer():
    problems = [problem for rel in modules() for problem in violations(rel, (PACKAGE / rel).read_text(encoding="utf-8"))]
    assert not problems, "layering broken:\n" + "\n".join(problems)


def test_every_package_is_assigned_a_layer():
    known = SHARED | SERVICE | CLIENTS | STAGES | {""}
    strangers = sorted({part_of(module_name(PACKAGE / rel)).split(".")[0] for rel in modules()} - known)
    assert not strangers, f"modules outside every layer (add them to tests/test_layering.py): {strangers}"


# -- the checker itself: each rule fires on code that breaks it ------------------------------------------


@pytest.mark.parametrize(
    ("rel", "source", "rule"),
    [
        (
            "faces/cli.py",
            "def f():\n    from assistant.index.store import IndexMissing\n",
            "src/assistant/faces/cli.py:2: faces, planning and evaluation go through the service",
        ),
        (
            "planning/session.py",
            "from assistant.answering import hygiene\n",
            "planning/session.py:1: faces, planning and evaluation go through the service",
        ),
        ("evaluation/runner.py", "import importlib\nimportlib.import_module('assistant.models.llm')\n", "evaluation/runner.py:2: faces"),
        (
            "evaluation/report.py",
            "def f(service):\n    return service.store.current_manifest()\n",
            "evaluation/report.py:2: the service is the only door",
        ),
        ("faces/ui.py", "class A:\n    def f(self):\n        return self.service._index\n", "faces/ui.py:3: the service is the only door"),
        ("index/hidden.py", "from assistant.service import AssistantService\n", "index/hidden.py:1: a stage never imports the service"),
        ("models/llm.py", "def f():\n    from assistant.faces import ui\n", "models/llm.py:2: a stage never imports the service, a face"),
        ("models/llm.py", "from assistant.retrieval.retriever import Filters\n", "models/llm.py:1: stage order"),
        ("ingest/splitter.py", "from assistant.ingest.pipeline import ingest\n", "ingest/splitter.py:1: stage order"),
        ("index/store.py", "from ..answering.cite import Citation\n", "index/store.py:1: stage order"),
        ("retrieval/retriever.py", "from assistant.answering.extractive import Answer\n", "retrieval/retriever.py:1: stage order"),
        ("service.py", "from assistant.faces.export import esc\n", "service.py:1: the service never imports its clients"),
        ("themes.py", "from assistant.models.llm import BACKENDS\n", "themes.py:1: a shared module imports only shared modules"),
        (
            "evaluation/runner.py",
            "from assistant.planning.session import build_plan\n",
            "evaluation/runner.py:1: planning and evaluation import neither",
        ),
        ("planning/session.py", "from assistant import faces\n", "planning/session.py:1: planning and evaluation import neither"),
    ],
)
def test_the_checker_names_file_line_and_rule(rel, source, rule):
    found = violations(rel, source)
    assert any(rule in problem for problem in found), found


@pytest.mark.parametrize(
    ("rel", "source"),
    [
        (
            "faces/cli.py",
            "from assistant.service import Answer, IndexMissing\nfrom assistant.planning.session import cmd_prepare\nfrom assistant.evaluation.command import add_eval_parser\n",
        ),
        (
            "planning/evidence.py",
            "from assistant.service import Citation\nfrom assistant.text import clean_markup\nfrom .model import Finding\n",
        ),
        ("evaluation/runner.py", "def f(service):\n    return service.manifest(), service.settings.backend, service.support_scorer()\n"),
        (
            "answering/generate.py",
            "from assistant.models.llm import ModelError\nfrom assistant.retrieval.retriever import Passage\nfrom assistant.ingest.splitter import SECTION_SEPARATOR\n",
        ),
        ("ingest/pipeline.py", "from assistant.index.store import IndexStore\n"),
        ("retrieval/retriever.py", "from assistant.index.loaded import LoadedIndex, top_k_stable\n"),
        ("service.py", "from assistant.answering.extractive import Answer\nfrom assistant.events import Final\n"),
    ],
)
def test_the_checker_accepts_what_the_layers_allow(rel, source):
    assert violations(rel, source) == []
