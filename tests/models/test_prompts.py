"""Prompt templates: versioned files, both sections, every placeholder filled."""

import pytest

from assistant.models.prompts import PromptError, load_prompt, parse_prompt


def test_answer_prompt_renders_excerpts_and_question_after_fixed_instructions():
    prompt = load_prompt("answer")
    assert prompt.label == "answer.v3"
    system, user = prompt.render(excerpts="[1] (Trigger film) A film of patients.", question="What is EBCD?")
    assert "Use only what the excerpts say" in system and "disagree" in system and "2 to 4" in system
    assert "[1] (Trigger film) A film of patients." in user and user.rstrip().endswith("Question: What is EBCD?")
    assert "$" not in system + user
    # the instructions hold nothing that changes per question: a backend can keep them evaluated
    assert system == prompt.render(excerpts="[2] (Other) Else.", question="Another?")[0]


def test_earlier_answer_prompts_stay_loadable():
    system, user = load_prompt("answer", 2).render(passages="[1] A passage.", question="What is EBCD?", count=1)
    assert "Use only what the passages say" in system and "from 1 to 1" in user
    assert load_prompt("answer", 1).label == "answer.v1"


def test_rewrite_prompt_renders():
    prompt = load_prompt("rewrite")
    assert prompt.label == "rewrite.v2"
    system, user = prompt.render(history="- How do we recruit patients?", question="And pay them?")
    assert "standalone" in system.lower() or "on its own" in system
    assert "keep the topic" in system.lower()
    assert "How do we recruit patients?" in user and "And pay them?" in user


def test_missing_value_is_an_error_not_a_blank():
    with pytest.raises(PromptError, match=r"\$question"):
        load_prompt("answer").render(excerpts="x")


def test_highest_version_is_chosen_and_pinning_works(tmp_path):
    for version, word in ((1, "old"), (2, "new")):
        (tmp_path / f"demo.v{version}.txt").write_text(f"# comment\n=== system ===\n{word}\n=== user ===\n$q\n")
    assert load_prompt("demo", folder=tmp_path).system == "new"
    assert load_prompt("demo", 1, folder=tmp_path).system == "old"
    with pytest.raises(PromptError, match="no version 3"):
        load_prompt("demo", 3, folder=tmp_path)
    with pytest.raises(PromptError, match="no prompt named"):
        load_prompt("absent", folder=tmp_path)


def test_a_file_without_both_sections_is_refused():
    with pytest.raises(PromptError, match="system"):
        parse_prompt("bad", 1, "=== user ===\nonly a user part\n")
