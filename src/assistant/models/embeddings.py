"""The embedding model, loaded lazily once per process: sentence-transformers for passages, its verified ONNX export for queries."""

from __future__ import annotations

import logging
import os
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

_LOAD_LOCK = threading.Lock()
_DEFAULT_THREADS = os.cpu_count() or 1


def _set_threads(count: int) -> None:
    """Each call sets the intra-op threads it needs: batches use every core, single queries one."""
    import torch

    if torch.get_num_threads() != count:
        torch.set_num_threads(count)


class Embedder:
    """Normalised embeddings for passages and queries.

    Passages always go through LangChain's HuggingFace wrapper (sentence-transformers on torch), so
    document vectors never change. Queries go through the ONNX export in query_model_dir when it is
    there and verified (assistant.models.query_encoder): a question then never imports torch, which costs about
    4.6 s of a cold start. Without it, or if it fails, queries use torch too, with a logged reason.
    """

    def __init__(self, model_path: str, name: str, query_model_dir: Path | None = None):
        self.model_path = model_path
        self.name = name
        self.query_model_dir = Path(query_model_dir) if query_model_dir is not None else None
        self._model = None
        self._query_encoder = None
        self._query_encoder_tried = False

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

    @property
    def query_encoder(self):
        """The verified ONNX query encoder, or None (the reason logged once)."""
        if not self._query_encoder_tried:
            with _LOAD_LOCK:
                if not self._query_encoder_tried:
                    self._query_encoder = self._load_query_encoder()
                    self._query_encoder_tried = True
        return self._query_encoder

    def _load_query_encoder(self):
        if self.query_model_dir is None:
            return None
        from assistant.models.query_encoder import QueryEncoderUnavailable, get_query_encoder

        try:
            return get_query_encoder(self.query_model_dir, self.model_path, self.name)
        except QueryEncoderUnavailable as exc:
            # Absent is normal for an installation that never exported one; anything else is worth a warning.
            level = logging.INFO if not self.query_model_dir.exists() else logging.WARNING
            log.log(level, "queries are embedded with torch: %s", exc)
            return None

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        model = self.model
        _set_threads(_DEFAULT_THREADS)
        return np.asarray(model.embed_documents(texts), dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        encoder = self.query_encoder
        if encoder is not None:
            try:
                return encoder.embed([text])[0]
            except Exception as exc:  # an onnxruntime failure mid-run: answer with torch rather than fail
                log.warning("the ONNX query encoder failed (%s); queries are embedded with torch from now on", exc)
                self._query_encoder = None
        return self._torch_query(text)

    def _torch_query(self, text: str) -> np.ndarray:
        # One short query gains nothing from a second thread, and on a busy 2-core machine the
        # threads' spin-waiting made a query ~10x slower (22 ms vs 210 ms measured).
        model = self.model
        _set_threads(1)
        return np.asarray(model.embed_query(text), dtype=np.float32)

    @property
    def dimension(self) -> int:
        return len(self.embed_query("dimension"))


@lru_cache(maxsize=4)
def get_embedder(model_path: str, name: str, query_model_dir: Path | None = None) -> Embedder:
    return Embedder(model_path, name, query_model_dir)
