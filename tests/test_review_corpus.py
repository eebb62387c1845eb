"""The review's Markdown keeps the seed's words, has the agreed front matter and heading structure,
and is exactly what scripts/build_review.py makes from the seed."""

from __future__ import annotations

import difflib
import importlib.util
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
REVIEW = REPO / "corpus/review/co-production-and-quality-improvement-2020.md"
SEED = REPO / "sources/co-production-and-quality-improvement-2020.txt"  # the review as published (sources/README.md)
BUILD_SCRIPT = REPO / "scripts/build_review.py"

# The only seed text the Markdown leaves out (documented at the top of the build script).
PAGE_FOOTER = "References and Links"
REPEATED_SLIDE_TITLES = (
    "Influencing factors for alignment of QI, experience of care and co-production",
    "Creating the conditions for genuine co-production at point of care",
)
# The only text the Markdown adds: a heading before the reference list.
ADDED_LINES = ("## References",)

EXPECTED_FRONT_MATTER = {
    "title": (
        "Co-production & Quality Improvement: How co-production is used to improve the quality of "
        "services and people's experience of care: A literature review"
    ),
    "short_title": "Co-production and QI literature review (NHS England, 2020)",
    "author": "Dr Felix Mukoro, Knowledge and Evaluation for Improvement (KEI) team, Improvement Directorate",
    "publisher": "NHS England and NHS Improvement",
    "date": "2020-09",
    "source_url": (
        "https://www.england.nhs.uk/long-read/how-co-production-is-used-to-improve-the-quality-of-"
        "services-and-peoples-experience-of-care-a-literature-review/"
    ),
    "licence": "Open Government Licence v3.0",
    "attribution": (
        "Contains public sector information licensed under the Open Government Licence v3.0. "
        "Source: NHS England, Co-production & Quality Improvement literature review (2020)."
    ),
    "themes": ["running-co-production", "power-dynamics", "recruitment", "measurement", "ebcd", "always-events"],
    "evidence": "primary",
}

POINT_OF_CARE = "Creating the conditions for genuine co-production at point of care"
INFLUENCING = "Influencing factors for alignment of QI, experience of care and co-production"
SUMMARY = "Summary overview: Influencing factors for alignment of QI, experience of care and co-production"
WHAT_INFLUENCES = "What influences the systematic alignment of quality improvement (QI), experience of care and co-production?"


@pytest.fixture(scope="module")
def markdown() -> str:
    return REVIEW.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def seed_text() -> str:
    return SEED.read_text(encoding="utf-8")


def split_front_matter(markdown: str) -> tuple[str, str]:
    match = re.match(r"---\n(.*?)\n---\n", markdown, re.S)
    assert match, "the Markdown must open with YAML front matter"
    return match.group(1), markdown[match.end() :]


def strip_markdown(text: str) -> str:
    """Remove Markdown syntax (applied to seed and Markdown alike: the seed carries some too)."""
    text = re.sub(r"^[ \t]*#{1,6}[ \t]+", "", text, flags=re.M)  # heading markers
    text = re.sub(r"^[ \t]*(?:[-*+]|\d+\.)[ \t]+", "", text, flags=re.M)  # list markers
    text = re.sub(r"\[([^\]]*)\]\(([^)]*)\)", r"\1 \2", text)  # links: keep text and target
    text = re.sub(r"<+([^<>\s]+)>+", r"\1", text)  # <url>, <<url>>
    return text.replace("*", " ")  # emphasis


def words(text: str) -> list[str]:
    # A word keeps inner apostrophes, hyphens, dots and slashes: "people's", "co-production", "2.0".
    return re.findall(r"[^\W_]+(?:['’.\-/][^\W_]+)*", strip_markdown(text))


def seed_lines_without_artifacts(seed_text: str) -> list[str]:
    kept, seen_titles = [], set()
    for line in seed_text.splitlines():
        text = line.strip()
        if text == PAGE_FOOTER:
            continue
        if text in REPEATED_SLIDE_TITLES:
            if text in seen_titles:
                continue
            seen_titles.add(text)
        kept.append(line)
    return kept


def heading_paths(markdown_body: str) -> list[tuple[str, ...]]:
    """Every heading's path below the document title, e.g. ("Creating ...", "3. Make it easy ...", "Pay ...")."""
    paths, stack = [], []
    for line in markdown_body.splitlines():
        match = re.match(r"^(#{1,6})\s+(.+?)\s*$", line)
        if not match:
            continue
        level = len(match.group(1))
        stack = [(lvl, title) for lvl, title in stack if lvl < level] + [(level, match.group(2))]
        paths.append(tuple(title for lvl, title in stack if lvl > 1))
    return paths


# --- the words ------------------------------------------------------------------------------


def test_markdown_keeps_every_word_of_the_seed_in_order(markdown, seed_text):
    _, body = split_front_matter(markdown)
    body_lines = [line for line in body.splitlines() if line.strip() not in ADDED_LINES]
    markdown_words = words("\n".join(body_lines))
    seed_words = words("\n".join(seed_lines_without_artifacts(seed_text)))
    if markdown_words != seed_words:
        diff = difflib.unified_diff(seed_words, markdown_words, "seed", "markdown", n=5, lineterm="")
        pytest.fail("word sequences differ:\n" + "\n".join(list(diff)[:60]))


def test_only_the_documented_artifacts_are_dropped(markdown, seed_text):
    _, body = split_front_matter(markdown)
    assert PAGE_FOOTER not in body
    assert seed_text.count(PAGE_FOOTER) == 9
    for title in REPEATED_SLIDE_TITLES:
        assert seed_text.count(title + "\n") > 1
        assert len(re.findall(rf"^{re.escape(title)}$", body, re.M)) == 0  # never as a bare line
        assert len(re.findall(rf"^## {re.escape(title)}$", body, re.M)) == 1  # once, as a heading
    dropped_note = BUILD_SCRIPT.read_text(encoding="utf-8")
    for artifact in (PAGE_FOOTER, *REPEATED_SLIDE_TITLES):
        assert artifact in dropped_note.split("from __future__")[0], f"{artifact!r} not listed at the top of the script"


def test_words_in_italic_citations_and_lists_are_kept(markdown):
    assert "(*MH-Co-production guide 2016; Spencer et al 2013*)" in markdown
    assert "\n  - At the clinical services level," in markdown  # a nested bullet stays nested
    assert "powerful information about what really does and doesn't work" in markdown  # page break rejoined
    assert "<<" not in markdown and ">>" not in markdown


# --- front matter ---------------------------------------------------------------------------


def test_front_matter_has_exactly_the_agreed_keys_and_values(markdown):
    front_matter, _ = split_front_matter(markdown)
    assert yaml.safe_load(front_matter) == EXPECTED_FRONT_MATTER


# --- headings -------------------------------------------------------------------------------


def test_document_title_and_main_sections(markdown):
    _, body = split_front_matter(markdown)
    assert re.findall(r"^# .+$", body, re.M) == ["# Co-production & Quality Improvement"]
    main_sections = re.findall(r"^## (.+)$", body, re.M)
    assert main_sections == [
        "Questions to answer through the review",
        "How the papers were selected",
        "Overview of available literature",
        "How co-production is described in the literature",
        "Putting people's experience at the heart of service redesign",
        "EBCD and Always Events®",
        WHAT_INFLUENCES,
        "Understanding the system level factors that influence co-production",
        INFLUENCING,
        POINT_OF_CARE,
        "Capturing the evidence and impact of co-production",
        "References",
    ]


@pytest.mark.parametrize(
    "path",
    [
        (
            POINT_OF_CARE,
            "1. Engage the right people at the right time",
            "Ensure early involvement and genuine partnership to identify and shape the changes",
        ),
        (
            POINT_OF_CARE,
            "2. Explicit effort to communicate openly and formalise participants' roles",
            "Create a non-hierarchical structure",
        ),
        (
            POINT_OF_CARE,
            "3. Make it easy for people to contribute and extend value and respect for people's input",
            "Pay attention to the group and power dynamics",
        ),
        (
            POINT_OF_CARE,
            "3. Make it easy for people to contribute and extend value and respect for people's input",
            "Consider formal facilitation of the process",
        ),
        (POINT_OF_CARE, "4. Share responsibility for delivery of the changes/outcomes", "Build confidence to co-deliver the improvements"),
        (
            INFLUENCING,
            "1. Strong senior leadership commitment and sponsorship",
            "Provide sufficient dedicated time and resourcing for service redesign",
        ),
        (
            INFLUENCING,
            "2. Identify and address misconceptions and resistance to change",
            "Develop capacity and confidence to engage in co-production",
        ),
        (WHAT_INFLUENCES, SUMMARY, "Point of care requirements"),
        (
            "Understanding the system level factors that influence co-production",
            "National and organisational drivers for efficiency improvements",
        ),
        (
            "Capturing the evidence and impact of co-production",
            "Co-production requires collecting, using and valuing different forms of evidence",
        ),
        ("How the papers were selected", "Exclusion criteria"),
    ],
)
def test_heading_path_exists(markdown, path):
    _, body = split_front_matter(markdown)
    assert path in heading_paths(body)


def test_numbered_factors_sit_directly_under_their_sections(markdown):
    _, body = split_front_matter(markdown)
    factor_paths = [path for path in heading_paths(body) if path and re.match(r"\d\. ", path[-1])]
    assert [path[0] for path in factor_paths] == [INFLUENCING] * 2 + [POINT_OF_CARE] * 4
    assert all(len(path) == 2 for path in factor_paths)


def test_summary_keeps_the_short_form_factors_as_text_not_headings(markdown):
    _, body = split_front_matter(markdown)
    summary = body.split(f"### {SUMMARY}")[1].split("\n## ")[0]
    assert "**Make it easy for people to contribute, be valued and have their input respected**" in summary
    assert "- Pay attention to the group and power dynamics" in summary


# --- reproducibility ------------------------------------------------------------------------


def test_committed_markdown_is_what_the_build_script_makes(markdown, seed_text):
    spec = importlib.util.spec_from_file_location("build_review", BUILD_SCRIPT)
    build_review = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_review)
    assert build_review.convert(seed_text) == markdown
