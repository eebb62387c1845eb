"""Loads evaluation suites (YAML or JSONL) into turns, refusing a malformed file with its line and problem."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

THEMES = (
    "running-co-production", "power-dynamics", "recruitment", "measurement", "ebcd", "always-events",
    "out-of-scope", "adversarial",
)
CASE_FIELDS = {"id", "question", "theme", "answerable", "evidence", "key_points", "followups", "note", "repeat"}
TURN_FIELDS = {"question", "evidence", "key_points", "answerable", "note", "repeat"}
ID_PATTERN = re.compile(r"^[a-z]+(?:-[a-z]+)*-\d{3,}$")


class SuiteError(ValueError):
    """A suite file that cannot be run: says which file, which line and what is wrong."""


@dataclass
class Turn:
    """One question to ask: a case's first question or one of its follow-ups."""

    case_id: str
    turn: int  # 0 for the case's own question
    question: str
    theme: str
    answerable: bool
    evidence: list[tuple[str, str]] = field(default_factory=list)
    key_points: list[list[str]] = field(default_factory=list)
    suite: str = ""

    @property
    def id(self) -> str:
        return self.case_id if self.turn == 0 else f"{self.case_id}#{self.turn}"


def _lines_of_items(text: str) -> list[int]:
    """The 1-based line where each top-level list item starts."""
    node = yaml.compose(text)
    if node is None or not isinstance(node, yaml.SequenceNode):
        return []
    return [item.start_mark.line + 1 for item in node.value]


def load_suite(path: Path) -> list[dict]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(f"{path}: cannot read the suite ({exc})") from exc
    if path.suffix == ".jsonl":
        cases, lines = [], []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                cases.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise SuiteError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
            lines.append(number)
    else:
        try:
            cases = yaml.safe_load(text)
            lines = _lines_of_items(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark else str(path)
            raise SuiteError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from exc
        if cases is None:
            cases = []
        if not isinstance(cases, list):
            raise SuiteError(f"{path}:1: a suite must be a list of cases")
    if len(lines) != len(cases):  # cannot happen for YAML lists; keep line numbers honest anyway
        lines = [1] * len(cases)
    seen: dict[str, int] = {}
    for case, line in zip(cases, lines):
        _check_case(case, f"{path}:{line}")
        if case["id"] in seen:
            raise SuiteError(f"{path}:{line}: case id {case['id']!r} is already used at line {seen[case['id']]}")
        seen[case["id"]] = line
        case["_line"] = line
    return cases


def _check_case(case, where: str) -> None:
    if not isinstance(case, dict):
        raise SuiteError(f"{where}: each case must be a mapping with id, question, theme and answerable")
    for key in ("id", "question", "theme", "answerable"):
        if key not in case:
            raise SuiteError(f"{where}: case {case.get('id', '?')!r} has no '{key}'")
    unknown = set(case) - CASE_FIELDS
    if unknown:
        raise SuiteError(f"{where}: case {case['id']!r} has unknown field(s) {', '.join(sorted(unknown))}")
    if not isinstance(case["id"], str) or not ID_PATTERN.match(case["id"]):
        raise SuiteError(f"{where}: case id {case['id']!r} should be lower-case words joined by hyphens, then three digits (e.g. 'power-003')")
    if case["theme"] not in THEMES:
        raise SuiteError(f"{where}: case {case['id']!r} has theme {case['theme']!r}; use one of {', '.join(THEMES)}")
    if not isinstance(case["answerable"], bool):
        raise SuiteError(f"{where}: case {case['id']!r}: 'answerable' must be true or false")
    _check_turn(case, where, case["id"], case["answerable"])
    followups = case.get("followups")
    if followups is not None and not isinstance(followups, list):
        raise SuiteError(f"{where}: case {case['id']!r}: 'followups' must be a list of turns")
    for n, follow_up in enumerate(followups or [], start=1):
        if not isinstance(follow_up, dict) or "question" not in follow_up:
            raise SuiteError(f"{where}: case {case['id']!r}: follow-up {n} needs a 'question'")
        unknown = set(follow_up) - TURN_FIELDS
        if unknown:
            raise SuiteError(f"{where}: case {case['id']!r}: follow-up {n} has unknown field(s) {', '.join(sorted(unknown))}")
        if "answerable" in follow_up and not isinstance(follow_up["answerable"], bool):
            raise SuiteError(f"{where}: case {case['id']!r}: follow-up {n}: 'answerable' must be true or false")
        _check_turn(follow_up, where, f"{case['id']}#{n}", follow_up.get("answerable", case["answerable"]))


def _check_turn(turn: dict, where: str, name: str, answerable: bool) -> None:
    if not isinstance(turn["question"], str) or not turn["question"].strip():
        raise SuiteError(f"{where}: {name}: 'question' must be non-empty text")
    evidence = turn.get("evidence") or []
    if not isinstance(evidence, list):
        raise SuiteError(f"{where}: {name}: 'evidence' must be a list of {{document, snippet}} items")
    if answerable and not evidence:
        raise SuiteError(f"{where}: {name} is answerable but lists no evidence")
    if not answerable and evidence:
        raise SuiteError(f"{where}: {name} is unanswerable but lists evidence; drop it or set answerable: true")
    for item in evidence:
        if not isinstance(item, dict) or not isinstance(item.get("document"), str) or not isinstance(item.get("snippet"), str) \
                or not item["document"].strip() or not item["snippet"].strip():
            raise SuiteError(f"{where}: {name}: each evidence item needs 'document' and 'snippet' (text)")
    key_points = turn.get("key_points") or []
    if not isinstance(key_points, list):
        raise SuiteError(f"{where}: {name}: 'key_points' must be a list of lists of alternatives")
    for group in key_points:
        if not isinstance(group, list) or not group or not all(isinstance(a, str) for a in group):
            raise SuiteError(f"{where}: {name}: each key point must be a list of alternative strings")
    repeat = turn.get("repeat", 1)
    if not isinstance(repeat, int) or isinstance(repeat, bool) or repeat < 1:
        raise SuiteError(f"{where}: {name}: 'repeat' must be a whole number of at least 1")


def turns_of(case: dict, suite: str = "") -> list[Turn]:
    turns = []
    for n, item in enumerate([case] + list(case.get("followups") or [])):
        question = " ".join([item["question"]] * item.get("repeat", 1))
        turns.append(
            Turn(
                case_id=case["id"],
                turn=n,
                question=question,
                theme=case["theme"],
                answerable=item.get("answerable", case["answerable"]),
                evidence=[(e["document"], e["snippet"]) for e in item.get("evidence") or []],
                key_points=[list(g) for g in item.get("key_points") or []],
                suite=suite,
            )
        )
    return turns


def load_suites(paths: list[Path]) -> list[dict]:
    """Every case of every suite, each tagged with its suite name; ids must be unique across them."""
    cases, seen = [], {}
    for path in paths:
        for case in load_suite(path):
            if case["id"] in seen:
                raise SuiteError(f"{path}:{case['_line']}: case id {case['id']!r} is also used in {seen[case['id']]}")
            seen[case["id"]] = path
            cases.append({**case, "_suite": Path(path).stem})
    return cases


def suite_paths(names: list[str], evals_dir: Path) -> list[Path]:
    """Suite files from names or paths; no names means every suite in evals/."""
    if not names:
        return sorted(p for p in evals_dir.iterdir() if p.suffix in (".yaml", ".yml", ".jsonl"))
    paths = []
    for name in names:
        candidate = Path(name)
        if not candidate.exists():
            matches = [evals_dir / f"{name}{ext}" for ext in (".yaml", ".yml", ".jsonl") if (evals_dir / f"{name}{ext}").exists()]
            if not matches:
                raise SuiteError(f"{name}: no such suite file (looked in {evals_dir})")
            candidate = matches[0]
        paths.append(candidate)
    return paths
