"""The CI gate: `assistant eval` over every suite in evals/ against a real index of corpus/.

The floors sit about 0.03 under the figures measured when they were set, so any real regression in
retrieval, abstention or citations fails the build. When a change improves the figures, raise the floors
(run `assistant eval --report DIR` and read summary.md); when a change is meant to trade one figure for
another, lower that floor in the same commit and say why.

Figures measured on 2026-11-27 with the extractive backend over 158 turns (values beside FLOORS).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from assistant.cli import build_parser
from assistant.evaluation.command import cmd_eval
from assistant.settings import PROJECT_ROOT

# metric (or theme:metric) -> floor.  Measured value in the comment.
FLOORS = {
    "hit@5": 0.65,  # 0.684
    "recall@5": 0.58,  # 0.616
    "mrr": 0.48,  # 0.516
    "ndcg@5": 0.41,  # 0.441
    "context_budget_hit": 0.59,  # 0.625
    "keypoint_coverage": 0.80,  # 0.835
    "citation_validity": 0.97,  # 1.000
    "citation_support": 0.97,  # 1.000
    "abstention_accuracy": 0.88,  # 0.918
    "abstention_precision": 0.77,  # 0.800
    "abstention_f1": 0.61,  # 0.649
    "running-co-production:hit@5": 0.60,  # 0.633
    "power-dynamics:hit@5": 0.72,  # 0.750
    "recruitment:hit@5": 0.75,  # 0.786
    "measurement:hit@5": 0.80,  # 0.833
    "ebcd:hit@5": 0.74,  # 0.773
    "always-events:hit@5": 0.39,  # 0.429
    "adversarial:hit@5": 0.27,  # 0.300
    "out-of-scope:abstention_accuracy": 0.53,  # 0.562
}


@pytest.fixture(scope="module")
def gate_run(corpus_service, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval-report")
    argv = ["eval", "--report", str(out), "--no-progress", "--fail-under", *(f"{k}={v}" for k, v in FLOORS.items())]
    status = cmd_eval(build_parser().parse_args(argv), service=corpus_service)
    return status, out


@pytest.mark.slow
def test_every_suite_meets_its_floors(gate_run, capsys):
    status, out = gate_run
    document = json.loads((out / "results.json").read_text(encoding="utf-8"))
    failed = [g["message"] for g in document["gates"] if not g["passed"]]
    assert status == 0 and not failed, "evaluation gates failed:\n" + "\n".join(failed)
    assert len(document["gates"]) == len(FLOORS)


@pytest.mark.slow
def test_all_four_reports_are_written_and_well_formed(gate_run):
    _, out = gate_run
    document = json.loads((out / "results.json").read_text(encoding="utf-8"))
    cases = document["cases"]
    suites = {s["name"] for s in document["run"]["suites"]}
    assert {"review", "notes", "out_of_scope", "adversarial"} <= suites
    assert len(cases) >= 150 and len({c["case_id"] for c in cases}) >= 140
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
    assert "&lt;script&gt;alert(&#x27;owned&#x27;)&lt;/script&gt;" in page, f"{script_case['id']} must be escaped"
    assert "<script" not in page
    assert not re.search(r"""(?:src|href)\s*=\s*["']?https?:""", page)

    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert "## By theme" in summary and "| ebcd |" in summary and "judged metrics: not run" in summary


def corpus_service_chunk_size() -> int:
    from assistant.settings import Settings

    return Settings.model_fields["chunk_size"].default


@pytest.mark.slow
def test_cli_entry_point_exits_non_zero_naming_the_failed_floor(corpus_data_dir):
    """The real `python -m assistant eval` in a subprocess, on the index built for this session."""
    env = {**os.environ, "ASSISTANT_DATA_DIR": str(corpus_data_dir)}
    done = subprocess.run(
        [sys.executable, "-m", "assistant", "eval", "out_of_scope", "--no-progress", "--fail-under", "abstention_accuracy=0.01", "hit@5=0.5"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    # Out-of-scope questions have no evidence, so hit@5 cannot be measured: the gate fails rather than passing silently.
    assert "ok   abstention_accuracy = " in done.stdout
    assert "FAIL hit@5: not measured in this run (no turn it applies to); floor 0.5" in done.stdout
    assert "1 gate(s) failed: hit@5 is not measured (floor 0.5)" in done.stderr
    assert "judged metrics: not run (no LLM backend configured)" in done.stdout
