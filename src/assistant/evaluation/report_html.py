"""report.html: one self-contained page (inline CSS and SVG, no scripts), headline and failing turns first.

The page is templates/report.html.j2 (jinja2, autoescaped: every text is escaped, nothing is marked safe);
this module only prepares its rows and figures and the charts' geometry (templates/charts.svg.j2)."""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

from assistant.evaluation.report_format import (
    CHART_METRICS,
    JUDGED_METRICS,
    LABELS,
    OVERALL_ROWS,
    SHORT,
    SUITE_COLUMNS,
    THEME_COLUMNS,
    commit_label,
    fmt,
    fmt_delta,
    stamp_lines,
    status_lines,
)
from assistant.evaluation.runner import SUPPORT_COSINE, SUPPORT_LEXICAL
from assistant.evaluation.verdict import PASS_RULE, headline, turn_failures

TEMPLATES = Path(__file__).with_name("templates")
CURRENT_COLOUR, BASELINE_COLOUR = "#1f5f99", "#b7bfc9"


@lru_cache(maxsize=1)
def _environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # every value is escaped; the templates never mark one safe
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is at least ``value`` (for chart scales)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= value)


def chart(title: str, rows: list[tuple[str, float | None, float | None]], maximum: float = 1.0, unit: str = "", metric: str = "") -> dict:
    """A bar chart's geometry: one group per row, this run's bar above the baseline's (260 px for `maximum`)."""
    has_base = any(b is not None for _, _, b in rows)
    label_w, bar_w, value_w = 190, 260, 70
    bar_h, gap = 13, 8
    group_h = bar_h * (2 if has_base else 1) + gap
    top = 28
    height = top + group_h * len(rows) + 18
    maximum = maximum or 1.0
    ticks = [
        {"x": f"{label_w + bar_w * tick:.1f}", "text": f"{maximum * tick:,.0f}" if metric.endswith("_ms") else f"{maximum * tick:g}"}
        for tick in (0.0, 0.5, 1.0)
    ]
    groups = []
    for i, (label, current, baseline) in enumerate(rows):
        y = top + i * group_h
        bars = []
        kinds = [("this run", current, CURRENT_COLOUR)] + ([("baseline", baseline, BASELINE_COLOUR)] if has_base else [])
        for j, (name, value, colour) in enumerate(kinds):
            w = None if value is None else max(0.0, min(1.0, value / maximum)) * bar_w
            bars.append(
                {
                    "name": name,
                    "y": y + j * bar_h,
                    "colour": colour,
                    "w": None if w is None else f"{w:.1f}",
                    "text_x": None if w is None else f"{label_w + w + 4:.1f}",
                    "text": None if value is None else fmt(value, metric) + unit,
                }
            )
        groups.append({"label": label, "y": y, "bars": bars})
    return {
        "title": title,
        "width": label_w + bar_w + value_w,
        "height": height,
        "top": top,
        "label_w": label_w,
        "bar_h": bar_h,
        "ticks": ticks,
        "rows": groups,
    }


def bar_chart(
    title: str, rows: list[tuple[str, float | None, float | None]], maximum: float = 1.0, unit: str = "", metric: str = ""
) -> str:
    """The chart as inline SVG."""
    return str(_environment().get_template("charts.svg.j2").module.bar_chart(chart(title, rows, maximum, unit, metric)))


def _delta(delta, metric: str) -> dict:
    if delta is None:
        return {"text": "", "cls": ""}
    better = delta < 0 if metric.endswith("_ms") else delta > 0
    return {"text": fmt_delta(delta, metric), "cls": "" if abs(delta) < 1e-9 else ("up" if better else "down")}


def _columns(names) -> list[dict]:
    return [{"label": LABELS.get(c, c), "short": SHORT.get(c, LABELS.get(c, c))} for c in names]


def _charts(summary: dict, side: dict) -> list[dict]:
    themes = list(summary["by_theme"])
    base_theme = side.get("by_theme", {})

    def rows_of(metric: str) -> list[tuple[str, float | None, float | None]]:
        rows = [("overall", summary["overall"].get(metric), (side.get("overall", {}).get(metric) or {}).get("baseline"))]
        return rows + [(t, summary["by_theme"][t].get(metric), (base_theme.get(t, {}).get(metric) or {}).get("baseline")) for t in themes]

    charts = []
    for metric in CHART_METRICS + tuple(m for m in JUDGED_METRICS if m in summary["overall"]):
        rows = [r for r in rows_of(metric) if r[1] is not None or r[2] is not None]
        if rows:
            charts.append(chart(LABELS.get(metric, metric), rows, metric=metric))
    latency = rows_of("latency_p95_ms")
    top = nice_ceiling(max([v for _, a, b in latency for v in (a, b) if v is not None] + [1.0]))
    charts.append(chart("Latency p95 (ms; shorter is better)", latency, maximum=top, metric="latency_p95_ms"))
    return charts


def _theme_table(summary: dict, side: dict) -> dict:
    base_theme = side.get("by_theme", {})
    columns = [c for c in THEME_COLUMNS if any(c in f for f in summary["by_theme"].values())]
    rows = []
    for theme, figures in summary["by_theme"].items():
        cells = []
        for c in columns:
            delta = (base_theme.get(theme, {}).get(c) or {}).get("delta")
            shown = delta is not None and abs(delta) > 1e-9 and c != "turns"
            cells.append(
                {
                    "text": fmt(figures.get(c), c),
                    "delta": fmt_delta(delta, c) if shown else "",
                    "cls": _delta(delta, c)["cls"] if shown else "",
                }
            )
        rows.append((theme, cells))
    return {"columns": _columns(columns), "rows": rows}


def _turn(case: dict, reasons: list[str]) -> dict:
    s = case["scores"]
    question = case["question"]
    response = case.get("response", {})
    return {
        "id": case["id"],
        "theme": case["theme"],
        "question": question if len(question) <= 220 else question[:220] + f"… ({len(question):,} characters)",
        "answer": response.get("answer", ""),
        "findings": list(case.get("hygiene_findings") or []),
        "sources": [(p.get("source"), p.get("section")) for p in response.get("retrieved", [])[:5]],
        "evidence": [(e["document"], e["snippet"]) for e in case.get("evidence", [])],
        "expected": "answer" if case["answerable"] else "decline",
        "coverage": s.get("coverage", "declined" if s.get("abstained") else "answered"),
        "hit5": fmt(s.get("hit@5")),
        "keypoints": fmt(s.get("keypoint_coverage")),
        "hygiene": fmt(s.get("hygiene_findings"), "hygiene_findings"),
        "answers": fmt(s.get("answers_question")),
        "reasons": reasons,
    }


def _comparison(comparison: dict) -> dict | None:
    if not comparison:
        return None
    base_run = comparison["baseline"].get("run", {})

    def items(found: list[dict]) -> list[dict]:
        return [
            {
                "id": i["id"],
                "theme": i["theme"],
                "metric": i["metric"],
                "before": fmt(i["before"]),
                "after": fmt(i["after"]),
                "question": i["question"][:200],
            }
            for i in found
        ]

    return {
        "path": comparison["baseline"].get("path", ""),
        "timestamp": base_run.get("timestamp", "?"),
        "commit": commit_label(base_run),
        "warnings": comparison.get("warnings", []),
        "lists": [("Regressions", items(comparison["regressions"]), "down"), ("Improvements", items(comparison["improvements"]), "up")],
    }


def report_html(document: dict) -> str:
    summary, stamp = document["summary"], document["run"]
    comparison = document.get("comparison") or {}
    side = comparison.get("summary") or {}
    has_base = bool(side.get("overall"))
    judged = [(c, turn_failures(c)) for c in document["cases"]]
    failing = [_turn(c, r) for c, r in judged if r]
    overall = summary["overall"]
    overall_rows = []
    for metric in OVERALL_ROWS:
        if metric not in overall and metric not in side.get("overall", {}):
            continue
        cell = side.get("overall", {}).get(metric, {}) if has_base else {}
        overall_rows.append(
            {
                "label": LABELS.get(metric, metric),
                "value": fmt(overall.get(metric), metric),
                "baseline": fmt(cell.get("baseline"), metric),
                "delta": _delta(cell.get("delta"), metric),
            }
        )
    by_suite = summary.get("by_suite")
    page = (
        _environment()
        .get_template("report.html.j2")
        .render(
            timestamp=stamp.get("timestamp", ""),
            all_held=all(g["passed"] for g in document.get("gates") or []) and not failing,
            headline=headline(document),
            pass_rule=PASS_RULE,
            stamp=stamp_lines(stamp),
            judged_status=document["judged"]["status"],
            status_lines=status_lines(document)[1:],
            gates=[
                {"gate": g["gate"], "value": fmt(g["value"]), "floor": f"{g['floor']:g}", "passed": g["passed"]}
                for g in document.get("gates") or []
            ],
            failing=failing,
            every=failing + [_turn(c, r) for c, r in judged if not r],
            suites={
                "columns": _columns(SUITE_COLUMNS),
                "rows": [(name, [fmt(f.get(c), c) for c in SUITE_COLUMNS]) for name, f in by_suite.items()],
            }
            if by_suite
            else None,
            has_base=has_base,
            colours={"current": CURRENT_COLOUR, "baseline": BASELINE_COLOUR},
            chart_list=_charts(summary, side),
            themes=_theme_table(summary, side),
            overall=overall_rows,
            turns=overall["turns"],
            answerable_turns=overall.get("answerable_turns", 0),
            support_rule=f"Support: a cited passage supports its sentence when at least {SUPPORT_LEXICAL:.0%} of the sentence's "
            f"content words occur in it and the sentence's embedding is within cosine {SUPPORT_COSINE} of the "
            "passage's closest sentence.",
            comparison=_comparison(comparison),
        )
    )
    return page.rstrip("\n") + "\n"
