"""What can stand alone in an answer: each test of assistant.answering.hygiene on sentences of the kinds that broke answers."""

from __future__ import annotations

import pytest

from assistant.answering import hygiene


@pytest.mark.parametrize(
    "sentence, problem",
    [
        (
            "How co-production is used to improve the quality of services and people's experience of care: A literature review",
            "title or heading",
        ),
        ("Clearly define roles and responsibilities", "title or heading"),
        ("Experience-based codesign (EBCD)", "title or heading"),
        ("Four stages (NHS Institute, 2009).", "fragment"),
        ("Recruit staff too.", "fragment"),
        ("However, “achieving performance targets comes as a result of tailoring improvement to where the value lies.", "fragment"),
        ("participatory culture; (BC SUPPORT Unit)", "title or heading"),
        ("This note summarises how NHS England says it reimburses expenses and makes involvement payments.", "about the document itself"),
        (
            "For wider advice, see the recruitment note in this collection; the review warns about self-selection.",
            "about the document itself",
        ),
        (
            "NHS England says expenses are reimbursed and describes how involvement payments are made (see below).",
            "about the document itself",
        ),
        ("It is set alongside lived experience as an equal partner in co-production.", "unresolved back-reference"),
        (
            "They aim to find out whether specific things happened during care, rather than general satisfaction.",
            "unresolved back-reference",
        ),
        ("One of the ways it does so is through patient and public voice (PPV) partner roles.", "unresolved back-reference"),
        ("This applies even if they plan to turn the payment down.", "unresolved back-reference"),
        (
            "Also, when healthcare professionals thought they already had enough input, patients were not involved.",
            "unresolved back-reference",
        ),
        ("Evidence from patients is difficult to argue with ([NESTA 2013](#))", "markup"),
        (
            "Sara Donetto, Paola Pierri, Vicki Tsianakas & Glenn Robert (2015) Experience-based Co-design and Healthcare Improvement, The Design Journal, 18:2, 227-248, DOI: 10.2752/175630615X14212498964312",
            "reference entry",
        ),
        (
            "Gustavsson, S. M. K. (2014) 'Improvements in neonatal care; using experience-based co-design', International Journal of Health Care Quality Assurance, 27(5), pp. 427-438.",
            "reference entry",
        ),
        (
            "IHI (2016). Always Events® Toolkit. Retrieved from https://www.england.nhs.uk/wp-content/uploads/always-events-toolkit.pdf",
            "reference entry",
        ),
    ],
)
def test_sentences_that_cannot_stand_alone(sentence, problem):
    assert problem in hygiene.problems(sentence), hygiene.problems(sentence)


@pytest.mark.parametrize(
    "sentence",
    [
        "A trigger film is a compilation of about 30 minutes edited from patients' filmed interviews.",
        "It is important to think about what will be measured and how at the start of the co-production process.",
        "This review found that staff buy-in was fundamental to co-production.",
        "Raise benefits and tax at the first conversation about a paid role, and point people to independent advice.",
        "Toolkits disagree on how many stages experience-based co-design has: the NHS Institute's has four and the AHHA toolkit has five.",
        "Boaz et al (2016) found that different roles suited particular individuals.",
        "Evidence from patients that services really make a difference to their lives is difficult to argue with (NESTA 2013)",
        "Activities result in benefits enjoyed by whole communities, groups, and/or a service and not just individual benefit only",
    ],
)
def test_sentences_that_stand_alone(sentence):
    assert hygiene.problems(sentence) == []


def test_without_citation_keeps_the_words():
    assert hygiene.without_citation("Close with a celebration and review. (Health Innovation Network; Beacon Strategies)") == (
        "Close with a celebration and review."
    )
    assert hygiene.without_citation("(AHHA EBCD toolkit)") == "(AHHA EBCD toolkit)"


def test_answer_findings_checks_the_first_sentence_of_each_claim():
    claims = [
        # a back-reference quoted with the sentence it leans on is fine
        "The Model for Improvement guides small tests of change. It asks three questions about aims, measures and changes.",
        "It asks three questions about aims, measures and changes.",
    ]
    findings = hygiene.answer_findings(claims)
    assert len(findings) == 1 and findings[0].startswith("unresolved back-reference: It asks")


def test_reference_entries_are_allowed_only_when_asked_for():
    entry = "Gustavsson, S. M. K. (2014) 'Improvements in neonatal care; using experience-based co-design', Int J Health Care Qual Assur, 27(5), pp. 427-438."
    assert hygiene.answer_findings([entry]) != []
    assert hygiene.answer_findings([entry], allow_references=True) == []
