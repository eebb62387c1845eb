"""What makes a quoted sentence unfit to stand in an answer: titles, headings, fragments, reference entries,
sentences about the document itself, back-references with nothing to refer to, and leftover markup.

Defined once: the answer composer uses these tests to choose what to quote, and the evaluation uses the same
tests to check every answer it scores.
"""

from __future__ import annotations

import re

# A sentence opening with one of these leans on the sentence before it ("It is set alongside...",
# "They aim to find out...", "One of the ways it does so..."): quoted alone, the reader cannot tell what it is.
_BACK_REFERENCE = re.compile(
    r"^[\"“‘(]*(?:"
    # "It is important to ...", "It takes time to ..." point forwards, not back
    r"(?!it(?:'s| is| was| can be| may be| will be| would be| could be| seems| appears| takes| helps| pays| matters)"
    r"(?: \w+){0,3} (?:to|that|if|when|whether)\b)"
    r"(?:it|its|they|their|them|he|she|his|her|such|here|instead|both|neither|either|the latter|the former|"
    r"one of the ways|one of these|some of these|many of these|all of these|each of these|none of these)\b"
    r"|(?:this|these|that|those)\b(?!\s+(?:literature\s+)?review\b)"
    r"|(?:however|but|and|so|also|yet|therefore|thus|still|again|otherwise|similarly|likewise|in addition|as well),?\s+"
    r"(?:it|its|they|their|them|this|these|that|those|he|she)\b"
    # "Also, when ...", "In addition, ...": a sentence that adds to the one before it
    r"|(?:also|in addition|additionally|furthermore|moreover|likewise|similarly|again|equally|as well),\s"
    r")",
    re.IGNORECASE,
)
# A sentence about the note or collection it sits in, not about the subject ("This note summarises...",
# "see the recruitment note in this collection"): true of our files, useless to a facilitator.
_ABOUT_ITSELF = re.compile(
    r"\b(?:this|the present|our) (?:note|collection|section|page|chapter|handout)\b"
    r"|\bsee the [\w\s,-]{0,40}\bnote\b|\bin this collection\b|\bnotes? in this\b"
    r"|\b(?:see|described|discussed|listed|covered|shown) (?:below|above)\b|\bas (?:noted|described|discussed) (?:below|above)\b",
    re.IGNORECASE,
)
# An entry of a reference list: a year with a DOI, a URL or a journal's volume and pages, and the commas of
# an author list or a citation.
_YEAR = re.compile(r"\b(?:19|20)\d{2}[a-z]?\b")
_BIBLIO_MARK = re.compile(r"\bdoi\b|https?://|www\.|\b\d+\s*\(\d+\)\s*[:,]|\b\d+:\d+\b|\bpp?\.\s*\d|\bvol\.|\bISBN\b", re.IGNORECASE)
_AUTHOR_LIST = re.compile(r"^(?:[A-Z][\w'’-]+,?\s+(?:[A-Z]\.\s*)+,?\s*(?:&|and)?\s*){2,}|^[A-Z][\w'’-]+,\s+[A-Z]\.")
# "IHI (2016). Always Events® Toolkit." / "Retrieved from https://..."
_AUTHOR_YEAR = re.compile(r"^[A-Z][\w&'’.,\s-]{1,80}?\s\((?:19|20)\d{2}[a-z]?\)[.,]?\s+[A-Z'‘\"“]")
_RETRIEVED = re.compile(r"\b(?:retrieved|available|accessed) (?:from|at|on)\b[^.]*(?:https?://|www\.)", re.IGNORECASE)
# Markup a reader should never see in quoted text.
_MARKUP_DEBRIS = re.compile(r"\*\*|__|\]\(|\[[^\]]*\]\(|^#+\s|<\/?[a-z][^>]*>|`|\|\s*-{3,}|\(#\)", re.IGNORECASE | re.MULTILINE)
_TERMINAL = re.compile(r"[.!?…][\"”’')\]]*$|[.!?…]\s*\([^()]*\)$")
_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*")
_SMALL_WORDS = frozenset("a an and as at by for from in into of on or the to with vs via".split())
MIN_WORDS = 6  # fewer words than this is a label or a fragment, not an answer


def leans_back(sentence: str) -> bool:
    """Whether the sentence opens by pointing back at something said before it."""
    return bool(_BACK_REFERENCE.match(sentence.strip()))


def about_itself(sentence: str) -> bool:
    return bool(_ABOUT_ITSELF.search(sentence))


def is_reference_entry(sentence: str) -> bool:
    """Whether the sentence reads as an entry of a reference list rather than as prose."""
    text = sentence.strip()
    if _AUTHOR_LIST.match(text) or _RETRIEVED.search(text):
        return True
    if not _YEAR.search(text):
        return False
    if _AUTHOR_YEAR.match(text):
        return True
    return bool(_BIBLIO_MARK.search(text)) and text.count(",") >= 2


def has_markup(sentence: str) -> bool:
    return bool(_MARKUP_DEBRIS.search(sentence))


def _unbalanced_quotes(text: str) -> bool:
    return text.count("“") != text.count("”") or text.count('"') % 2 == 1


_TRAILING_CITATION = re.compile(r"\s*\([^()]*\)\s*[.;]?\s*$")
_VERB = re.compile(
    r"\b(?:is|are|was|were|be|been|can|could|should|will|would|may|might|must|do|does|did|has|have|had|"
    r"need|needs|helps?|means?|shows?|found|finds|says?|gives?|makes?|takes?|uses?|used)\b",
    re.IGNORECASE,
)


_SUBTITLE = re.compile(r":\s+(?:An?|The)?\s*[A-Z][\w'’-]*(?:\s+[\w'’-]+){0,4}$")


def without_citation(sentence: str) -> str:
    """The sentence without the parenthesised source at its end ("... (NESTA 2013)")."""
    stripped = _TRAILING_CITATION.sub("", sentence.strip())
    return stripped if _WORD.search(stripped) else sentence.strip()


def is_title_or_heading(sentence: str) -> bool:
    """A title, heading or label: no sentence ending and no verb, or a short line with no ending."""
    text = without_citation(sentence)
    words = _WORD.findall(text)
    if not words:
        return True
    if _TERMINAL.search(text) or _TERMINAL.search(sentence.strip()):
        return False
    significant = [w for w in words if w.lower() not in _SMALL_WORDS]
    capitalised = sum(1 for w in significant if w[0].isupper())
    if significant and capitalised / len(significant) > 0.6:
        return True
    # "How co-production is used to improve ...: A literature review" is a title, though it has a verb
    return len(words) < 8 or bool(_SUBTITLE.search(text)) or not _VERB.search(text) and len(words) < 12


def is_fragment(sentence: str) -> bool:
    """Too short to say anything, a continuation of something cut off, or a quotation that never closes."""
    text = without_citation(sentence).lstrip("\"“‘'(")
    words = _WORD.findall(text)
    if len(words) < MIN_WORDS:
        return True
    if text[:1].islower():
        return True
    return _unbalanced_quotes(sentence)


# What a sentence is, when it is not a sentence: the first that holds is named.
_NOT_A_SENTENCE = ((is_reference_entry, "reference entry"), (is_title_or_heading, "title or heading"), (is_fragment, "fragment"))
# What else keeps it from standing alone: each that holds is named.
_LEANS_ON_MORE = ((about_itself, "about the document itself"), (leans_back, "unresolved back-reference"), (has_markup, "markup"))


def problems(sentence: str) -> list[str]:
    """Why the sentence should not be quoted on its own (empty when it can be)."""
    found = [next((name for check, name in _NOT_A_SENTENCE if check(sentence)), None)]
    found += [name for check, name in _LEANS_ON_MORE if check(sentence)]
    return [name for name in found if name]


def answer_findings(claims: list[str], allow_references: bool = False) -> list[str]:
    """Hygiene findings over an answer's quoted claims (the text each citation marker covers).

    A claim may hold several sentences (a back-reference quoted with the sentence it leans on): only its
    first sentence must stand alone. Reference entries are allowed when the question asks for reading.
    """
    from assistant.text import split_sentences

    findings: list[str] = []
    for claim in claims:
        pieces = split_sentences(claim) or [claim]
        first, rest = pieces[0], pieces[1:]
        issues = problems(first)
        issues += [p for s in rest for p in problems(s) if p in ("about the document itself", "markup")]
        if allow_references:
            issues = (
                [p for p in issues if p not in ("reference entry", "title or heading", "fragment")] if is_reference_entry(first) else issues
            )
        findings.extend(f"{issue}: {claim[:90]}" for issue in dict.fromkeys(issues))
    return findings
