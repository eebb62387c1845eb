"""Parses a document's reference list and links its in-text citations to the primary studies."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace
from urllib.parse import unquote

# ---------------------------------------------------------------------------------------------
# The reference record
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    key: str  # stable id, e.g. "bombard-2018"; duplicates get a/b suffixes ("nesta-2013a")
    authors: tuple[str, ...]  # surnames, or a corporate author such as ("CQC",)
    year: str | None
    title: str
    venue: str  # journal or publisher, "" when none could be told apart
    url: str | None  # first URL in the entry
    doi: str | None  # "10.xxxx/..." when the entry carries one (also inside its URLs)
    text: str  # the whole entry as written

    def label(self) -> str:
        """A short human label: "Bombard et al. (2018)", "Lord and Gale (2014)", "CQC (2018)"."""
        year = self.year or "n.d."
        if not self.authors:
            return f"{self.title or self.key} ({year})"
        if len(self.authors) == 1:
            names = self.authors[0]
        elif len(self.authors) == 2:
            names = f"{self.authors[0]} and {self.authors[1]}"
        else:
            names = f"{self.authors[0]} et al."
        return f"{names} ({year})"

    def to_dict(self) -> dict:
        return {
            "key": self.key,
            "authors": list(self.authors),
            "year": self.year,
            "title": self.title,
            "venue": self.venue,
            "url": self.url,
            "doi": self.doi,
            "text": self.text,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Reference:
        return cls(
            key=d["key"],
            authors=tuple(d.get("authors") or ()),
            year=d.get("year"),
            title=d.get("title", ""),
            venue=d.get("venue", ""),
            url=d.get("url"),
            doi=d.get("doi"),
            text=d.get("text", ""),
        )


# ---------------------------------------------------------------------------------------------
# Finding the reference section
# ---------------------------------------------------------------------------------------------

# The one list of headings that name a document's reference list, used by ingest (splitter), the planner and
# the tests: "References" (also "References and links", "7. References"), "Bibliography", "Reference list",
# "Works cited", "Further reading" and "Sources", in any case, with an optional trailing colon.
REFERENCE_SECTION_NAME = re.compile(
    r"(?:\d+\.?\s+)?(?:references?(?:\s+(?:and|&)\s+[\w ]+)?|bibliography|reference\s+list|works\s+cited"
    r"|further\s+reading|sources)\s*:?",
    re.I,
)


def is_reference_heading(heading: str) -> bool:
    """Whether a heading's text (without its #s) names a reference list."""
    return bool(REFERENCE_SECTION_NAME.fullmatch(heading.strip()))


# ---------------------------------------------------------------------------------------------
# Parsing entries
# ---------------------------------------------------------------------------------------------

_YEAR = r"(?:19|20)\d{2}[a-z]?"
_PARENTHESISED_YEAR = re.compile(rf"\((?:[^()]*?\s)?({_YEAR})\)")
# "Grit, K. J., 2016, Co-production ..." or "Batalden, P., 2018. Getting ..." or "... *BMJ Open* 2013"
_BARE_YEAR = re.compile(rf"(?<![\w/.:-])({_YEAR})(?![\w/-])")
_URL = re.compile(r"(?:https?://|www\.)[^\s<>\[\]\"'`]+", re.I)
_DOI = re.compile(r"\b(10\.\d{4,9}/[^\s<>\"'&?#\[\]]+)")
_LIST_MARKER = re.compile(r"^\s*(?:[-*+]|\d{1,3}[.)]|\[\d{1,3}\])\s+")
_HEADING_LINE = re.compile(r"^\s{0,3}#{1,6}\s")
# A line that opens a new entry even without a blank line before it: "Surname, I.",
# "Surname AB," (Vancouver) or "Corporate Name (2018)". A wrapped line such as
# "Health Expectations, 16: e36" does not.
_ENTRY_START = re.compile(rf"^[A-Z][\w'’\-]+(?:\s[A-Z][\w'’\-]+)*(?:,\s[A-Z]\.|\s[A-Z]{{1,3}}[,.]\s|\.?\s\({_YEAR}\))")
_INITIALS = re.compile(r"^(?:[A-Z]\.?\s?-?)+$")  # "G. R.", "E.-L.", "SM"
_VANCOUVER_AUTHOR = re.compile(r"^([\w'’\- ]+?)\s+[A-Z]{1,3}$")
_OPENING_QUOTES = "'\"‘“"
_CLOSING_QUOTES = "'\"’”"
_ITALIC = re.compile(r"(?<!\*)\*([^*\n]+)\*(?!\*)")
_NOT_A_VENUE = re.compile(r"^(?:retrieved|available|accessed|doi|url|https?:|www\.|\[)", re.I)


def parse_references(section_text: str) -> list[Reference]:
    """Parse a reference list into Reference records, in the order written.

    Entries are paragraphs or list items; a line that starts a new "Surname, X. (year)" entry
    also starts a new record, so one-per-line lists need no blank lines. Headings, and lines
    with neither a year nor a link (page footers, colour legends), are not entries.
    """
    references: list[Reference] = []
    for entry in _split_entries(section_text):
        if not (_BARE_YEAR.search(_strip_urls(entry)) or _URL.search(entry) or _DOI.search(entry)):
            continue
        if len(entry.split()) < 3:
            continue
        references.append(_parse_entry(entry))
    return _with_unique_keys(references)


def _split_entries(section_text: str) -> list[str]:
    entries: list[list[str]] = []
    starts_new_entry = True
    for raw_line in section_text.splitlines():
        line = raw_line.strip()
        if not line or _HEADING_LINE.match(raw_line):
            starts_new_entry = True
            continue
        marker = _LIST_MARKER.match(line)
        if marker:
            line = line[marker.end() :]
        current_has_year = bool(entries) and bool(_BARE_YEAR.search(_strip_urls(" ".join(entries[-1]))))
        if starts_new_entry or marker or (current_has_year and _ENTRY_START.match(line)):
            entries.append([line])
        else:
            entries[-1].append(line)
        starts_new_entry = False
    return [" ".join(lines) for lines in entries]


def _strip_urls(text: str) -> str:
    """Blank out URLs (years in them are upload dates, not publication years), keeping offsets."""
    return _URL.sub(lambda match: " " * len(match.group()), text)


def _parse_entry(text: str) -> Reference:
    authors_text, year, rest = _split_at_year(text)
    authors = _parse_authors(authors_text)
    title, venue = _title_and_venue(rest)
    return Reference(
        key="",
        authors=authors,
        year=year,
        title=title,
        venue=venue,
        url=_first_url(text),
        doi=_first_doi(text),
        text=text,
    )


def _split_at_year(text: str) -> tuple[str, str | None, str]:
    """Split an entry into (authors part, year, what follows the year).

    When the year does not follow the authors (Vancouver style "Doyle C, Bell D. Title.
    *Journal* 2013", or no year at all), the authors end at the first quoted or italic title,
    or at the full stop after the last initials.
    """
    plain = _strip_urls(text)
    for year_match in (_PARENTHESISED_YEAR.search(plain), _BARE_YEAR.search(plain)):
        if year_match and _looks_like_authors(plain[: year_match.start()]):
            return plain[: year_match.start()], year_match.group(1), text[year_match.end() :]
    any_year = _PARENTHESISED_YEAR.search(plain) or _BARE_YEAR.search(plain)
    authors_end = _end_of_leading_authors(text)
    return text[:authors_end], any_year.group(1) if any_year else None, text[authors_end:]


def _looks_like_authors(candidate: str) -> bool:
    """An author list is short and holds no quoted or italic title and no sentence."""
    candidate = candidate.strip()
    if not candidate or len(candidate) > 600 or any(mark in candidate for mark in '"“‘*'):
        return False
    if re.search(r"\b(?!al\.)[a-z]{2,}[.?!]\s", candidate):  # "Improving healthcare. N Z Med J."
        return False
    return all(_is_name_apostrophe(candidate, index) for index, char in enumerate(candidate) if char == "'")


def _is_name_apostrophe(text: str, index: int) -> bool:
    # O'Brien, "O' Mahony": after a letter and before a letter (or a space and a capital);
    # any other straight apostrophe opens or closes a quoted title.
    before = text[index - 1] if index > 0 else " "
    after = text[index + 1 : index + 3]
    return before.isalpha() and (after[:1].isalpha() or (after[:1] == " " and after[1:2].isupper()))


def _end_of_leading_authors(text: str) -> int:
    quote_or_italic = re.search(r"[\"“‘*]|(?<![A-Za-z])'", text)
    vancouver_end = re.search(r"\b[A-Z]{1,3}\.\s", text)
    candidates = [match.start() for match in (quote_or_italic,) if match]
    if vancouver_end and not re.search(r"[A-Z]\.,", text[: vancouver_end.end()]):
        candidates.append(vancouver_end.end() - 1)
    return min(candidates) if candidates else 0


def _parse_authors(authors_text: str) -> tuple[str, ...]:
    """Surnames from an author list in Harvard, APA, Vancouver, Chicago or natural order."""
    text = re.sub(r"\bet\s+al\b\.?", "", authors_text).strip().strip(".,;:").strip()
    if not text:
        return ()
    if ";" in text:  # Chicago: "Marshall, Claire; Zambeaux, Angela; and Lee, Helen"
        chicago = (_clean_name(part.split(",")[0]) for part in text.split(";"))
        return tuple(surname for surname in chicago if surname)
    parts = [_clean_name(part) for part in re.split(r",\s*|\s+(?:and|&)\s+", text)]
    parts = [part for part in parts if part]
    vancouver = [_VANCOUVER_AUTHOR.match(part) for part in parts]
    if all(vancouver):  # "Boyd H, McKernon S, Old A"
        return tuple(match.group(1) for match in vancouver if match)
    has_initials = any(_INITIALS.match(part) for part in parts)
    is_one_name = len(parts) == 1
    joined_by_and = "," not in text and not all(len(part.split()) >= 2 for part in parts)
    if is_one_name or (joined_by_and and not has_initials):
        # A corporate author, possibly with "and"/"&" in its name: "CQC", "The Picker
        # Institute", "NHS Institute for Innovation & Improvement".
        return (_clean_name(text),)
    if not has_initials:
        # Natural order, "Sara Donetto, Paola Pierri & Glenn Robert": the surname comes last.
        return tuple(part.split()[-1] for part in parts)
    # Harvard/APA: "Surname, I. I., Surname, I. and Surname, I."
    surnames: list[str] = []
    for index, part in enumerate(parts):
        if _INITIALS.match(part):
            continue
        following = parts[index + 1] if index + 1 < len(parts) else ""
        words = part.split()
        if len(words) >= 2 and _INITIALS.match(following) and following[0] == words[0][0]:
            part = " ".join(words[1:])  # "Sara Donetto, S.": a given name written before the surname
        surnames.append(part)
    return tuple(surnames)


def _clean_name(name: str) -> str:
    name = re.sub(r"^\s*(?:and|&)\s+", "", name)
    return re.sub(r"\s+", " ", name).strip(" .,;:")


def _title_and_venue(rest: str) -> tuple[str, str]:
    """The title (quoted, italic or the first sentence) and the venue (italics, else the next sentence)."""
    rest = rest.lstrip(" .,:;")
    italic = _ITALIC.search(rest)
    stop = min(italic.start() if italic else len(rest), _start_of_links(rest))
    if rest[:1] in _OPENING_QUOTES:
        region = rest[1:stop]
        closing = max(region.rfind(quote) for quote in _CLOSING_QUOTES)
        title = region[:closing] if closing > 0 else region
        after_title = rest[1 + len(title) + (1 if closing > 0 else 0) :]
    elif italic and italic.start() == 0:
        title = italic.group(1)  # a book or report title in italics
        after_title = rest[italic.end() :]
    else:
        sentence_end = re.search(r"[.?!](?=\s|$)", rest[:stop])
        end = sentence_end.start() if sentence_end else stop
        keep_mark = 1 if sentence_end and sentence_end.group() in "?!" else 0
        title = rest[: end + keep_mark]
        after_title = rest[end + (1 if sentence_end else 0) :]
    title = title.strip().strip(",").strip()

    venue_italic = _ITALIC.search(after_title)
    if venue_italic:
        venue = venue_italic.group(1)
    else:
        before_link = after_title[: _start_of_links(after_title)]
        next_sentence = re.split(r"(?<=\.)\s", before_link.strip(" .,"), maxsplit=1)[0]
        venue = "" if _NOT_A_VENUE.match(next_sentence) else next_sentence
    return title, venue.strip(" .,:")


def _start_of_links(text: str) -> int:
    """Where the first URL, <autolink> or [link] begins; len(text) when there is none."""
    starts = [match.start() for match in (_URL.search(text), re.search(r"[<\[]", text)) if match]
    return min(starts, default=len(text))


def _first_url(text: str) -> str | None:
    match = _URL.search(text)
    return _trim_trailing_punctuation(match.group()) if match else None


def _first_doi(text: str) -> str | None:
    # Scopus links carry the DOI percent-encoded: "doi=10.1186%2fs13012-018-0784-z".
    match = _DOI.search(unquote(text))
    return _trim_trailing_punctuation(match.group(1)) if match else None


def _trim_trailing_punctuation(value: str) -> str:
    value = value.rstrip(".,;:*_>")
    while value.endswith(")") and value.count(")") > value.count("("):
        value = value[:-1].rstrip(".,;:*_>")
    return value


def _with_unique_keys(references: list[Reference]) -> list[Reference]:
    """Key each reference "surname-year"; where several share one, suffix them a, b, c in order."""
    base_keys = [_base_key(reference) for reference in references]
    suffixes_used: dict[str, int] = {}
    keyed = []
    for reference, base in zip(references, base_keys):
        key = base
        if base_keys.count(base) > 1:
            key = base + "abcdefghijklmnopqrstuvwxyz"[suffixes_used.get(base, 0) % 26]
            suffixes_used[base] = suffixes_used.get(base, 0) + 1
        keyed.append(replace(reference, key=key))
    return keyed


def _base_key(reference: Reference) -> str:
    who = _slug(reference.authors[0]) if reference.authors else _slug(reference.title)[:40].strip("-")
    return f"{who or 'reference'}-{reference.year or 'nd'}"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", _fold(text).replace("'", "").replace("’", "")).strip("-")


def _fold(text: str) -> str:
    """Case- and accent-insensitive form: "Pérez" -> "perez"."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(char for char in decomposed if not unicodedata.combining(char)).casefold()


# ---------------------------------------------------------------------------------------------
# In-text citations
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Citation:
    text: str  # as found, without brackets or emphasis: "Spencer et al 2013"
    names: str  # "Spencer et al", "Lord & Gale", "MH-Co-production guide"
    years: tuple[str, ...]
    position: int

    @property
    def cited_authors(self) -> list[str]:
        """ "Lord & Gale" -> ["Lord", "Gale"]; "Boaz et al." -> ["Boaz"]; a corporate name stays whole."""
        names = re.sub(r"\s*\bet\s+al\b\.?", "", self.names)
        return [part.strip() for part in re.split(r"\s+(?:and|&)\s+|,\s*", names) if part.strip()]

    @property
    def is_et_al(self) -> bool:
        return bool(re.search(r"\bet\s+al\b", self.names))


_MARKDOWN_LINK = re.compile(r"!?\[([^\]]*)\]\([^)\s]*\)")
# Emphasis markers at word edges; underscores inside words (file_names) stay.
_EMPHASIS = re.compile(r"(?<!\w)[*_]{1,3}|[*_]{1,3}(?!\w)")
_PARENTHESES = re.compile(r"\(([^()]{3,300})\)")
_CITATION_PART = re.compile(
    rf"^(?:(?:e\.g\.|i\.e\.|see also|see|cf\.|as cited in|quoted in)[,:]?\s+)?"
    rf"(?P<names>[A-Z][\w'’.\-]*(?:\s+[\w'’.\-&]+){{0,7}}?)"
    rf",?\s+(?P<years>{_YEAR}(?:\s*,\s*{_YEAR})*)"
    rf"(?:\s*[,:]\s*(?:p|pp|para|ch)\.?\s*[\d\-–]+)?$"
)
# Dates in brackets are not citations: "(September 2018)", "(Summer 2010)".
_NOT_A_NAME = re.compile(
    r"^(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec|spring|summer|autumn|fall|winter|since|from|"
    r"until|before|after|in|by|circa|c\.|updated|accessed|retrieved|published|est)\w*\.?$",
    re.I,
)
_NARRATIVE = re.compile(
    rf"(?P<names>\b[A-Z][\w'’\-]+(?:\s+(?:and|&)\s+[A-Z][\w'’\-]+)?(?:\s+et\s+al\.?)?)"
    rf"\s+\((?P<years>{_YEAR}(?:\s*,\s*{_YEAR})*)(?:\s*[,:]\s*(?:p|pp)\.?\s*[\d\-–]+)?\)"
)


def _plain_text_for_citations(text: str) -> str:
    """The text with Markdown link targets, URLs and emphasis removed, so "([Kohler et al 2017](#))"
    and "(*Spencer et al 2013*)" read as plain parenthetical citations."""
    text = _MARKDOWN_LINK.sub(r"\1", text)
    text = re.sub(r"<[^<>\s]+>", " ", text)
    text = _URL.sub(" ", text)
    return _EMPHASIS.sub("", text)


def _is_citable_name(names: str) -> bool:
    return not re.search(r"\d", names) and not _NOT_A_NAME.match(names.split()[0])


def _find_citations(text: str) -> list[_Citation]:
    plain = _plain_text_for_citations(text)
    found: list[_Citation] = []
    for group in _PARENTHESES.finditer(plain):
        offset = group.start(1)
        for part in re.finditer(r"[^;]+", group.group(1)):
            candidate = re.sub(r"\s+", " ", part.group()).strip()
            match = _CITATION_PART.match(candidate)
            if match and _is_citable_name(match.group("names")):
                years = tuple(re.findall(_YEAR, match.group("years")))
                as_written = candidate[match.start("names") :]  # without a leading "see", "e.g."
                found.append(_Citation(as_written, match.group("names").strip(), years, offset + part.start()))
    for match in _NARRATIVE.finditer(plain):
        if not _is_citable_name(match.group("names")):
            continue
        years = tuple(re.findall(_YEAR, match.group("years")))
        as_written = re.sub(r"\s+", " ", match.group()).strip()
        found.append(_Citation(as_written, match.group("names").strip(), years, match.start()))
    return sorted(found, key=lambda citation: citation.position)


# ---------------------------------------------------------------------------------------------
# Linking citations to references
# ---------------------------------------------------------------------------------------------

_MINOR_WORDS = {"the", "of", "for", "and", "in", "on", "a", "an"}


def _words(text: str) -> list[str]:
    return re.findall(r"[^\W_]+", _fold(text).replace("'", "").replace("’", ""))


def _compact(text: str) -> str:
    return "".join(_words(text))


def _acronym(name: str) -> str:
    """ "NHS Institute for Innovation & Improvement" -> "nhsiii"; all-capital words count whole."""
    letters = []
    for word in re.findall(r"\w+", name):
        if word.lower() in _MINOR_WORDS:
            continue
        letters.append(word if word.isupper() else word[0])
    return _fold("".join(letters))


def _is_acronym(name: str) -> bool:
    return bool(re.fullmatch(r"[A-Z][A-Za-z]*[A-Z][A-Za-z]*", name)) and sum(c.isupper() for c in name) >= 2


def _names_match(cited: str, author: str) -> bool:
    """Does a cited name denote this author? Case-, accent- and punctuation-insensitive."""
    cited_compact, author_compact = _compact(cited), _compact(author)
    if not cited_compact or not author_compact:
        return False
    if cited_compact == author_compact:
        return True
    cited_words = [w for w in _words(cited) if w != "the"] or _words(cited)
    author_words = [w for w in _words(author) if w != "the"] or _words(author)
    if "".join(cited_words) == "".join(author_words):
        return True  # "The Picker Institute" / "Picker Institute"
    if author_words[-1] == cited_compact and len(author_words) > 1 and not _is_acronym(author):
        return True  # a surname written with given name or particle: "Sara Donetto" / "Donetto"
    shorter, longer = sorted((cited_words, author_words), key=len)
    if longer[: len(shorter)] == shorter and len(longer) > 1:
        return True  # a corporate name cited by its leading words: "Picker" / "Picker Institute"
    for short, long in ((cited, author), (author, cited)):
        if _is_acronym(short) and len(long.split()) > 1 and _acronym(long).startswith(_fold(short)):
            return True  # "NHSI" / "NHS Institute for Innovation & Improvement"
    return False


def _years_match(citation_year: str, reference: Reference) -> bool:
    if reference.year is None:
        return False
    if citation_year[:4] != reference.year[:4]:
        return False
    cited_suffix = citation_year[4:]
    if not cited_suffix:
        return True
    written_suffix = reference.year[4:] or (reference.key[-1] if reference.key[-1:].isalpha() else "")
    return cited_suffix == written_suffix


def _title_or_link_matches(cited: str, reference: Reference) -> bool:
    """A work cited by a short name of its own, e.g. "MH-Co-production guide" for a file MH_Co-production_guide.pdf."""
    cited_compact = _compact(cited)
    if len(_words(cited)) < 2:  # one word ("Pickles") is a surname, not a short title
        return False
    if reference.url:
        stem = reference.url.rstrip("/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
        if _compact(stem) == cited_compact:
            return True
    return cited_compact in _compact(reference.title)


def _candidates(citation: _Citation, year: str, references: list[Reference]) -> list[Reference]:
    same_year = [reference for reference in references if _years_match(year, reference)]
    cited = citation.cited_authors or [citation.names]
    by_author = [r for r in same_year if r.authors and _names_match(cited[0], r.authors[0])]
    if not by_author:
        by_author = [r for r in same_year if r.authors and _names_match(citation.names, r.authors[0])]
    if not by_author:
        return [r for r in same_year if _title_or_link_matches(citation.names, r)]
    if len(by_author) > 1 and len(cited) > 1:
        with_second = [r for r in by_author if len(r.authors) > 1 and _names_match(cited[1], r.authors[1])]
        by_author = with_second or by_author
    if len(by_author) > 1:
        author_count_fits = [r for r in by_author if (len(r.authors) > 2) == citation.is_et_al]
        by_author = author_count_fits or by_author
    return by_author


def link_citations(text: str, references: list[Reference]) -> list[Reference]:
    """The references cited in text, in order of first mention, each once.

    Matched by first-author surname and year (case- and accent-insensitive); "X and Y" matches
    first author X; corporate authors match by name, leading words or acronym ("NHSI"), and a
    work may be cited by its own short name (its file name or title words). Citations that
    match nothing are ignored.
    """
    linked: list[Reference] = []
    seen_keys: set[str] = set()
    for citation in _find_citations(text):
        for year in citation.years:
            candidates = _candidates(citation, year, references)
            if candidates and candidates[0].key not in seen_keys:
                seen_keys.add(candidates[0].key)
                linked.append(candidates[0])
    return linked
