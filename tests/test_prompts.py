"""Prompt templates: versioned files, both sections, every placeholder filled."""

import pytest

from assistant.prompts import PromptError, load_prompt, parse_prompt


def test_answer_prompt_renders_passages_question_and_count():
    prompt = load_prompt("answer")
    assert prompt.label == "answer.v2"
    system, user = prompt.render(passages="[1] A passage.", question="What is EBCD?", count=1)
    assert "Use only what the passages say" in system
    assert "[1] A passage." in user and "What is EBCD?" in user and "from 1 to 1" in user
    assert "$" not in system + user


def test_rewrite_prompt_renders():
    system, user = load_prompt("rewrite").render(history="- How do we recruit patients?", question="And pay them?")
    assert "standalone" in system.lower() or "on its own" in system
    assert "How do we recruit patients?" in user and "And pay them?" in user


def test_missing_value_is_an_error_not_a_blank():
    with pytest.raises(PromptError, match=r"\$question"):
        load_prompt("answer").render(passages="x", count=1)


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
