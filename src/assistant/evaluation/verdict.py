"""Whether a turn passes, and why not; the run's headline (how many turns pass, which gates held).

A turn passes when every one of these holds:

* an answerable turn: its evidence is in the top 5 passages (when it lists evidence); it was answered (coverage
  "answered": a "partial" answer says first that the sources lack what was asked, which declines it); and every
  key-point group is in the answer (key-point coverage 1.0);
* an unanswerable turn: it was declined or partly declined (coverage not "answered");
* every turn: no hygiene finding, and every [n] marker names a retrieved passage that supports its claim.

JUnit, summary.md and report.html all use this one rule.
"""

from __future__ import annotations

PASS_RULE = (
    "A turn passes when an answerable turn has its evidence in the top 5, is answered (not declined or partly "
    "declined) and covers every key point; an unanswerable turn is declined or partly declined; and no answer "
    "has a hygiene finding or a citation that is invalid or does not support its claim."
)


def declined(scores: dict) -> bool:
    """The abstention decision: coverage is not "answered" (falls back to `abstained` for older runs)."""
    if scores.get("declined") is not None:
        return bool(scores["declined"])
    return bool(scores.get("abstained"))


def turn_failures(case: dict) -> list[str]:
    """Why the turn fails (empty when it passes), from a ``TurnResult.to_dict()`` record."""
    scores, details, reasons = case["scores"], case.get("details") or {}, []
    coverage = scores.get("coverage")
    if case["answerable"]:
        if scores.get("hit@5") is not None and not scores["hit@5"]:
            reasons.append("retrieval missed: no evidence passage in the top 5")
        if declined(scores):
            error = (case.get("response") or {}).get("error")
            if coverage == "partial":
                lacking = ", ".join((case.get("response") or {}).get("lacking") or [])
                reasons.append("said the sources lack what was asked on an answerable question" + (f" ({lacking})" if lacking else ""))
            else:
                reasons.append("declined an answerable question" + (f" ({error})" if error else ""))
        elif scores.get("keypoint_coverage") is not None and scores["keypoint_coverage"] < 1.0:
            missing = details.get("missing_key_points")
            if missing:
                reasons.append("missing key points: " + "; ".join(" / ".join(group) for group in missing))
            else:
                reasons.append(f"missing key points (coverage {scores['keypoint_coverage']:.2f})")
    elif not declined(scores):
        reasons.append("answered a question it should have declined")
    findings = case.get("hygiene_findings") or []
    if findings:
        reasons.append(f"hygiene ({len(findings)}): " + "; ".join(findings[:3]) + (" …" if len(findings) > 3 else ""))
    problems = [c["problem"] for c in details.get("citations") or [] if c.get("problem")]
    if problems:
        reasons.append("unsupported citation: " + "; ".join(problems[:3]))
    return reasons


def headline(document: dict) -> str:
    """ "N of M turns pass; gates: …" for the top of every report."""
    cases = document.get("cases") or []
    passed = sum(1 for c in cases if not turn_failures(c))
    text = f"{passed} of {len(cases)} turns pass"
    gates = document.get("gates") or []
    if not gates:
        return text + "; no gates set."
    held = [g for g in gates if g["passed"]]
    failed = [g["gate"] for g in gates if not g["passed"]]
    text += f"; {len(held)} of {len(gates)} gates held"
    return text + (f" (failed: {', '.join(failed)})." if failed else ".")
