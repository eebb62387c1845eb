"""Turns thumbs-down feedback from the UI into candidate evaluation cases for people to review.

Reads ``<data_dir>/feedback.sqlite3`` (table ``feedback``: id, created_at, rating, comment, question,
answer, citations_json, retrieved_json, backend, history_json) with sqlite3 directly and writes a valid
suite file, by default ``evals/candidates/feedback-YYYYMMDD.yaml``. Candidates are never run by
``assistant eval`` until someone reviews them and moves them into a suite under ``evals/``.

Each row becomes one case:

* ``id``: ``feedback-NNN``, numbered after the highest ``feedback-NNN`` already used in ``evals/`` and
  ``evals/candidates/``; the database row id is kept in the note;
* ``question``: as asked; earlier questions of the conversation are listed in the note;
* ``theme``: guessed from the cited (else retrieved) passages' themes, default ``running-co-production``;
* ``answerable`` and ``evidence``: with citations, ``true`` and one ``{document, snippet}`` per cited
  passage (snippet = the first 12 words of the quote); with none (the assistant declined), ``false``;
* ``note``: rating, date, the user's comment, the backend and what to check.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from assistant.evaluation.metrics import normalise
from assistant.feedback import COLUMNS
from assistant.themes import DEFAULT_TOPIC_THEME, TOPIC_THEMES

TIE_ORDER = ("ebcd", "always-events", "measurement", "recruitment", "power-dynamics", "running-co-production")
SNIPPET_WORDS = 12
_FEEDBACK_ID = re.compile(r"^\s*-?\s*id:\s*['\"]?feedback-(\d+)", re.MULTILINE)


class FeedbackImportError(ValueError):
    """No feedback database, or not the expected table."""


@dataclass
class ImportReport:
    path: Path | None
    written: int = 0
    read: int = 0
    skipped_duplicates: list[int] = field(default_factory=list)
    skipped_empty: list[int] = field(default_factory=list)


def _json(text, default):
    try:
        value = json.loads(text) if text else default
    except (TypeError, json.JSONDecodeError):
        return default
    return value if isinstance(value, type(default)) else default


def read_rows(db_path: Path, include_all: bool = False) -> list[dict]:
    db_path = Path(db_path)
    if not db_path.is_file():
        raise FeedbackImportError(f"{db_path}: no feedback database (the UI creates it when someone rates an answer)")
    try:
        with closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)) as db:
            db.row_factory = sqlite3.Row
            columns = {row[1] for row in db.execute("PRAGMA table_info(feedback)")}
            if not columns:
                raise FeedbackImportError(f"{db_path}: has no 'feedback' table")
            missing = set(COLUMNS) - columns
            if missing:
                raise FeedbackImportError(f"{db_path}: the feedback table lacks column(s) {', '.join(sorted(missing))}")
            where = "" if include_all else " WHERE rating < 0"
            rows = db.execute(f"SELECT {', '.join(COLUMNS)} FROM feedback{where} ORDER BY id").fetchall()
    except sqlite3.DatabaseError as exc:
        raise FeedbackImportError(f"{db_path}: cannot read the feedback database ({exc})") from exc
    return [dict(row) for row in rows]


def snippet_of(quote: str, words: int = SNIPPET_WORDS) -> str:
    """The first ``words`` words of a quote, without a dangling opening bracket or trailing punctuation."""
    tokens = re.sub(r"\s+", " ", quote or "").strip().split(" ")[:words]
    text = " ".join(tokens).strip(" ,;:([{“\"'")
    return text.rstrip(" ,;:([{“\"'–-")


def history_questions(history) -> list[str]:
    """Earlier user questions from history_json: strings, {role, content} messages or [user, bot] pairs."""
    questions = []
    for item in history if isinstance(history, list) else []:
        if isinstance(item, str):
            questions.append(item)
        elif isinstance(item, dict) and item.get("role", "user") == "user":
            text = item.get("content") or item.get("question")
            if isinstance(text, str):
                questions.append(text)
        elif isinstance(item, (list, tuple)) and item and isinstance(item[0], str):
            questions.append(item[0])
    return [q.strip() for q in questions if q and q.strip()]


def guess_theme(citations: list[dict], retrieved: list[dict]) -> str:
    themes_by_chunk = {p.get("chunk_id"): p.get("themes") or [] for p in retrieved if isinstance(p, dict)}
    passages = [themes_by_chunk.get(c.get("chunk_id"), []) for c in citations if isinstance(c, dict)]
    if not passages:
        passages = [p.get("themes") or [] for p in retrieved[:3] if isinstance(p, dict)]
    counts: dict[str, int] = {}
    for themes in passages:
        for theme in themes:
            if theme in TOPIC_THEMES:
                counts[theme] = counts.get(theme, 0) + 1
    if not counts:
        return DEFAULT_TOPIC_THEME
    # Ties go to the more specific theme: almost every passage is also about running co-production.
    return max(TIE_ORDER, key=lambda t: (counts.get(t, 0), -TIE_ORDER.index(t)))


def candidate_case(row: dict, case_id: str) -> dict:
    citations = [c for c in _json(row.get("citations_json"), []) if isinstance(c, dict)]
    retrieved = [p for p in _json(row.get("retrieved_json"), []) if isinstance(p, dict)]
    evidence, seen = [], set()
    for citation in citations:
        document, snippet = citation.get("source"), snippet_of(citation.get("quote", ""))
        if document and normalise(snippet) and (document, snippet) not in seen:
            seen.add((document, snippet))
            evidence.append({"document": document, "snippet": snippet})
    rating = row.get("rating")
    verdict = "thumbs down" if (rating or 0) < 0 else "thumbs up" if (rating or 0) > 0 else "no rating"
    note = [
        f"From UI feedback row {row['id']} ({row.get('created_at') or 'undated'}, {verdict}, backend {row.get('backend') or 'unknown'})."
    ]
    if (row.get("comment") or "").strip():
        note.append(f"Comment: {row['comment'].strip()}")
    earlier = history_questions(_json(row.get("history_json"), []))
    if earlier:
        note.append(
            "Asked after: " + " | ".join(earlier) + ". Make it a follow-up of a case with those questions, or reword it to stand alone."
        )
    if evidence:
        note.append("Evidence is the answer's citations: check each supports the answer, replace wrong ones, and check the theme.")
    else:
        note.append("The assistant cited nothing (it declined). If the corpus does answer this, set answerable: true and add evidence.")
    case = {
        "id": case_id,
        "question": (row.get("question") or "").strip(),
        "theme": guess_theme(citations, retrieved),
        "answerable": bool(evidence),
    }
    if evidence:
        case["evidence"] = evidence
    case["note"] = " ".join(note)
    return case


def used_feedback_numbers(evals_dir: Path) -> set[int]:
    numbers: set[int] = set()
    for folder in (evals_dir, evals_dir / "candidates"):
        if folder.is_dir():
            for path in list(folder.glob("*.yaml")) + list(folder.glob("*.yml")) + list(folder.glob("*.jsonl")):
                try:
                    text = path.read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError):
                    continue
                numbers |= {int(n) for n in _FEEDBACK_ID.findall(text)}
                numbers |= {int(n) for n in re.findall(r'"id":\s*"feedback-(\d+)"', text)}
    return numbers


def known_questions(evals_dir: Path) -> set[str]:
    questions: set[str] = set()
    for folder in (evals_dir, evals_dir / "candidates"):
        if not folder.is_dir():
            continue
        for path in list(folder.glob("*.yaml")) + list(folder.glob("*.yml")):
            try:
                cases = yaml.safe_load(path.read_text(encoding="utf-8")) or []
            except (OSError, UnicodeDecodeError, yaml.YAMLError):
                continue
            for case in cases if isinstance(cases, list) else []:
                if isinstance(case, dict):
                    for turn in [case] + list(case.get("followups") or []):
                        if isinstance(turn, dict) and isinstance(turn.get("question"), str):
                            questions.add(normalise(turn["question"]))
    return questions


def default_output(evals_dir: Path, today: str | None = None) -> Path:
    """evals/candidates/feedback-YYYYMMDD.yaml, or -2, -3 … when that file already exists."""
    today = today or time.strftime("%Y%m%d")
    folder = evals_dir / "candidates"
    path = folder / f"feedback-{today}.yaml"
    n = 2
    while path.exists():
        path = folder / f"feedback-{today}-{n}.yaml"
        n += 1
    return path


HEADER = """# Candidate evaluation cases from UI feedback ({what}), written by `assistant eval import-feedback`
# from {db} on {when}.
# Review each case before moving it into a suite under evals/: fix the theme, check the evidence
# snippets (6-20 words copied exactly from one paragraph of the source), add key_points if useful,
# and rename the id to the theme's prefix (see evals/README.md). These files are never run as they are.
"""


def import_feedback(db_path: Path, evals_dir: Path, out: Path | None = None, include_all: bool = False) -> ImportReport:
    rows = read_rows(db_path, include_all)
    report = ImportReport(path=None, read=len(rows))
    number = max(used_feedback_numbers(evals_dir), default=0)
    seen = known_questions(evals_dir)
    cases = []
    for row in rows:
        question = normalise(row.get("question") or "")
        if not question:
            report.skipped_empty.append(row["id"])
            continue
        if question in seen:
            report.skipped_duplicates.append(row["id"])
            continue
        seen.add(question)
        number += 1
        cases.append(candidate_case(row, f"feedback-{number:03d}"))
    report.written = len(cases)
    if not cases:
        return report
    path = Path(out) if out else default_output(evals_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = HEADER.format(what="every rating" if include_all else "thumbs-down only", db=db_path, when=time.strftime("%Y-%m-%d %H:%M"))
    body = yaml.safe_dump(cases, sort_keys=False, allow_unicode=True, width=110, default_flow_style=False)
    path.write_text(header + "\n" + body, encoding="utf-8")
    report.path = path
    return report
