"""Sentence tables: what scoring a question's sentences needs beyond their vectors (stems, IDF, question weights, vocabulary), persisted with each index."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from assistant.text import content_words

if TYPE_CHECKING:
    from assistant.index.loaded import LoadedIndex

# A sentence that asks a question does not answer it, yet it is what a question embeds closest to
# (the review's own "Questions to answer" list outranked the answers): its similarity counts this much.
QUESTION_SENTENCE_WEIGHT = 0.8


def is_question(sentence: str) -> bool:
    return sentence.rstrip().rstrip("*_\"'”’)").endswith("?")


_STEMMER = None


def stems(text: str) -> set[str]:
    """The stems of a text's content words: "dominating" and "dominated" share "domin"."""
    global _STEMMER
    if _STEMMER is None:
        import Stemmer

        _STEMMER = Stemmer.Stemmer("english")
    return set(_STEMMER.stemWords(sorted(content_words(text))))


@dataclass
class SentenceTables:
    """What scoring sentences needs beyond their vectors, computed once per loaded index."""

    positions: np.ndarray  # the chunk position of each sentence row (-1 if its chunk is unknown)
    weights: np.ndarray  # QUESTION_SENTENCE_WEIGHT for sentences that ask a question, else 1.0
    stems: list[set[str]]  # content-word stems of each sentence
    idf: dict[str, float]  # inverse sentence frequency of each stem
    unseen_idf: float  # the weight of a stem no sentence uses: as telling as the rarest
    vocabulary: dict[str, int]  # lower-case words of the passages and their counts, for spelling correction

    def query_weights(self, text: str) -> dict[str, float]:
        return {w: self.idf.get(w, self.unseen_idf) for w in stems(text)}

    @staticmethod
    def overlap(query_weights: dict[str, float], words: set[str]) -> float:
        """Share of the query's word weight that `words` repeat (0..1)."""
        total = sum(query_weights.values())
        return sum(query_weights.get(w, 0.0) for w in words) / total if total else 0.0


_WORD = re.compile(r"[a-z]+")


def word_counts(texts: Iterable[str]) -> dict[str, int]:
    """Lower-case words of the passages and their counts: the vocabulary spelling correction draws on."""
    counts: dict[str, int] = {}
    for text in texts:
        for word in _WORD.findall(text.lower()):
            counts[word] = counts.get(word, 0) + 1
    return counts


def question_weights(sentences: list[tuple[str, str]]) -> np.ndarray:
    """QUESTION_SENTENCE_WEIGHT for each (chunk id, sentence) that asks a question, else 1.0."""
    return np.array([QUESTION_SENTENCE_WEIGHT if is_question(text) else 1.0 for _, text in sentences], dtype=np.float32)


def idf_table(frequency: dict[str, int], total: int) -> tuple[dict[str, float], float]:
    """(inverse sentence frequency of each stem, the weight of a stem no sentence uses) over `total` sentences."""
    return {word: math.log((1 + total) / (1 + count)) for word, count in frequency.items()}, math.log(1 + total)


_TABLES: dict[int, tuple[object, SentenceTables]] = {}


def sentence_tables(index: LoadedIndex) -> SentenceTables:
    loaded = getattr(index, "loaded_sentence_tables", None)
    if loaded is not None:  # persisted with the index by the writer: nothing to compute on the first question
        return loaded
    cached = _TABLES.get(id(index))
    if cached is not None and cached[0] is index.sentences:
        return cached[1]
    sentence_stems = [stems(text) for _, text in index.sentences]
    frequency: dict[str, int] = {}
    for words in sentence_stems:
        for word in words:
            frequency[word] = frequency.get(word, 0) + 1
    idf, unseen_idf = idf_table(frequency, len(sentence_stems))
    tables = SentenceTables(
        positions=np.array([index.position.get(chunk_id, -1) for chunk_id, _ in index.sentences], dtype=np.int64),
        weights=question_weights(index.sentences),
        stems=sentence_stems,
        idf=idf,
        unseen_idf=unseen_idf,
        vocabulary=word_counts(chunk.embedding_text() for chunk in index.chunks),
    )
    _TABLES.clear()  # one index is in use at a time
    _TABLES[id(index)] = (index.sentences, tables)
    return tables
