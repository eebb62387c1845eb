"""Reading a model's reply (JSON, cut-off JSON, prose with markers), and the one support test that checks it:
content words, embedding, numbers and the qualifications a passage makes."""

import json
import re
import zlib

import numpy as np
import pytest

from assistant.answering.cite import WRITTEN_BY, SupportScorer, dropped_qualifications, states_disagreement
from assistant.answering.generate import (
    EXCERPT_CHARS,
    MAX_SENTENCES,
    _cut,
    _with_markers,
    answer_schema,
    marker_sentences,
    parse_reply,
    sentences_so_far,
)

# The EBCD-stages section of corpus/notes/ebcd.md (heading first, as the answerer passes it).
EBCD_STAGES = (
    "How many stages does EBCD have? The toolkits disagree\n"
    "There is no single agreed count, so always say which toolkit you are following.\n\n"
    "- **Four stages (NHS Institute, 2009).** Its experience based design has four steps: capture the experience "
    "(people tell their stories, supported by observation), understand it, improve it and measure the improvement.\n"
    "- **Five stages (AHHA, Australia).** The Australian toolkit sets up for success first, then gathers, understands, "
    "improves, and monitors and maintains the experience."
)
CONFIDENTLY_WRONG = (
    "Experience-based co-design has four stages: capture the experience, understand it, improve it, and measure the improvement."
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
    assert schema["required"] == ["sentences"], "no 'covered': the search already found the question answerable"
    written = schema["properties"]["sentences"]
    assert (written["minItems"], written["maxItems"]) == (1, MAX_SENTENCES) == (1, 4)
    # numbered as the evidence numbers its citations
    assert answer_schema([2, 5])["properties"]["sentences"]["items"]["properties"]["sources"]["items"]["enum"] == [2, 5]


def test_numbers_are_read_in_digits_and_words():
    from assistant.answering.generate import numbers_in

    assert numbers_in("The four criteria, in 2 stages, over 30 minutes.") == {"4", "2", "30"}
    assert numbers_in("One of the patients said so.") == set()
    assert numbers_in("the four criteria") <= numbers_in("four criteria: measurable, affordable, sustainable, important")
    assert not numbers_in("the four criteria") <= numbers_in("three criteria: measurable, affordable, sustainable")


class WordEmbedder:
    """Bag-of-words vectors: cosine is word overlap, enough to exercise the embedding half of the test."""

    def embed_documents(self, texts):
        rows = []
        for text in texts:
            vector = np.zeros(512, dtype=np.float32)
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                vector[zlib.crc32(word.encode()) % 512] += 1
            rows.append(vector / (np.linalg.norm(vector) or 1.0))
        return rows


@pytest.mark.parametrize(
    ("sentence", "passage", "dropped"),
    [
        (CONFIDENTLY_WRONG, EBCD_STAGES, ["the sources disagree on the count"]),
        ("The NHS Institute version has four steps: capture, understand, improve and measure the experience.", EBCD_STAGES, []),
        ("The toolkits disagree on the count: the NHS Institute gives four steps and the Australian toolkit five.", EBCD_STAGES, []),
        ("EBCD has no agreed count of stages.", EBCD_STAGES, []),  # states no count: nothing to carry
        (
            "Self-selecting patients represent the wider population.",
            "The review warns that self-selecting patients may not represent the wider patient population.",
            ["may"],
        ),
        (
            "Self-selecting patients may not represent the wider population.",
            "The review warns that self-selecting patients may not represent the wider patient population.",
            [],
        ),
        ("Patients feel unheard in meetings.", "Some patients feel unheard in meetings.", ["some"]),
        ("Several patients feel unheard in meetings.", "Some patients feel unheard in meetings.", []),
        ("Payment doubled attendance.", "In one project, payment doubled attendance.", ["in one project"]),
        ("In one trust's project, payment doubled attendance.", "In one project, payment doubled attendance.", []),
        ("There is an agreed way to run a feedback event.", "There is no single way to run a feedback event.", ["no single"]),
    ],
)
def test_a_sentence_that_drops_a_qualification_its_passage_makes_is_caught(sentence, passage, dropped):
    assert dropped_qualifications(sentence, passage) == dropped


def test_the_one_support_test_flags_dropped_qualifications_and_numbers():
    scorer = SupportScorer(WordEmbedder())
    wrong = scorer.check(CONFIDENTLY_WRONG, "c1", EBCD_STAGES)
    assert not wrong["supported"] and wrong["qualifications_dropped"] == ["the sources disagree on the count"]
    assert wrong["lexical"] >= 0.5, "the words match: only the qualification is missing"
    invented = scorer.check("The toolkits disagree: some have seven stages.", "c1", EBCD_STAGES)
    assert not invented["supported"] and invented["numbers_missing"] == ["7"]
    # a verbatim quote says exactly what its passage says
    quote = "There is no single agreed count, so always say which toolkit you are following."
    assert scorer.check(quote, "c1", EBCD_STAGES) == {"lexical": 1.0, "cosine": 1.0, "supported": True}


def test_disagreement_on_a_count_is_recognised():
    assert states_disagreement("How many stages does EBCD have? The toolkits disagree")
    assert states_disagreement("There is no single agreed count, so always say which toolkit you are following.")
    assert not states_disagreement("Staff and patients disagree at first, then find common ground.")
    assert not states_disagreement("Needs vary between groups.")


def test_the_label_says_what_was_checked():
    label = WRITTEN_BY.format(model="qwen.gguf")
    assert "each sentence matched to the passage it cites" in label and "⚠" in label
    assert "checked against" not in label, "the old label claimed more than the check does"


def test_long_evidence_points_are_cut_at_a_sentence_end():
    text = "First sentence is here and long enough. " * 20
    cut = _cut(text.strip(), EXCERPT_CHARS)
    assert len(cut) <= EXCERPT_CHARS and cut.endswith(".") and text.startswith(cut)
    assert _cut("Short.", EXCERPT_CHARS) == "Short."


def test_a_stream_inside_a_unicode_escape_keeps_what_it_has():
    text = json.dumps({"sentences": [{"text": "Über café ✓", "sources": [1]}]})  # ensure_ascii: \u00dc ...
    seen = [[s.text for s in sentences_so_far(text[:end])] for end in range(1, len(text) + 1)]
    firsts = [s[0] for s in seen if s]
    assert firsts[-1] == "Über café ✓"
    assert all(b.startswith(a) for a, b in zip(firsts, firsts[1:])), "no escape shows raw, and the text never shrinks"


def test_a_reply_cut_off_in_its_first_sentence_keeps_the_words_not_the_json():
    parsed = parse_reply(reply(("Staff watch the film together.", [1]))[:62])
    assert parsed.format == "repaired-json" and [s.text for s in parsed.sentences] == ["Staff watch the film"]
