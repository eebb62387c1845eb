"""Text helpers shared by every stage: sentences and list items that can be quoted on their own, plain text, and the two escaping rules."""

from __future__ import annotations

import html
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


_WORD = re.compile(r"[a-z0-9]+")
# Words too common to say what a text is about (content_words drops them; the follow-up check builds on them).
STOP_WORDS = frozenset(
    "a an and are as at be been but by can do does for from has have how i if in into is it its of on or our "
    "should so than that the their them there these they this to was we were what when where which who why will "
    "with you your".split()
)


def content_words(text: str) -> set[str]:
    """The words that carry meaning: lower-cased, stop words and words of one or two letters dropped."""
    return {w for w in _WORD.findall(text.lower()) if w not in STOP_WORDS and len(w) > 2}


def normalise(text: str) -> str:
    """Lowercase, NFKC-normalise, turn every non-alphanumeric character into a
    space and collapse runs of whitespace (stripping both ends)."""
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join("".join(ch if ch.isalnum() else " " for ch in text).split())


# Document text is escaped by one of two rules, by where it is shown:
# - escape_html: in HTML (the UI's cards, report.html; jinja2's autoescape does the same in templates): no tags,
#   no entities, and safe inside a quoted attribute too.
# - escape_markdown: in a Markdown file (the conversation export, a session plan): backslash escapes, no HTML
#   entities, so the file reads as written in a text editor and a viewer never shows a tag.


def escape_html(value) -> str:
    """Text made inert in HTML, text or attribute value ("<", ">", "&" and both quotes become entities); None is ""."""
    return html.escape("" if value is None else str(value), quote=True)


def escape_markdown(value) -> str:
    """Text made inert in Markdown without HTML entities: "\\", "<" and an entity-like "&" are backslash-escaped,
    so a viewer shows them as written and never as tags; None is ""."""
    text = ("" if value is None else str(value)).replace("\\", "\\\\")
    text = re.sub(r"&(?=#?\w+;)", r"\\&", text)
    return text.replace("<", "\\<")
