"""The sentence-transformers embedding model, loaded lazily once per process."""

from __future__ import annotations

import os
import threading
from functools import lru_cache

import numpy as np

_LOAD_LOCK = threading.Lock()
_DEFAULT_THREADS = os.cpu_count() or 1


def _set_threads(count: int) -> None:
    """Each call sets the intra-op threads it needs: batches use every core, single queries one."""
    import torch

    if torch.get_num_threads() != count:
        torch.set_num_threads(count)


class Embedder:
    """Normalised embeddings for passages and queries, through LangChain's HuggingFace wrapper."""

    def __init__(self, model_path: str, name: str):
        self.model_path = model_path
        self.name = name
        self._model = None

    @property
    def model(self):
        if self._model is None:
            with _LOAD_LOCK:
                if self._model is None:
                    from langchain_huggingface import HuggingFaceEmbeddings

                    self._model = HuggingFaceEmbeddings(
                        model_name=self.model_path,
                        model_kwargs={"device": "cpu", "local_files_only": True},
                        encode_kwargs={"normalize_embeddings": True, "batch_size": 32},
                    )
        return self._model

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        model = self.model
        _set_threads(_DEFAULT_THREADS)
        return np.asarray(model.embed_documents(texts), dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        # One short query gains nothing from a second thread, and on a busy 2-core machine the
        # threads' spin-waiting made a query ~10x slower (22 ms vs 210 ms measured).
        model = self.model
        _set_threads(1)
        return np.asarray(model.embed_query(text), dtype=np.float32)

    @property
    def dimension(self) -> int:
        return len(self.model.embed_query("dimension"))


@lru_cache(maxsize=4)
def get_embedder(model_path: str, name: str) -> Embedder:
    return Embedder(model_path, name)
