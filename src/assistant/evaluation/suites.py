"""Loads evaluation suites (YAML or JSONL) into turns, checked against the suite schema (pydantic models), refusing a malformed file with its line and problem."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails, PydanticCustomError

from assistant.themes import CASE_THEMES

ID_PATTERN = re.compile(r"^[a-z]+(?:-[a-z]+)*-\d{3,}$")  # evals/README.md; feedback candidates go past 999


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
        for number, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                cases.append(json.loads(raw))
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


# -- the schema ------------------------------------------------------------------------------------------


class _Strict(BaseModel):
    # strict: YAML's `yes please` is not true, and true is not a repeat count
    model_config = ConfigDict(extra="forbid", strict=True)


def _text(value: str) -> str:
    if not value.strip():
        raise ValueError("empty")
    return value


Text = Annotated[str, AfterValidator(_text)]


class EvidenceItem(_Strict):
    document: Text
    snippet: Text


class TurnSpec(_Strict):
    """A follow-up question; `answerable` defaults to its case's."""

    question: Text
    answerable: bool | None = None
    evidence: list[EvidenceItem] | None = None
    key_points: list[Annotated[list[str], Field(min_length=1)]] | None = None
    note: str | None = None
    repeat: int = Field(default=1, ge=1)


class CaseSpec(TurnSpec):
    """One case: a first question with its theme and whether the corpus answers it, then its follow-ups."""

    id: str
    theme: str
    answerable: bool
    followups: list[TurnSpec] | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not ID_PATTERN.match(value):
            raise ValueError("pattern")
        return value

    @field_validator("theme")
    @classmethod
    def _theme(cls, value: str) -> str:
        if value not in CASE_THEMES:
            raise ValueError("unknown theme")
        return value

    @model_validator(mode="after")
    def _evidence_matches_answerable(self) -> CaseSpec:
        for n, turn in enumerate([self] + list(self.followups or [])):
            name = f"case {self.id!r}" + (f": follow-up {n}" if n else "")
            answerable = self.answerable if turn.answerable is None else turn.answerable
            if answerable and not turn.evidence:
                raise PydanticCustomError("suite", f"{name} is answerable but lists no evidence")
            if not answerable and turn.evidence:
                raise PydanticCustomError("suite", f"{name} is unanswerable but lists evidence; drop it or set answerable: true")
        return self


# What each field must be, said when a value breaks the schema ({name} is the case or its follow-up).
_RULES = {
    "id": "case id {value!r} should be lower-case words joined by hyphens, then three or more digits (e.g. 'power-003')",
    "theme": "{name} has theme {value!r}; use one of " + ", ".join(CASE_THEMES),
    "answerable": "{name}: 'answerable' must be true or false",
    "question": "{name}: 'question' must be non-empty text",
    "evidence": "{name}: 'evidence' must be a list of {{document, snippet}} items",
    "evidence item": "{name}: each evidence item needs 'document' and 'snippet' (text)",
    "key_points": "{name}: 'key_points' must be a list of lists of alternatives",
    "key point": "{name}: each key point must be a list of alternative strings",
    "repeat": "{name}: 'repeat' must be a whole number of at least 1",
    "note": "{name}: 'note' must be text",
    "followups": "{name}: 'followups' must be a list of turns",
    "follow-up": "{name} needs a 'question'",
}


def _problem(case: dict, errors: list[ErrorDetails]) -> str:
    """One clear sentence for the first problem pydantic found: missing fields first, then unknown ones."""
    case_name = f"case {case.get('id', '?')!r}"

    def turn_of(loc: tuple) -> tuple[str, dict, tuple]:
        if len(loc) >= 2 and loc[0] == "followups" and isinstance(loc[1], int):
            follow_up = (case.get("followups") or [])[loc[1]]
            return f"{case_name}: follow-up {loc[1] + 1}", follow_up if isinstance(follow_up, dict) else {}, loc[2:]
        return case_name, case, loc

    for kind in ("missing", "extra_forbidden"):
        found = [e for e in errors if e["type"] == kind and len(turn_of(e["loc"])[2]) == 1]
        if found:
            name, turn, _ = turn_of(found[0]["loc"])
            fields = [turn_of(e["loc"])[2][0] for e in found if turn_of(e["loc"])[0] == name]
            if kind == "extra_forbidden":
                return f"{name} has unknown field(s) {', '.join(sorted(fields))}"
            if name != case_name and "question" in fields:
                return _RULES["follow-up"].format(name=name)
            order = ("id", "question", "theme", "answerable")
            return f"{name} has no " + ", ".join(f"'{f}'" for f in sorted(fields, key=lambda f: order.index(f) if f in order else 9))
    error = errors[0]
    if error["type"] == "suite":
        return error["msg"]
    name, turn, loc = turn_of(error["loc"])
    if not loc:
        return _RULES["follow-up"].format(name=name)  # a follow-up that is not a mapping
    field_name = loc[0]
    rule = {("evidence", True): "evidence item", ("key_points", True): "key point"}.get((field_name, len(loc) > 1), field_name)
    return _RULES[rule].format(name=name, value=turn.get(field_name))


def _check_case(case, where: str) -> None:
    if not isinstance(case, dict):
        raise SuiteError(f"{where}: each case must be a mapping with id, question, theme and answerable")
    try:
        CaseSpec.model_validate(case)
    except ValidationError as exc:
        raise SuiteError(f"{where}: {_problem(case, exc.errors())}") from None


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
    cases: list[dict] = []
    seen: dict[str, Path] = {}
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
