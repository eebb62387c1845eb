"""The theme vocabulary and how a passage is tagged with themes for filtering."""

from __future__ import annotations

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

# Word stems that mark a passage as being about a theme (matched on lower-cased text).
_MARKERS: dict[str, tuple[str, ...]] = {
    "running-co-production": (
        "leadership", "facilitat", "resourc", "dedicated time", "roles and responsib", "early involvement",
        "buy-in", "sponsor", "training", "plan", "co-deliver", "capacity",
    ),
    "power-dynamics": (
        "power", "hierarch", "dominat", "level playing field", "alliance", "equal partner", "equals",
        "quiet voice", "speak up", "comfortable in sharing", "deferen",
    ),
    "recruitment": (
        "recruit", "representat", "divers", "seldom heard", "seldom-heard", "hard to reach", "hard-to-reach",
        "self-selecting", "reaching out", "marginalised", "inclusion",
    ),
    "measurement": (
        "measur", "metric", "evaluat", "prem", "friends and family", "survey", "data", "outcome", "narrative",
        "qualitative", "quantitative", "reliability", "impact",
    ),
    "ebcd": (
        "ebcd", "experience-based co", "experience based co", "experience-based design", "codesign", "co-design",
        "touchpoint", "trigger film", "emotional mapping",
    ),
    "always-events": ("always event",),
    "principles": ("principle", "ladder", "values", "reciprocity", "assets"),
    "payment": ("payment", "reimburs", "expenses", "benefit", "paid", "remunerat"),
}


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
