"""Follow-up questions become standalone search queries; standalone questions are left alone."""

from __future__ import annotations

import pytest

from assistant.retrieval.conversation import MAX_CONTEXT_CHARS, keeps_topic, looks_like_follow_up, standalone_query

EARLIER = "Does a co-design workshop really need a facilitator, or can the project lead just chair it?"


@pytest.mark.parametrize(
    "question",
    [
        "And Always Events?",
        "and how many of those were from the UK?",
        "OK, so how do we actually go about reaching people we don't usually hear from?",
        "Right, and what about carers?",
        "Should those roles stay fixed for the whole project though?",  # demonstrative + noun
        "What's this 'true north' idea I've heard mentioned in that context?",  # preposition + that
        "Is it worth paying for someone from outside the organisation to do it?",  # pronoun closing the question
        "Would bringing in an outside facilitator help with that?",
        "Are most NHS trusts even set up to analyse that kind of material?",
        "Why is that?",
        "Does it work?",  # a short question with a pronoun
    ],
)
def test_follow_ups_are_recognised(question):
    assert looks_like_follow_up(question)


@pytest.mark.parametrize(
    "question",
    [
        "What is a trigger film?",
        "Is there an evaluation of the Always Events programme I can read before we sign up?",
        "Is it true that the review recommends paying patient partners?",  # 'it' and 'that' bound in the question
        "Does a co-design workshop really need a facilitator, or can the project lead just chair it?",  # longer than ANAPHORA_WORDS
        "Staff keep dismissing patient stories as 'just one person's view'. Should my training tackle that?",  # two sentences
        "How do we reach seldom-heard groups for a co-design project?",
        "",
    ],
)
def test_standalone_questions_are_not_follow_ups(question):
    assert not looks_like_follow_up(question)


def test_a_follow_up_is_joined_to_the_last_earlier_question():
    assert standalone_query("Is it worth paying for someone from outside the organisation to do it?", ["What is EBCD?", EARLIER]) == (
        EARLIER + " Is it worth paying for someone from outside the organisation to do it?"
    )


def test_a_standalone_question_or_an_empty_history_leaves_the_question_alone():
    assert standalone_query("What is a trigger film?", [EARLIER]) == "What is a trigger film?"
    assert standalone_query("And Always Events?", []) == "And Always Events?"
    assert standalone_query("And Always Events?", ["", "   "]) == "And Always Events?"


def test_a_long_earlier_question_is_cut_at_a_word_boundary():
    earlier = "How do I stop one consultant dominating our workshops? " * 30
    query = standalone_query("And what about that?", [earlier])
    context = query[: -len(" And what about that?")]
    assert len(context) <= MAX_CONTEXT_CHARS
    assert earlier.startswith(context) and earlier[len(context)] == " "
    assert query.endswith(" And what about that?")


SELDOM_HEARD = "how do you reach seldom heard groups for a codesign project"
DROP_OUT = "and what if they drop out halfway?"


def test_a_follow_up_about_the_people_keeps_its_own_topic():
    """ "they" stands for the people asked about; the search is for them dropping out of co-design, not for
    reaching them again (the whole earlier question joined on drowned the new topic)."""
    query = standalone_query(DROP_OUT, [SELDOM_HEARD])
    assert query == "and what if participants drop out halfway? (for a codesign project)"
    assert "reach" not in query, "the earlier question's own topic does not come back"


def test_a_follow_up_without_people_to_stand_for_is_joined_as_before():
    assert standalone_query("And who is it shown to?", ["What is a trigger film?"]) == "What is a trigger film? And who is it shown to?"


@pytest.mark.parametrize(
    ("rewritten", "kept"),
    [
        ("What if participants drop out halfway through a co-design project?", True),
        ("What if seldom heard groups drop out halfway through recruitment?", True),
        ("What if they drop out halfway?", False),  # nothing of the earlier question
        ("How do you handle dropouts in a codesign project?", False),  # the user's words lost
        ("How do we reach seldom heard groups?", False),  # the follow-up lost
    ],
)
def test_a_model_rewrite_must_keep_both_topics(rewritten, kept):
    assert keeps_topic(rewritten, DROP_OUT, [SELDOM_HEARD]) is kept
