"""Splits passage text into sentences and list items that can be quoted on their own."""

from __future__ import annotations

import re
import unicodedata

# Abbreviations whose full stop does not end a sentence.
_ABBREVIATIONS = ("et al", "e.g", "i.e", "etc", "vs", "cf", "Dr", "Mr", "Mrs", "Ms", "Prof", "No", "pp", "Vol", "approx", "St")
_PROTECT = re.compile(r"\b(" + "|".join(re.escape(a) for a in _ABBREVIATIONS) + r")\.", flags=re.IGNORECASE)
_BOUNDARY = re.compile(r"(?<=[.!?…])[\"”’)]*\s+(?=[\"“‘(*]*[A-Z0-9])")
_LIST_MARKER = re.compile(r"^\s*(?:[-*•–]|\d{1,2}[.)])\s+")
_MARKUP = re.compile(r"(\*\*|__|(?<!\w)\*(?!\s)|(?<!\s)\*(?!\w)|`)")


def clean_markup(text: str) -> str:
    """Plain text for quoting: drop emphasis marks and link targets, keep the words."""
    # any link, including in-text citations that link to an anchor ("([NESTA 2013](#))"), keeps only its words
    text = re.sub(r"\[([^\]]+)\]\(([^()\s]*)\)", r"\1", text)
    text = re.sub(r"<(https?://[^>]+)>", r"\1", text)
    text = _MARKUP.sub("", text)
    return re.sub(r"\s+", " ", text).strip()


def split_sentences(text: str) -> list[str]:
    """Sentences in order; each list item and line is split on its own."""
    sentences: list[str] = []
    for block in re.split(r"\n\s*\n|\n(?=\s*(?:[-*•–]|\d{1,2}[.)])\s)", text):
        block = _LIST_MARKER.sub("", block.strip())
        block = re.sub(r"\s*\n\s*", " ", block)
        if not block:
            continue
        protected = _PROTECT.sub(lambda m: m.group(0).replace(".", "\x00"), block)
        for piece in _BOUNDARY.split(protected):
            piece = clean_markup(piece.replace("\x00", "."))
            if len(re.findall(r"\w+", piece)) >= 3:
                sentences.append(piece)
    return sentences


def normalise(text: str) -> str:
    """Lowercase, NFKC-normalise, turn every non-alphanumeric character into a
    space and collapse runs of whitespace (stripping both ends)."""
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join("".join(ch if ch.isalnum() else " " for ch in text).split())
