"""Evaluation reports: results.json, summary.md, a self-contained report.html and junit.xml.

Every report carries the run stamp (corpus hash, embedding model, chunking, backend, prompt versions,
git commit, time and suites), opens with the headline (how many turns pass, which gates held), lists
failing turns first and says whether judged (model-graded) and answers-the-question metrics ran. The
renderers live in report_text (console, summary.md), report_html and report_junit.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import time
from pathlib import Path

from assistant.evaluation.metrics import MIN_RUN_SHARE
from assistant.evaluation.report_format import fmt, fmt_delta, stamp_lines  # noqa: F401 (re-exported)
from assistant.evaluation.report_html import bar_chart, nice_ceiling, report_html  # noqa: F401 (re-exported)
from assistant.evaluation.report_junit import junit_xml
from assistant.evaluation.report_text import comparison_lines, console_summary, summary_markdown  # noqa: F401 (re-exported)
from assistant.evaluation.runner import CONTEXT_BUDGET_CHARS, JUDGED_METRICS, K_VALUES, SUPPORT_COSINE, SUPPORT_LEXICAL
from assistant.evaluation.verdict import PASS_RULE, headline, turn_failures  # noqa: F401 (re-exported)

FORMAT = "assistant-eval/1"
REPORT_FILES = ("results.json", "summary.md", "report.html", "junit.xml")


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
    manifest = service.manifest()
    settings = service.settings
    suites = []
    for path in suite_files:
        name = Path(path).stem
        own = [c for c in cases if c.get("_suite") == name]
        suites.append(
            {
                "name": name,
                "path": str(path),
                "sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest(),
                "cases": len(own),
                "turns": sum(1 + len(c.get("followups") or []) for c in own),
            }
        )
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
        "model": None if backend == "extractive" else service.model_label(backend),
        "prompts": folder_hash(project_root / "prompts"),
        "judged": judge_status,
        "suites": suites,
        "retrieval": {
            name: getattr(settings, name)
            for name in (
                "top_k",
                "candidates",
                "fusion_weights",
                "primary_boost",
                "primary_quota",
                "min_relevance",
                "min_sentence_relevance",
                "answer_sentences",
                "max_question_chars",
            )
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


def results_document(
    stamp: dict,
    summary: dict,
    cases: list[dict],
    judge_status: str,
    comparison: dict | None,
    gates: list[dict],
    answers_question_status: str | None = None,
) -> dict:
    status = answers_question_status or "answers-the-question: not run (not requested)"
    return {
        "format": FORMAT,
        "run": stamp,
        "judged": {"status": judge_status, "ran": not judge_status.startswith("judged metrics: not run"), "metrics": list(JUDGED_METRICS)},
        "answers_question": {"status": status, "ran": ": not run" not in status},
        "pass_rule": PASS_RULE,
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
