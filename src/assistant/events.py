"""The events of one streamed answer: the quoted evidence at once, a model's draft as it writes, the final verified answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from assistant.answering.extractive import Answer


@dataclass(frozen=True)
class Evidence:
    """The extractive answer, quoted from the sources, before any model writes (always the first event)."""

    answer: Answer


@dataclass(frozen=True)
class Draft:
    """The text a language model has written so far: not yet checked against the sources."""

    text: str


@dataclass(frozen=True)
class Final:
    """The answer to show and keep (always the last event): verified when a model wrote it."""

    answer: Answer


AnswerEvent = Evidence | Draft | Final
