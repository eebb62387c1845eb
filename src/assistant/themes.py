"""The theme vocabulary (corpus, topic and evaluation themes) and how a passage or a topic is tagged with themes."""

from __future__ import annotations

import re

THEMES: dict[str, str] = {
    "running-co-production": "Running co-production",
    "power-dynamics": "Power dynamics",
    "recruitment": "Recruitment and representation",
    "measurement": "Measurement and evidence",
    "ebcd": "Experience-based co-design",
    "always-events": "Always Events®",
    "principles": "Principles of co-production",
    "payment": "Payment and reimbursement",
    "glossary": "Glossary",
}

# What a question is about: an evaluation case's theme, a feedback candidate's, a session plan's. The other
# corpus themes (principles, payment, glossary) run through every topic and only tag passages.
TOPIC_THEMES: tuple[str, ...] = (
    "running-co-production",
    "power-dynamics",
    "recruitment",
    "measurement",
    "ebcd",
    "always-events",
)
DEFAULT_TOPIC_THEME = "running-co-production"  # almost every passage is also about running co-production
# Evaluation cases that test declining rather than a topic carry one of these (evals/README.md).
DECLINE_THEMES: tuple[str, ...] = ("out-of-scope", "adversarial")
CASE_THEMES: tuple[str, ...] = TOPIC_THEMES + DECLINE_THEMES

# Word stems that mark a passage as being about a theme (matched on lower-cased text).
_MARKERS: dict[str, tuple[str, ...]] = {
    "running-co-production": (
        "leadership",
        "facilitat",
        "resourc",
        "dedicated time",
        "roles and responsib",
        "early involvement",
        "buy-in",
        "sponsor",
        "training",
        "plan",
        "co-deliver",
        "capacity",
    ),
    "power-dynamics": (
        "power",
        "hierarch",
        "dominat",
        "level playing field",
        "alliance",
        "equal partner",
        "equals",
        "quiet voice",
        "speak up",
        "comfortable in sharing",
        "deferen",
    ),
    "recruitment": (
        "recruit",
        "representat",
        "divers",
        "seldom heard",
        "seldom-heard",
        "hard to reach",
        "hard-to-reach",
        "self-selecting",
        "reaching out",
        "marginalised",
        "inclusion",
    ),
    "measurement": (
        "measur",
        "metric",
        "evaluat",
        "prem",
        "friends and family",
        "survey",
        "data",
        "outcome",
        "narrative",
        "qualitative",
        "quantitative",
        "reliability",
        "impact",
    ),
    "ebcd": (
        "ebcd",
        "experience-based co",
        "experience based co",
        "experience-based design",
        "codesign",
        "co-design",
        "touchpoint",
        "trigger film",
        "emotional mapping",
    ),
    "always-events": ("always event",),
    "principles": ("principle", "ladder", "values", "reciprocity", "assets"),
    "payment": ("payment", "reimburs", "expenses", "benefit", "paid", "remunerat"),
}


# Word stems (at a word start) that mark a short topic, such as a session plan's, as being about a theme:
# looser than the passage markers ("voice", "journey"), checked in this order, the first match wins.
# "always event" counts as experience-based co-design, whose activities suit Always Events too.
TOPIC_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("power-dynamics", ("power", "hierarch", "dominat", "speak up", "level playing field", "equal partner", "voice")),
    ("recruitment", ("recruit", "representat", "divers", "seldom", "hard to reach", "hard-to-reach", "inclusion", "outreach", "reach")),
    ("measurement", ("measur", "metric", "evaluat", "prem", "survey", "outcome", "impact", "data", "indicator")),
    (
        "ebcd",
        ("ebcd", "experience", "co-design", "codesign", "touchpoint", "trigger film", "journey", "always event", "emotional mapping"),
    ),
)
_TOPIC_PATTERNS = tuple((theme, re.compile("|".join(r"\b" + re.escape(w) for w in words))) for theme, words in TOPIC_WORDS)


def topic_theme(topic: str) -> str | None:
    """The theme a short topic is about, by the first word stem of TOPIC_WORDS it contains; None for none."""
    lowered = topic.lower()
    for theme, pattern in _TOPIC_PATTERNS:
        if pattern.search(lowered):
            return theme
    return None


def detect_themes(text: str) -> set[str]:
    lowered = text.lower()
    return {theme for theme, markers in _MARKERS.items() if any(m in lowered for m in markers)}


def themes_for_passage(text: str, declared: list[str] | tuple[str, ...] | None) -> list[str]:
    """Declared document themes narrowed to what the passage is about.

    A focused note declares one or two themes that hold for all of it; a broad document
    declares many, and then only the themes the passage itself shows are kept.
    """
    detected = detect_themes(text)
    if isinstance(declared, str):
        declared = [declared]
    elif not isinstance(declared, (list, tuple, set)):
        declared = []  # metadata is validated on load; an odd value from elsewhere must not break tagging
    declared_set = {t for t in declared if isinstance(t, str) and t in THEMES}
    if not declared_set:
        return sorted(detected)
    if len(declared_set) <= 2:
        return sorted(declared_set | (detected & declared_set))
    return sorted(detected & declared_set)
