"""Turns a follow-up question into a standalone search query using the conversation so far (by rule, or by the model)."""

from __future__ import annotations

import re

# A turn that opens like this continues the conversation ("And Always Events?", "OK, so how do we ...").
_FOLLOW_UP_START = re.compile(
    r"^\s*(?:(?:ok|okay|right|great|thanks|thank you|fine)\b[\s,.!-]*)?"
    r"(and|also|but|so|what about|how about|and what about|what if|then|same for|is that|does that|do they|"
    r"can they|why is that|how so|in what way|tell me more|more on|what else|anything else|for example|"
    r"ok|okay|right)\b",
    re.IGNORECASE,
)
# Words that point back at something said earlier; a short question holding one depends on the last turn.
_PRONOUNS = re.compile(r"\b(it|its|they|them|their|this|that|these|those|there|he|she|the same|such)\b", re.IGNORECASE)

# In a one-sentence question of up to ANAPHORA_WORDS words, these point back at an earlier turn (a longer
# question usually holds its own referent: "... can the project lead just chair it?"):
_FUNCTION_WORDS = (
    "is|was|are|were|be|the|a|an|we|you|they|i|he|she|it|there|our|my|your|their|its|his|her|would|will|can|could|"
    "should|may|might|must|does|do|did|has|have|had|and|or|but|if|so|to|of|in|on|at|for|with"
)
_ANAPHORA = re.compile(
    # "those roles", "these ideas", "this approach": a demonstrative used as a determiner
    rf"\b(?:this|these|those)\s+(?!(?:{_FUNCTION_WORDS})\b)[a-z][\w'-]*"
    # "in that context", "with that", "about that": 'that' after a preposition is never a conjunction
    r"|\b(?:in|on|with|about|for|from|of|at|by|behind|like|into|after|before)\s+(?:that|this|those|these|them|it)\b"
    # "that kind of material", "that sort of thing"
    r"|\b(?:that|this)\s+(?:kind|sort|type)\s+of\b"
    # "... to do it?", "... help with that?": a pronoun closing the question refers to something earlier
    r"|\b(?:it|that|this|them|those|these)\s*[?.!]*\s*$",
    re.IGNORECASE,
)
ANAPHORA_WORDS = 14
# How much of an earlier question is carried into the query (a pasted document should not swamp it).
MAX_CONTEXT_CHARS = 400


def looks_like_follow_up(question: str) -> bool:
    words = re.findall(r"\w+", question)
    if not words:
        return False
    if _FOLLOW_UP_START.search(question):
        return True
    one_sentence = len(re.findall(r"[.?!](?=\s+\S)", question.strip())) == 0
    if one_sentence and len(words) <= ANAPHORA_WORDS and _ANAPHORA.search(question):
        return True
    return len(words) <= 8 and bool(_PRONOUNS.search(question))


def standalone_query(question: str, history: list[str]) -> str:
    """The question itself, or joined to the last earlier question it depends on (deterministic)."""
    earlier = [h.strip() for h in history if h and h.strip()]
    if not earlier or not looks_like_follow_up(question):
        return question
    context = earlier[-1]
    if len(context) > MAX_CONTEXT_CHARS:
        context = context[:MAX_CONTEXT_CHARS].rsplit(" ", 1)[0]
    return f"{context} {question}"


REWRITE_HISTORY = 3  # earlier questions shown to the model
MAX_REWRITE_CHARS = 400


def rewrite_with_model(model, backend: str, question: str, history: list[str], timeout: float) -> str | None:
    """The model's standalone version of a follow-up, or None when it fails or says something unusable."""
    from langchain_core.messages import HumanMessage, SystemMessage

    from assistant.llm import ModelError, complete_text
    from assistant.prompts import load_prompt

    earlier = [h.strip()[:MAX_CONTEXT_CHARS] for h in history if h and h.strip()][-REWRITE_HISTORY:]
    system, user = load_prompt("rewrite").render(history="\n".join(f"- {h}" for h in earlier), question=question)
    try:
        reply = complete_text(model, [SystemMessage(content=system), HumanMessage(content=user)], backend, timeout)
    except ModelError:
        return None
    lines = [line.strip().strip('"').strip() for line in reply.strip().splitlines() if line.strip()]
    rewritten = re.sub(r"^(standalone question|question)\s*:\s*", "", lines[0], flags=re.IGNORECASE) if lines else ""
    if not rewritten or len(rewritten) > MAX_REWRITE_CHARS or not re.search(r"[A-Za-z]{3}", rewritten):
        return None
    return rewritten
