"""Checks on the hand-written toolkit notes in corpus/notes.

Every note is Markdown with YAML front matter (title, themes, sources, last_reviewed).
The notes paraphrase copyrighted toolkits, so every paragraph and list item must carry
a citation link, and every cited URL must be declared in the front matter.
The assistant quotes single sentences from the notes, so every sentence must stand alone:
no sentence about the note itself, no sentence opening with a word that points back to
something said before, no bold lead-in that quotes as a fragment.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
import yaml

from assistant.text import split_sentences

NOTES_DIR = Path(__file__).resolve().parents[1] / "corpus" / "notes"

EXPECTED_NOTES = [
    "ebcd.md",
    "always-events.md",
    "principles-of-co-production.md",
    "power-dynamics-and-facilitation.md",
    "recruitment-and-representation.md",
    "payment-and-reimbursement.md",
    "measuring-experience-and-co-production.md",
    "glossary.md",
    "getting-the-original-toolkits.md",
]

THEMES = {
    "running-co-production",
    "power-dynamics",
    "recruitment",
    "payment",
    "measurement",
    "ebcd",
    "always-events",
    "principles",
    "glossary",
}

FRONT_MATTER_KEYS = {"title", "themes", "sources", "last_reviewed"}
SOURCE_KEYS = {"url", "publisher", "licence"}

LINK_RE = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
HTTP_URL_RE = re.compile(r"^https?://[^\s<>\"]+$")
HEADING_RE = re.compile(r"^(#{1,6})\s+(.*\S)\s*$")
LIST_ITEM_RE = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")

MIN_SECTION_WORDS = 80
MAX_SECTION_WORDS = 350
MIN_GLOSSARY_TERMS = 25


def note_paths() -> list[Path]:
    return sorted(NOTES_DIR.glob("*.md"))


def parse_note(path: Path) -> tuple[dict, str]:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("---\n"), f"{path.name}: must start with a '---' front-matter line"
    end = text.find("\n---\n", 4)
    assert end != -1, f"{path.name}: front matter is not closed by a '---' line"
    meta = yaml.safe_load(text[4:end])
    assert isinstance(meta, dict), f"{path.name}: front matter must be a YAML mapping"
    body = text[end + len("\n---\n") :]
    return meta, body


def blocks(body: str) -> list[str]:
    """Paragraphs and list items of a Markdown body.

    Headings, blank lines and fenced code blocks are dropped.
    """
    out: list[str] = []
    current: list[str] = []

    def flush() -> None:
        if current:
            out.append(" ".join(line.strip() for line in current))
            current.clear()

    in_code = False
    for line in body.splitlines():
        if line.lstrip().startswith("```"):
            flush()
            in_code = not in_code  # fenced code (e.g. a command) is not a factual claim
        elif in_code:
            continue
        elif not line.strip() or HEADING_RE.match(line):
            flush()
        elif LIST_ITEM_RE.match(line):
            flush()
            current.append(line)
        else:
            current.append(line)
    flush()
    return out


def sections(body: str) -> list[tuple[list[str], str]]:
    """(heading path, text) for each heading-delimited section of a body."""
    out: list[tuple[list[str], str]] = []
    path: list[str] = []
    current: list[str] = []
    for line in body.splitlines():
        m = HEADING_RE.match(line)
        if m:
            out.append((list(path), "\n".join(current)))
            level = len(m.group(1))
            path = path[: level - 1] + [""] * max(0, level - 1 - len(path)) + [m.group(2)]
            current = []
        else:
            current.append(line)
    out.append((list(path), "\n".join(current)))
    return [(p, t) for p, t in out if p and t.strip()]


def prose_words(text: str) -> int:
    """Words a reader sees: link labels count, URLs do not."""
    return len(LINK_RE.sub(lambda m: m.group(1), text).split())


ALL_NOTES = note_paths()
NOTE_IDS = [p.name for p in ALL_NOTES]


def test_notes_directory_has_notes():
    assert NOTES_DIR.is_dir(), f"missing {NOTES_DIR}"
    assert ALL_NOTES, "corpus/notes contains no Markdown notes"


@pytest.mark.parametrize("name", EXPECTED_NOTES)
def test_expected_note_exists(name):
    assert (NOTES_DIR / name).is_file(), f"missing note corpus/notes/{name}"


@pytest.mark.parametrize("path", ALL_NOTES, ids=NOTE_IDS)
def test_front_matter_shape(path):
    meta, body = parse_note(path)
    assert set(meta) == FRONT_MATTER_KEYS, f"front matter keys: {sorted(meta)}"

    assert isinstance(meta["title"], str) and meta["title"].strip(), "empty title"

    themes = meta["themes"]
    assert isinstance(themes, list) and themes, "themes must be a non-empty list"
    unknown = set(themes) - THEMES
    assert not unknown, f"themes outside the vocabulary: {sorted(unknown)}"
    assert len(themes) == len(set(themes)), "duplicate themes"

    sources = meta["sources"]
    assert isinstance(sources, list) and sources, "sources must be a non-empty list"
    urls = []
    for src in sources:
        assert isinstance(src, dict) and set(src) == SOURCE_KEYS, f"bad source entry: {src!r}"
        assert isinstance(src["url"], str) and HTTP_URL_RE.match(src["url"]), f"bad url {src['url']!r}"
        assert isinstance(src["publisher"], str) and src["publisher"].strip(), f"no publisher: {src!r}"
        assert isinstance(src["licence"], str) and src["licence"].strip(), f"no licence: {src!r}"
        urls.append(src["url"])
    assert len(urls) == len(set(urls)), "a source URL is listed twice"

    reviewed = meta["last_reviewed"]
    if isinstance(reviewed, dt.date):
        reviewed = reviewed.isoformat()
    assert isinstance(reviewed, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", reviewed), reviewed
    dt.date.fromisoformat(reviewed)  # raises if not a real date

    assert body.strip(), "empty body"
    assert any(HEADING_RE.match(line) for line in body.splitlines()), "body has no headings"


@pytest.mark.parametrize("path", ALL_NOTES, ids=NOTE_IDS)
def test_every_paragraph_and_list_item_cites_a_source(path):
    _, body = parse_note(path)
    found = blocks(body)
    assert found, "no paragraphs or list items"
    uncited = [b for b in found if not any(HTTP_URL_RE.match(url) for _, url in LINK_RE.findall(b))]
    assert not uncited, "blocks without an http(s) citation link:\n" + "\n".join(f"  - {b[:120]}" for b in uncited)


@pytest.mark.parametrize("path", ALL_NOTES, ids=NOTE_IDS)
def test_cited_urls_match_front_matter_sources(path):
    meta, body = parse_note(path)
    declared = {src["url"] for src in meta["sources"]}
    linked = {url for _, url in LINK_RE.findall(body)}
    not_http = sorted(u for u in linked if not HTTP_URL_RE.match(u))
    assert not not_http, f"links that are not http(s) URLs: {not_http}"
    undeclared = sorted(linked - declared)
    assert not undeclared, f"linked URLs missing from front matter sources: {undeclared}"
    unused = sorted(declared - linked)
    assert not unused, f"front matter sources never cited in the body: {unused}"


@pytest.mark.parametrize("path", ALL_NOTES, ids=NOTE_IDS)
def test_sections_are_focused_and_retrievable(path):
    _, body = parse_note(path)
    is_glossary = path.name == "glossary.md"
    problems = []
    for heading_path, text in sections(body):
        if is_glossary and len(heading_path) >= 3:
            continue  # one short definition per ### term, by design
        words = prose_words(text)
        if not MIN_SECTION_WORDS <= words <= MAX_SECTION_WORDS:
            problems.append(f"{' > '.join(h for h in heading_path if h)}: {words} words")
    assert not problems, "sections outside 80-350 words:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", ALL_NOTES, ids=NOTE_IDS)
def test_always_events_trademark_on_first_use(path):
    meta, body = parse_note(path)
    for label, text in (("title", meta["title"]), ("body", body)):
        m = re.search(r"Always Events?", text)
        if m:
            assert text[m.end() : m.end() + 1] == "®", (
                f"first use of 'Always Event(s)' in the {label} lacks the ® mark: {text[max(0, m.start() - 40) : m.end() + 20]!r}"
            )


def test_glossary_has_enough_cited_terms():
    meta, body = parse_note(NOTES_DIR / "glossary.md")
    assert "glossary" in meta["themes"]
    terms = [(heading_path[-1], text) for heading_path, text in sections(body) if len(heading_path) >= 3]
    names = [name for name, _ in terms]
    assert len(names) >= MIN_GLOSSARY_TERMS, f"only {len(names)} glossary terms"
    assert len({n.lower() for n in names}) == len(names), "duplicate glossary terms"
    for name, text in terms:
        definition = text.strip()
        assert definition, f"term {name!r} has no definition"
        assert LINK_RE.search(definition), f"term {name!r} does not cite a source"
        sentences = re.findall(r"[.!?](?:\s|$)", LINK_RE.sub("", definition))
        assert 1 <= len(sentences) <= 4, f"term {name!r}: keep it to 1-3 sentences"


# A sentence that talks about the note, or points elsewhere in it, makes no sense once quoted alone.
SELF_REFERENCE_RE = re.compile(
    r"\bth(?:is|ese) (?:notes?|sections?|collection|glossary|page)\b"
    r"|\bin this collection\b"
    r"|\bsee (?:the|our|below|above)\b"
    r"|\b(?:described|listed|set out|shown|covered|given|explained) (?:below|above)\b"
    r"|\((?:see )?(?:below|above)\)"
    r"|\bour (?:suggestion|view|reading)\b|\bin our (?:view|reading)\b",
    re.IGNORECASE,
)
# A quoted sentence that opens with one of these has lost the noun it refers to.
BACK_REFERENCE_RE = re.compile(
    r"^[\"“(]*(?:It|Its|They|Their|Them|This|These|That|Those|Instead|Such|He|She|His|Her"
    r"|One of|The same|Also|Here)\b"
)
# An opening that only announces what follows ("... drew these lessons.") answers nothing.
LEAD_IN_RE = re.compile(r"\b(?:as follows|the following|these (?:lessons|tips|points|steps|ones))\W*$", re.IGNORECASE)
BOLD_LEAD_IN_RE = re.compile(r"^(?:\s*(?:[-*+]|\d+[.)])\s+)?\*\*[^*]+\*\*")
# Third-party document-sharing sites: a copy there is not the publisher's, and must say so.
MIRROR_HOSTS = (
    "docplayer.net",
    "vdocument.in",
    "vdocuments.",
    "documents.pub",
    "studylib.net",
    "fdocuments.",
    "pdfslide.net",
    "slideshare.net/fred.zimny",
)


def note_sentences(body: str) -> list[str]:
    """The sentences the assistant can quote from a note body (headings and code excluded)."""
    return [sentence for block in blocks(body) for sentence in split_sentences(block)]


@pytest.mark.parametrize("path", ALL_NOTES, ids=NOTE_IDS)
def test_no_sentence_talks_about_the_note_itself(path):
    _, body = parse_note(path)
    found = [s for s in note_sentences(body) if SELF_REFERENCE_RE.search(s)]
    assert not found, "sentences about the note itself:\n" + "\n".join(f"  - {s[:140]}" for s in found)


@pytest.mark.parametrize("path", ALL_NOTES, ids=NOTE_IDS)
def test_no_sentence_opens_with_an_unresolved_reference(path):
    _, body = parse_note(path)
    found = [s for s in note_sentences(body) if BACK_REFERENCE_RE.match(s)]
    assert not found, "sentences that need the previous one (repeat the noun):\n" + "\n".join(f"  - {s[:140]}" for s in found)


@pytest.mark.parametrize("path", ALL_NOTES, ids=NOTE_IDS)
def test_no_bold_lead_ins(path):
    _, body = parse_note(path)
    found = [b for b in blocks(body) if BOLD_LEAD_IN_RE.match(b)]
    assert not found, "bold lead-ins quote as fragments; write a full sentence:\n" + "\n".join(f"  - {b[:100]}" for b in found)


@pytest.mark.parametrize("path", ALL_NOTES, ids=NOTE_IDS)
def test_every_section_opens_with_a_complete_sentence(path):
    """The first sentence under a heading answers it; a lead-in ending in ':' does not."""
    _, body = parse_note(path)
    problems = []
    for heading_path, text in sections(body):
        opening = note_sentences(text)
        if not opening:
            continue  # a grouping heading whose content sits under its sub-headings
        first = re.sub(r"\s*\([^()]*\)\s*$", "", opening[0])  # drop the trailing citation
        if first.endswith(":") or LEAD_IN_RE.search(first):
            problems.append(f"{' > '.join(h for h in heading_path if h)}: {first[:100]}")
    assert not problems, "sections that open with a lead-in instead of an answer:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", ALL_NOTES, ids=NOTE_IDS)
def test_copies_on_document_sharing_sites_are_labelled_unofficial(path):
    meta, body = parse_note(path)
    problems = []
    for src in meta["sources"]:
        if any(host in src["url"] for host in MIRROR_HOSTS) and "unofficial copy" not in src["publisher"]:
            problems.append(f"front matter publisher for {src['url']}: {src['publisher']!r}")
    for label, url in LINK_RE.findall(body):
        if any(host in url for host in MIRROR_HOSTS) and "unofficial copy" not in label:
            problems.append(f"link text for {url}: {label!r}")
    assert not problems, "mirror copies must say 'unofficial copy':\n" + "\n".join(problems)


@pytest.mark.parametrize("path", ALL_NOTES, ids=NOTE_IDS)
def test_web_pages_are_not_called_studies(path):
    """A source is a study only when it is one; the front matter never labels a web page 'primary study'."""
    meta, _ = parse_note(path)
    labelled = [src["url"] for src in meta["sources"] if re.search(r"primary (?:study|evidence)", src["publisher"], re.I)]
    assert not labelled, f"sources labelled as primary studies: {labelled}"
