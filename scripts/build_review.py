"""Convert the 2020 NHS England co-production review from flattened slide text to Markdown.

Usage: python scripts/build_review.py [SEED_TXT] [OUTPUT_MD]
Defaults: sources/co-production-and-quality-improvement-2020.txt (the review as published, kept in
the repository under the Open Government Licence v3.0) and
corpus/review/co-production-and-quality-improvement-2020.md.

The seed is a slide deck flattened to text. This script restores its structure and keeps its
words: the same seed always gives the same Markdown, and tests/test_review_corpus.py checks
that the word sequence survives.
"""

# What the conversion changes, and nothing else:
#
# DROPPED (the only text removed from the seed):
#   - "References and Links", 9 times: the page footer repeated through the reference list.
#   - "Influencing factors for alignment of QI, experience of care and co-production", 1 time:
#     the slide title repeated on the second of its two slides (kept once, as a section heading).
#   - "Creating the conditions for genuine co-production at point of care", 3 times: the slide
#     title repeated on slides 2-4 of its four (kept once, as a section heading).
#
# ADDED: one heading, "## References", before the reference list. The seed has no heading
#   there (its "References and Links" is only a footer), and the ingest code finds the list by
#   a heading named References.
#
# RESTRUCTURED, words unchanged:
#   - Slide titles and sub-titles become headings at the levels in HEADING_LEVELS:
#     ## main sections, ### numbered influencing factors (and the slide sub-titles that play
#     the same role), #### the recommendations under each factor.
#   - The factors in the "Summary overview" table become bold paragraphs, so that the short
#     summary stays one retrievable section under its level (System level, Organisation
#     requirements, ...) rather than splitting into dozens of tiny headings.
#   - A line starting in lower case continues the paragraph before it: this rejoins the
#     hard-wrapped author line and one paragraph split by a page break ("... powerful
#     information" / "about what really does ...").
#   - Nested bullets (" - ") are indented two spaces so Markdown nests them.
#   - "<<url>>" becomes "<url>": the doubled angle brackets render as stray "<" ">" around
#     an autolink.
#   - Everything else (bullets, numbered lists, *italic citations*, **bold**) is kept as written.

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SEED = REPO_ROOT / "sources/co-production-and-quality-improvement-2020.txt"
DEFAULT_OUTPUT = REPO_ROOT / "corpus/review/co-production-and-quality-improvement-2020.md"

FRONT_MATTER = """\
---
title: "Co-production & Quality Improvement: How co-production is used to improve the quality of services and people's experience of care: A literature review"
short_title: "Co-production and QI literature review (NHS England, 2020)"
author: "Dr Felix Mukoro, Knowledge and Evaluation for Improvement (KEI) team, Improvement Directorate"
publisher: "NHS England and NHS Improvement"
date: "2020-09"
source_url: "https://www.england.nhs.uk/long-read/how-co-production-is-used-to-improve-the-quality-of-services-and-peoples-experience-of-care-a-literature-review/"
licence: "Open Government Licence v3.0"
attribution: "Contains public sector information licensed under the Open Government Licence v3.0. Source: NHS England, Co-production & Quality Improvement literature review (2020)."
themes: [running-co-production, power-dynamics, recruitment, measurement, ebcd, always-events]
evidence: primary
---
"""

INFLUENCING_FACTORS_TITLE = "Influencing factors for alignment of QI, experience of care and co-production"
POINT_OF_CARE_TITLE = "Creating the conditions for genuine co-production at point of care"

# Slide titles printed on every slide of a multi-slide section: the first becomes the section
# heading, the repeats are dropped.
REPEATED_SLIDE_TITLES = {INFLUENCING_FACTORS_TITLE, POINT_OF_CARE_TITLE}
PAGE_FOOTER = "References and Links"

# Exact seed line -> heading level, applied to the line's first occurrence only (a later copy
# of the same text is either a dropped slide title or kept as an ordinary paragraph).
HEADING_LEVELS: dict[str, int] = {
    "Co-production & Quality Improvement": 1,
    "Questions to answer through the review": 2,
    "How the papers were selected": 2,
    "Inclusion criteria": 3,
    "Exclusion criteria": 3,
    "Numbers and types of papers gathered": 3,
    "Overview of available literature": 2,
    "How co-production is described in the literature": 2,
    "Putting people's experience at the heart of service redesign": 2,
    "EBCD and Always Events®": 2,
    "What influences the systematic alignment of quality improvement (QI), experience of care and co-production?": 2,
    "Summary overview: Influencing factors for alignment of QI, experience of care and co-production": 3,
    "System level": 4,
    "Organisation requirements": 4,
    "Point of care requirements": 4,
    "Valuing all": 4,
    "Understanding the system level factors that influence co-production": 2,
    # The expanded form of the summary's system-level factor, so a factor-level heading.
    "National and organisational drivers for efficiency improvements": 3,
    INFLUENCING_FACTORS_TITLE: 2,
    "1. Strong senior leadership commitment and sponsorship": 3,
    "Be open to rapidly translate co-production outputs into strategic decision making": 4,
    "Provide sufficient dedicated time and resourcing for service redesign": 4,
    "2. Identify and address misconceptions and resistance to change": 3,
    "Address preconceptions about the capacity and motivation of people with lived experience to contribute to improvement": 4,
    "Develop capacity and confidence to engage in co-production": 4,
    POINT_OF_CARE_TITLE: 2,
    "1. Engage the right people at the right time": 3,
    "Ensure early involvement and genuine partnership to identify and shape the changes": 4,
    "Ensure relevant communities have a say in prioritising and shaping the changes": 4,
    "2. Explicit effort to communicate openly and formalise participants' roles": 3,
    "Create a non-hierarchical structure": 4,
    "Clearly define roles and responsibilities": 4,
    "3. Make it easy for people to contribute and extend value and respect for people's input": 3,
    "Consider formal facilitation of the process": 4,
    "Pay attention to the group and power dynamics": 4,
    "4. Share responsibility for delivery of the changes/outcomes": 3,
    "Build confidence to co-deliver the improvements": 4,
    "Capturing the evidence and impact of co-production": 2,
    # The expanded form of the summary's "Valuing all" factor, so a factor-level heading.
    "Co-production requires collecting, using and valuing different forms of evidence": 3,
}

# The factors as listed (in short form) in the summary-overview table.
SUMMARY_FACTORS = {
    "National and organisational drivers have focused on performance and efficiency improvements",
    "Strong senior leadership commitment and sponsorship of QI and co-production",
    "Identify and build capacity",
    "Engage the right people at the right time",
    "Communicate openly and formalise participants' roles",
    "Make it easy for people to contribute, be valued and have their input respected",
    "Share responsibility for delivery of the changes/outcomes",
    "Co-production values different forms of knowledge and evidence",
}

REFERENCES_HEADING = "## References"
FIRST_LINE_OF_REFERENCE_LIST = "Links in pink are open access"

DOUBLE_ANGLE_URL = re.compile(r"<<(\S+?)>>")
NESTED_BULLET = re.compile(r"^ - ")
LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+\.)\s")


def convert(seed_text: str) -> str:
    """Return the review as Markdown (front matter included) from the seed's text."""
    blocks: list[str] = []  # paragraphs, headings and whole lists, joined by blank lines later
    headed: set[str] = set()
    bolded: set[str] = set()
    in_list = False  # inside a run of list items with no blank line between them

    for raw_line in seed_text.splitlines():
        line = raw_line.rstrip()
        if not line.strip():
            in_list = False
            continue
        text = line.strip()
        if text == PAGE_FOOTER:
            continue
        if text in REPEATED_SLIDE_TITLES and text in headed:
            continue

        if text == FIRST_LINE_OF_REFERENCE_LIST:
            blocks.append(REFERENCES_HEADING)
        if text in HEADING_LEVELS and text not in headed:
            headed.add(text)
            blocks.append("#" * HEADING_LEVELS[text] + " " + text)
            in_list = False
        elif text in SUMMARY_FACTORS:
            bolded.add(text)
            blocks.append(f"**{text}**")
            in_list = False
        elif LIST_ITEM.match(line):
            item = DOUBLE_ANGLE_URL.sub(r"<\1>", NESTED_BULLET.sub("  - ", line))
            if in_list:
                blocks[-1] += "\n" + item
            else:
                blocks.append(item)
            in_list = True
        elif text[0].islower() and blocks:
            # A wrapped line or a paragraph split by a page break: continue the paragraph.
            blocks[-1] += " " + DOUBLE_ANGLE_URL.sub(r"<\1>", text)
        else:
            blocks.append(DOUBLE_ANGLE_URL.sub(r"<\1>", text))
            in_list = False

    # A different seed must fail loudly rather than quietly lose its structure.
    missing = [text for text in HEADING_LEVELS if text not in headed]
    missing += sorted(SUMMARY_FACTORS - bolded)
    if missing:
        raise ValueError(f"seed lines expected as headings or summary factors were not found: {missing}")
    return FRONT_MATTER + "\n" + "\n\n".join(blocks) + "\n"


def main(argv: list[str]) -> int:
    seed_path = Path(argv[1]) if len(argv) > 1 else DEFAULT_SEED
    output_path = Path(argv[2]) if len(argv) > 2 else DEFAULT_OUTPUT
    markdown = convert(seed_path.read_text(encoding="utf-8"))
    output_path.parent.mkdir(parents=True, exist_ok=True)
    output_path.write_text(markdown, encoding="utf-8")
    print(f"wrote {output_path} ({len(markdown.split())} words)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
