"""The feedback store: the exact SQLite schema and thread-safe writes (tests/evaluation/test_feedback_import.py: the import as cases)."""

from __future__ import annotations

import json
import sqlite3
import threading

import pytest

from assistant.feedback import FeedbackStore

EXPECTED_COLUMNS = [
    ("id", "INTEGER"),
    ("created_at", "TEXT"),
    ("rating", "INTEGER"),
    ("comment", "TEXT"),
    ("question", "TEXT"),
    ("answer", "TEXT"),
    ("citations_json", "TEXT"),
    ("retrieved_json", "TEXT"),
    ("backend", "TEXT"),
    ("history_json", "TEXT"),
]

CITATION = {
    "n": 1,
    "chunk_id": "c1",
    "source": "review/co-production-and-quality-improvement-2020.md",
    "title": "Co-production and QI literature review (NHS England, 2020)",
    "section": "Facilitation",
    "quote": "Pay attention to the group and power dynamics so that everyone feels able to contribute to the work.",
    "page": None,
    "reference": None,
    "references": [],
    "source_url": None,
}
RETRIEVED = [{"chunk_id": "c1", "themes": ["glossary", "power-dynamics"], "source": CITATION["source"], "text": "..."}]


def test_schema_is_exactly_the_agreed_one(tmp_path):
    path = tmp_path / "feedback.sqlite3"
    FeedbackStore(path)
    with sqlite3.connect(path) as db:
        columns = [(row[1], row[2]) for row in db.execute("PRAGMA table_info(feedback)")]
        primary = [row[1] for row in db.execute("PRAGMA table_info(feedback)") if row[5]]
    assert columns == EXPECTED_COLUMNS
    assert primary == ["id"]


def test_add_all_update_round_trip(tmp_path):
    store = FeedbackStore(tmp_path / "f.sqlite3")
    first = store.add(
        -1, "How do we stop clinicians dominating?", "Answer [1]", [CITATION], RETRIEVED, "extractive", ["earlier?"], "missed X"
    )
    second = store.add("up", "Another?", "Answer two [1]", [CITATION], RETRIEVED, "extractive")
    assert (first, second) == (1, 2)
    rows = store.all()
    assert [r["rating"] for r in rows] == [-1, 1]
    assert rows[0]["history"] == ["earlier?"] and json.loads(rows[0]["history_json"]) == ["earlier?"]
    assert rows[0]["citations"][0]["quote"] == CITATION["quote"]
    assert rows[0]["comment"] == "missed X" and rows[0]["backend"] == "extractive"
    store.update(second, rating=-1, comment="  actually wrong  ")
    assert store.get(second)["rating"] == -1 and store.get(second)["comment"] == "actually wrong"
    with pytest.raises(ValueError):
        store.add(0, "q", "a")


def test_concurrent_writes_all_land(tmp_path):
    store = FeedbackStore(tmp_path / "f.sqlite3")
    ids: list[int] = []
    lock = threading.Lock()

    def write(n):
        for i in range(10):
            new = store.add(1 if i % 2 else -1, f"q{n}-{i}", "a", [CITATION], RETRIEVED, "extractive")
            with lock:
                ids.append(new)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(ids) == list(range(1, 81))
    assert len(store.all()) == 80
