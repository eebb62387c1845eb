"""`assistant eval` argument handling, exit codes and gates, malformed suites, and `eval import-feedback`."""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing

import pytest
import yaml

from assistant.evaluation.command import cmd_eval
from assistant.evaluation.suites import SuiteError, load_suite, load_suites
from assistant.faces.cli import build_parser
from tests.evaluation.eval_fakes import TINY_SUITE, standard_service, write_suite


def run(argv, service, capsys):
    args = build_parser().parse_args(["eval", *argv])
    status = cmd_eval(args, service=service)
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture()
def suite(tmp_path):
    return write_suite(tmp_path / "tiny.yaml")


# -- running and gating --------------------------------------------------------------------------------


def test_prints_summary_and_judged_status(suite, capsys):
    status, out, _ = run([str(suite), "--no-progress"], standard_service(), capsys)
    assert status == 0
    assert "6 turns (4 answerable)" in out
    assert "judged metrics: not run (no LLM backend configured)" in out
    assert "ebcd" in out and "out-of-scope" in out


def test_progress_bar_goes_to_stderr(suite, capsys):
    status, _, err = run([str(suite)], standard_service(), capsys)
    assert status == 0 and "Evaluating" in err and "6/6" in err


def test_gates_pass(suite, capsys):
    status, out, _ = run(
        [str(suite), "--no-progress", "--fail-under", "hit@5=0.75", "ebcd:hit@5=1.0", "abstention_f1=0.5"], standard_service(), capsys
    )
    assert status == 0
    assert "ok   hit@5 = 0.7500 >= floor 0.75" in out


def test_failing_gate_exits_1_naming_metric_value_and_floor(suite, capsys):
    status, out, err = run(
        [str(suite), "--no-progress", "--fail-under", "hit@5=0.9", "--fail-under", "ebcd:mrr=0.6"], standard_service(), capsys
    )
    assert status == 1
    assert "FAIL hit@5 = 0.7500 < floor 0.9" in out
    assert "FAIL ebcd:mrr = 0.5556 < floor 0.6" in out
    assert "2 gate(s) failed: hit@5 is 0.7500 (floor 0.9); ebcd:mrr is 0.5556 (floor 0.6)" in err


def test_gate_on_a_metric_a_theme_does_not_have_fails(suite, capsys):
    status, out, _ = run([str(suite), "--no-progress", "--fail-under", "out-of-scope:hit@5=0.1"], standard_service(), capsys)
    assert status == 1 and "not measured in theme out-of-scope" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--fail-under", "hit@7=0.9"], "unknown metric 'hit@7'"),
        (["--fail-under", "hit@5"], "METRIC=VALUE"),
        (["--backend", "nonsense"], "unknown backend 'nonsense'"),
        (["--baseline", "/nonexistent/results.json"], "cannot read the baseline"),
        (["--out", "x.yaml"], "only apply to `assistant eval import-feedback`"),
        (["--all"], "only apply to"),
        (["no-such-suite"], "no-such-suite: no such suite file"),
    ],
)
def test_usage_errors_exit_2_before_asking_anything(suite, capsys, argv, message):
    service = standard_service()
    status, _, err = run([str(suite), "--no-progress", *argv] if argv[0] != "no-such-suite" else argv, service, capsys)
    assert status == 2 and message in err and err.startswith("Error: ")
    assert service.asked == []


def test_default_runs_every_suite_in_the_evals_folder(tmp_path, capsys):
    evals = tmp_path / "evals"
    (evals / "candidates").mkdir(parents=True)
    write_suite(evals / "tiny.yaml")
    (evals / "candidates" / "feedback-20260101.yaml").write_text("- not: a case\n", encoding="utf-8")  # never run
    (evals / "README.md").write_text("# not a suite\n", encoding="utf-8")
    status, out, _ = run(["--evals-dir", str(evals), "--no-progress"], standard_service(), capsys)
    assert status == 0 and "6 turns" in out


def test_warns_about_evidence_documents_not_in_the_index(tmp_path, capsys):
    cases = [dict(TINY_SUITE[2], evidence=[{"document": "notes/missing.md", "snippet": "six words that are not anywhere"}])]
    path = write_suite(tmp_path / "s.yaml", cases)
    status, _, err = run([str(path), "--no-progress"], standard_service(), capsys)
    assert status == 0 and "evidence document 'notes/missing.md' is not in the index" in err


# -- malformed suites ------------------------------------------------------------------------------------------

GOOD = """- id: ebcd-001
  question: "What is a trigger film?"
  theme: ebcd
  answerable: true
  evidence:
    - document: notes/ebcd.md
      snippet: "a compilation of about 30 minutes"
"""


@pytest.mark.parametrize(
    "text, line, problem",
    [
        (GOOD + '- id: ebcd-002\n  question: "Where?"\n  answerable: true\n', 8, "has no 'theme'"),
        (GOOD + "- id: ebcd-002\n  question: Where?\n  theme: cooking\n  answerable: false\n", 8, "has theme 'cooking'"),
        (GOOD + "- id: ebcd-002\n  question: Where?\n  theme: ebcd\n  answerable: true\n", 8, "is answerable but lists no evidence"),
        (GOOD + "- id: ebcd-002\n  question: Where?\n  theme: ebcd\n  answerable: false\n  colour: red\n", 8, "unknown field(s) colour"),
        (GOOD + "- id: ebcd-001\n  question: Again?\n  theme: ebcd\n  answerable: false\n", 8, "'ebcd-001' is already used at line 1"),
        (GOOD + "- id: EBCD_2\n  question: Where?\n  theme: ebcd\n  answerable: false\n", 8, "should be lower-case words"),
        (GOOD + "- id: ebcd-002\n  question: Where?\n  theme: ebcd\n  answerable: yes please\n", 8, "'answerable' must be true or false"),
        (
            GOOD + "- id: ebcd-002\n  question: Where?\n  theme: ebcd\n  answerable: false\n  repeat: 0\n",
            8,
            "'repeat' must be a whole number",
        ),
        (
            GOOD + "- id: ebcd-002\n  question: Where?\n  theme: ebcd\n  answerable: false\n  followups:\n    - note: x\n",
            8,
            "follow-up 1 needs a 'question'",
        ),
        (
            GOOD + "- id: ebcd-002\n  question: Where?\n  theme: ebcd\n  answerable: true\n  evidence:\n    - document: notes/ebcd.md\n",
            8,
            "needs 'document' and 'snippet'",
        ),
        (
            GOOD + "- id: ebcd-002\n  question: Where?\n  theme: ebcd\n  answerable: false\n  evidence:\n    - {document: a, snippet: b}\n",
            8,
            "unanswerable but lists evidence",
        ),
        (GOOD + '- id: ebcd-002\n  question: "unclosed\n  theme: ebcd\n', None, "not valid YAML"),
        (GOOD + "  - stray: [\n", None, "not valid YAML"),
    ],
)
def test_malformed_suite_names_file_line_and_problem(tmp_path, capsys, text, line, problem):
    path = tmp_path / "broken.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SuiteError) as caught:
        load_suite(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:"), message
    if line is not None:
        assert message.startswith(f"{path}:{line}: "), message
    assert problem in message
    service = standard_service()
    status, _, err = run([str(path), "--no-progress"], service, capsys)
    assert status == 2 and problem in err and service.asked == []


def test_malformed_jsonl_suite(tmp_path):
    path = tmp_path / "cases.jsonl"
    good = {"id": "oos-001", "question": "Capital of France?", "theme": "out-of-scope", "answerable": False}
    path.write_text(json.dumps(good) + "\n\n{broken\n", encoding="utf-8")
    with pytest.raises(SuiteError, match=rf"^{path}:3: not valid JSON"):
        load_suite(path)
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "id": "oos-002", "theme": "x"}) + "\n", encoding="utf-8")
    with pytest.raises(SuiteError, match=rf"^{path}:2: case 'oos-002' has theme 'x'"):
        load_suite(path)


def test_a_suite_that_is_not_a_list(tmp_path):
    path = tmp_path / "map.yaml"
    path.write_text("id: ebcd-001\nquestion: x\n", encoding="utf-8")
    with pytest.raises(SuiteError, match=r":1: a suite must be a list of cases"):
        load_suite(path)


def test_ids_must_be_unique_across_suites(tmp_path):
    a = write_suite(tmp_path / "a.yaml", TINY_SUITE[:1])
    b = write_suite(tmp_path / "b.yaml", TINY_SUITE[:1])
    with pytest.raises(SuiteError, match=r"b.yaml:1: case id 'ebcd-001' is also used in .*a.yaml"):
        load_suites([a, b])


# -- import-feedback --------------------------------------------------------------------------------------------

SCHEMA = """CREATE TABLE feedback(id INTEGER PRIMARY KEY, created_at TEXT, rating INTEGER, comment TEXT, question TEXT,
answer TEXT, citations_json TEXT, retrieved_json TEXT, backend TEXT, history_json TEXT)"""

QUOTE = "The interviews are edited into a trigger film, a compilation of about 30 minutes that drew on interviews."


def make_db(path, rows):
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(SCHEMA)
        for row in rows:
            db.execute(
                "INSERT INTO feedback(created_at, rating, comment, question, answer, citations_json, retrieved_json, backend,"
                " history_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
    return path


ROWS = [
    (
        "2026-11-27T10:00:00",
        -1,
        "Wrong film length!",
        "How long should the trigger film be?",
        "It is 2 hours [1]",
        json.dumps(
            [
                {"n": 1, "chunk_id": "c1", "source": "notes/ebcd.md", "quote": QUOTE},
                {"n": 2, "chunk_id": "c2", "source": "notes/glossary.md", "quote": "A (short) quote"},
            ]
        ),
        json.dumps([{"chunk_id": "c1", "themes": ["ebcd", "running-co-production"]}, {"chunk_id": "c2", "themes": ["glossary"]}]),
        "extractive",
        json.dumps(["What is EBCD?"]),
    ),
    ("2026-11-27T10:05:00", 1, "", "What is co-production?", "Good answer [1]", "[]", "[]", "extractive", "[]"),
    (
        "2026-11-27T10:06:00",
        -1,
        None,
        "Who won the 1966 World Cup?",
        "The indexed sources don't cover this question.",
        "[]",
        "not json",
        None,
        None,
    ),
    ("2026-11-27T10:07:00", -1, "dup", "how long should the TRIGGER film be??", "", "[]", "[]", "extractive", "[]"),
    ("2026-11-27T10:08:00", -1, "", "   ", "", "[]", "[]", "extractive", "[]"),
]


def test_import_feedback_writes_a_valid_candidate_suite(tmp_path, capsys):
    db = make_db(tmp_path / "feedback.sqlite3", ROWS)
    evals = tmp_path / "evals"
    evals.mkdir()
    (evals / "old.yaml").write_text("- id: feedback-007\n  question: Old\n  theme: ebcd\n  answerable: false\n", encoding="utf-8")
    status, out, _ = run(["import-feedback", "--db", str(db), "--evals-dir", str(evals)], standard_service(), capsys)
    assert status == 0
    written = evals / "candidates" / f"feedback-{time.strftime('%Y%m%d')}.yaml"
    assert f"Wrote 2 candidate case(s) to {written}" in out
    assert "Read 4 thumbs-down ratings" in out and "rows 4" in out and "rows 5" in out
    cases = load_suite(written)  # a valid suite by the runner's own rules
    assert [c["id"] for c in cases] == ["feedback-008", "feedback-009"]
    first, second = cases
    assert first["question"] == "How long should the trigger film be?"
    assert first["theme"] == "ebcd" and first["answerable"] is True
    assert first["evidence"] == [
        {"document": "notes/ebcd.md", "snippet": "The interviews are edited into a trigger film, a compilation of about"},
        {"document": "notes/glossary.md", "snippet": "A (short) quote"},
    ]
    assert "Comment: Wrong film length!" in first["note"] and "Asked after: What is EBCD?" in first["note"]
    assert "feedback row 1" in first["note"]
    assert second["answerable"] is False and "evidence" not in second and "cited nothing" in second["note"]
    assert second["theme"] == "running-co-production"
    assert written.read_text(encoding="utf-8").startswith("# Candidate evaluation cases from UI feedback")


def test_import_feedback_all_includes_thumbs_up_and_out_path(tmp_path, capsys):
    db = make_db(tmp_path / "feedback.sqlite3", ROWS)
    out_file = tmp_path / "mine.yaml"
    status, out, _ = run(
        ["import-feedback", "--db", str(db), "--all", "--out", str(out_file), "--evals-dir", str(tmp_path / "none")],
        standard_service(),
        capsys,
    )
    assert status == 0 and "Read 5 ratings" in out
    cases = yaml.safe_load(out_file.read_text(encoding="utf-8"))
    assert [c["question"] for c in cases] == [
        "How long should the trigger film be?",
        "What is co-production?",
        "Who won the 1966 World Cup?",
    ]
    assert "thumbs up" in cases[1]["note"]


def test_import_feedback_default_database_is_in_the_data_dir(tmp_path, capsys):
    make_db(tmp_path / "feedback.sqlite3", ROWS[:1])
    status, out, _ = run(["import-feedback", "--evals-dir", str(tmp_path / "evals")], standard_service(data_dir=tmp_path), capsys)
    assert status == 0 and str(tmp_path / "feedback.sqlite3") in out
    second = tmp_path / "evals" / "candidates" / f"feedback-{time.strftime('%Y%m%d')}-2.yaml"
    status, out, _ = run(["import-feedback", "--evals-dir", str(tmp_path / "evals")], standard_service(data_dir=tmp_path), capsys)
    assert "No new candidate cases" in out and not second.exists()  # the question is already a candidate


def test_import_feedback_errors(tmp_path, capsys):
    status, _, err = run(["import-feedback", "--db", str(tmp_path / "none.sqlite3")], standard_service(), capsys)
    assert status == 2 and "no feedback database" in err
    empty = tmp_path / "empty.sqlite3"
    with closing(sqlite3.connect(empty)) as db:
        db.execute("CREATE TABLE other(x)")
    status, _, err = run(["import-feedback", "--db", str(empty)], standard_service(), capsys)
    assert status == 2 and "has no 'feedback' table" in err
    status, _, err = run(["import-feedback", "review", "--db", str(empty)], standard_service(), capsys)
    assert status == 2 and "takes no suite names" in err
