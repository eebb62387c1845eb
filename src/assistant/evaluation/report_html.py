"""report.html: one self-contained page (inline CSS and SVG, no scripts; every text escaped), headline and
failing turns first."""

from __future__ import annotations

import html
import math

from assistant.evaluation.report_format import (
    CHART_METRICS, JUDGED_METRICS, LABELS, OVERALL_ROWS, SHORT, SUITE_COLUMNS, THEME_COLUMNS, commit_label, fmt, fmt_delta,
    stamp_lines, status_lines,
)
from assistant.evaluation.runner import SUPPORT_COSINE, SUPPORT_LEXICAL
from assistant.evaluation.verdict import PASS_RULE, headline, turn_failures

CURRENT_COLOUR, BASELINE_COLOUR = "#1f5f99", "#b7bfc9"


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is at least ``value`` (for chart scales)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= value)


def bar_chart(title: str, rows: list[tuple[str, float | None, float | None]], maximum: float = 1.0, unit: str = "",
              metric: str = "") -> str:
    """A horizontal bar chart as inline SVG: one group per row, this run's bar above the baseline's."""
    has_base = any(b is not None for _, _, b in rows)
    label_w, bar_w, value_w = 190, 260, 70
    bar_h, gap = 13, 8
    group_h = bar_h * (2 if has_base else 1) + gap
    top = 28
    height = top + group_h * len(rows) + 18
    width = label_w + bar_w + value_w
    maximum = maximum or 1.0
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" aria-label="{esc(title)}">',
        f'<title>{esc(title)}</title>',
        f'<text x="0" y="16" class="ct">{esc(title)}</text>',
    ]
    for tick in (0.0, 0.5, 1.0):
        x = label_w + bar_w * tick
        parts.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{height - 16}" class="grid"/>')
        tick_text = f"{maximum * tick:,.0f}" if metric.endswith("_ms") else f"{maximum * tick:g}"
        parts.append(f'<text x="{x:.1f}" y="{height - 4}" class="tick" text-anchor="middle">{esc(tick_text)}</text>')
    for i, (label, current, baseline) in enumerate(rows):
        y = top + i * group_h
        parts.append(f'<text x="{label_w - 8}" y="{y + bar_h - 2}" class="lbl" text-anchor="end">{esc(label)}</text>')
        bars = [("this run", current, CURRENT_COLOUR)] + ([("baseline", baseline, BASELINE_COLOUR)] if has_base else [])
        for j, (name, value, colour) in enumerate(bars):
            by = y + j * bar_h
            if value is None:
                parts.append(f'<text x="{label_w + 4}" y="{by + bar_h - 3}" class="val">n/a</text>')
                continue
            w = max(0.0, min(1.0, value / maximum)) * bar_w
            text = fmt(value, metric) + unit
            parts.append(f'<rect x="{label_w}" y="{by + 1}" width="{w:.1f}" height="{bar_h - 2}" fill="{colour}">'
                         f'<title>{esc(label)}, {name}: {esc(text)}</title></rect>')
            parts.append(f'<text x="{label_w + w + 4:.1f}" y="{by + bar_h - 3}" class="val">{esc(text)}</text>')
    parts.append("</svg>")
    return "".join(parts)


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;color:#1d2329;margin:0;background:#f6f7f9}
main{max-width:1160px;margin:0 auto;padding:24px 28px 60px;background:#fff}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 10px;border-bottom:1px solid #dde1e6;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}
th,td{border:1px solid #dde1e6;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef1f4}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.stamp td:first-child{font-weight:600;background:#f6f7f9}
.banner{padding:8px 12px;border-radius:4px;background:#fff7e0;border:1px solid #ecd58c;margin:12px 0}
.pass{color:#1b6b2f;font-weight:600}.fail{color:#a4161a;font-weight:600}
.up{color:#1b6b2f}.down{color:#a4161a}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(530px,1fr));gap:14px 24px}
.chart .ct{font-weight:600;font-size:13px;fill:#1d2329}.chart .lbl{font-size:12px;fill:#3a434c}
.chart .val{font-size:11px;fill:#3a434c}.chart .grid{stroke:#e3e6ea;stroke-width:1}.chart .tick{font-size:10px;fill:#7a858f}
.wide{overflow-x:auto;max-width:100%}table.themes th{font-size:12px}table.themes td.n small{display:block}
table.turns td.q{width:46%;overflow-wrap:anywhere}table.turns td.r{max-width:230px}td{overflow-wrap:break-word}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px -2px 12px}
details summary{cursor:pointer}details pre{white-space:pre-wrap;background:#f6f7f9;padding:6px;margin:4px 0;font-size:12px}
td.q{max-width:420px}small{color:#5b6670}
.headline{font-size:17px;font-weight:600;padding:8px 12px;border-radius:4px;margin:8px 0}
.headline.ok{background:#e6f4ea;border:1px solid #9bd0a8}.headline.bad{background:#fdecea;border:1px solid #f0a8a3}
ul.why{margin:2px 0 0 16px;padding:0;font-size:12px;color:#5b6670}
"""


def _delta_cell(delta, metric: str) -> str:
    if delta is None:
        return '<td class="n"></td>'
    better = delta < 0 if metric.endswith("_ms") else delta > 0
    cls = "" if abs(delta) < 1e-9 else ("up" if better else "down")
    return f'<td class="n {cls}">{esc(fmt_delta(delta, metric))}</td>'


def report_html(document: dict) -> str:
    summary, stamp = document["summary"], document["run"]
    comparison = document.get("comparison") or {}
    side = comparison.get("summary") or {}
    has_base = bool(side.get("overall"))
    h = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
         '<meta name="viewport" content="width=device-width, initial-scale=1">',
         f"<title>Evaluation report {esc(stamp.get('timestamp', ''))}</title><style>{_CSS}</style></head><body><main>",
         "<h1>Evaluation report</h1>",
         f'<p class="headline {"ok" if _all_held(document) else "bad"}">{esc(headline(document))}</p>',
         f"<small>Questions facilitators ask, run through the assistant and scored against where the answers sit in the corpus. "
         f"{esc(PASS_RULE)}</small>"]
    h.append('<table class="stamp">' + "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in stamp_lines(stamp)) + "</table>")
    h.append(f'<p class="banner"><strong>{esc(document["judged"]["status"])}</strong>. Judged metrics are model-graded '
             "(not deterministic) and are marked <em>(judged)</em> wherever they appear.</p>")
    for line in status_lines(document)[1:]:
        h.append(f'<p class="banner"><strong>{esc(line)}</strong>.</p>')

    if document.get("gates"):
        h.append("<h2>Gates</h2><table><tr><th>Gate</th><th>Value</th><th>Floor</th><th>Result</th></tr>")
        for g in document["gates"]:
            result = '<span class="pass">pass</span>' if g["passed"] else '<span class="fail">FAIL</span>'
            h.append(f"<tr><td><code>{esc(g['gate'])}</code></td><td class='n'>{esc(fmt(g['value']))}</td>"
                     f"<td class='n'>{g['floor']:g}</td><td>{result}</td></tr>")
        h.append("</table>")

    h.extend(_turn_table(document, failing_only=True))
    if summary.get("by_suite"):
        h.append('<h2>By suite</h2><div class="wide"><table class="themes"><tr><th>Suite</th>'
                 + "".join(f'<th title="{esc(LABELS.get(c, c))}">{esc(SHORT.get(c, LABELS.get(c, c)))}</th>' for c in SUITE_COLUMNS) + "</tr>")
        for suite, figures in summary["by_suite"].items():
            h.append(f"<tr><td>{esc(suite)}</td>" + "".join(f'<td class="n">{esc(fmt(figures.get(c), c))}</td>' for c in SUITE_COLUMNS) + "</tr>")
        h.append("</table></div>")

    # Charts
    themes = list(summary["by_theme"])
    base_theme = side.get("by_theme", {})
    h.append("<h2>By theme</h2>")
    if has_base:
        h.append(f'<p class="legend"><span style="background:{CURRENT_COLOUR}"></span>this run'
                 f'<span style="background:{BASELINE_COLOUR}"></span>baseline</p>')
    h.append('<div class="charts">')
    for metric in CHART_METRICS + tuple(m for m in JUDGED_METRICS if m in summary["overall"]):
        rows = [("overall", summary["overall"].get(metric), (side.get("overall", {}).get(metric) or {}).get("baseline"))]
        rows += [(t, summary["by_theme"][t].get(metric), (base_theme.get(t, {}).get(metric) or {}).get("baseline")) for t in themes]
        rows = [r for r in rows if r[1] is not None or r[2] is not None]
        if rows:
            h.append(bar_chart(LABELS.get(metric, metric), rows, metric=metric))
    latency_rows = [("overall", summary["overall"].get("latency_p95_ms"), (side.get("overall", {}).get("latency_p95_ms") or {}).get("baseline"))]
    latency_rows += [(t, summary["by_theme"][t].get("latency_p95_ms"), (base_theme.get(t, {}).get("latency_p95_ms") or {}).get("baseline")) for t in themes]
    top = nice_ceiling(max([v for _, a, b in latency_rows for v in (a, b) if v is not None] + [1.0]))
    h.append(bar_chart("Latency p95 (ms; shorter is better)", latency_rows, maximum=top, metric="latency_p95_ms"))
    h.append("</div>")

    columns = [c for c in THEME_COLUMNS if any(c in f for f in summary["by_theme"].values())]
    h.append('<div class="wide"><table class="themes"><tr><th>Theme</th>'
             + "".join(f'<th title="{esc(LABELS.get(c, c))}">{esc(SHORT.get(c, LABELS.get(c, c)))}</th>' for c in columns) + "</tr>")
    for theme, figures in summary["by_theme"].items():
        cells = []
        for c in columns:
            delta = (base_theme.get(theme, {}).get(c) or {}).get("delta")
            extra = ""
            if delta is not None and abs(delta) > 1e-9 and c != "turns":
                better = delta < 0 if c.endswith("_ms") else delta > 0
                extra = f' <small class="{"up" if better else "down"}">({esc(fmt_delta(delta, c))})</small>'
            cells.append(f'<td class="n">{esc(fmt(figures.get(c), c))}{extra}</td>')
        h.append(f"<tr><td>{esc(theme)}</td>{''.join(cells)}</tr>")
    h.append("</table></div>")
    if has_base:
        h.append("<p><small>Changes against the baseline are shown under each figure.</small></p>")

    h.append("<h2>Overall</h2><table><tr><th>Metric</th><th>This run</th>" + ("<th>Baseline</th><th>Change</th>" if has_base else "") + "</tr>")
    overall = summary["overall"]
    for metric in OVERALL_ROWS:
        if metric not in overall and metric not in side.get("overall", {}):
            continue
        row = f"<tr><td>{esc(LABELS.get(metric, metric))}</td><td class='n'>{esc(fmt(overall.get(metric), metric))}</td>"
        if has_base:
            cell = side["overall"].get(metric, {})
            row += f"<td class='n'>{esc(fmt(cell.get('baseline'), metric))}</td>{_delta_cell(cell.get('delta'), metric)}"
        h.append(row + "</tr>")
    h.append(f"</table><p>{overall['turns']} turns, {overall.get('answerable_turns', 0)} answerable. "
             f"Support: a cited passage supports its sentence when at least {SUPPORT_LEXICAL:.0%} of the sentence's content "
             f"words occur in it and the sentence's embedding is within cosine {SUPPORT_COSINE} of the passage's closest sentence.</p>")

    if comparison:
        h.append("<h2>Against the baseline</h2>")
        base_run = comparison["baseline"].get("run", {})
        h.append(f"<p>Baseline <code>{esc(comparison['baseline'].get('path', ''))}</code>, run {esc(base_run.get('timestamp', '?'))}, "
                 f"commit {esc(commit_label(base_run))}.</p>")
        for warning in comparison.get("warnings", []):
            h.append(f'<p class="banner">Note: {esc(warning)}</p>')
        for title, items, cls in (("Regressions", comparison["regressions"], "down"), ("Improvements", comparison["improvements"], "up")):
            h.append(f"<h3>{title} ({len(items)})</h3>")
            if not items:
                h.append("<p>None.</p>")
                continue
            h.append('<div class="wide"><table><tr><th>Turn</th><th>Theme</th><th>Metric</th><th>Before</th><th>After</th><th>Question</th></tr>')
            for i in items:
                h.append(f"<tr><td>{esc(i['id'])}</td><td>{esc(i['theme'])}</td><td>{esc(i['metric'])}</td>"
                         f"<td class='n'>{esc(fmt(i['before']))}</td><td class='n {cls}'>{esc(fmt(i['after']))}</td>"
                         f"<td class='q'>{esc(i['question'][:200])}</td></tr>")
            h.append("</table></div>")

    h.extend(_turn_table(document, failing_only=False))
    h.append("</main></body></html>\n")
    return "".join(h)


def _all_held(document: dict) -> bool:
    return all(g["passed"] for g in document.get("gates") or []) and not any(turn_failures(c) for c in document["cases"])


def _turn_row(case: dict, reasons: list[str]) -> str:
    s = case["scores"]
    result = '<span class="pass">pass</span>' if not reasons else (
        '<span class="fail">fail</span><ul class="why">' + "".join(f"<li>{esc(r)}</li>" for r in reasons) + "</ul>")
    question = case["question"]
    short = question if len(question) <= 220 else question[:220] + f"… ({len(question):,} characters)"
    response = case.get("response", {})
    sources = "".join(
        f"<li>{esc(p.get('source'))}{' > ' + esc(p.get('section')) if p.get('section') else ''}</li>"
        for p in response.get("retrieved", [])[:5]
    )
    evidence = "".join(f"<li>{esc(e['document'])}: “{esc(e['snippet'])}”</li>" for e in case.get("evidence", []))
    findings = "".join(f"<li>{esc(f)}</li>" for f in case.get("hygiene_findings") or [])
    expected = "answer" if case["answerable"] else "decline"
    return (
        f"<tr><td>{esc(case['id'])}<br><small>{esc(case['theme'])}</small></td><td class='q'>{esc(short)}"
        f"<details><summary>answer and sources</summary><pre>{esc(response.get('answer', ''))}</pre>"
        + (f"<small>Hygiene findings:</small><ul>{findings}</ul>" if findings else "")
        + f"<small>Retrieved (top 5):</small><ol>{sources}</ol>"
        + (f"<small>Expected evidence:</small><ul>{evidence}</ul>" if evidence else "")
        + f"</details></td><td>{esc(expected)}</td><td>{esc(s.get('coverage', 'declined' if s.get('abstained') else 'answered'))}</td>"
        f"<td class='n'>{esc(fmt(s.get('hit@5')))}</td><td class='n'>{esc(fmt(s.get('keypoint_coverage')))}</td>"
        f"<td class='n'>{esc(fmt(s.get('hygiene_findings'), 'hygiene_findings'))}</td>"
        f"<td class='n'>{esc(fmt(s.get('answers_question')))}</td><td class='r'>{result}</td></tr>"
    )


def _turn_table(document: dict, failing_only: bool) -> list[str]:
    """Failing turns with why (at the top of the page), or every turn, failing ones first."""
    judged = [(c, turn_failures(c)) for c in document["cases"]]
    failing = [(c, r) for c, r in judged if r]
    rows = failing if failing_only else failing + [(c, r) for c, r in judged if not r]
    if failing_only:
        out = [f"<h2>Failing turns ({len(failing)})</h2>"]
        if not failing:
            return out + ["<p>None.</p>"]
    else:
        out = [f"<h2>Every turn ({len(judged)}, failing first)</h2>"]
    out.append('<div class="wide"><table class="turns"><tr><th>Turn</th><th>Question and answer</th><th>Expected</th><th>Coverage</th>'
               "<th>Hit@5</th><th>Key points</th><th>Hygiene</th><th>Answers q.</th><th>Result</th></tr>")
    out += [_turn_row(c, r) for c, r in rows]
    out.append("</table></div>")
    return out
