"""Test doubles for what is too slow for the fast tier: a deterministic embedder in place of MiniLM."""

from __future__ import annotations

import re
import zlib

import numpy as np

# Words that carry no topic: without them a question's cosine with a sentence measures shared content words.
STOP_WORDS = frozenset(
    "a an and are as at be by can do does for from has have how i in is it its of on or should so that the their "
    "them they this to was were what when where which who why will with you your".split()
)


def content_words(text: str) -> list[str]:
    """Lower-cased words without stop words, with a plural 's' dropped so 'films' meets 'film'."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    return [w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words if w not in STOP_WORDS]


class FakeEmbedder:
    """Hashed bag of words, normalised, in the real model's 384 dimensions (the idea of llm's MockModel).

    Deterministic across processes (CRC32, not Python's salted hash) and instant, so an index of a few
    documents builds in well under a second. Cosine is content-word overlap: a question shares a high score
    with the sentences that use its words and zero with text about something else.
    """

    name = "fake-hashed-bag-of-words-384"
    model_path = "fake://hashed-bag-of-words"  # read by the index's Chroma embedding-function config
    dimension = 384

    def __init__(self) -> None:
        self.calls = 0  # texts embedded, so a test can tell whether a path embedded anything

    def vector(self, text: str) -> np.ndarray:
        vector = np.zeros(self.dimension, dtype=np.float32)
        for word in content_words(text):
            vector[zlib.crc32(word.encode()) % self.dimension] += 1.0
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm else vector

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        self.calls += len(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([self.vector(t) for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        self.calls += 1
        return self.vector(text)
