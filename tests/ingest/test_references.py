"""Reference-list parsing and citation linking, on the committed review and on small documents."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from assistant.ingest.references import Reference, _find_citations, is_reference_heading, link_citations, parse_references

REVIEW = Path(__file__).resolve().parents[2] / "corpus/review/co-production-and-quality-improvement-2020.md"

# The review cites "Pickles et al 2009", but its reference list holds Pickles, Hide and Maher
# (2008): a slip in the review itself, so the citation is left unlinked rather than guessed.
UNMATCHED_IN_REVIEW = ["Pickles et al 2009"]


def find_citations(text: str) -> list[str]:
    """In-text citation strings in order, as written (what link_citations then matches to references)."""
    return [citation.text for citation in _find_citations(text)]


def split_references_section(markdown: str) -> tuple[str, str]:
    """(body, reference section): from the last heading naming a reference list (a bare line in plain text) to the end."""
    for heading in (r"^[ ]{0,3}#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", r"^[ \t]*(.+?)[ \t]*$"):
        found = [m for m in re.finditer(heading, markdown, re.M) if is_reference_heading(m.group(1))]
        if found:
            return markdown[: found[-1].start()], markdown[found[-1].start() :]
    return markdown, ""


def _without_front_matter(markdown: str) -> str:
    if markdown.startswith("---\n"):
        return markdown.split("\n---\n", 1)[1]
    return markdown


@pytest.fixture(scope="module")
def review_body() -> str:
    body, _ = split_references_section(_without_front_matter(REVIEW.read_text(encoding="utf-8")))
    return body


@pytest.fixture(scope="module")
def review_references() -> list[Reference]:
    _, section = split_references_section(REVIEW.read_text(encoding="utf-8"))
    return parse_references(section)


@pytest.fixture(scope="module")
def by_key(review_references) -> dict[str, Reference]:
    return {reference.key: reference for reference in review_references}


# --- the review's reference list ------------------------------------------------------------


def test_split_finds_the_review_reference_section():
    body, section = split_references_section(REVIEW.read_text(encoding="utf-8"))
    assert section.startswith("## References\n")
    assert "Bombard, Y., Baker, G. R." in section
    assert "Bombard, Y., Baker, G. R." not in body
    assert body.rstrip().endswith("([NHSI 2009](#))")


def test_every_entry_of_the_review_is_parsed_once_with_a_unique_key(review_references):
    assert len(review_references) == 64
    keys = [reference.key for reference in review_references]
    assert len(set(keys)) == len(keys)
    assert keys[0] == "armstrong-2013" and keys[-1] == "wolstenholme-2017"
    for reference in review_references:
        assert reference.authors, reference.text
        assert reference.title, reference.text
        assert reference.url, reference.text


def test_legend_lines_are_not_entries(review_references):
    assert not any("Links in pink" in r.text or "Links in blue" in r.text for r in review_references)


def test_bombard_2018(by_key):
    bombard = by_key["bombard-2018"]
    assert bombard.authors == ("Bombard", "Baker", "Orlando", "Fancott", "Bhatia", "Casalino", "Onate", "Denis", "Pomey")
    assert bombard.year == "2018"
    assert bombard.title == "Engaging patients to improve quality of care: A systematic review"
    assert bombard.venue == "Implementation Science"
    assert bombard.url.startswith("https://www.scopus.com/inward/record.uri?eid=2-s2.0-85050465259")
    assert bombard.doi == "10.1186/s13012-018-0784-z"  # percent-encoded inside the Scopus link
    assert bombard.label() == "Bombard et al. (2018)"


def test_vennik_2016_year_after_authors_and_doi(by_key):
    vennik = by_key["vennik-2016"]
    assert vennik.authors == ("Vennik", "Bovenkamp", "Putters", "Grit")
    assert vennik.year == "2016"
    assert vennik.title == "Co-production in healthcare: Rhetoric and practice"
    assert vennik.venue == "International Review of Administrative Sciences"
    assert vennik.doi == "10.1177/0020852315570553"
    assert vennik.url == "https://doi.org/10.1177/0020852315570553"


def test_wiig_2013_url(by_key):
    wiig = by_key["wiig-2013"]
    assert wiig.authors[0] == "Wiig" and wiig.authors[-2:] == ("Robert", "Fulop")
    assert wiig.year == "2013"
    assert wiig.url == "https://www.ncbi.nlm.nih.gov/pmc/articles/PMC3680039/"
    assert wiig.doi is None
    assert wiig.venue == "BMC Health Services Research"


def test_cqc_2018_corporate_author(by_key):
    cqc = by_key["cqc-2018"]
    assert cqc.authors == ("CQC",)
    assert cqc.year == "2018"
    assert cqc.title == "Quality improvement in Hospital Trusts (September 2018)"
    assert cqc.url == "https://www.cqc.org.uk/sites/default/files/20180911_QI_hospitals_FINAL.pdf"
    assert cqc.label() == "CQC (2018)"


def test_other_reference_styles_in_the_review(by_key):
    # Harvard with a DOI in the text and the URL inside a Markdown link
    armstrong = by_key["armstrong-2013"]
    assert armstrong.doi == "10.1111/hex.12039"
    assert armstrong.url == "https://onlinelibrary.wiley.com/doi/full/10.1111/hex.12039"
    # Two authors
    assert by_key["lord-2014"].authors == ("Lord", "Gale")
    assert by_key["lord-2014"].label() == "Lord and Gale (2014)"
    # Vancouver, with the year after the journal
    doyle = by_key["doyle-2013"]
    assert doyle.authors == ("Doyle", "Lennox", "Bell")
    assert doyle.year == "2013"
    assert doyle.venue == "BMJ Open"
    # Chicago, "Surname, Given; ..."
    assert by_key["marshall-2019"].authors[:2] == ("Marshall", "Zambeaux")
    assert by_key["marshall-2019"].venue == "Patient Experience Journal"
    # Given name first, "Sara Donetto, Paola Pierri, ..."
    assert by_key["donetto-2015"].authors == ("Donetto", "Pierri", "Tsianakas", "Robert")
    assert by_key["donetto-2015"].doi == "10.2752/175630615X14212498964312"
    # No year at all
    assert by_key["luxford-nd"].year is None
    assert by_key["luxford-nd"].label() == "Luxford et al. (n.d.)"
    # A URL without a scheme
    assert by_key["the-picker-institute-2012"].url == ("www.ihl.org/resources/Pages/Tools/AlwaysEventsBlueprintandSolutionsBook.aspx")


def test_same_author_and_year_get_letter_suffixes(by_key):
    guide = by_key["national-development-team-for-inclusion-2016a"]
    position_paper = by_key["national-development-team-for-inclusion-2016b"]
    assert guide.title.startswith("Practical Guide")
    assert position_paper.title.startswith("Position Paper")
    assert "nesta-2009" in by_key and "nesta-2013" in by_key  # different years need no suffix


def test_reference_round_trips_through_a_dict(by_key):
    bombard = by_key["bombard-2018"]
    as_dict = bombard.to_dict()
    assert as_dict["authors"][0] == "Bombard" and isinstance(as_dict["authors"], list)
    assert Reference.from_dict(as_dict) == bombard


# --- linking the review's own citations -----------------------------------------------------


def test_every_citation_in_the_review_body_links_to_a_reference(review_body, review_references):
    citations = find_citations(review_body)
    assert len(citations) == 34
    unmatched = [c for c in citations if not link_citations(f"({c})", review_references)]
    assert unmatched == UNMATCHED_IN_REVIEW
    linked_share = 1 - len(unmatched) / len(citations)
    assert linked_share >= 0.9


def test_review_body_links_in_order_of_first_mention(review_body, review_references):
    keys = [reference.key for reference in link_citations(review_body, review_references)]
    assert keys == [
        "national-development-team-for-inclusion-2016a",  # cited as "MH-Co-production guide 2016"
        "spencer-2013",
        "wiig-2013",
        "kohler-2017",
        "nesta-2013",
        "cqc-2018",
        "bombard-2018",
        "clarke-2017",
        "baker-2016",
        "lord-2014",
        "vennik-2016",
        "armstrong-2013",
        "mcnally-2015",
        "boaz-2016",
        "litchfield-2018",
        "nhs-institute-for-innovation-improvement-2009",  # cited as "NHSI 2009"
    ]


# --- find_citations on hand-written text ----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("improved (*Spencer et al 2013*).", ["Spencer et al 2013"]),
        ("(Bombard et al 2018)", ["Bombard et al 2018"]),
        ("as shown (Boaz et al., 2016).", ["Boaz et al., 2016"]),
        ("(Robert et al 2015; Donetto et al 2015)", ["Robert et al 2015", "Donetto et al 2015"]),
        ("(*MH-Co-production guide 2016; Spencer et al 2013*)", ["MH-Co-production guide 2016", "Spencer et al 2013"]),
        ("Bate and Robert (2006) describe EBCD.", ["Bate and Robert (2006)"]),
        ("Robert et al. (2015) found", ["Robert et al. (2015)"]),
        ("approaches ([Kohler et al 2017](#))", ["Kohler et al 2017"]),
        ("(Lord & Gale 2014)", ["Lord & Gale 2014"]),
        ("*“the changes made” (Vennik et al 2016)*.", ["Vennik et al 2016"]),
        ("(see Smith and Jones 2001, p. 4)", ["Smith and Jones 2001, p. 4"]),
        ("(O'Shea et al 2017)", ["O'Shea et al 2017"]),
    ],
)
def test_find_citations_forms(text, expected):
    assert find_citations(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Papers from 2008 - 2020",
        "patient and public involvement (PPI)",
        "a report (September 2018)",
        "published (2019) online",
        "in the (Summer 2010) issue",
        "September 2020",
    ],
)
def test_find_citations_ignores_dates_and_asides(text):
    assert find_citations(text) == []


def test_find_citations_keeps_document_order():
    text = "First (Zed 2001). Then Alpha and Beta (1999) said. Last (Mid et al 2005; Aaa 2003)."
    assert find_citations(text) == ["Zed 2001", "Alpha and Beta (1999)", "Mid et al 2005", "Aaa 2003"]


# --- link_citations on hand-written references ----------------------------------------------

SMALL_REFERENCE_LIST = """\
## References

Pérez, J. and Smith, K. (2010) 'A study of co-design', *Health Expectations*, 1(1). <https://doi.org/10.1000/abc.1>

Smith, K., Jones, L. and Brown, M. (2012) Patient leadership. *BMJ*, 2. https://example.org/smith

Smith, K. and Jones, L. (2012) Another paper. *BMJ Open*, 3.

The Picker Institute (2012) Always Events® Blueprint for Action. Camden, ME: The Picker Institute.
www.example.org/blueprint

CQC (2018) Quality improvement in Hospital Trusts <https://www.cqc.org.uk/qi.pdf>
"""


@pytest.fixture(scope="module")
def small_references() -> list[Reference]:
    return parse_references(SMALL_REFERENCE_LIST)


def test_small_list_parses(small_references):
    assert [r.key for r in small_references] == [
        "perez-2010",
        "smith-2012a",
        "smith-2012b",
        "the-picker-institute-2012",
        "cqc-2018",
    ]
    assert small_references[0].authors == ("Pérez", "Smith")
    assert small_references[0].doi == "10.1000/abc.1"
    assert small_references[3].url == "www.example.org/blueprint"  # a wrapped line joins its entry


def test_link_citations_in_order_of_first_mention_without_duplicates(small_references):
    text = "First (CQC 2018). Then (Perez and Smith 2010). Again (*CQC 2018*) and (The Picker Institute 2012)."
    assert [r.key for r in link_citations(text, small_references)] == [
        "cqc-2018",
        "perez-2010",
        "the-picker-institute-2012",
    ]


def test_link_matching_is_case_and_accent_insensitive_and_uses_the_first_author(small_references):
    assert [r.key for r in link_citations("(PÉREZ 2010)", small_references)] == ["perez-2010"]
    assert [r.key for r in link_citations("Pérez and Smith (2010)", small_references)] == ["perez-2010"]
    assert link_citations("(Smith 2010)", small_references) == []  # Smith is only second author in 2010


def test_link_prefers_the_entry_whose_authors_fit_the_citation(small_references):
    assert [r.key for r in link_citations("(Smith et al 2012)", small_references)] == ["smith-2012a"]
    assert [r.key for r in link_citations("(Smith & Jones 2012)", small_references)] == ["smith-2012b"]
    assert [r.key for r in link_citations("(Smith 2012b)", small_references)] == ["smith-2012b"]


def test_link_ignores_unmatched_citations(small_references):
    assert link_citations("(Nobody 2010) and (CQC 2017)", small_references) == []


def test_one_reference_per_line_without_blank_lines():
    section = (
        "References\n"
        "1. Smith, J. (2010) Title one. *Journal A*, 1.\n"
        "2. Doe, A. and Roe, B. (2011) 'Title two', *Journal B*, 2.\n"
        "3. Boyd H, Old A. Improving healthcare. N Z Med J. 2012;125:76-87\n"
    )
    references = parse_references(section)
    assert [r.key for r in references] == ["smith-2010", "doe-2011", "boyd-2012"]
    assert references[1].title == "Title two" and references[1].venue == "Journal B"
    assert references[2].authors == ("Boyd", "Old")


# --- documents without references -----------------------------------------------------------


def test_document_without_references():
    document = "# Notes\n\nCo-design works best early (Smith 2010).\n"
    assert split_references_section(document) == (document, "")
    assert parse_references("") == []
    assert link_citations(document, []) == []
    assert find_citations(document) == ["Smith 2010"]


def test_references_heading_at_any_level_and_in_plain_text():
    _, section = split_references_section("# A\n\ntext\n\n### References\n\nX, Y. (2000) T.\n")
    assert section.startswith("### References")
    body, section = split_references_section("Body text.\n\nBibliography\nX, Y. (2000) T.\n")
    assert body == "Body text.\n\n" and section.startswith("Bibliography")


@pytest.mark.parametrize(
    "heading",
    [
        "References",
        "references:",
        "References and links",
        "7. References",
        "Bibliography",
        "Reference list",
        "Works Cited",
        "Further reading",
        "Sources",
    ],
)
def test_reference_headings(heading):
    assert is_reference_heading(heading)


@pytest.mark.parametrize("heading", ["Referencing others", "Data sources", "Reading list for staff", "Introduction"])
def test_other_headings_are_not_reference_lists(heading):
    assert not is_reference_heading(heading)
