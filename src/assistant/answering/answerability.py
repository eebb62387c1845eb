"""Whether the evidence answers what was asked: the specific thing a question wants (a rate, an amount, a
count, a date, a name) and the claims it takes for granted, checked against the evidence found.

A question can be on topic and still ask for something the sources never give ("What's the hourly rate
NHS England recommends?"), or rest on a premise they never state ("the review recommends £25 an hour").
Such a question is *partly covered*: the answer must say first what the sources do not give.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_MONEY = re.compile(
    r"[£$€]\s?\d|\b\d+(?:\.\d+)?\s?(?:pounds?|p|pence|dollars?|euros?)\b|\bper (?:hour|day|session|meeting)\b", re.IGNORECASE
)
_NUMBER = re.compile(
    r"\b\d+(?:[.,]\d+)?\b|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|hundred|dozen)\b",
    re.IGNORECASE,
)
_YEAR_OR_DATE = re.compile(
    r"\b(?:19|20)\d{2}\b|\b(?:january|february|march|april|may|june|july|august|september|october|november|december)\b", re.IGNORECASE
)


@dataclass(frozen=True)
class Ask:
    """One specific thing a question asks for, and how to tell whether a text gives it."""

    what: str  # how the answer names it: "an hourly rate", "a number"
    gives: re.Pattern


# What a question asks for, read from its wording: (pattern in the question, the thing, what gives it).
_ASKS = (
    (
        re.compile(
            r"\b(?:hourly|daily|sessional)\s+(?:rate|fee|payment|pay)\b|\brate per (?:hour|day)\b|\bper hour\b|\ban hour\b", re.IGNORECASE
        ),
        "a payment rate",
        _MONEY,
    ),
    (re.compile(r"\bhow much of\b", re.IGNORECASE), "a share", _NUMBER),
    (
        re.compile(r"\bhow much time\b|\bhow long\b", re.IGNORECASE),
        "a length of time",
        re.compile(
            r"\b(?:\d+|one|two|three|four|five|six|seven|eight|nine|ten|twelve|a few|several|half)[- ](?:hours?|days?|weeks?|months?|years?|minutes?|sessions?)\b|\bhalf-day\b|\bmonthly\b|\bweekly\b",
            re.IGNORECASE,
        ),
    ),
    (
        re.compile(
            r"\bhow much\b(?! (?:time|of)\b)|\bwhat (?:rate|fee|amount|salary|budget|price)\b|\b(?:cost|costs|price|fee|amount) (?:of|for)\b|\bhow (?:expensive|costly)\b",
            re.IGNORECASE,
        ),
        "an amount",
        _MONEY,
    ),
    (
        re.compile(r"\b(?:what|which) percentage\b|\bwhat proportion\b|\bwhat share\b", re.IGNORECASE),
        "a percentage",
        re.compile(
            r"\d\s?%|\bper ?cent\b|\b\d+ (?:out )?of (?:the |these )?\d+\b|\b(?:half|a third|a quarter|two thirds|three quarters)\b",
            re.IGNORECASE,
        ),
    ),
    (
        re.compile(r"\bsatisfaction scores?\b|\b(?:what|which) scores?\b", re.IGNORECASE),
        "scores",
        re.compile(r"\d\s?%|\bscored?\b[^.]{0,40}\d|\d[^.]{0,40}\bscored?\b", re.IGNORECASE),
    ),
    (re.compile(r"\bhow many\b|\bnumber of\b", re.IGNORECASE), "a number", _NUMBER),
    (
        re.compile(r"\b(?:what|which) (?:year|date|month)\b|\bwhen (?:was|were|did|is|will)\b|\bsince when\b", re.IGNORECASE),
        "a date",
        _YEAR_OR_DATE,
    ),
)

# A question that asserts something and asks whether it holds ("Is it true that ...", "The review says X, right?").
_PREMISE = re.compile(
    r"\b(?:is it true|is it right|am i right|did (?:the|they|it)|does the (?:review|evidence|guidance) (?:say|recommend|suggest)|"
    r"the review (?:says|said|recommends|recommended|found|finds|shows|showed|proved)|"
    r"i (?:heard|read|was told)|(?:given|since) that|right\?|yes\?|isn't it\?|correct\?)",
    re.IGNORECASE,
)
# Figures a question states: amounts, percentages and numbers with a unit ("£25 an hour", "30%", "200 trials").
_STATED_FIGURE = re.compile(
    r"[£$€]\s?\d+(?:[.,]\d+)?(?:\s?(?:an|a|per)\s+\w+)?|\b\d+(?:\.\d+)?\s?%|\b\d+(?:[.,]\d+)?\s+(?:[a-z]+\s+){0,2}(?:trials?|papers?|studies|patients?|people|sites?|pounds?)\b",
    re.IGNORECASE,
)


def asks_in(question: str) -> list[Ask]:
    """The specific things the question asks for (empty for an open question: "How do we ...?")."""
    found: list[Ask] = []
    for pattern, what, gives in _ASKS:
        if pattern.search(question) and all(a.what != what for a in found):
            found.append(Ask(what, gives))
    # "a payment rate" already implies "an amount"
    if any(a.what == "a payment rate" for a in found):
        found = [a for a in found if a.what != "an amount"]
    return found


def stated_figures(question: str) -> list[str]:
    """Figures the question takes as given ("£25 an hour", "30%")."""
    return [m.group(0).strip() for m in _STATED_FIGURE.finditer(question)]


def _figure_given(figure: str, texts: list[str]) -> bool:
    digits = re.findall(r"\d+(?:[.,]\d+)?", figure)
    return any(all(re.search(rf"(?<![\d.,]){re.escape(d)}(?![\d])", t) for d in digits) for t in texts)


# A name the question uses: an acronym ("DBS", "IRAS") or a capitalised word after the first ("Microsoft
# Teams", "Universal Credit"), kept together with the capitalised words next to it.
_NAME = re.compile(r"(?<!^)(?<![.?!]\s)\b(?:[A-Z][A-Za-z'’]*[A-Za-z])(?:\s+(?:of\s+)?[A-Z][A-Za-z'’]*[A-Za-z])*")
_ACRONYM = re.compile(r"\b[A-Z]{2,6}s?\b")


def unknown_names(question: str, vocabulary: dict[str, int] | set[str]) -> list[str]:
    """Names in the question that no indexed document uses at all: the sources can say nothing about them."""
    found = []
    for match in list(_ACRONYM.finditer(question)) + list(_NAME.finditer(question)):
        name = match.group(0).strip()
        words = re.findall(r"[a-z]+", name.lower())
        words = [w for w in words if w not in ("of", "s")]
        if not words or name.lower() in ("i", "i'm"):
            continue
        if not any(w in vocabulary or w.rstrip("s") in vocabulary for w in words) and name not in found:
            found.append(name)
    # "Microsoft Teams" and "Teams": keep the longer
    return [n for n in found if not any(n != other and n in other for other in found)]


@dataclass
class Gap:
    """What the sources do not give for this question, in words the answer can lead with."""

    lacking: list[str]  # the things asked for that no evidence gives: ["a payment rate"]
    unsupported_premise: list[str]  # figures the question asserts that no evidence states: ["£25 an hour"]
    unknown: list[str] = field(default_factory=list)  # names no indexed document mentions: ["Microsoft Teams"]

    def __bool__(self) -> bool:
        return bool(self.lacking or self.unsupported_premise or self.unknown)

    def sentence(self) -> str:
        """The plain statement that opens a partly covered answer."""
        parts = []
        if self.unknown:
            parts.append(f"The indexed sources don't mention {_join(self.unknown)}.")
        if self.unsupported_premise:
            figures = " or ".join(f"“{f}”" for f in self.unsupported_premise)
            parts.append(f"The sources don't say that: none of the indexed documents mentions {figures}.")
        if self.lacking:
            things = _join([t for t in self.lacking if not (self.unsupported_premise and t in ("a payment rate", "an amount"))])
            if things:
                parts.append(f"The indexed sources don't give {things} for this question.")
        return " ".join(parts) + " Here is what they do say."


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1] if items else ""


# "how many patients took part", "the number of Always Events": what is counted
_COUNTED = re.compile(
    r"\b(?:how many|number of)\s+(?:the\s+|of\s+)?((?:[A-Za-z][\w'’-]*\s+){0,2}?[A-Za-z][\w'’-]*?)(?=\s+(?:did|do|does|were|was|are|is|have|has|had|took|take|there|in|on|at|from|across|of|per|would|will|can|should|we|you|they)\b|[?,.]|$)",
    re.IGNORECASE,
)
_COUNT_NUMBER = re.compile(
    r"\b(?!(?:19|20)\d{2}\b)\d+(?:[.,]\d+)?\b|\b(?:two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|hundred|dozen)\b",
    re.IGNORECASE,
)


def _counted_thing(question: str) -> str | None:
    match = _COUNTED.search(question)
    if not match:
        return None
    head = match.group(1).split()[-1].lower()
    if head in ("those", "these", "them", "they", "it", "each", "all", "any", "such"):
        return None  # a follow-up's "how many of those": what is counted is in the earlier question
    if head.endswith("ies") and len(head) > 4:
        return head[:-3]  # "studies" -> "stud", which "study" shares
    return head[:-1] if head.endswith("s") and len(head) > 3 else head


def _count_given(thing: str, evidence: list[str]) -> bool:
    """Some sentence of the evidence states a number (not a year) of the thing counted."""
    from assistant.text import split_sentences

    for text in evidence:
        for sentence in split_sentences(text) or [text]:
            if re.search(rf"\b{re.escape(thing)}", sentence, re.IGNORECASE) and _COUNT_NUMBER.search(sentence):
                return True
    return False


def find_gap(question: str, evidence: list[str], vocabulary: dict[str, int] | set[str] | None = None) -> Gap:
    """What the question asks for, asserts or names that none of the evidence texts (or, for names, no
    indexed document: `vocabulary` holds every word the corpus uses) gives."""
    lacking = []
    for ask in asks_in(question):
        counted = _COUNTED.search(question) if ask.what == "a number" else None
        if counted and (thing := _counted_thing(question)):  # _counted_thing is None without this match
            if not _count_given(thing, evidence):
                lacking.append(f"the number of {counted.group(1).strip()}")
        elif not any(ask.gives.search(t) for t in evidence):
            lacking.append(ask.what)
    premise = []
    if _PREMISE.search(question) or stated_figures(question):
        premise = [f for f in stated_figures(question) if not _figure_given(f, evidence)]
    return Gap(lacking, premise, unknown_names(question, vocabulary) if vocabulary else [])
