"""Turns a follow-up question into a standalone search query using the conversation so far (by rule, or by the model)."""

from __future__ import annotations

import re

from assistant.text import STOP_WORDS

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


# People an earlier question is about ("seldom heard groups", "patient partners"), and the pronouns of a
# follow-up that stand for them ("what if they drop out?").
_PEOPLE = re.compile(
    r"(?:\b[\w'-]+\s+){0,2}\b(?:groups|patients|participants|people|carers|volunteers|communities|members|partners|"
    r"users|residents|families|leaders|representatives)\b",
    re.IGNORECASE,
)
_PEOPLE_PRONOUN = re.compile(r"\b(they|them|their)\b", re.IGNORECASE)
_PRONOUN_FOR = {"they": "participants", "them": "participants", "their": "participants'"}
# How a question opens before its topic ("how do you reach", "what should we do about").
_OPENING = re.compile(
    r"^\s*(?:how|what|why|when|where|who|which|is|are|can|could|should|do|does|did)\b(?:\s+(?:do|does|did|can|could|should|would|will|is|are|"
    r"we|you|i|they|to|best|the)\b)*(?:\s+\w+)?\s+",
    re.IGNORECASE,
)


def _people_follow_up(question: str, context: str) -> str | None:
    """A follow-up whose "they" stands for the people of the earlier question, asked about them in that
    question's setting: "and what if they drop out halfway?" after "how do you reach seldom heard groups
    for a codesign project" becomes "and what if participants drop out halfway? (for a codesign project)".
    Joining the whole earlier question would let its topic (reaching people) drown the new one."""
    people = _PEOPLE.search(context)
    if not people or not _PEOPLE_PRONOUN.search(question):
        return None
    setting = _OPENING.sub("", context[: people.start()] + context[people.end() :]).strip(" ?.!,;")
    resolved = _PEOPLE_PRONOUN.sub(lambda m: _PRONOUN_FOR[m.group(1).lower()], question.strip())
    return f"{resolved} ({setting})" if re.search(r"[A-Za-z]{3}", setting) else resolved


def standalone_query(question: str, history: list[str]) -> str:
    """The question itself, or joined to the last earlier question it depends on (deterministic)."""
    earlier = [h.strip() for h in history if h and h.strip()]
    if not earlier or not looks_like_follow_up(question):
        return question
    context = earlier[-1]
    if len(context) > MAX_CONTEXT_CHARS:
        context = context[:MAX_CONTEXT_CHARS].rsplit(" ", 1)[0]
    return _people_follow_up(question, context) or f"{context} {question}"


REWRITE_HISTORY = 3  # earlier questions shown to the model
MAX_REWRITE_CHARS = 400
_TOPIC_WORD = re.compile(r"[a-z][a-z-]{3,}")
# The stop words, and the words a question uses around its topic ("what should we really do first?").
_NOT_TOPICS = STOP_WORDS | frozenset(
    "about also doing just like make more much need then those want while would could might really actually first happen happens".split()
)


def _topics(text: str) -> set[str]:
    # five-letter stems, so "recruit" matches "recruiting" and "co-design" "co-designed"
    return {w.replace("-", "")[:5] for w in _TOPIC_WORD.findall(text.lower()) if w not in _NOT_TOPICS}


def keeps_topic(rewritten: str, question: str, history: list[str]) -> bool:
    """Whether a rewritten follow-up keeps the follow-up's own words (two in three of them: "drop out
    halfway" must not become "handle dropouts") and carries something of the earlier questions that the
    follow-up itself lacks."""
    earlier = set().union(*(_topics(h) for h in history[-REWRITE_HISTORY:])) if history else set()
    own = [w for w in _TOPIC_WORD.findall(question.lower()) if w not in _NOT_TOPICS]
    lower = rewritten.lower().replace("-", "")
    if own and sum(w.replace("-", "") in lower for w in own) * 3 < 2 * len(own):
        return False
    return bool((_topics(rewritten) & earlier) - _topics(question))


def rewrite_with_model(model, backend: str, question: str, history: list[str], timeout: float) -> str | None:
    """The model's standalone version of a follow-up, or None when it fails or says something unusable."""
    from langchain_core.messages import HumanMessage, SystemMessage

    from assistant.models.llm import ModelError, complete_text
    from assistant.models.prompts import load_prompt

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
    if not keeps_topic(rewritten, question, earlier):  # "What if they drop out?" searched alone finds anything
        return None
    return rewritten
