"""Turns a follow-up question into a standalone search query using the conversation so far."""

from __future__ import annotations

import re

_FOLLOW_UP_START = re.compile(
    r"^\s*(and|also|but|so|what about|how about|and what about|what if|then|same for|is that|does that|do they|"
    r"can they|why is that|how so|in what way|tell me more|more on|what else|anything else|for example)\b",
    re.IGNORECASE,
)
_PRONOUNS = re.compile(r"\b(it|its|they|them|their|this|that|these|those|there|he|she|the same|such)\b", re.IGNORECASE)


def looks_like_follow_up(question: str) -> bool:
    words = re.findall(r"\w+", question)
    if not words:
        return False
    if _FOLLOW_UP_START.search(question):
        return True
    return len(words) <= 8 and bool(_PRONOUNS.search(question))


def standalone_query(question: str, history: list[str]) -> str:
    """The question itself, or joined to the last earlier question it depends on (deterministic)."""
    earlier = [h.strip() for h in history if h and h.strip()]
    if not earlier or not looks_like_follow_up(question):
        return question
    return f"{earlier[-1]} {question}"
