"""Sentence splitting for quoting: abbreviations, list items and markup."""

from assistant.text import clean_markup, split_sentences


def test_abbreviations_do_not_end_sentences():
    text = "Bombard et al. 2018 found benefits, e.g. better care. Staff agreed with this."
    assert split_sentences(text) == ["Bombard et al. 2018 found benefits, e.g. better care.", "Staff agreed with this."]


def test_list_items_are_separate_and_markers_dropped():
    text = "Key points:\n- Involve patients early in the project\n- Pay expenses on the day they are claimed\n1. Agree roles with everyone"
    assert split_sentences(text) == [  # "Key points:" is too short to quote alone
        "Involve patients early in the project",
        "Pay expenses on the day they are claimed",
        "Agree roles with everyone",
    ]


def test_fragments_under_three_words_are_dropped():
    assert split_sentences("Yes. Involve carers from the start.") == ["Involve carers from the start."]


def test_markup_is_cleaned_but_words_kept():
    assert clean_markup("A *touchpoint* is a **key** moment ([PCF](https://example.org)) <https://x.org>") == (
        "A touchpoint is a key moment (PCF) https://x.org"
    )
