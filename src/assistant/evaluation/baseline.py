"""Comparing a run with an earlier results.json, and the ``--fail-under`` gates."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from assistant.evaluation.runner import (
    ABSTENTION_METRICS,
    ANSWER_METRICS,
    JUDGED_METRICS,
    LATENCY_METRICS,
    RETRIEVAL_METRICS,
    SUMMARY_METRICS,
)
from assistant.themes import CASE_THEMES

#: Per-case scores compared with the baseline (higher is better for each).
CASE_METRICS = ("hit@5", "mrr", "abstention_correct", "keypoint_coverage", "passed")
#: Summary figures whose change is shown next to each other in reports.
COMPARED_SUMMARY = (
    (
        "pass_rate",
        "hygiene_clean",
        "answers_question",
        "answers_question_above_0",
    )
    + RETRIEVAL_METRICS
    + ANSWER_METRICS
    + ABSTENTION_METRICS
    + LATENCY_METRICS
    + JUDGED_METRICS
)
#: Metrics a floor makes sense for (scores in [0, 1]; latencies are not "higher is better").
GATE_METRICS = tuple(m for m in SUMMARY_METRICS if m not in LATENCY_METRICS)
EPSILON = 1e-9


class BaselineError(ValueError):
    """A baseline file that is not an earlier results.json."""


class GateError(ValueError):
    """A ``--fail-under`` argument that cannot be understood."""


def load_run(path: Path) -> dict:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BaselineError(f"{path}: cannot read the baseline ({exc.strerror or exc})") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BaselineError(f"{path}: the baseline is not JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list) or not isinstance(data.get("summary"), dict):
        raise BaselineError(f"{path}: not an evaluation results.json (it needs 'summary' and 'cases'; write one with --report DIR)")
    return data


def _number(value) -> float | None:
    if value is None or isinstance(value, str):
        return None
    value = float(value)
    return None if math.isnan(value) else value


def compare(current: dict, baseline: dict, baseline_path: str = "") -> dict:
    """Per-case regressions and improvements, and summary figures side by side.

    Both arguments are results.json-shaped dicts (``run``, ``summary``, ``cases``). Cases are matched by
    turn id; a metric missing from either side of a case (e.g. hit@5 of an unanswerable turn) is skipped.
    """
    before = {c["id"]: c for c in baseline.get("cases", [])}
    after = {c["id"]: c for c in current.get("cases", [])}
    regressions: list[dict] = []
    improvements: list[dict] = []
    for case_id, case in after.items():
        old = before.get(case_id)
        if old is None:
            continue
        for metric in CASE_METRICS:
            a, b = _number(old["scores"].get(metric)), _number(case["scores"].get(metric))
            if a is None or b is None or abs(a - b) <= EPSILON:
                continue
            change = {
                "id": case_id,
                "theme": case.get("theme"),
                "suite": case.get("suite"),
                "metric": metric,
                "before": a,
                "after": b,
                "question": case.get("question", "")[:300],
            }
            (regressions if b < a else improvements).append(change)
    summary = {"overall": _side_by_side(current["summary"].get("overall", {}), baseline["summary"].get("overall", {}))}
    themes = sorted(set(current["summary"].get("by_theme", {})) | set(baseline["summary"].get("by_theme", {})))
    summary["by_theme"] = {
        t: _side_by_side(current["summary"].get("by_theme", {}).get(t, {}), baseline["summary"].get("by_theme", {}).get(t, {}))
        for t in themes
    }
    warnings = []
    old_run, new_run = baseline.get("run", {}), current.get("run", {})
    for key, label in (
        ("corpus_hash", "corpus"),
        ("embedding_model", "embedding model"),
        ("chunking", "chunking settings"),
        ("backend", "backend"),
    ):
        if key in old_run and key in new_run and old_run[key] != new_run[key]:
            warnings.append(f"the baseline used a different {label} ({old_run[key]!r} then, {new_run[key]!r} now)")
    order = {m: i for i, m in enumerate(CASE_METRICS)}
    sort_key = lambda c: (c["theme"] or "", c["id"], order[c["metric"]])  # noqa: E731
    return {
        "baseline": {"path": baseline_path, "run": old_run},
        "regressions": sorted(regressions, key=sort_key),
        "improvements": sorted(improvements, key=sort_key),
        "added": sorted(set(after) - set(before)),
        "removed": sorted(set(before) - set(after)),
        "summary": summary,
        "warnings": warnings,
    }


def _side_by_side(now: dict, then: dict) -> dict:
    out = {}
    for metric in COMPARED_SUMMARY:
        a, b = _number(then.get(metric)), _number(now.get(metric))
        if a is None and b is None:
            continue
        out[metric] = {"baseline": a, "current": b, "delta": None if a is None or b is None else round(b - a, 4)}
    return out


# -- gates -------------------------------------------------------------------------------------------

_GATE = re.compile(r"^\s*(?:(?P<theme>[a-z-]+)\s*:\s*)?(?P<metric>[a-z0-9@_]+)\s*=\s*(?P<value>[-+0-9.eE]+)\s*$")


@dataclass(frozen=True)
class Gate:
    metric: str
    floor: float
    theme: str | None = None

    @property
    def label(self) -> str:
        return f"{self.theme}:{self.metric}" if self.theme else self.metric

    def __str__(self) -> str:
        return f"{self.label}={self.floor:g}"


def parse_gate(text: str) -> Gate:
    """``METRIC=VALUE`` or ``THEME:METRIC=VALUE``, e.g. ``hit@5=0.9`` or ``ebcd:hit@5=0.8``."""
    match = _GATE.match(text or "")
    if not match:
        raise GateError(f"--fail-under {text!r}: write METRIC=VALUE or THEME:METRIC=VALUE, e.g. hit@5=0.9 or ebcd:hit@5=0.8")
    metric, theme = match["metric"], match["theme"]
    if metric not in GATE_METRICS:
        raise GateError(f"--fail-under {text!r}: unknown metric {metric!r}; use one of {', '.join(GATE_METRICS)}")
    if theme is not None and theme not in CASE_THEMES:
        raise GateError(f"--fail-under {text!r}: unknown theme {theme!r}; use one of {', '.join(CASE_THEMES)}")
    try:
        floor = float(match["value"])
    except ValueError as exc:
        raise GateError(f"--fail-under {text!r}: {match['value']!r} is not a number") from exc
    if not 0.0 <= floor <= 1.0:
        raise GateError(f"--fail-under {text!r}: the floor must be between 0 and 1")
    return Gate(metric=metric, floor=floor, theme=theme)


def check_gates(summary: dict, gates: list[Gate]) -> list[dict]:
    """One result per gate: ``passed`` is False when the value is under the floor or was not measured."""
    results = []
    for gate in gates:
        figures = summary.get("overall", {}) if gate.theme is None else summary.get("by_theme", {}).get(gate.theme)
        value = None if figures is None else _number(figures.get(gate.metric))
        if value is None:
            where = "this run" if gate.theme is None else f"theme {gate.theme}"
            why = "judged metrics did not run" if gate.metric in JUDGED_METRICS else "no turn it applies to"
            message = f"FAIL {gate.label}: not measured in {where} ({why}); floor {gate.floor:g}"
            passed = False
        else:
            passed = value + EPSILON >= gate.floor
            verdict = "ok  " if passed else "FAIL"
            relation = ">=" if passed else "<"
            message = f"{verdict} {gate.label} = {value:.4f} {relation} floor {gate.floor:g}"
        results.append(
            {
                "gate": str(gate),
                "metric": gate.metric,
                "theme": gate.theme,
                "floor": gate.floor,
                "value": value,
                "passed": passed,
                "message": message,
            }
        )
    return results
