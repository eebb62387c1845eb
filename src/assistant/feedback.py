"""Thumbs up/down and comments on answers, kept in a local SQLite file and exportable as candidate eval cases."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import IO, Iterable

# Read by `assistant eval import-feedback`: keep the columns exactly as they are.
SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback(
    id INTEGER PRIMARY KEY,
    created_at TEXT,
    rating INTEGER,          -- +1 or -1
    comment TEXT,
    question TEXT,
    answer TEXT,
    citations_json TEXT,
    retrieved_json TEXT,
    backend TEXT,
    history_json TEXT        -- earlier user questions
)
"""
COLUMNS = ("id", "created_at", "rating", "comment", "question", "answer", "citations_json", "retrieved_json", "backend", "history_json")

# The themes an eval case may carry (evals/README.md); out-of-scope and adversarial are chosen by people.
EVAL_THEMES = ("running-co-production", "power-dynamics", "recruitment", "measurement", "ebcd", "always-events")
DEFAULT_THEME = "running-co-production"
SNIPPET_WORDS = 12


def _rating(value) -> int:
    if isinstance(value, bool):
        return 1 if value else -1
    if isinstance(value, str):
        value = value.strip().lower()
    if value in (1, "1", "+1", "up"):
        return 1
    if value in (-1, "-1", "down"):
        return -1
    raise ValueError(f"a rating is +1 (helpful) or -1 (not helpful), not {value!r}")


class FeedbackStore:
    """One SQLite file; each write opens its own connection under a lock, so threads can share the store."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, closing(self._connect()) as db, db:
            db.execute(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30)
        db.row_factory = sqlite3.Row
        return db

    def add(
        self,
        rating,
        question: str,
        answer: str,
        citations: Iterable[dict] = (),
        retrieved: Iterable[dict] = (),
        backend: str | None = None,
        history: Iterable[str] = (),
        comment: str = "",
    ) -> int:
        """Store one rating; returns its id."""
        row = (
            time.strftime("%Y-%m-%dT%H:%M:%S"),
            _rating(rating),
            (comment or "").strip(),
            question,
            answer,
            json.dumps(list(citations), ensure_ascii=False),
            json.dumps(list(retrieved), ensure_ascii=False),
            backend,
            json.dumps(list(history), ensure_ascii=False),
        )
        with self._lock, closing(self._connect()) as db, db:
            cursor = db.execute(
                "INSERT INTO feedback(created_at, rating, comment, question, answer, citations_json, retrieved_json, backend, history_json)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            return int(cursor.lastrowid)

    def update(self, feedback_id: int, rating=None, comment: str | None = None) -> None:
        """Change the rating or the comment of a stored entry (a comment added after a thumb)."""
        sets, values = [], []
        if rating is not None:
            sets.append("rating = ?")
            values.append(_rating(rating))
        if comment is not None:
            sets.append("comment = ?")
            values.append(comment.strip())
        if not sets:
            return
        with self._lock, closing(self._connect()) as db, db:
            db.execute(f"UPDATE feedback SET {', '.join(sets)} WHERE id = ?", (*values, int(feedback_id)))

    def get(self, feedback_id: int) -> dict | None:
        with closing(self._connect()) as db:
            row = db.execute("SELECT * FROM feedback WHERE id = ?", (int(feedback_id),)).fetchone()
        return _decode(row) if row else None

    def all(self) -> list[dict]:
        """Every entry, oldest first, with the JSON columns decoded (citations, retrieved, history)."""
        with closing(self._connect()) as db:
            rows = db.execute("SELECT * FROM feedback ORDER BY id").fetchall()
        return [_decode(row) for row in rows]

    def export_jsonl(self, path_or_file: str | Path | IO[str], only_negative: bool = False) -> int:
        """Write one candidate eval case per entry (evals/README.md shape); returns how many were written."""
        entries = [e for e in self.all() if not only_negative or e["rating"] < 0]
        lines = [json.dumps(candidate_case(e), ensure_ascii=False) for e in entries]
        text = "".join(line + "\n" for line in lines)
        if hasattr(path_or_file, "write"):
            path_or_file.write(text)
        else:
            Path(path_or_file).write_text(text, encoding="utf-8")
        return len(lines)


def _decode(row: sqlite3.Row) -> dict:
    entry = {name: row[name] for name in COLUMNS}
    for column, key in (("citations_json", "citations"), ("retrieved_json", "retrieved"), ("history_json", "history")):
        try:
            entry[key] = json.loads(row[column] or "[]")
        except json.JSONDecodeError:
            entry[key] = []
    return entry


def first_words(text: str, n: int = SNIPPET_WORDS) -> str:
    return " ".join(re.sub(r"\s+", " ", text or "").strip().split(" ")[:n])


def case_theme(entry: dict) -> str:
    """The eval theme of the first cited passage, else the default."""
    citations = entry.get("citations") or []
    if citations:
        themes_by_chunk = {p.get("chunk_id"): p.get("themes") or [] for p in entry.get("retrieved") or []}
        for theme in themes_by_chunk.get(citations[0].get("chunk_id"), []):
            if theme in EVAL_THEMES:
                return theme
    return DEFAULT_THEME


def candidate_case(entry: dict) -> dict:
    """A feedback entry as an eval case for a person to review before it joins a suite."""
    evidence, seen = [], set()
    for citation in entry.get("citations") or []:
        item = (citation.get("source"), first_words(citation.get("quote", "")))
        if item[0] and item[1] and item not in seen:
            seen.add(item)
            evidence.append({"document": item[0], "snippet": item[1]})
    verdict = "helpful (+1)" if entry["rating"] > 0 else "not helpful (-1)"
    note = [f"From UI feedback #{entry['id']} on {entry.get('created_at')}: rated {verdict}."]
    if entry.get("comment"):
        note.append(f"Comment: {entry['comment']}")
    if entry.get("history"):
        note.append("Asked as a follow-up to: " + " | ".join(entry["history"]))
    if not evidence:
        note.append("The assistant declined or cited nothing: add evidence, or set answerable to false.")
    note.append(f"Backend: {entry.get('backend') or 'unknown'}.")
    return {
        "id": f"feedback-{int(entry['id']):03d}",
        "question": entry.get("question") or "",
        "theme": case_theme(entry),
        "answerable": True,
        "evidence": evidence,
        "note": " ".join(note),
    }
