"""The question suites under evals/ are well formed and their evidence is real."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
import yaml

from assistant import themes
from assistant.evaluation.metrics import normalise
from assistant.evaluation.suites import ID_PATTERN, CaseSpec

HERE = Path(__file__).resolve()
REPO = HERE.parents[2]
EVALS = REPO / "evals"
CORPUS = REPO / "corpus"
SEED = REPO / "sources/co-production-and-quality-improvement-2020.txt"  # the review as published (sources/README.md)

REVIEW_DOC = "review/co-production-and-quality-improvement-2020.md"
TOPIC_THEMES = set(themes.TOPIC_THEMES)
THEMES = set(themes.CASE_THEMES)
CASE_FIELDS = set(CaseSpec.model_fields)
FOLLOWUP_FIELDS = {"question", "answerable", "evidence", "key_points", "note"}
EVIDENCE_FIELDS = {"document", "snippet"}
MIN_WORDS, MAX_WORDS = 6, 20
LIST_MARKER = re.compile(r"^(?:[-*+]\s|\d+[.)]\s|#)")


def _units(text: str) -> list[str]:
    """Normalised paragraphs, bullets and headings: the spans a snippet may not cross.

    A new unit starts after a blank line, at a list item or heading, and after a
    heading; other lines continue the unit above (wrapped Markdown paragraphs).
    """
    units: list[list[str]] = []
    previous_blank = previous_heading = True
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            previous_blank = True
            continue
        if previous_blank or previous_heading or LIST_MARKER.match(line):
            units.append([line])
        else:
            units[-1].append(line)
        previous_blank = False
        previous_heading = line.startswith("#")
    return [normalise(" ".join(unit)) for unit in units]


FRONT_MATTER = re.compile(r"\A---\s*\n.*?\n---\s*\n", re.DOTALL)


def _body(text: str) -> str:
    """The text without YAML front matter: a snippet must sit in what a reader sees, not in metadata."""
    return FRONT_MATTER.sub("", text, count=1)


@cache
def _source_units(document: str) -> tuple[str, ...] | None:
    """The units of the text an evidence document points at, or None if it is missing.

    ``review/...`` is checked against the seed text; every other document (``notes/ebcd.md`` …)
    against ``corpus/<document>`` with its front matter removed.
    """
    if document.startswith("review/"):
        path = SEED
    else:
        path = CORPUS / document
    if not path.is_file():
        return None
    return tuple(_units(_body(path.read_text(encoding="utf-8"))))


def _load(path: Path) -> list[dict]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, list), f"{path.name}: the suite must be a YAML list of cases"
    return data


SUITE_PATHS = sorted(EVALS.glob("*.yaml"))
SUITES = {path.name: _load(path) for path in SUITE_PATHS}
ALL_CASES = [(name, case) for name, cases in SUITES.items() for case in cases]


def _case_id(item: tuple[str, dict]) -> str:
    name, case = item
    return f"{name}:{case.get('id', '?') if isinstance(case, dict) else '?'}"


def _turns(case: dict) -> list[tuple[str, dict]]:
    """The case itself and its follow-ups, each with a label for messages."""
    turns = [(case["id"], case)]
    for number, followup in enumerate(case.get("followups") or [], start=1):
        turns.append((f"{case['id']} followup {number}", followup))
    return turns


def _is_answerable(case: dict, turn: dict) -> bool:
    """A follow-up is answerable unless it says otherwise (default: as its case)."""
    return turn.get("answerable", case["answerable"])


def test_seed_text_is_present():
    assert SEED.is_file(), f"the seed text is missing at {SEED}"


def test_expected_suites_exist():
    assert {"review.yaml", "out_of_scope.yaml", "adversarial.yaml", "notes.yaml"} <= set(SUITES)


PREFIXES = {
    "running-co-production": ("run",),
    "power-dynamics": ("power",),
    "recruitment": ("recruit",),
    "measurement": ("measure", "method"),
    "ebcd": ("ebcd",),
    "always-events": ("always",),
    "out-of-scope": ("oos",),
    "adversarial": ("adv",),
}


@pytest.mark.parametrize("item", ALL_CASES, ids=_case_id)
def test_id_prefix_matches_theme(item):
    _, case = item
    prefix = case["id"].rsplit("-", 1)[0]
    assert prefix in PREFIXES[case["theme"]], f"{case['id']}: theme {case['theme']} uses prefix {' or '.join(PREFIXES[case['theme']])}-"


def test_total_suite_size():
    assert len(ALL_CASES) >= 80, f"only {len(ALL_CASES)} cases across all suites"


def test_ids_are_unique_across_suites():
    seen: dict[str, str] = {}
    for name, case in ALL_CASES:
        assert case["id"] not in seen, f"{case['id']} is in both {seen[case['id']]} and {name}"
        seen[case["id"]] = name


@pytest.mark.parametrize("item", ALL_CASES, ids=_case_id)
def test_case_shape(item):
    name, case = item
    assert isinstance(case, dict), f"{name}: every case must be a mapping"
    assert not set(case) - CASE_FIELDS, f"unknown fields {set(case) - CASE_FIELDS}"
    for field in ("id", "question", "theme", "answerable"):
        assert field in case, f"missing {field}"
    assert ID_PATTERN.match(case["id"]), f"id {case['id']!r} should look like 'power-003'"
    assert isinstance(case["question"], str) and case["question"].strip()
    assert case["theme"] in THEMES, f"unknown theme {case['theme']!r}"
    assert isinstance(case["answerable"], bool)
    if "repeat" in case:
        assert isinstance(case["repeat"], int) and not isinstance(case["repeat"], bool) and case["repeat"] >= 1
    if "note" in case:
        assert isinstance(case["note"], str)
    followups = case.get("followups")
    if followups is not None:
        assert isinstance(followups, list) and followups, "followups must be a non-empty list"
    for label, turn in _turns(case):
        assert isinstance(turn, dict), f"{label}: must be a mapping"
        if turn is not case:
            assert not set(turn) - FOLLOWUP_FIELDS, f"{label}: unknown fields {set(turn) - FOLLOWUP_FIELDS}"
            assert isinstance(turn.get("question"), str) and turn["question"].strip(), f"{label}: no question"
            assert isinstance(turn.get("answerable", True), bool)
        evidence = turn.get("evidence") or []
        assert isinstance(evidence, list)
        if _is_answerable(case, turn):
            assert evidence, f"{label}: answerable turns need at least one evidence item"
        else:
            assert not evidence, f"{label}: unanswerable turns carry no evidence"
        for item_ in evidence:
            assert isinstance(item_, dict) and set(item_) == EVIDENCE_FIELDS, f"{label}: evidence needs document and snippet"
            assert all(isinstance(item_[key], str) and item_[key].strip() for key in EVIDENCE_FIELDS)
        key_points = turn.get("key_points")
        if key_points is not None:
            assert isinstance(key_points, list) and key_points, f"{label}: key_points must be a non-empty list"
            for group in key_points:
                assert isinstance(group, list) and group, f"{label}: each key point is a list of alternatives"
                assert all(isinstance(alt, str) and normalise(alt) for alt in group), f"{label}: empty alternative"


@pytest.mark.parametrize("item", ALL_CASES, ids=_case_id)
def test_evidence_is_found_in_the_source(item):
    _, case = item
    for label, turn in _turns(case):
        for evidence in turn.get("evidence") or []:
            document, snippet = evidence["document"], evidence["snippet"]
            if document.startswith("review/"):
                assert document == REVIEW_DOC, f"{label}: unknown review document {document!r}"
            units = _source_units(document)
            assert units is not None, f"{label}: no source text for {document!r} (looked in corpus/)"
            needle = normalise(snippet)
            assert needle in " ".join(units), f"{label}: snippet not found in {document}: {snippet!r}"
            assert any(needle in unit for unit in units), f"{label}: snippet straddles a paragraph, bullet or heading boundary: {snippet!r}"
            words = len(snippet.split())
            whole_unit = needle in units
            assert whole_unit or MIN_WORDS <= words <= MAX_WORDS, (
                f"{label}: snippet has {words} words; use {MIN_WORDS}-{MAX_WORDS} (or a whole short bullet): {snippet!r}"
            )


@pytest.mark.parametrize("item", ALL_CASES, ids=_case_id)
def test_key_points_are_supported_by_the_evidence_documents(item):
    """A must-mention word the corpus never uses could not be required of an answer."""
    _, case = item
    for label, turn in _turns(case):
        documents = {evidence["document"] for evidence in turn.get("evidence") or []}
        if not turn.get("key_points") or not documents:
            continue
        text = " ".join(" ".join(_source_units(document) or ()) for document in documents)
        for group in turn["key_points"]:
            assert any(normalise(alt) in text for alt in group), f"{label}: key point {group} is never in the sources"


def test_converted_review_keeps_every_snippet():
    """Once corpus/review/... exists, the evidence must sit in it too (same words, headings added)."""
    converted = CORPUS / REVIEW_DOC
    if not converted.is_file():
        pytest.skip(f"{converted} has not been written yet")
    units = _units(converted.read_text(encoding="utf-8"))
    missing = [
        f"{case['id']}: {evidence['snippet']!r}"
        for _, case in ALL_CASES
        for _, turn in _turns(case)
        for evidence in turn.get("evidence") or []
        if evidence["document"] == REVIEW_DOC and not any(normalise(evidence["snippet"]) in unit for unit in units)
    ]
    assert not missing, "snippets missing from (or split across units of) the converted review:\n" + "\n".join(missing)


def test_review_suite_size_and_coverage():
    cases = SUITES["review.yaml"]
    answerable = [case for case in cases if case["answerable"]]
    assert len(answerable) >= 40, f"only {len(answerable)} answerable review cases"
    assert {case["theme"] for case in cases} == TOPIC_THEMES, "review.yaml should cover every topic theme, and only those"
    assert sum(1 for case in cases if case.get("followups")) >= 6, "at least 6 review cases need followups"


def test_out_of_scope_suite():
    cases = SUITES["out_of_scope.yaml"]
    assert len(cases) >= 12
    for case in cases:
        assert case["theme"] == "out-of-scope" and case["answerable"] is False, case["id"]


def test_adversarial_suite():
    cases = SUITES["adversarial.yaml"]
    assert len(cases) >= 10
    assert all(case["theme"] == "adversarial" for case in cases)
    assert any(case["answerable"] for case in cases), "some false premises should be correctable from the corpus"
    assert not all(case["answerable"] for case in cases), "some adversarial cases should be refused"
    longest = max(len(" ".join([case["question"]] * case.get("repeat", 1))) for case in cases)
    assert longest >= 15_000, f"the longest adversarial input is only {longest} characters"


def test_notes_suite():
    """notes.yaml: answerable questions whose evidence sits only in the toolkit notes (corpus/notes/*.md)."""
    cases = SUITES["notes.yaml"]
    assert sum(1 for case in cases if case["answerable"]) >= 20
    notes = {path.relative_to(CORPUS).as_posix() for path in (CORPUS / "notes").glob("*.md")}
    cited: set[str] = set()
    for case in cases:
        assert case["theme"] in TOPIC_THEMES, f"{case['id']}: notes cases use the topic themes"
        for label, turn in _turns(case):
            assert _is_answerable(case, turn), f"{label}: every notes case is answerable"
            for evidence in turn["evidence"]:
                assert evidence["document"] in notes, f"{label}: {evidence['document']!r} is not a file in corpus/notes/"
                cited.add(evidence["document"])
    assert {
        "notes/ebcd.md",
        "notes/always-events.md",
        "notes/measuring-experience-and-co-production.md",
        "notes/principles-of-co-production.md",
        "notes/payment-and-reimbursement.md",
    } <= cited


def test_notes_snippets_are_in_the_note_bodies():
    """Every notes/ snippet sits inside one paragraph, bullet or heading of the note itself, front matter excluded."""
    checked = 0
    for _, case in ALL_CASES:
        for label, turn in _turns(case):
            for evidence in turn.get("evidence") or []:
                if not evidence["document"].startswith("notes/"):
                    continue
                path = CORPUS / evidence["document"]
                assert path.is_file(), f"{label}: {path} is missing"
                units = _units(_body(path.read_text(encoding="utf-8")))
                assert any(normalise(evidence["snippet"]) in unit for unit in units), (
                    f"{label}: snippet not in one unit of {evidence['document']}: {evidence['snippet']!r}"
                )
                checked += 1
    assert checked >= 20
