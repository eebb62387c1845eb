"""What a question asks for that the evidence lacks: specific asks, counted things, stated figures, unknown names."""

from __future__ import annotations

import pytest

from assistant.answering.answerability import asks_in, find_gap, stated_figures, unknown_names

PAYMENT_EVIDENCE = [
    "NHS England reimburses expenses and makes involvement payments to its PPV partners.",
    "Agree any payment or other offer with partners before they start.",
]


@pytest.mark.parametrize(
    "question, wanted",
    [
        ("What's the hourly rate NHS England recommends for paying lived-experience partners?", "a payment rate"),
        ("How much should we pay carers per meeting?", "an amount"),
        ("How much time does the facilitator need to set aside?", "a length of time"),
        ("How much of what they found was grey literature?", "a share"),
        ("What percentage of the papers reported better outcomes?", "a percentage"),
        ("When was the review published?", "a date"),
        ("How many stages does EBCD have?", "a number"),
    ],
)
def test_what_a_question_asks_for(question, wanted):
    assert wanted in [a.what for a in asks_in(question)]


def test_an_open_question_asks_for_nothing_specific():
    assert asks_in("How do we stop consultants dominating our co-design workshops?") == []


def test_a_rate_the_evidence_lacks_is_the_gap():
    gap = find_gap("What's the hourly rate NHS England recommends for paying lived-experience partners?", PAYMENT_EVIDENCE)
    assert gap.lacking == ["a payment rate"]
    assert gap.sentence().startswith("The indexed sources don't give a payment rate")
    assert not find_gap("What's the hourly rate for partners?", PAYMENT_EVIDENCE + ["Partners are paid £150 per day."])


def test_a_figure_the_question_asserts_and_no_evidence_states():
    assert stated_figures("Is it true that the review recommends paying patient partners £25 an hour?") == ["£25 an hour"]
    gap = find_gap("Is it true that the review recommends paying patient partners £25 an hour?", PAYMENT_EVIDENCE)
    assert gap.unsupported_premise == ["£25 an hour"]
    assert gap.sentence().startswith("The sources don't say that: none of the indexed documents mentions “£25 an hour”.")
    assert not find_gap("Did the review include 64 papers?", ["The review included 64 papers in all."]).unsupported_premise


def test_a_count_needs_a_number_of_the_thing_counted():
    stages = ["Toolkits disagree on how many stages experience-based co-design has: the NHS Institute's has four, AHHA's five."]
    assert not find_gap("How many stages does EBCD have?", stages)
    gap = find_gap(
        "How many patients took part in the Always Events pilot sites?",
        ["A second phase tested a toolkit from November 2015 with 4 sites."],
    )
    assert gap.lacking == ["the number of patients"]
    assert not find_gap("How many patients took part?", ["The pilot involved 120 patients across four sites."])
    # a follow-up's "those" counts what the earlier question named: any number will do
    assert not find_gap("and how many of those were from the UK?", ["Of the 64 papers, 20 were from the UK."])


def test_names_no_document_uses():
    vocabulary = {"nhs", "england", "ebcd", "cqc", "review", "always", "events", "co", "design", "trust", "qi"}
    assert unknown_names("How do I set up breakout rooms in Microsoft Teams for an online co-design workshop?", vocabulary) == [
        "Microsoft Teams"
    ]
    assert unknown_names("Do volunteers on a co-design panel need a DBS check?", vocabulary) == ["DBS"]
    assert unknown_names("What does the CQC say about NHS England's Always Events?", vocabulary) == []
    assert unknown_names("I'm a QI lead. How do we run EBCD?", vocabulary) == []
    gap = find_gap("Do volunteers on a co-design panel need a DBS check?", [], vocabulary)
    assert gap.unknown == ["DBS"] and gap.sentence().startswith("The indexed sources don't mention DBS.")
