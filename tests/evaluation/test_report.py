"""The four report files, the run stamp, and how failures show up in JUnit XML and the HTML."""

from __future__ import annotations

import hashlib
import json
import re
import xml.etree.ElementTree as ET

import pytest

from assistant.evaluation.command import cmd_eval
from assistant.evaluation.report import (
    bar_chart,
    corpus_hash,
    folder_hash,
    git_commit,
    junit_xml,
    report_html,
    summary_markdown,
    turn_failures,
)
from assistant.faces.cli import build_parser
from tests.evaluation.eval_fakes import standard_service, write_suite


def _run(tmp_path, *extra, name="run"):
    suite = write_suite(tmp_path / "tiny.yaml")
    out = tmp_path / name
    args = build_parser().parse_args(["eval", str(suite), "--report", str(out), "--no-progress", *extra])
    status = cmd_eval(args, service=standard_service(tmp_path))
    return status, out


@pytest.fixture()
def report_dir(tmp_path):
    status, out = _run(tmp_path)
    assert status == 0
    return out


def test_results_json_has_every_turn_and_the_run_stamp(report_dir):
    document = json.loads((report_dir / "results.json").read_text(encoding="utf-8"))
    assert document["format"] == "assistant-eval/1"
    run = document["run"]
    for key in ("corpus_hash", "embedding_model", "chunking", "backend", "prompts", "git", "timestamp", "suites"):
        assert key in run, key
    assert run["embedding_model"] == "fake-bow" and run["backend"] == "extractive"
    assert run["chunking"] == {"size": 1000, "overlap": 150, "pipeline": "2"}
    assert run["suites"][0]["name"] == "tiny" and run["suites"][0]["turns"] == 6
    assert document["judged"] == {
        "status": "judged metrics: not run (no LLM backend configured)",
        "ran": False,
        "metrics": ["judged_groundedness", "judged_relevance"],
    }
    assert [c["id"] for c in document["cases"]] == ["ebcd-001", "ebcd-001#1", "ebcd-002", "run-001", "oos-001", "adv-001"]
    first = document["cases"][0]
    assert first["response"]["retrieved"] and first["response"]["citations"] and first["response"]["answer"]
    assert first["scores"]["hit@1"] == 1.0 and first["details"]["citations"][0]["supported"] is True
    assert set(document["summary"]) == {"overall", "by_theme", "by_suite"}


def test_corpus_hash_depends_only_on_document_hashes():
    a = {"documents": {"x.md": {"sha256": "1", "title": "X"}, "y.md": {"sha256": "2"}}, "built_at": "then"}
    b = {"documents": {"y.md": {"sha256": "2"}, "x.md": {"sha256": "1", "title": "Renamed"}}, "built_at": "now"}
    assert corpus_hash(a) == corpus_hash(b) == hashlib.sha256(b"x.md\t1\ny.md\t2\n").hexdigest()
    assert corpus_hash({"documents": {"x.md": {"sha256": "changed"}, "y.md": {"sha256": "2"}}}) != corpus_hash(a)


def test_folder_hash_and_git_commit(tmp_path):
    assert folder_hash(tmp_path / "prompts") == "none"
    (tmp_path / "prompts").mkdir()
    assert folder_hash(tmp_path / "prompts") == "none"
    (tmp_path / "prompts" / "answer.txt").write_text("v1", encoding="utf-8")
    first = folder_hash(tmp_path / "prompts")
    (tmp_path / "prompts" / "answer.txt").write_text("v2", encoding="utf-8")
    assert first != folder_hash(tmp_path / "prompts") and len(first) == 64
    assert git_commit(tmp_path) == {"commit": "unknown", "dirty": None}


def test_junit_xml_one_testcase_per_turn_with_failures(report_dir):
    root = ET.parse(report_dir / "junit.xml").getroot()
    assert root.tag == "testsuites" and root.get("tests") == "6" and root.get("failures") == "3"
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "tiny" and suite.get("tests") == "6" and suite.get("failures") == "3" and suite.get("errors") == "0"
    assert {p.get("name") for p in suite.find("properties")} >= {"corpus_hash", "embedding_model", "backend", "git_commit", "judged"}
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert list(cases) == ["ebcd-001", "ebcd-001#1", "ebcd-002", "run-001", "oos-001", "adv-001"]
    assert cases["ebcd-001"].get("classname") == "eval.tiny.ebcd" and float(cases["ebcd-001"].get("time")) == pytest.approx(0.012)
    failed = {name: c.find("failure").get("message") for name, c in cases.items() if c.find("failure") is not None}
    assert set(failed) == {"ebcd-002", "run-001", "adv-001"}
    assert "retrieval missed" in failed["run-001"] and "declined an answerable question" in failed["run-001"]
    assert failed["adv-001"] == "answered a question it should have declined"
    # ebcd-002 is answered with its evidence in the top 5, but one of its two key points is missing.
    assert failed["ebcd-002"] == "missing key points: forty"


def test_turn_failures_rules():
    def case(answerable, details=None, findings=None, response=None, **scores):
        return {
            "answerable": answerable,
            "scores": scores,
            "details": details or {},
            "hygiene_findings": findings or [],
            "response": response or {},
        }

    answered = {"hit@5": 1.0, "abstained": False, "coverage": "answered", "declined": False}
    assert turn_failures(case(True, **answered, keypoint_coverage=1.0)) == []
    assert turn_failures(case(True, **{**answered, "hit@5": 0.0})) == ["retrieval missed: no evidence passage in the top 5"]
    assert turn_failures(case(True, **{"hit@5": 1.0, "abstained": True, "coverage": "declined", "declined": True})) == [
        "declined an answerable question"
    ]
    # Key-point coverage 0.0 (or anything short of every group) fails a turn that was answered.
    assert turn_failures(case(True, **answered, keypoint_coverage=0.0)) == ["missing key points (coverage 0.00)"]
    assert turn_failures(case(True, {"missing_key_points": [["64", "sixty-four"]]}, **answered, keypoint_coverage=0.5)) == [
        "missing key points: 64 / sixty-four"
    ]
    # A partial answer declines what was asked: right for an unanswerable turn, wrong for an answerable one.
    partial = {"abstained": False, "coverage": "partial", "declined": True}
    assert turn_failures(case(False, **partial)) == []
    assert turn_failures(case(True, response={"lacking": ["a payment rate"]}, **{**partial, "hit@5": 1.0})) == [
        "said the sources lack what was asked on an answerable question (a payment rate)"
    ]
    assert turn_failures(case(False, abstained=True)) == []  # a run from before `coverage` existed
    assert turn_failures(case(False, abstained=False)) == ["answered a question it should have declined"]
    assert turn_failures(case(False, **{**answered, "declined": None})) == ["answered a question it should have declined"]
    # Hygiene findings and citations that do not support their claim fail any turn.
    assert turn_failures(case(False, findings=["markdown debris (bold): **x**"], **partial)) == [
        "hygiene (1): markdown debris (bold): **x**"
    ]
    checks = {"citations": [{"marker": 2, "valid": True, "supported": False, "problem": "[2] does not support its sentence"}]}
    assert turn_failures(case(True, checks, **answered, keypoint_coverage=1.0)) == [
        "unsupported citation: [2] does not support its sentence"
    ]


def test_headline_counts_turns_and_gates():
    from assistant.evaluation.verdict import headline

    ok = {"answerable": False, "scores": {"declined": True}}
    bad = {"answerable": False, "scores": {"declined": False}}
    assert headline({"cases": [ok, bad, ok], "gates": []}) == "2 of 3 turns pass; no gates set."
    gates = [{"gate": "hit@5=0.8", "passed": True}, {"gate": "hygiene_clean=1", "passed": False}]
    assert headline({"cases": [ok], "gates": gates}) == "1 of 1 turns pass; 1 of 2 gates held (failed: hygiene_clean=1)."


def test_junit_strips_characters_xml_cannot_hold():
    document = {
        "run": {"timestamp": "2026-01-01T00:00:00", "git": {}},
        "judged": {"status": "judged metrics: not run (no LLM backend configured)"},
        "cases": [
            {
                "id": "adv-001",
                "suite": "s",
                "theme": "adversarial",
                "question": "bell\x07 and nul\x00",
                "answerable": False,
                "scores": {"abstained": False, "latency_ms": 1.0},
                "response": {"answer": "x\x1b"},
            }
        ],
    }
    root = ET.fromstring(junit_xml(document))
    assert "\x07" not in ET.tostring(root, encoding="unicode")


def test_html_is_self_contained_escaped_and_has_charts(report_dir):
    page = (report_dir / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") >= 6 and "<rect" in page
    assert "<script" not in page.lower().replace("&lt;script", "")
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page  # jinja2's autoescape
    assert not re.search(r"""(?:src|href)\s*=\s*["']?https?:""", page), "no external resources"
    assert "@import" not in page and "<link" not in page
    assert "judged metrics: not run (no LLM backend configured)" in page
    assert "answers-the-question: not run (the service has no cross-encoder)" in page


def test_html_opens_with_the_headline_and_failing_turns_first(report_dir):
    page = (report_dir / "report.html").read_text(encoding="utf-8")
    assert '<p class="headline bad">3 of 6 turns pass; no gates set.</p>' in page
    failing = page.index("<h2>Failing turns (3)</h2>")
    assert failing < page.index("<h2>By theme</h2>") < page.index("<h2>Every turn (6, failing first)</h2>")
    top = page[failing : page.index("<h2>", failing + 5)]
    assert [m for m in re.findall(r"<tr><td>([a-z]+-\d{3}(?:#\d)?)<br>", top)] == ["ebcd-002", "run-001", "adv-001"]
    assert "missing key points: forty" in top and "answered a question it should have declined" in top
    every = page[page.index("<h2>Every turn") :]
    order = re.findall(r"<tr><td>([a-z]+-\d{3}(?:#\d)?)<br>", every)
    assert order == ["ebcd-002", "run-001", "adv-001", "ebcd-001", "ebcd-001#1", "oos-001"]


def test_summary_markdown_tables(report_dir):
    text = (report_dir / "summary.md").read_text(encoding="utf-8")
    assert "judged metrics: not run (no LLM backend configured)" in text
    assert "## Overall" in text and "| Hit@5 | 0.750 |" in text
    assert "## By theme" in text and re.search(r"^\| ebcd \| 3 \| 2 \| 1\.000 \|", text, re.MULTILINE)
    assert text.startswith("# Evaluation summary\n\n**3 of 6 turns pass; no gates set.**")
    assert "## Failing turns (3)" in text and "&lt;script&gt;" in text
    assert text.index("## Failing turns") < text.index("## Overall")
    assert re.search(r"^\| tiny \| 6 \| 3 \| 0\.625 \| 0\.500 \| 0\.500 \| 0\.500 \| 0\.750 \| 0 \| – \| – \|$", text, re.MULTILINE)
    assert "## Hygiene findings (0)" in text


def test_bar_chart_escapes_labels_and_scales_bars():
    svg = bar_chart("A <b> chart", [("<theme>", 0.5, 1.0), ("empty", None, 0.25)])
    assert "<b>" not in svg and "&lt;theme&gt;" in svg
    widths = [float(w) for w in re.findall(r'<rect [^>]*width="([0-9.]+)"', svg)]
    assert widths == [130.0, 260.0, 65.0]  # 260 px for 1.0
    assert "n/a" in svg


def test_reports_with_a_baseline_show_both_runs(tmp_path, report_dir):
    status, again = _run(tmp_path, "--baseline", str(report_dir / "results.json"), name="again")
    assert status == 0
    document = json.loads((again / "results.json").read_text(encoding="utf-8"))
    assert document["comparison"]["regressions"] == [] and document["comparison"]["baseline"]["path"].endswith("results.json")
    page = (again / "report.html").read_text(encoding="utf-8")
    assert "baseline" in page and "#b7bfc9" in page  # the baseline's bars
    assert "Regressions (0)" in page
    assert "### Regressions (0)" in (again / "summary.md").read_text(encoding="utf-8")


def test_report_renderers_accept_a_regression_list(report_dir):
    document = json.loads((report_dir / "results.json").read_text(encoding="utf-8"))
    document["comparison"] = {
        "baseline": {"path": "b.json", "run": {"timestamp": "t", "git": {"commit": "abc"}}},
        "regressions": [
            {"id": "ebcd-001", "theme": "ebcd", "suite": "tiny", "metric": "hit@5", "before": 1.0, "after": 0.0, "question": "<i>q</i>"}
        ],
        "improvements": [],
        "added": [],
        "removed": [],
        "warnings": ["the baseline used a different corpus"],
        "summary": {"overall": {"hit@5": {"baseline": 1.0, "current": 0.75, "delta": -0.25}}, "by_theme": {}},
    }
    page = report_html(document)
    assert "Regressions (1)" in page and "&lt;i&gt;q&lt;/i&gt;" in page and "-0.250" in page
    text = summary_markdown(document)
    assert "| ebcd-001 | ebcd | hit@5 | 1.000 | 0.000 |" in text and "different corpus" in text
