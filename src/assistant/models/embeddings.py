"""The embedding model, loaded lazily once per process: its verified ONNX export for passages, sentences and queries (sentence-transformers on torch without it)."""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

_LOAD_LOCK = threading.Lock()
_DEFAULT_THREADS = os.cpu_count() or 1
# Passages are run in small length-sorted batches, one batch per core, each on one intra-op thread: on a busy
# 2-core machine this was about twice as fast as batches of 32 on two intra-op threads (padding and spin-waits).
BATCH = 8
# With POOL_SENTENCES a quotable sentence's vector is the mean of its own tokens' vectors in the passage's
# forward pass: one pass instead of two (ingest of the shipped corpus 8 s instead of 37 s, one busy run). Off,
# because the answers got worse: `assistant eval` 130 of 194 turns passed instead of 141, key points 0.785
# instead of 0.868, hit@5 0.848 instead of 0.874. A pooled vector carries its passage's context (cosine to the
# sentence embedded alone: mean 0.82, min 0.20), and the answer thresholds are set on sentences embedded alone.
POOL_SENTENCES = False


def _alnum_key(text: str) -> tuple[str, list[int]]:
    """The text's letters and digits, lowercased, with each one's position in the text.

    A quotable sentence is the passage's text with list markers, line breaks and markup taken out, so it is
    found in the passage by its letters and digits alone.
    """
    chars: list[str] = []
    positions: list[int] = []
    for i, ch in enumerate(text):
        if ch.isalnum():
            chars.append(ch.lower())
            positions.append(i)
    return "".join(chars), positions


def sentence_token_spans(passage: str, offsets: np.ndarray, sentences: list[str]) -> list[tuple[int, int] | None]:
    """For each sentence, the [first, last) token rows of the passage's encoding that cover it, or None.

    None when the sentence cannot be found in the passage or lies beyond the tokens the model sees
    (passages are truncated at the model's maximum length); such a sentence is embedded on its own.
    `offsets` are the (start, end) characters of each token; special tokens have start == end.
    """
    key, positions = _alnum_key(passage)
    starts, ends = offsets[:, 0], offsets[:, 1]
    real = ends > starts
    spans: list[tuple[int, int] | None] = []
    cursor = 0
    for sentence in sentences:
        wanted, _ = _alnum_key(sentence)
        found = key.find(wanted, cursor) if wanted else -1
        if found < 0 and wanted:
            found = key.find(wanted)
        if found < 0:
            spans.append(None)
            continue
        cursor = found + 1
        first_char, end_char = positions[found], positions[found + len(wanted) - 1] + 1
        inside = np.flatnonzero(real & (starts < end_char) & (ends > first_char))
        spans.append((int(inside[0]), int(inside[-1]) + 1) if len(inside) else None)
    return spans


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


class _OnnxDocumentEncoder:
    """Token vectors for batches of passages from the verified ONNX export, run on every core at once.

    It shares the query encoder's session and tokenizer (one intra-op thread, truncation at the model's
    maximum length, no padding): a second session of the same 90 MB model cost 0.37 s and its memory.
    onnxruntime's run and the tokenizer's encode are safe to call from several threads.
    """

    def __init__(self, query_encoder, workers: int):
        self._session = query_encoder._session
        self._tokenizer = query_encoder._tokenizer
        self._inputs = query_encoder._inputs
        self.workers = max(1, workers)

    def token_vectors(self, texts: list[str]):
        """(index, token vectors [n_tokens, d], character offsets [n_tokens, 2]) per text, in no fixed order."""
        from assistant.models.files import padded_feed

        encodings = self._tokenizer.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        batches = [order[k : k + BATCH] for k in range(0, len(order), BATCH)]

        def run(batch: list[int]):
            feed = padded_feed([encodings[i] for i in batch], self._inputs)
            hidden = self._session.run(None, feed)[0].astype(np.float32, copy=False)
            return [
                (i, hidden[row, : len(encodings[i].ids)], np.asarray(encodings[i].offsets, dtype=np.int64)) for row, i in enumerate(batch)
            ]

        if self.workers == 1 or len(batches) == 1:
            for batch in batches:
                yield from run(batch)
            return
        with ThreadPoolExecutor(self.workers) as pool:  # onnxruntime releases the GIL while it runs
            for results in pool.map(run, batches):
                yield from results


class _TorchDocumentEncoder:
    """The same token vectors from sentence-transformers on torch, when the ONNX export is not there."""

    def __init__(self, client):
        self._client = client

    def token_vectors(self, texts: list[str]):
        _set_threads(_DEFAULT_THREADS)
        tokens = self._client.encode(texts, output_value="token_embeddings", batch_size=32, convert_to_numpy=False)
        offsets = self._client.tokenizer(
            texts, return_offsets_mapping=True, truncation=True, max_length=self._client.max_seq_length, add_special_tokens=True
        )["offset_mapping"]
        for i, (vectors, spans) in enumerate(zip(tokens, offsets)):
            yield i, vectors.float().numpy(), np.asarray(spans, dtype=np.int64)[: len(vectors)]


def _set_threads(count: int) -> None:
    """Each call sets the intra-op threads it needs: batches use every core, single queries one."""
    import torch

    if torch.get_num_threads() != count:
        torch.set_num_threads(count)


class Embedder:
    """Normalised embeddings for passages and queries.

    Queries go through the ONNX export in query_model_dir when it is there and verified
    (assistant.models.query_encoder): a question then never imports torch, which costs about 4.6 s of a cold
    start. Passages and their sentences go through the same export (about twice as fast as torch here, the
    same vectors to within 2e-7), with sentence vectors pooled from the passage's pass (embed_chunks).
    Without the export, or if it fails, both use sentence-transformers on torch, with a logged reason.
    """

    def __init__(self, model_path: str, name: str, query_model_dir: Path | None = None):
        self.model_path = model_path
        self.name = name
        self.query_model_dir = Path(query_model_dir) if query_model_dir is not None else None
        self._model: Any = None  # langchain_huggingface's HuggingFaceEmbeddings, imported on first use
        self._query_encoder = None
        self._query_encoder_tried = False
        self._document_encoder: _OnnxDocumentEncoder | _TorchDocumentEncoder | None = None

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

    @property
    def document_encoder(self):
        """Token vectors for passages: the verified ONNX export when there is one (the same vectors as torch
        to within 2e-7), else sentence-transformers."""
        if self._document_encoder is None:
            encoder: _OnnxDocumentEncoder | _TorchDocumentEncoder | None = None
            if self.query_encoder is not None:
                try:
                    encoder = _OnnxDocumentEncoder(self.query_encoder, _DEFAULT_THREADS)
                except Exception as exc:  # noqa: BLE001 - onnxruntime errors have many types; torch still works
                    log.warning("passages are embedded with torch: the ONNX export cannot run them (%s)", exc)
            if encoder is None:
                encoder = _TorchDocumentEncoder(self.model._client)
            with _LOAD_LOCK:
                if self._document_encoder is None:
                    self._document_encoder = encoder
        return self._document_encoder

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        """Mean-pooled, normalised vectors, as sentence-transformers computes them (newlines read as spaces)."""
        vectors, _ = self.embed_chunks(texts, [[] for _ in texts])
        return vectors

    def embed_chunks(self, passages: list[str], sentences: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
        """(passage vectors, sentence vectors) for passages and each one's quotable sentences, in order.

        With POOL_SENTENCES a sentence's vector comes from its passage's forward pass: the mean of the vectors
        of the tokens that cover it. A sentence that cannot be placed in its passage (or lies past the
        truncation) is embedded on its own, as every sentence is without POOL_SENTENCES.
        """
        if len(passages) != len(sentences):
            raise ValueError(f"{len(passages)} passages but {len(sentences)} lists of sentences")
        encoder = self.document_encoder
        try:
            return self._embed_chunks(encoder, passages, sentences)
        except Exception as exc:
            if not isinstance(encoder, _OnnxDocumentEncoder):
                raise
            # An onnxruntime failure mid-run: index with torch rather than fail the document.
            log.warning("the ONNX export failed on passages (%s); they are embedded with torch from now on", exc)
            self._document_encoder = _TorchDocumentEncoder(self.model._client)
            return self._embed_chunks(self._document_encoder, passages, sentences)

    def _embed_chunks(self, encoder, passages: list[str], sentences: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
        offsets = np.cumsum([0] + [len(group) for group in sentences])
        if not passages:
            return np.zeros((0, self.dimension), np.float32), np.zeros((0, self.dimension), np.float32)
        texts = [p.replace("\n", " ") for p in passages]  # as LangChain's HuggingFaceEmbeddings does
        passage_vectors: np.ndarray | None = None
        sentence_vectors: np.ndarray | None = None
        alone: list[int] = []
        for i, tokens, spans in encoder.token_vectors(texts):
            if passage_vectors is None or sentence_vectors is None:
                passage_vectors = np.zeros((len(texts), tokens.shape[1]), np.float32)
                sentence_vectors = np.zeros((int(offsets[-1]), tokens.shape[1]), np.float32)
            passage_vectors[i] = tokens.mean(axis=0)
            if not sentences[i]:
                continue
            if not POOL_SENTENCES:
                alone.extend(range(offsets[i], offsets[i + 1]))
                continue
            for j, span in enumerate(sentence_token_spans(texts[i], spans, sentences[i])):
                if span is None:
                    alone.append(int(offsets[i]) + j)
                else:
                    sentence_vectors[offsets[i] + j] = tokens[span[0] : span[1]].mean(axis=0)
        assert passage_vectors is not None and sentence_vectors is not None  # passages is not empty
        if alone:
            flat = [s for group in sentences for s in group]
            texts_alone = [flat[k].replace("\n", " ") for k in alone]
            for i, tokens, _ in encoder.token_vectors(texts_alone):
                sentence_vectors[alone[i]] = tokens.mean(axis=0)
        return _normalise(passage_vectors), _normalise(sentence_vectors)

    def embed_query(self, text: str) -> np.ndarray:
        encoder = self.query_encoder
        if encoder is not None:
            try:
                return encoder.embed([text])[0]
            except Exception as exc:  # noqa: BLE001 - an onnxruntime failure mid-run: answer with torch rather than fail
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
