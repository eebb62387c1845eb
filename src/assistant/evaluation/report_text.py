"""The text reports: the console summary and summary.md (headline and failing turns first)."""

from __future__ import annotations

import re

from assistant.evaluation.report_format import (
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
from assistant.evaluation.verdict import headline, turn_failures


def console_summary(document: dict) -> str:
    summary, lines = document["summary"], []
    overall = summary["overall"]
    lines.append(headline(document))
    lines.append(f"{overall['turns']} turns ({overall.get('answerable_turns', 0)} answerable)")
    key = (
        "pass_rate",
        "hygiene_findings",
        "answers_question",
        "answers_question_above_0",
        "partial_turns",
        "hit@1",
        "hit@5",
        "recall@5",
        "mrr",
        "ndcg@5",
        "context_budget_hit",
        "keypoint_coverage",
        "citation_validity",
        "citation_support",
        "abstention_precision",
        "abstention_recall",
        "abstention_f1",
        "latency_p50_ms",
        "latency_p95_ms",
    ) + JUDGED_METRICS
    comparison = document.get("comparison") or {}
    side = (comparison.get("summary") or {}).get("overall", {})
    for metric in key:
        if metric in overall:
            delta = fmt_delta((side.get(metric) or {}).get("delta"), metric)
            lines.append(f"  {LABELS.get(metric, metric):<32} {fmt(overall[metric], metric):>8}  {delta}")
    columns = ("turns", "hit@5", "mrr", "ndcg@5", "keypoint_coverage", "abstention_accuracy", "latency_p95_ms")
    heads = ("turns", "hit@5", "MRR", "nDCG@5", "keypts", "abst.acc", "p95 ms")
    lines.append("")
    lines.append(f"  {'theme':<24}" + "".join(f"{h:>9}" for h in heads))
    for theme, figures in summary["by_theme"].items():
        lines.append(f"  {theme:<24}" + "".join(f"{fmt(figures.get(c), c):>9}" for c in columns))
    if summary.get("by_suite"):
        lines.append("")
        lines.append(f"  {'suite':<24}" + "".join(f"{SHORT.get(h, h)[:9]:>10}" for h in SUITE_COLUMNS))
        for suite, figures in summary["by_suite"].items():
            lines.append(f"  {suite:<24}" + "".join(f"{fmt(figures.get(h), h):>10}" for h in SUITE_COLUMNS))
    lines.append("")
    lines.extend(status_lines(document))
    if comparison:
        lines.append("")
        lines.extend(comparison_lines(comparison))
    return "\n".join(lines)


def comparison_lines(comparison: dict, limit: int = 40) -> list[str]:
    lines = [
        f"Against baseline {comparison['baseline'].get('path') or ''}: "
        f"{len(comparison['regressions'])} regression(s), {len(comparison['improvements'])} improvement(s)"
    ]
    for warning in comparison.get("warnings", []):
        lines.append(f"  note: {warning}")
    for label, items in (("regressed", comparison["regressions"]), ("improved", comparison["improvements"])):
        for item in items[:limit]:
            lines.append(f"  {label:<9} {item['id']:<16} {item['metric']:<18} {fmt(item['before'])} -> {fmt(item['after'])}")
        if len(items) > limit:
            lines.append(f"  … and {len(items) - limit} more {label}")
    if comparison.get("added"):
        lines.append(f"  new turns (not in the baseline): {', '.join(comparison['added'][:20])}")
    if comparison.get("removed"):
        lines.append(f"  turns no longer run: {', '.join(comparison['removed'][:20])}")
    return lines


def _md(text) -> str:
    return re.sub(r"\s+", " ", str(text)).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def summary_markdown(document: dict) -> str:
    summary, stamp = document["summary"], document["run"]
    comparison = document.get("comparison") or {}
    side = comparison.get("summary") or {}
    out = ["# Evaluation summary", "", f"**{_md(headline(document))}**", ""]
    out += [f"- **{k}:** {_md(v)}" for k, v in stamp_lines(stamp)]
    out += ["", f"**{_md(document['judged']['status'])}**. Judged metrics are model-graded (not deterministic) and marked *(judged)*."]
    out += [f"**{_md(line)}**." for line in status_lines(document)[1:]] + [""]

    failing = [(c, turn_failures(c)) for c in document["cases"]]
    failing = [(c, r) for c, r in failing if r]
    out += [f"## Failing turns ({len(failing)})", ""]
    if failing:
        out += ["| Turn | Theme | Why | Question |", "|---|---|---|---|"]
        for case, reasons in failing:
            out.append(f"| {case['id']} | {case['theme']} | {_md('; '.join(reasons))} | {_md(case['question'][:120])} |")
    else:
        out.append("None.")
    out.append("")

    if document.get("gates"):
        out += ["## Gates", "", "| Gate | Value | Floor | Result |", "|---|---|---|---|"]
        for g in document["gates"]:
            out.append(f"| `{_md(g['gate'])}` | {fmt(g['value'])} | {g['floor']:g} | {'pass' if g['passed'] else '**FAIL**'} |")
        out.append("")

    out += ["## Overall", ""]
    has_base = bool(side.get("overall"))
    out += ["| Metric | This run |" + (" Baseline | Change |" if has_base else ""), "|---|---|" + ("---|---|" if has_base else "")]
    overall = summary["overall"]
    for metric in OVERALL_ROWS:
        if metric not in overall and metric not in side.get("overall", {}):
            continue
        row = f"| {LABELS.get(metric, metric)} | {fmt(overall.get(metric), metric)} |"
        if has_base:
            cell = side["overall"].get(metric, {})
            row += f" {fmt(cell.get('baseline'), metric)} | {fmt_delta(cell.get('delta'), metric)} |"
        out.append(row)
    out.append(f"\n{overall['turns']} turns, {overall.get('answerable_turns', 0)} answerable.")

    out += ["", "## By theme", ""]
    columns = [c for c in THEME_COLUMNS if any(c in f for f in summary["by_theme"].values())]
    out += ["| Theme | " + " | ".join(LABELS.get(c, c) for c in columns) + " |", "|---|" + "---|" * len(columns)]
    for theme, figures in summary["by_theme"].items():
        cells = []
        for c in columns:
            cell = fmt(figures.get(c), c)
            delta = ((side.get("by_theme", {}).get(theme, {})).get(c) or {}).get("delta")
            if delta is not None and abs(delta) > 1e-9 and c != "turns":
                cell += f" ({fmt_delta(delta, c)})"
            cells.append(cell)
        out.append(f"| {theme} | " + " | ".join(cells) + " |")
    if has_base:
        out.append("\nChanges against the baseline are in brackets.")

    if summary.get("by_suite"):
        out += [
            "",
            "## By suite",
            "",
            "| Suite | " + " | ".join(LABELS.get(c, c) for c in SUITE_COLUMNS) + " |",
            "|---|" + "---|" * len(SUITE_COLUMNS),
        ]
        for suite, f in summary["by_suite"].items():
            out.append(f"| {suite} | " + " | ".join(fmt(f.get(c), c) for c in SUITE_COLUMNS) + " |")

    if comparison:
        out += [
            "",
            "## Against the baseline",
            "",
            f"Baseline: `{_md(comparison['baseline'].get('path', ''))}` "
            f"(run {_md(comparison['baseline'].get('run', {}).get('timestamp', '?'))}, commit {_md(commit_label(comparison['baseline'].get('run', {})))})",
            "",
        ]
        for warning in comparison.get("warnings", []):
            out.append(f"- Note: {_md(warning)}")
        for title, items in (("Regressions", comparison["regressions"]), ("Improvements", comparison["improvements"])):
            out += ["", f"### {title} ({len(items)})", ""]
            if items:
                out += ["| Turn | Theme | Metric | Before | After | Question |", "|---|---|---|---|---|---|"]
                for i in items:
                    out.append(
                        f"| {i['id']} | {i['theme']} | {i['metric']} | {fmt(i['before'])} | {fmt(i['after'])} | {_md(i['question'][:120])} |"
                    )
            else:
                out.append("None.")
        if comparison.get("added"):
            out += ["", f"New turns: {', '.join(comparison['added'])}"]
        if comparison.get("removed"):
            out += ["", f"Turns no longer run: {', '.join(comparison['removed'])}"]

    findings = [(c["id"], f) for c in document["cases"] for f in c.get("hygiene_findings") or []]
    out += ["", f"## Hygiene findings ({len(findings)})", ""]
    out += [f"- {i}: {_md(f)}" for i, f in findings] or ["None."]
    return "\n".join(out) + "\n"
