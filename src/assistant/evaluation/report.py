"""Evaluation reports: results.json, summary.md, a self-contained report.html and junit.xml.

Every report carries the run stamp (corpus hash, embedding model, chunking, backend, prompt versions,
git commit, time and suites) and says whether judged (model-graded) metrics ran.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import os
import platform
import re
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from assistant.evaluation.runner import (
    ANSWER_METRICS,
    CONTEXT_BUDGET_CHARS,
    JUDGED_METRICS,
    K_VALUES,
    MODEL_METRICS,
    RETRIEVAL_METRICS,
    SUPPORT_COSINE,
    SUPPORT_LEXICAL,
)
from assistant.evaluation.metrics import MIN_RUN_SHARE
from assistant.llm import model_label

FORMAT = "assistant-eval/1"
REPORT_FILES = ("results.json", "summary.md", "report.html", "junit.xml")

#: Columns of the per-theme tables and the charts.
THEME_COLUMNS = ("turns", "hit@5", "mrr", "ndcg@5", "recall@5", "context_budget_hit", "keypoint_coverage",
                 "citation_validity", "citation_support", "abstention_accuracy", "latency_p50_ms", "latency_p95_ms")
CHART_METRICS = ("hit@5", "mrr", "ndcg@5", "keypoint_coverage", "abstention_accuracy", "citation_support")
OVERALL_ROWS = RETRIEVAL_METRICS + ANSWER_METRICS + (
    "abstention_accuracy", "abstention_precision", "abstention_recall", "abstention_f1", "latency_p50_ms", "latency_p95_ms",
) + MODEL_METRICS + ("first_token_p50_ms", "first_token_p95_ms") + JUDGED_METRICS
LABELS = {
    "hit@1": "Hit@1", "hit@3": "Hit@3", "hit@5": "Hit@5", "recall@5": "Recall@5", "mrr": "MRR", "ndcg@5": "nDCG@5",
    "context_budget_hit": f"Evidence in first {CONTEXT_BUDGET_CHARS} chars", "citation_validity": "Citation validity",
    "citation_support": "Citation support", "keypoint_coverage": "Key-point coverage",
    "abstention_accuracy": "Abstention accuracy", "abstention_precision": "Abstention precision",
    "abstention_recall": "Abstention recall", "abstention_f1": "Abstention F1", "latency_p50_ms": "Latency p50 (ms)",
    "latency_p95_ms": "Latency p95 (ms)", "judged_groundedness": "Groundedness (judged)",
    "judged_relevance": "Answer relevance (judged)", "turns": "Turns",
    "model_fallback": "Model answers replaced by quotes", "sentences_unsupported": "Model sentences unsupported",
    "first_token_p50_ms": "First token p50 (ms)", "first_token_p95_ms": "First token p95 (ms)",
}


# -- the run stamp ------------------------------------------------------------------------------------


def corpus_hash(manifest: dict) -> str:
    """sha256 over the sorted (document id, content sha256) pairs of the index manifest."""
    lines = sorted(f"{source}\t{entry.get('sha256', '')}\n" for source, entry in manifest.get("documents", {}).items())
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def folder_hash(folder: Path) -> str:
    """sha256 over every file's relative path and content sha256, or "none" when the folder is absent."""
    folder = Path(folder)
    if not folder.is_dir():
        return "none"
    digest = hashlib.sha256()
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    if not files:
        return "none"
    for path in files:
        digest.update(f"{path.relative_to(folder).as_posix()}\t{hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
    return digest.hexdigest()


def git_commit(root: Path) -> dict:
    """HEAD's commit and whether the working tree has uncommitted changes ("unknown" outside git)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return {"commit": "unknown", "dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def run_stamp(service, backend: str, suite_files: list[Path], cases: list[dict], judge_status: str, project_root: Path) -> dict:
    manifest = service.store.current_manifest()
    settings = service.settings
    suites = []
    for path in suite_files:
        name = Path(path).stem
        own = [c for c in cases if c.get("_suite") == name]
        suites.append({
            "name": name,
            "path": str(path),
            "sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest(),
            "cases": len(own),
            "turns": sum(1 + len(c.get("followups") or []) for c in own),
        })
    return {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "git": git_commit(project_root),
        "corpus_hash": corpus_hash(manifest),
        "documents": len(manifest.get("documents", {})),
        "chunks": manifest.get("chunk_count"),
        "index_built_at": manifest.get("built_at"),
        "embedding_model": manifest.get("embedding_model"),
        "chunking": manifest.get("chunking"),
        "backend": backend,
        "model": None if backend == "extractive" else model_label(settings, backend),
        "prompts": folder_hash(project_root / "prompts"),
        "judged": judge_status,
        "suites": suites,
        "retrieval": {
            name: getattr(settings, name)
            for name in ("top_k", "candidates", "rrf_k", "fusion_weights", "primary_boost", "primary_quota", "min_relevance",
                         "min_sentence_relevance", "answer_sentences", "max_question_chars")
            if hasattr(settings, name)
        },
        "evaluation": {
            "k_values": list(K_VALUES),
            "context_budget_chars": CONTEXT_BUDGET_CHARS,
            "evidence_min_run_share": MIN_RUN_SHARE,
            "support_lexical": SUPPORT_LEXICAL,
            "support_cosine": SUPPORT_COSINE,
        },
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }


# -- per-turn verdicts used by JUnit and the reports -----------------------------------------------------


def turn_failures(case: dict) -> list[str]:
    """Why a turn fails in CI: retrieval missed, or the wrong abstention decision."""
    scores, reasons = case["scores"], []
    if case["answerable"]:
        if scores.get("hit@5") is not None and not scores["hit@5"]:
            reasons.append("retrieval missed: no evidence passage in the top 5")
        if scores.get("abstained"):
            error = case.get("response", {}).get("error")
            reasons.append("declined an answerable question" + (f" ({error})" if error else ""))
    elif not scores.get("abstained"):
        reasons.append("answered a question it should have declined")
    return reasons


def results_document(stamp: dict, summary: dict, cases: list[dict], judge_status: str, comparison: dict | None,
                     gates: list[dict]) -> dict:
    return {
        "format": FORMAT,
        "run": stamp,
        "judged": {"status": judge_status, "ran": not judge_status.startswith("judged metrics: not run"),
                   "metrics": list(JUDGED_METRICS)},
        "summary": summary,
        "gates": gates,
        "comparison": comparison,
        "cases": cases,
    }


def write_reports(directory: Path, document: dict) -> dict[str, Path]:
    """Write the four report files into ``directory`` (created if needed); returns their paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {name: directory / name for name in REPORT_FILES}
    paths["results.json"].write_text(json.dumps(document, ensure_ascii=False, indent=1, default=str) + "\n", encoding="utf-8")
    paths["summary.md"].write_text(summary_markdown(document), encoding="utf-8")
    paths["report.html"].write_text(report_html(document), encoding="utf-8")
    paths["junit.xml"].write_bytes(junit_xml(document))
    return paths


# -- formatting helpers ---------------------------------------------------------------------------------


def fmt(value, metric: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if metric.endswith("_ms"):
        return f"{value:,.0f}"
    if metric in ("turns", "answerable_turns") or isinstance(value, int):
        return str(value)
    return f"{value:.3f}"


def fmt_delta(delta, metric: str = "") -> str:
    if delta is None:
        return ""
    if abs(delta) < 1e-9:
        return "±0"
    return f"{delta:+,.0f}" if metric.endswith("_ms") else f"{delta:+.3f}"


def _commit_label(stamp: dict) -> str:
    git = stamp.get("git", {})
    commit = git.get("commit", "unknown")
    label = commit[:12] if commit != "unknown" else commit
    return label + (" (uncommitted changes)" if git.get("dirty") else "")


def stamp_lines(stamp: dict) -> list[tuple[str, str]]:
    chunking = stamp.get("chunking") or {}
    chunk_text = ", ".join(f"{k} {v}" for k, v in chunking.items()) if isinstance(chunking, dict) else str(chunking)
    return [
        ("Time", str(stamp.get("timestamp", ""))),
        ("Git commit", _commit_label(stamp)),
        ("Corpus hash", f"{str(stamp.get('corpus_hash', ''))[:16]} ({stamp.get('documents')} documents, {stamp.get('chunks')} chunks)"),
        ("Embedding model", str(stamp.get("embedding_model"))),
        ("Chunking", chunk_text),
        ("Backend", str(stamp.get("backend"))),
        ("Prompts", str(stamp.get("prompts"))[:16]),
        ("Suites", ", ".join(f"{s['name']} ({s['turns']} turns)" for s in stamp.get("suites", []))),
    ] + ([("Run time", f"{stamp['duration_s']} s")] if stamp.get("duration_s") is not None else [])


# -- console --------------------------------------------------------------------------------------------


def console_summary(document: dict) -> str:
    summary, lines = document["summary"], []
    overall = summary["overall"]
    lines.append(f"{overall['turns']} turns ({overall.get('answerable_turns', 0)} answerable)")
    key = ("hit@1", "hit@5", "recall@5", "mrr", "ndcg@5", "context_budget_hit", "keypoint_coverage", "citation_validity",
           "citation_support", "abstention_precision", "abstention_recall", "abstention_f1", "latency_p50_ms",
           "latency_p95_ms") + JUDGED_METRICS
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
    lines.append("")
    lines.append(document["judged"]["status"])
    if comparison:
        lines.append("")
        lines.extend(comparison_lines(comparison))
    return "\n".join(lines)


def comparison_lines(comparison: dict, limit: int = 40) -> list[str]:
    lines = [f"Against baseline {comparison['baseline'].get('path') or ''}: "
             f"{len(comparison['regressions'])} regression(s), {len(comparison['improvements'])} improvement(s)"]
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


# -- summary.md -----------------------------------------------------------------------------------------


def _md(text) -> str:
    return re.sub(r"\s+", " ", str(text)).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def summary_markdown(document: dict) -> str:
    summary, stamp = document["summary"], document["run"]
    comparison = document.get("comparison") or {}
    side = comparison.get("summary") or {}
    out = ["# Evaluation summary", ""]
    out += [f"- **{k}:** {_md(v)}" for k, v in stamp_lines(stamp)]
    out += ["", f"**{_md(document['judged']['status'])}**. Judged metrics are model-graded (not deterministic) and marked *(judged)*.", ""]

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
        out += ["", "## By suite", "", "| Suite | Turns | Hit@5 | MRR | Key points | Abstention accuracy |", "|---|---|---|---|---|---|"]
        for suite, f in summary["by_suite"].items():
            out.append(f"| {suite} | {f['turns']} | {fmt(f.get('hit@5'))} | {fmt(f.get('mrr'))} | {fmt(f.get('keypoint_coverage'))} | {fmt(f.get('abstention_accuracy'))} |")

    if comparison:
        out += ["", "## Against the baseline", "", f"Baseline: `{_md(comparison['baseline'].get('path', ''))}` "
                f"(run {_md(comparison['baseline'].get('run', {}).get('timestamp', '?'))}, commit {_md(_commit_label(comparison['baseline'].get('run', {})))})", ""]
        for warning in comparison.get("warnings", []):
            out.append(f"- Note: {_md(warning)}")
        for title, items in (("Regressions", comparison["regressions"]), ("Improvements", comparison["improvements"])):
            out += ["", f"### {title} ({len(items)})", ""]
            if items:
                out += ["| Turn | Theme | Metric | Before | After | Question |", "|---|---|---|---|---|---|"]
                for i in items:
                    out.append(f"| {i['id']} | {i['theme']} | {i['metric']} | {fmt(i['before'])} | {fmt(i['after'])} | {_md(i['question'][:120])} |")
            else:
                out.append("None.")
        if comparison.get("added"):
            out += ["", f"New turns: {', '.join(comparison['added'])}"]
        if comparison.get("removed"):
            out += ["", f"Turns no longer run: {', '.join(comparison['removed'])}"]

    failing = [(c, turn_failures(c)) for c in document["cases"]]
    failing = [(c, r) for c, r in failing if r]
    out += ["", f"## Failing turns ({len(failing)})", ""]
    if failing:
        out += ["| Turn | Theme | Why | Question |", "|---|---|---|---|"]
        for case, reasons in failing:
            out.append(f"| {case['id']} | {case['theme']} | {_md('; '.join(reasons))} | {_md(case['question'][:120])} |")
    else:
        out.append("None.")
    return "\n".join(out) + "\n"


# -- report.html ------------------------------------------------------------------------------------------

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
"""


SHORT = {"context_budget_hit": "Evidence ≤ budget", "keypoint_coverage": "Key points", "citation_validity": "Cit. validity",
         "citation_support": "Cit. support", "abstention_accuracy": "Abst. accuracy", "latency_p50_ms": "p50 ms",
         "latency_p95_ms": "p95 ms"}


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
         f"<small>Questions facilitators ask, run through the assistant and scored against where the answers sit in the corpus.</small>"]
    h.append('<table class="stamp">' + "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in stamp_lines(stamp)) + "</table>")
    h.append(f'<p class="banner"><strong>{esc(document["judged"]["status"])}</strong>. Judged metrics are model-graded '
             "(not deterministic) and are marked <em>(judged)</em> wherever they appear.</p>")

    if document.get("gates"):
        h.append("<h2>Gates</h2><table><tr><th>Gate</th><th>Value</th><th>Floor</th><th>Result</th></tr>")
        for g in document["gates"]:
            result = '<span class="pass">pass</span>' if g["passed"] else '<span class="fail">FAIL</span>'
            h.append(f"<tr><td><code>{esc(g['gate'])}</code></td><td class='n'>{esc(fmt(g['value']))}</td>"
                     f"<td class='n'>{g['floor']:g}</td><td>{result}</td></tr>")
        h.append("</table>")

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
                 f"commit {esc(_commit_label(base_run))}.</p>")
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

    failing = sum(1 for c in document["cases"] if turn_failures(c))
    h.append(f"<h2>Every turn ({len(document['cases'])})</h2>")
    h.append(f"<p>{failing} turn(s) fail: evidence not in the top 5, or the wrong decision to answer or decline "
             "(the same rule as junit.xml).</p>")
    h.append('<div class="wide"><table class="turns"><tr><th>Turn</th><th>Theme</th><th>Question and answer</th><th>Hit@5</th><th>MRR</th>'
             "<th>Key points</th><th>Abstained</th><th>Result</th></tr>")
    for case in document["cases"]:
        s = case["scores"]
        reasons = turn_failures(case)
        result = '<span class="pass">pass</span>' if not reasons else f'<span class="fail">fail</span><br><small>{esc("; ".join(reasons))}</small>'
        question = case["question"]
        short = question if len(question) <= 220 else question[:220] + f"… ({len(question):,} characters)"
        response = case.get("response", {})
        sources = "".join(
            f"<li>{esc(p.get('rank'))}. {esc(p.get('source'))}{' > ' + esc(p.get('section')) if p.get('section') else ''}</li>"
            for p in response.get("retrieved", [])[:5]
        )
        evidence = "".join(f"<li>{esc(e['document'])}: “{esc(e['snippet'])}”</li>" for e in case.get("evidence", []))
        h.append(
            f"<tr><td>{esc(case['id'])}</td><td>{esc(case['theme'])}</td><td class='q'>{esc(short)}"
            f"<details><summary>answer and sources</summary><pre>{esc(response.get('answer', ''))}</pre>"
            f"<small>Retrieved (top 5):</small><ol>{sources}</ol>"
            + (f"<small>Expected evidence:</small><ul>{evidence}</ul>" if evidence else "")
            + f"</details></td><td class='n'>{esc(fmt(s.get('hit@5')))}</td><td class='n'>{esc(fmt(s.get('mrr')))}</td>"
            f"<td class='n'>{esc(fmt(s.get('keypoint_coverage')))}</td><td>{esc(fmt(s.get('abstained')))}</td><td class='r'>{result}</td></tr>"
        )
    h.append("</table></div></main></body></html>\n")
    return "".join(h)


# -- junit.xml ------------------------------------------------------------------------------------------

_XML_ILLEGAL = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _x(text) -> str:
    return _XML_ILLEGAL.sub("\ufffd", str(text))


def junit_xml(document: dict) -> bytes:
    """One <testsuite> per suite file and one <testcase> per turn (JUnit XML as read by CI tools).

    A turn fails when an answerable turn's evidence is not in the top 5, when an unanswerable turn was
    answered, or when an answerable turn was declined.
    """
    cases = document["cases"]
    suites: dict[str, list[dict]] = {}
    for case in cases:
        suites.setdefault(case["suite"] or "suite", []).append(case)
    stamp = document["run"]
    total_failures = sum(1 for c in cases if turn_failures(c))
    total_time = sum(c["scores"].get("latency_ms", 0.0) for c in cases) / 1000
    root = ET.Element("testsuites", name="assistant-eval", tests=str(len(cases)), failures=str(total_failures), errors="0",
                      time=f"{total_time:.3f}")
    for number, (name, members) in enumerate(suites.items()):
        failures = sum(1 for c in members if turn_failures(c))
        suite_el = ET.SubElement(root, "testsuite", name=_x(name), tests=str(len(members)), failures=str(failures), errors="0",
                                 skipped="0", time=f"{sum(c['scores'].get('latency_ms', 0.0) for c in members) / 1000:.3f}",
                                 timestamp=_x(str(stamp.get("timestamp", ""))[:19]), hostname="localhost", id=str(number),
                                 package="eval")
        props = ET.SubElement(suite_el, "properties")
        for key, value in (("corpus_hash", stamp.get("corpus_hash")), ("embedding_model", stamp.get("embedding_model")),
                           ("chunking", json.dumps(stamp.get("chunking"))), ("backend", stamp.get("backend")),
                           ("git_commit", stamp.get("git", {}).get("commit")), ("prompts", stamp.get("prompts")),
                           ("judged", document["judged"]["status"])):
            ET.SubElement(props, "property", name=key, value=_x(value))
        for case in members:
            s = case["scores"]
            el = ET.SubElement(suite_el, "testcase", classname=_x(f"eval.{name}.{case['theme']}"), name=_x(case["id"]),
                               time=f"{s.get('latency_ms', 0.0) / 1000:.3f}")
            reasons = turn_failures(case)
            if reasons:
                failure = ET.SubElement(el, "failure", message=_x("; ".join(reasons)), type="EvaluationFailure")
                failure.text = _x(
                    f"question: {case['question'][:1000]}\n"
                    f"answer: {case.get('response', {}).get('answer', '')[:1000]}\n"
                    f"evidence: {json.dumps(case.get('evidence', []), ensure_ascii=False)[:1000]}\n"
                    f"retrieved: {', '.join(p.get('source', '') for p in case.get('response', {}).get('retrieved', [])[:5])}"
                )
            out = ET.SubElement(el, "system-out")
            figures = ", ".join(f"{k}={fmt(v, k)}" for k, v in s.items() if k not in ("citation_markers",))
            out.text = _x(f"{case['question'][:500]}\n{figures}")
        ET.SubElement(suite_el, "system-out").text = _x(document["judged"]["status"])
        ET.SubElement(suite_el, "system-err")
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
