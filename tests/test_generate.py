"""Reading a model's reply (JSON, cut-off JSON, prose with markers) and verifying it against the passages."""

import json

from assistant.generate import (
    MAX_SENTENCES,
    _with_markers,
    answer_schema,
    marker_sentences,
    parse_reply,
    sentences_so_far,
)


def reply(*sentences, covered=True):
    return json.dumps({"covered": covered, "sentences": [{"text": t, "sources": s} for t, s in sentences]})


def test_json_reply_is_read_with_its_sources():
    parsed = parse_reply(reply(("Staff watch the film.", [1]), ("Patients then join them.", [2, 3])))
    assert parsed.format == "json" and parsed.covered is True
    assert [(s.text, s.sources) for s in parsed.sentences] == [("Staff watch the film.", [1]), ("Patients then join them.", [2, 3])]


def test_declining_reply():
    parsed = parse_reply(reply(covered=False))
    assert parsed.covered is False and parsed.sentences == []


def test_reply_cut_off_mid_sentence_is_repaired():
    text = reply(("Staff watch the film.", [1]), ("Patients then join", [2]))
    cut = text[: text.index("join") + 4]  # out of tokens inside the second sentence
    parsed = parse_reply(cut)
    assert parsed.format == "repaired-json"
    assert parsed.sentences[0].text == "Staff watch the film." and parsed.sentences[0].sources == [1]


def test_code_fenced_json_is_read():
    parsed = parse_reply("```json\n" + reply(("One thing.", [1])) + "\n```")
    assert parsed.format == "json" and parsed.sentences[0].text == "One thing."


def test_prose_with_markers_is_read():
    parsed = parse_reply("Staff watch a film of patients [1]. Then they meet [2][3].\n- Celebrate at the end [1]")
    assert parsed.format == "markers"
    assert [(s.text, s.sources) for s in parsed.sentences] == [
        ("Staff watch a film of patients.", [1]),
        ("Then they meet.", [2, 3]),
        ("Celebrate at the end", [1]),
    ]


def test_prose_without_markers_gives_uncited_sentences():
    assert [s.sources for s in marker_sentences("No markers here at all.")] == [[]]


def test_long_replies_are_capped():
    parsed = parse_reply(reply(*[(f"Sentence {i}.", [1]) for i in range(MAX_SENTENCES + 4)]))
    assert len(parsed.sentences) == MAX_SENTENCES


def test_garbage_numbers_in_sources_are_ignored():
    parsed = parse_reply('{"covered": true, "sentences": [{"text": "A claim.", "sources": ["2", "x", 1.0, null]}]}')
    assert parsed.sentences[0].sources == [2, 1]


def test_sentences_so_far_follow_a_stream():
    text = reply(("Staff watch the film.", [1]), ('A "quoted" word\nand more.', [2]))
    seen = [sentences_so_far(text[:end]) for end in range(1, len(text) + 1)]
    assert seen[-1][1].text == 'A "quoted" word\nand more.' and seen[-1][1].sources == [2]
    # each sentence's text only grows as the stream goes on
    firsts = [s[0].text for s in seen if s]
    assert all(b.startswith(a) for a, b in zip(firsts, firsts[1:]))


def test_markers_go_before_the_final_full_stop():
    assert _with_markers("Staff watch the film.", [1, 2]) == "Staff watch the film [1][2]."
    assert _with_markers("No stop", [3]) == "No stop [3]"
    assert _with_markers("Uncited.", []) == "Uncited."


def test_schema_only_allows_passage_numbers_given():
    schema = answer_schema(3)
    sources = schema["properties"]["sentences"]["items"]["properties"]["sources"]
    assert sources["items"]["enum"] == [1, 2, 3]
    assert schema["required"] == ["covered", "sentences"]


def test_numbers_are_read_in_digits_and_words():
    from assistant.generate import numbers_in

    assert numbers_in("The four criteria, in 2 stages, over 30 minutes.") == {"4", "2", "30"}
    assert numbers_in("One of the patients said so.") == set()
    assert numbers_in("the four criteria") <= numbers_in("four criteria: measurable, affordable, sustainable, important")
    assert not numbers_in("the four criteria") <= numbers_in("three criteria: measurable, affordable, sustainable")
