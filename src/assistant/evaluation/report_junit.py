"""junit.xml: one <testsuite> per suite file and one <testcase> per turn, failing by the verdict rule."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

from assistant.evaluation.report_format import fmt
from assistant.evaluation.verdict import turn_failures

_XML_ILLEGAL = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _x(text) -> str:
    return _XML_ILLEGAL.sub("\ufffd", str(text))


def junit_xml(document: dict) -> bytes:
    """One <testsuite> per suite file and one <testcase> per turn (JUnit XML as read by CI tools).

    A turn fails by the rule of :mod:`assistant.evaluation.verdict` (the same as every other report).
    """
    cases = document["cases"]
    suites: dict[str, list[dict]] = {}
    for case in cases:
        suites.setdefault(case["suite"] or "suite", []).append(case)
    stamp = document["run"]
    total_failures = sum(1 for c in cases if turn_failures(c))
    total_time = sum(c["scores"].get("latency_ms", 0.0) for c in cases) / 1000
    root = ET.Element(
        "testsuites", name="assistant-eval", tests=str(len(cases)), failures=str(total_failures), errors="0", time=f"{total_time:.3f}"
    )
    for number, (name, members) in enumerate(suites.items()):
        failures = sum(1 for c in members if turn_failures(c))
        suite_el = ET.SubElement(
            root,
            "testsuite",
            name=_x(name),
            tests=str(len(members)),
            failures=str(failures),
            errors="0",
            skipped="0",
            time=f"{sum(c['scores'].get('latency_ms', 0.0) for c in members) / 1000:.3f}",
            timestamp=_x(str(stamp.get("timestamp", ""))[:19]),
            hostname="localhost",
            id=str(number),
            package="eval",
        )
        props = ET.SubElement(suite_el, "properties")
        for key, value in (
            ("corpus_hash", stamp.get("corpus_hash")),
            ("embedding_model", stamp.get("embedding_model")),
            ("chunking", json.dumps(stamp.get("chunking"))),
            ("backend", stamp.get("backend")),
            ("git_commit", stamp.get("git", {}).get("commit")),
            ("prompts", stamp.get("prompts")),
            ("judged", document["judged"]["status"]),
        ):
            ET.SubElement(props, "property", name=key, value=_x(value))
        for case in members:
            s = case["scores"]
            el = ET.SubElement(
                suite_el,
                "testcase",
                classname=_x(f"eval.{name}.{case['theme']}"),
                name=_x(case["id"]),
                time=f"{s.get('latency_ms', 0.0) / 1000:.3f}",
            )
            reasons = turn_failures(case)
            if reasons:
                failure = ET.SubElement(el, "failure", message=_x("; ".join(reasons)), type="EvaluationFailure")
                failure.text = _x(
                    f"question: {case['question'][:1000]}\n"
                    f"answer: {case.get('response', {}).get('answer', '')[:1000]}\n"
                    f"evidence: {json.dumps(case.get('evidence', []), ensure_ascii=False)[:1000]}\n"
                    f"retrieved: {', '.join(p.get('source', '') for p in case.get('response', {}).get('retrieved', [])[:5])}"
                )
            out = ET.SubElement(el, "system-out")
            figures = ", ".join(f"{k}={fmt(v, k)}" for k, v in s.items() if k not in ("citation_markers",))
            out.text = _x(f"{case['question'][:500]}\n{figures}")
        ET.SubElement(suite_el, "system-out").text = _x(document["judged"]["status"])
        ET.SubElement(suite_el, "system-err")
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
