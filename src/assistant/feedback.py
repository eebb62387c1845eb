"""Thumbs up/down and comments on answers, kept in a local SQLite file (evaluation/feedback_import turns them into candidate cases)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path

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
            if cursor.lastrowid is None:  # sqlite3 sets it after every INSERT; None would mean nothing was stored
                raise sqlite3.DatabaseError("the feedback entry was not stored")
            return cursor.lastrowid

    def update(self, feedback_id: int, rating=None, comment: str | None = None) -> None:
        """Change the rating or the comment of a stored entry (a comment added after a thumb)."""
        sets: list[str] = []
        values: list[int | str] = []
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


def _decode(row: sqlite3.Row) -> dict:
    entry = {name: row[name] for name in COLUMNS}
    for column, key in (("citations_json", "citations"), ("retrieved_json", "retrieved"), ("history_json", "history")):
        try:
            entry[key] = json.loads(row[column] or "[]")
        except json.JSONDecodeError:
            entry[key] = []
    return entry
