"""Baseline comparison and --fail-under gates, on small hand-made runs."""

from __future__ import annotations

import json

import pytest

from assistant.evaluation.baseline import BaselineError, Gate, GateError, check_gates, compare, load_run, parse_gate


def _case(case_id, theme="ebcd", **scores):
    return {"id": case_id, "theme": theme, "suite": "s", "question": f"question {case_id}", "answerable": True, "scores": scores}


def _run(cases, overall=None, by_theme=None, **run):
    return {
        "run": {"corpus_hash": "abc", "embedding_model": "m", **run},
        "summary": {"overall": overall or {}, "by_theme": by_theme or {}},
        "cases": cases,
    }


BEFORE = _run(
    [
        _case("ebcd-001", **{"hit@5": 1.0, "mrr": 1.0, "abstention_correct": True, "keypoint_coverage": 1.0}),
        _case("ebcd-002", **{"hit@5": 0.0, "mrr": 0.0, "abstention_correct": True, "keypoint_coverage": 0.5}),
        _case("oos-001", theme="out-of-scope", abstention_correct=False),
        _case("run-009", theme="running-co-production", **{"hit@5": 1.0}),
    ],
    overall={"hit@5": 0.6667, "mrr": 0.5, "latency_p95_ms": 100.0},
    by_theme={"ebcd": {"hit@5": 0.5}},
)
AFTER = _run(
    [
        _case("ebcd-001", **{"hit@5": 0.0, "mrr": 0.25, "abstention_correct": False, "keypoint_coverage": 1.0}),
        _case("ebcd-002", **{"hit@5": 1.0, "mrr": 0.5, "abstention_correct": True, "keypoint_coverage": 0.5}),
        _case("oos-001", theme="out-of-scope", abstention_correct=True),
        _case("new-001", theme="ebcd", **{"hit@5": 1.0}),
    ],
    overall={"hit@5": 0.6667, "mrr": 0.5833, "latency_p95_ms": 80.0},
    by_theme={"ebcd": {"hit@5": 0.6667}},
    corpus_hash="def",
)


def test_compare_lists_per_case_regressions_and_improvements():
    diff = compare(AFTER, BEFORE, "old/results.json")
    regressions = {(r["id"], r["metric"]): (r["before"], r["after"]) for r in diff["regressions"]}
    improvements = {(r["id"], r["metric"]): (r["before"], r["after"]) for r in diff["improvements"]}
    assert regressions == {
        ("ebcd-001", "hit@5"): (1.0, 0.0),
        ("ebcd-001", "mrr"): (1.0, 0.25),
        ("ebcd-001", "abstention_correct"): (1.0, 0.0),
    }
    assert improvements == {
        ("ebcd-002", "hit@5"): (0.0, 1.0),
        ("ebcd-002", "mrr"): (0.0, 0.5),
        ("oos-001", "abstention_correct"): (0.0, 1.0),
    }
    assert diff["added"] == ["new-001"] and diff["removed"] == ["run-009"]
    assert diff["baseline"]["path"] == "old/results.json"


def test_compare_summary_side_by_side_and_warnings():
    diff = compare(AFTER, BEFORE)
    assert diff["summary"]["overall"]["mrr"] == {"baseline": 0.5, "current": 0.5833, "delta": 0.0833}
    assert diff["summary"]["overall"]["hit@5"]["delta"] == 0.0
    assert diff["summary"]["overall"]["latency_p95_ms"]["delta"] == -20.0
    assert diff["summary"]["by_theme"]["ebcd"]["hit@5"]["delta"] == pytest.approx(0.1667)
    assert any("different corpus" in w for w in diff["warnings"])


def test_compare_identical_runs_have_no_changes():
    diff = compare(BEFORE, BEFORE)
    assert diff["regressions"] == diff["improvements"] == diff["added"] == diff["removed"] == diff["warnings"] == []


def test_load_run_rejects_other_files(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(BaselineError, match="cannot read"):
        load_run(missing)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(BaselineError, match="not JSON"):
        load_run(broken)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hello": 1}), encoding="utf-8")
    with pytest.raises(BaselineError, match="not an evaluation results.json"):
        load_run(other)
    good = tmp_path / "results.json"
    good.write_text(json.dumps(BEFORE), encoding="utf-8")
    assert load_run(good)["cases"][0]["id"] == "ebcd-001"


# -- gates -------------------------------------------------------------------------------------------------


def test_parse_gate_forms():
    assert parse_gate("hit@5=0.9") == Gate("hit@5", 0.9)
    assert parse_gate(" abstention_f1 = 0.8 ") == Gate("abstention_f1", 0.8)
    assert parse_gate("ebcd:hit@5=0.8") == Gate("hit@5", 0.8, "ebcd")
    assert str(parse_gate("ebcd:mrr=0.5")) == "ebcd:mrr=0.5"


@pytest.mark.parametrize(
    "text, message",
    [
        ("hit@5", "METRIC=VALUE"),
        ("hit@50=0.9", "unknown metric 'hit@50'"),
        ("latency_p95_ms=0.5", "unknown metric"),
        ("cooking:hit@5=0.5", "unknown theme 'cooking'"),
        ("hit@5=1.5", "between 0 and 1"),
        ("hit@5=abc", "METRIC=VALUE"),
    ],
)
def test_parse_gate_errors_name_the_problem(text, message):
    with pytest.raises(GateError, match=message):
        parse_gate(text)


def test_check_gates_pass_fail_and_not_measured():
    summary = {"overall": {"hit@5": 0.9, "abstention_f1": 0.7999}, "by_theme": {"ebcd": {"hit@5": 0.7}, "out-of-scope": {}}}
    results = check_gates(
        summary,
        [parse_gate(g) for g in ("hit@5=0.9", "abstention_f1=0.8", "ebcd:hit@5=0.8", "out-of-scope:hit@5=0.5", "judged_relevance=0.5")],
    )
    assert [r["passed"] for r in results] == [True, False, False, False, False]
    assert results[0]["message"] == "ok   hit@5 = 0.9000 >= floor 0.9"
    assert results[1]["message"] == "FAIL abstention_f1 = 0.7999 < floor 0.8"
    assert results[2]["message"] == "FAIL ebcd:hit@5 = 0.7000 < floor 0.8"
    assert "not measured in theme out-of-scope" in results[3]["message"]
    assert "judged metrics did not run" in results[4]["message"]
