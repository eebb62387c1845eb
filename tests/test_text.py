"""Sentence splitting for quoting: abbreviations, list items and markup; the two escaping rules."""

from assistant.text import clean_markup, escape_html, escape_markdown, split_sentences


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


def test_escape_html_makes_text_and_attribute_values_inert():
    assert escape_html("<a href=\"x\" onclick='y'>&amp;</a>") == "&lt;a href=&quot;x&quot; onclick=&#x27;y&#x27;&gt;&amp;amp;&lt;/a&gt;"
    assert escape_html(None) == "" and escape_html(0) == "0"


def test_escape_markdown_uses_backslashes_not_entities():
    assert escape_markdown("<script>") == "\\<script>"
    assert escape_markdown("&amp; & C:\\x") == "\\&amp; & C:\\\\x"  # only an entity-like "&" is escaped
    assert "&lt;" not in escape_markdown("<b>") and escape_markdown(None) == ""
