"""The planner's own words, kept as data: activities (activities.yaml) and audiences (audiences.yaml), and the topic kind."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from assistant.planning.model import Activity, ObserverSheet, RoleCard
from assistant.themes import topic_theme

DATA_DIR = Path(__file__).with_name("data")
ACTIVITIES_FILE = DATA_DIR / "activities.yaml"
AUDIENCES_FILE = DATA_DIR / "audiences.yaml"
KINDS = ("power", "experience", "recruitment", "measurement", "default")

# The activity kind (a key of activities.yaml) that suits each topic theme (themes.TOPIC_WORDS).
_KIND_OF_THEME = {"power-dynamics": "power", "recruitment": "recruitment", "measurement": "measurement", "ebcd": "experience"}


def activity_kind(topic: str) -> str:
    """The kind of activity a topic suits, by the theme its words are about (power before recruitment, and so on)."""
    return _KIND_OF_THEME.get(topic_theme(topic) or "", "default")


def _load(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def activity_texts() -> dict[str, dict]:
    """The activities' words: one per topic kind, plus `thin` and `default`."""
    return _load(ACTIVITIES_FILE)


@lru_cache(maxsize=1)
def audience_texts() -> dict:
    return _load(AUDIENCES_FILE)


# -- audiences ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Audience:
    """One profile of audiences.yaml; a field the profile leaves out comes from the `mixed` profile."""

    key: str
    label: str
    lived_experience: bool

    def get(self, *path: str):
        profiles = audience_texts()["profiles"]
        for source in (profiles[self.key], profiles["mixed"]):
            value = source
            for part in path:
                value = value.get(part) if isinstance(value, dict) else None
                if value is None:
                    break
            if value is not None:
                return value
        raise KeyError(f"audiences.yaml has no {'.'.join(path)} for {self.key!r} or 'mixed'")


def _matches(phrase: str, text: str) -> bool:
    return bool(re.search(r"(?<![\w-])" + re.escape(phrase.lower()) + r"(?![\w-])", text))


def match_audience(audience: str) -> Audience:
    """The profile a free-text audience belongs to: "trust board" -> board, "ward sisters" -> managers,
    "patient partners and carers" -> patients, a staff profile together with patients -> mixed."""
    data = audience_texts()
    profiles = data["profiles"]
    text = re.sub(r"\s+", " ", (audience or "").lower())
    hits = [key for key in data["order"] if any(_matches(p, text) for p in profiles[key].get("match", []))]
    staff = [k for k in hits if not profiles[k].get("lived_experience")]
    patients = [k for k in hits if profiles[k].get("lived_experience")]
    if staff and patients:
        key = "mixed"
    elif hits:
        key = hits[0]
    else:
        key = data["default"]
    return Audience(key, profiles[key]["label"], bool(profiles[key].get("lived_experience") or key == "mixed"))


# -- activities --------------------------------------------------------------------------------------


def _spec(kind: str, audience: Audience, thin: bool) -> dict:
    texts = activity_texts()
    base = texts[kind] if kind in texts and kind not in ("thin", "default") else texts["thin" if thin else "default"]
    spec = {k: v for k, v in base.items() if k != "audiences"}
    spec.update((base.get("audiences") or {}).get(audience.key) or {})
    return spec


def build_activity(kind: str, topic: str, audience: str | Audience, minutes: int, thin: bool = False) -> Activity:
    """The group activity for a topic kind, in the words for this audience, with its role cards and observer sheet."""
    profile = audience if isinstance(audience, Audience) else match_audience(audience)
    spec = _spec(kind, profile, thin)
    cards = [RoleCard(c["role"], c["brief"], c.get("private_brief", "")) for c in spec.get("role_cards") or []]
    roles = "; ".join(c.role for c in cards)
    values = {"groups": profile.get("groups"), "topic": topic, "scene": spec.get("scene", ""), "roles": roles}

    def fill(value):
        return value.format(**values) if isinstance(value, str) else [fill(v) for v in value]

    sheet = spec.get("observer_sheet")
    return Activity(
        kind=spec["kind"],
        name=fill(spec["name"]),
        purpose=fill(spec["purpose"]),
        minutes=minutes,
        materials=fill(spec["materials"]),
        steps=fill(spec["steps"]),
        facilitator_notes=fill(spec["facilitator_notes"]),
        debrief=fill(spec["debrief"]),
        role_cards=cards,
        observer_sheet=ObserverSheet(sheet["title"], sheet["instructions"], list(sheet["columns"]), list(sheet["rows"])) if sheet else None,
    )


# -- the teaching content for an audience (our own words: no facts, no figures) ------------------------


def _kind(kind: str) -> str:
    return kind if kind in KINDS else "default"


def build_objectives(kind: str, topic: str, audience: Audience, thin: bool, has_assumptions: bool) -> list[str]:
    objectives = [audience.get("objectives", "thin" if thin else "evidence").format(topic=topic)]
    objectives.append(audience.get("objectives", "by_kind", _kind(kind)).format(topic=topic))
    if has_assumptions:
        objectives.append(audience.get("objectives", "assumptions"))
    objectives.append(audience.get("objectives", "close"))
    return objectives


def build_discussion_questions(kind: str, topic: str, audience: Audience, thin: bool, has_assumptions: bool) -> list[str]:
    questions = [q.format(topic=topic) for q in audience.get("discussion", _kind(kind))]
    if not thin:
        questions.append("Which key message surprised you, and why?")
    if has_assumptions:
        questions.append("Which of the staff assumptions in this plan have you heard, or held yourself?")
    questions.append(audience.get("closing_question"))
    return questions


def handout_questions(kind: str, audience: Audience, has_assumptions: bool, topic: str = "") -> list[str]:
    first = audience.get("handout", "first_question", _kind(kind)).format(topic=topic)
    second = audience.get("handout", "assumptions_question" if has_assumptions else "plain_question")
    return [first, second, audience.get("handout", "action_question")]


def handout_intro(topic: str, audience: Audience) -> str:
    return audience.get("handout", "intro").format(topic=topic)


def handout_points(audience: Audience) -> list[str]:
    return list(audience.get("handout", "points"))


def agenda_detail(audience: Audience, part: str) -> str:
    """The audience's wording for the welcome or discussion item of the agenda."""
    return audience.get({"welcome": "welcome", "discussion": "discussion_detail"}[part])
