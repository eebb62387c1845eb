"""Citations: what each [n] points at, the primary study behind it, and checks that every marker is honest."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

import numpy as np

from assistant.ingest.references import Reference, link_citations
from assistant.text import clean_markup, content_words, normalise, split_sentences  # noqa: F401 (content_words re-exported)

# How a model's answer is labelled: what the check is (SupportScorer.check), not more.
WRITTEN_BY = "Written by {model}; each sentence matched to the passage it cites (⚠ marks one that is not)."


@dataclass
class Citation:
    n: int
    chunk_id: str
    source: str
    title: str
    section: str
    quote: str
    page: int | None = None
    reference: dict | None = None  # the primary study the quoted passage cites, if any
    references: list[dict] = field(default_factory=list)
    source_url: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def location(self) -> str:
        parts = [self.title]
        if self.section:
            parts.append(self.section)
        if self.page:
            parts.append(f"page {self.page}")
        return " > ".join(parts)


# "[1]", "[2][3]" or "[1, 2]", with any spaces before them
_MARKER_GROUP = re.compile(r"((?:\s*\[\d{1,3}(?:\s*,\s*\d{1,3})*\])+)")
_LIST_ITEM = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+")


def cited_sentences(answer: str, keep_full_stops: bool = False) -> list[tuple[str, list[int]]]:
    """The answer's claims, each with the [n] markers that cite it (markers removed from the text).

    A marker group cites the text before it back to the previous marker group or the start of the line
    (list markers dropped), the usual reading of inline citations: "A. B [1]. C [2]" gives
    ("A. B", [1]) and ("C", [2]). Text after a line's last marker is returned with no markers.
    With `keep_full_stops` the full stop after a marker group goes back to the claim it ends ("A. B.").
    """
    pieces: list[tuple[str, list[int]]] = []
    for line in answer.splitlines():
        line = _LIST_ITEM.sub("", line).strip()
        if not line:
            continue
        parts = _MARKER_GROUP.split(line)
        for i in range(0, len(parts), 2):
            text = parts[i].strip()
            stop = re.match(r"[.!?]+", text)
            if keep_full_stops and stop and i > 0 and pieces:
                pieces[-1] = (pieces[-1][0] + stop.group(0), pieces[-1][1])
            text = text.lstrip(".,;:!?)]} ").strip()
            numbers = [int(n) for n in re.findall(r"\d+", parts[i + 1])] if i + 1 < len(parts) else []
            if re.search(r"\w", text):
                pieces.append((text, numbers))
            elif numbers and pieces:  # markers with no text of their own extend the claim before them
                pieces[-1][1].extend(numbers)
    return pieces


def lexical_support(sentence: str, passage: str) -> float:
    """Share of the sentence's content words found in the passage (1.0 for a verbatim quote)."""
    words = content_words(sentence)
    if not words:
        return 0.0
    return len(words & content_words(passage)) / len(words)


#: A cited passage supports a sentence when BOTH hold:
#: * lexical: at least this share of the sentence's content words (stop words and words of one or two
#:   letters dropped, see ``assistant.answering.cite.content_words``) occur in the passage, and
SUPPORT_LEXICAL = 0.5
#: * embedding: the sentence's cosine similarity to the most similar sentence of the passage (the sentence
#:   vectors stored in the index; the whole passage when it has none) is at least this.
#: A sentence quoted verbatim (after normalising case, punctuation and Markdown) passes both trivially.
SUPPORT_COSINE = 0.5


_MARKDOWN_LINK = re.compile(r"\[([^\]]+)\]\((https?://[^)\s]+)\)")


def linked_sources(text: str) -> list[Reference]:
    """Markdown links used as sources ("([Publisher](https://...))"), as references."""
    found: dict[str, Reference] = {}
    for label, url in _MARKDOWN_LINK.findall(text):
        found.setdefault(url, Reference(key=url, authors=(), year=None, title=label, venue="", url=url, doi=None, text=label))
    return list(found.values())


def primary_references(quote: str, passage_text: str, references: list[Reference]) -> list[Reference]:
    """Studies the quoted sentence cites; else those cited or linked by the bullet or paragraph it sits in."""
    cited = link_citations(quote, references)
    if cited:
        return cited
    anchor = clean_markup(quote)[:40]
    for block in re.split(r"\n", passage_text):
        if anchor and anchor in clean_markup(block):
            return link_citations(block, references) or linked_sources(block)
    return []


def _plain(text: str) -> str:
    """Normalised text with Markdown link targets and emphasis dropped, for verbatim checks."""
    return normalise(clean_markup(text))


_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# Counts written as words are numbers too ("the four criteria"); "one" is left out: it is mostly a pronoun.
_NUMBER_WORDS = {
    w: str(n)
    for n, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve".split())
    if w not in ("zero", "one")
} | {"fifteen": "15", "twenty": "20", "thirty": "30", "fifty": "50", "hundred": "100"}
_NUMBER_WORD = re.compile(r"\b(" + "|".join(_NUMBER_WORDS) + r")\b", re.IGNORECASE)


def numbers_in(text: str) -> set[str]:
    """The numbers a text states, in digits or as words."""
    return set(_NUMBER.findall(text)) | {_NUMBER_WORDS[w.lower()] for w in _NUMBER_WORD.findall(text)}


def _words(*alternatives: str) -> re.Pattern:
    return re.compile(r"\b(?:" + "|".join(alternatives) + r")\b", re.IGNORECASE)


#: Qualifications a passage sentence makes that a sentence drawing on it must keep:
#: (name, how the passage says it, what in the sentence counts as keeping it).
QUALIFICATIONS = (
    (
        "may",
        _words("may", "might", "could"),
        _words("may", "might", "could", "can", "possibl[a-z]*", "perhaps", "sometimes", "not always", "potential[a-z]*", "risk[a-z]*"),
    ),
    ("some", _words("some"), _words("some", "several", "a few", "few", "many", "not all", "certain", "sometimes", "part")),
    (
        "no single",
        _words("no single", "no one"),
        _words("no single", "no one", "not one", "disagree[a-z]*", "var(?:y|ies|ied)", "differ(?:s|ed)?"),
    ),
    (
        "in one project",
        _words(r"(?:in|from) (?:one|a single) (?:project|study|trust|site|hospital|service|area|pilot|programme|case)"),
        _words(r"(?:one|a single|a|that) (?:project|study|trust|site|hospital|service|area|pilot|programme|case)", "pilot"),
    ),
)
# A passage saying its sources disagree on a count ("There is no single agreed count", "The toolkits disagree").
_DISAGREES = _words(
    "disagree[a-z]*",
    "no single agreed",
    "no agreed",
    "not agreed",
    "no consensus",
    "do not agree",
    "don't agree",
    "var(?:y|ies)",
    "differ(?:s)?",
)
_ABOUT_A_COUNT = _words("count", "number", "how many", "stages?", "steps?", "phases?", r"\d+", *_NUMBER_WORDS)
# A sentence carries the disagreement when it says so, or says whose count it gives.
_CARRIES_DISAGREEMENT = re.compile(
    _DISAGREES.pattern
    + "|"
    + _words(
        "according to", "versions?", r"(?:one|some|other|several|different|each|another) (?:toolkits?|guides?|frameworks?|sources?)"
    ).pattern,
    re.IGNORECASE,
)


def states_disagreement(text: str) -> bool:
    """Whether a text says its sources disagree on a count (a number of stages, steps, phases)."""
    # sentences, and short lines whole: a heading asks and answers ("How many stages? The toolkits disagree")
    units = re.split(r"(?<=[.!?])\s+|\n+", text) + [line for line in text.splitlines() if len(line) <= 120]
    return any(_DISAGREES.search(u) and _ABOUT_A_COUNT.search(u) for u in units)


def dropped_qualifications(sentence: str, passage: str) -> list[str]:
    """The qualifications the passage makes that `sentence` leaves out.

    Hedges ("may", "some", "no single", "in one project") are looked for in the passage sentence the
    sentence draws on most (most content words shared); a disagreement on a count anywhere in the
    passage (its heading included) must be carried by any sentence that states a count."""
    dropped = []
    sentences = split_sentences(passage) or [passage]
    source = max(sentences, key=lambda s: lexical_support(sentence, s))
    for name, in_passage, kept in QUALIFICATIONS:
        if in_passage.search(source) and not in_passage.search(sentence) and not kept.search(sentence):
            dropped.append(name)
    if numbers_in(sentence) and states_disagreement(passage) and not _CARRIES_DISAGREEMENT.search(sentence):
        dropped.append("the sources disagree on the count")
    return dropped


class SupportScorer:
    """Decides whether a cited passage supports a sentence (lexical overlap AND embedding similarity).

    Embeddings of answer sentences are cached across turns; passages use the sentence vectors already in
    the index, so scoring costs one small embedding batch per turn at most.
    """

    def __init__(self, embedder, index=None):
        self.embedder = embedder
        self.index = index
        self._cache: dict[str, np.ndarray] = {}

    def _vectors(self, texts: list[str]) -> list[np.ndarray]:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            for text, vector in zip(missing, self.embedder.embed_documents(missing)):
                self._cache[text] = np.asarray(vector, dtype=np.float32)
        return [self._cache[t] for t in texts]

    def cosine(self, sentence: str, chunk_id: str, passage: str) -> float:
        needle = _plain(sentence)
        if needle and needle in _plain(passage):
            return 1.0
        row, similarity = self.closest_sentence(sentence, chunk_id)
        if row is not None:
            return similarity
        vector, passage_vector = self._vectors([sentence, passage])
        return float(passage_vector @ vector)

    def closest_sentence(self, sentence: str, chunk_id: str) -> tuple[int | None, float]:
        """The index row of the passage's sentence most like `sentence`, and their cosine."""
        rows = self.index.sentences_by_chunk.get(chunk_id) if self.index is not None else None
        if not rows:
            return None, 0.0
        (vector,) = self._vectors([sentence])
        similarity = self.index.sentence_vectors[rows] @ vector
        best = int(np.argmax(similarity))
        return int(rows[best]), float(similarity[best])

    def check(self, sentence: str, chunk_id: str, passage: str) -> dict:
        """Whether `passage` supports `sentence`: the one support test, for evaluation and for model answers.

        Supported means all of: at least SUPPORT_LEXICAL of its content words are in the passage; cosine
        SUPPORT_COSINE or more to the passage's closest sentence; every number it states (in digits or
        words) is in the passage; and it keeps the qualifications the passage makes (see
        `dropped_qualifications`). A verbatim quote is supported by definition: it says what the passage
        says. `numbers_missing` and `qualifications_dropped` appear only when something is missing."""
        verbatim = bool(_plain(sentence)) and _plain(sentence) in _plain(passage)
        lexical = 1.0 if verbatim else lexical_support(sentence, passage)
        cosine = self.cosine(sentence, chunk_id, passage) if lexical >= SUPPORT_LEXICAL else None
        result: dict[str, object] = {
            "lexical": round(lexical, 3),
            "cosine": None if cosine is None else round(cosine, 3),
            "supported": lexical >= SUPPORT_LEXICAL and cosine is not None and cosine >= SUPPORT_COSINE,
        }
        if verbatim:
            return result
        missing = sorted(numbers_in(sentence) - numbers_in(passage))
        if missing:
            result["numbers_missing"] = missing
        dropped = dropped_qualifications(sentence, passage)
        if dropped:
            result["qualifications_dropped"] = dropped
        result["supported"] = result["supported"] and not missing and not dropped
        return result
