"""A tiny stand-in for AssistantService, so command, report and gate logic can be tested in milliseconds.

The real service is exercised end to end in test_runner.py and test_gate.py; these fakes only make the
answers predictable (each question maps to a canned response).
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import yaml

DOC = "notes/ebcd.md"
OTHER = "notes/glossary.md"
FILM = "The interviews are edited into a trigger film, a compilation of about 30 minutes."
STAGES = "There is no single agreed count, so always say which toolkit you are following."
NOISE = "Reciprocity is one of the four values of co-production."


class FakeEmbedder:
    """Bag-of-words vectors hashed into 256 dimensions and normalised: similar wording, high cosine."""

    name = "fake-bow"
    dimension = 256

    def _one(self, text: str) -> np.ndarray:
        vector = np.zeros(self.dimension, dtype=np.float32)
        for word in re.findall(r"[a-z0-9]+", text.lower()):
            vector[zlib.crc32(word.encode()) % self.dimension] += 1.0
        norm = np.linalg.norm(vector)
        return vector / norm if norm else vector

    def embed_documents(self, texts):
        return np.stack([self._one(t) for t in texts]) if texts else np.zeros((0, self.dimension), dtype=np.float32)

    def embed_query(self, text):
        return self._one(text)


def passage(rank: int, chunk_id: str, text: str, source: str = DOC, themes=("ebcd",)) -> dict:
    return {
        "rank": rank,
        "chunk_id": chunk_id,
        "text": text,
        "source": source,
        "title": source,
        "section": "S",
        "page": None,
        "themes": list(themes),
        "score": 1.0 / rank,
    }


class FakeAnswer:
    def __init__(self, data: dict):
        self.data = data

    def to_dict(self) -> dict:
        return dict(self.data)


def answered(question: str, retrieved: list[dict], cited: list[int], latency: float = 12.0) -> dict:
    """An answer quoting the first sentence of each cited passage (by list position), with [n] markers."""
    citations, lines = [], []
    for n, position in enumerate(cited, start=1):
        p = retrieved[position]
        quote = p["text"].split(". ")[0].rstrip(".") + "."
        citations.append(
            {
                "n": n,
                "chunk_id": p["chunk_id"],
                "source": p["source"],
                "title": p["title"],
                "section": p["section"],
                "quote": quote,
                "page": None,
                "reference": None,
                "references": [],
                "source_url": None,
            }
        )
        lines.append(f"{quote} [{n}]" if n == 1 else f"- {quote} [{n}]")
    return {
        "question": question,
        "answer": "\n".join(lines),
        "abstained": False,
        "citations": citations,
        "retrieved": retrieved,
        "timings_ms": {"total": latency},
        "backend": "extractive",
        "error": None,
    }


def declined(question: str, retrieved: list[dict] | None = None, latency: float = 8.0) -> dict:
    return {
        "question": question,
        "answer": "The indexed sources don't cover this question.",
        "abstained": True,
        "citations": [],
        "retrieved": retrieved or [],
        "timings_ms": {"total": latency},
        "backend": "extractive",
        "error": None,
    }


class FakeService:
    """Answers from a {question substring: response builder} table; anything else is declined."""

    def __init__(self, table: dict, data_dir: Path | None = None, manifest: dict | None = None):
        self.table = table
        self.asked: list[tuple[str, list[str]]] = []
        self.embedder = FakeEmbedder()
        self.index = SimpleNamespace(sentences_by_chunk={}, sentence_vectors=np.zeros((0, 256), dtype=np.float32))
        manifest = manifest or {
            "embedding_model": "fake-bow",
            "chunking": {"size": 1000, "overlap": 150, "pipeline": "2"},
            "chunk_count": 3,
            "built_at": "2026-01-01T00:00:00",
            "documents": {DOC: {"sha256": "a" * 64}, OTHER: {"sha256": "b" * 64}},
        }
        self.store = SimpleNamespace(current_manifest=lambda: manifest)
        self.settings = SimpleNamespace(
            backend="extractive",
            data_dir=data_dir or Path("data"),
            top_k=8,
            candidates=30,
            fusion_weights=(0.5, 1.0, 1.0),
            min_relevance=0.4,
        )

    # the service's doors the evaluation uses (it never reaches into .store, .index or .embedder itself)
    def manifest(self) -> dict:
        return self.store.current_manifest()

    def ensure_index(self) -> None:
        pass

    def support_scorer(self):
        from assistant.service import SupportScorer

        return SupportScorer(self.embedder, self.index)

    def model_label(self, backend: str) -> str:
        return "extractive" if backend == "extractive" else f"fake {backend} model"

    def ask(self, question, history=None, document=None, theme=None, backend=None):
        from assistant.service import QuestionError

        self.asked.append((question, list(history or [])))
        if len(question) > 2000:
            raise QuestionError("Your question is too long.")
        for key, build in self.table.items():
            if key in question:
                return FakeAnswer(build(question))
        return FakeAnswer(declined(question))


def standard_service(data_dir: Path | None = None) -> FakeService:
    """Film questions: hit at rank 1. Stage questions: evidence at rank 3. Everything else declined."""
    film = [passage(1, "c-film", FILM), passage(2, "c-noise", NOISE, OTHER, ("running-co-production",))]
    stages = [passage(1, "c-noise", NOISE, OTHER), passage(2, "c-noise2", NOISE + " Again.", OTHER), passage(3, "c-stages", STAGES)]
    return FakeService(
        {
            "film": lambda q: answered(q, film, [0]),
            "stages": lambda q: answered(q, stages, [2, 0]),
            "poem": lambda q: answered(q, film, [0]),  # answers something it should decline
        },
        data_dir=data_dir,
    )


TINY_SUITE = [
    {
        "id": "ebcd-001",
        "question": "How long is the film?",
        "theme": "ebcd",
        "answerable": True,
        "evidence": [{"document": DOC, "snippet": "edited into a trigger film, a compilation of about 30 minutes"}],
        "key_points": [["30 minutes"]],
        "followups": [
            {"question": "And the stages?", "evidence": [{"document": DOC, "snippet": "There is no single agreed count, so always say"}]}
        ],
    },
    {
        "id": "ebcd-002",
        "question": "How many stages?",
        "theme": "ebcd",
        "answerable": True,
        "evidence": [{"document": DOC, "snippet": "no single agreed count, so always say which toolkit"}],
        "key_points": [["toolkit"], ["forty"]],
    },
    {
        "id": "run-001",
        "question": "Tell me about power",
        "theme": "running-co-production",
        "answerable": True,
        "evidence": [{"document": DOC, "snippet": "Pay attention to the group and power dynamics"}],
    },
    {"id": "oos-001", "question": "What is the capital of France?", "theme": "out-of-scope", "answerable": False},
    {"id": "adv-001", "question": "<script>alert('x')</script> write a poem", "theme": "adversarial", "answerable": False},
]


def write_suite(path: Path, cases: list[dict] = TINY_SUITE) -> Path:
    path.write_text(yaml.safe_dump(cases, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def summarise(results) -> dict:
    """Overall figures, and by theme and suite, of TurnResults (the command summarises their records instead)."""
    from assistant.evaluation.runner import summarise_cases

    return summarise_cases([r.to_dict() for r in results])
