"""Incremental ingestion: finds files, skips unchanged ones by hash, and writes only new or changed documents into the index."""

from __future__ import annotations

import fcntl
import hashlib
import os
import sys
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from assistant.index.errors import IndexMissing
from assistant.index.hidden import hidden_sources
from assistant.index.records import DocumentRecord, tolerant_manifest
from assistant.index.store import IndexStore, IndexWriter
from assistant.ingest.loaders import SUPPORTED_SUFFIXES, LoadError, check_regular_file, load
from assistant.ingest.references import parse_references
from assistant.ingest.splitter import is_reference_section, split_document
from assistant.models.embeddings import Embedder

# Bump when loading, splitting or tagging changes, so cached records are rebuilt.
PIPELINE_VERSION = "3"  # 3: validated front matter, primary evidence only for the shipped corpus

Progress = Callable[[int, int, str], None]


@dataclass
class FileOutcome:
    source: str
    path: str
    status: str  # added | updated | unchanged | removed | failed | skipped
    chunks: int = 0
    message: str = ""


@dataclass
class IngestReport:
    outcomes: list[FileOutcome] = field(default_factory=list)
    generation: str | None = None  # the stamp of the index after this run
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def failures(self) -> list[FileOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    def summary(self) -> str:
        parts = [f"{self.count(s)} {s}" for s in ("added", "updated", "unchanged", "removed", "failed", "skipped") if self.count(s)]
        return ", ".join(parts) or "nothing to index"


@dataclass
class IngestOptions:
    chunk_size: int
    chunk_overlap: int
    max_bytes: int
    corpus_dir: Path
    uploads_dir: Path


def source_id(path: Path, options: IngestOptions) -> str:
    """A document's id: its path inside the corpus, 'uploads/<name>' for uploads, else its absolute path."""
    resolved = Path(os.path.realpath(path))
    for root, prefix in ((options.uploads_dir, "uploads/"), (options.corpus_dir, "")):
        try:
            return prefix + resolved.relative_to(os.path.realpath(root)).as_posix()
        except ValueError:
            continue
    return resolved.as_posix()


def is_shipped(path: Path, options: IngestOptions) -> bool:
    """Whether a file belongs to the corpus folder (and is not an upload): only those may be primary evidence."""
    resolved = Path(os.path.realpath(path))
    corpus, uploads = Path(os.path.realpath(options.corpus_dir)), Path(os.path.realpath(options.uploads_dir))
    return corpus in resolved.parents and uploads not in resolved.parents


def collect_files(paths: Iterable[Path]) -> tuple[list[Path], list[FileOutcome]]:
    """Supported files under the given paths; anything that cannot be read is reported with the path as given."""
    files: list[Path] = []
    problems: list[FileOutcome] = []

    def refuse(path: Path, message: str) -> None:
        problems.append(FileOutcome(path.name or str(path), str(path), "failed", message=message))

    def not_readable(path: Path) -> str:
        try:
            check_regular_file(path)
        except LoadError as exc:
            return str(exc)
        return "it is not a regular file"

    for path in paths:
        path = Path(path)
        if path.is_dir():
            try:
                candidates = sorted(path.rglob("*"))
            except OSError as exc:
                refuse(path, f"the folder could not be read: {exc.strerror or exc}")
                continue
            for candidate in candidates:
                if any(part.startswith(".") for part in candidate.relative_to(path).parts):
                    continue
                if candidate.suffix.lower() not in SUPPORTED_SUFFIXES:
                    continue
                if candidate.is_file():
                    files.append(candidate)
                elif not candidate.is_dir():
                    refuse(candidate, not_readable(candidate))  # FIFOs, broken or looping links: never silently skipped
        elif path.is_file():
            if path.suffix.lower() in SUPPORTED_SUFFIXES:
                files.append(path)
            else:
                refuse(path, f"unsupported file type '{path.suffix or path.name}'; supported: {', '.join(SUPPORTED_SUFFIXES)}")
        elif not os.path.lexists(path):
            refuse(path, "no such file or folder")
        else:
            refuse(path, not_readable(path))
    unique: dict[str, Path] = {}
    for candidate in files:
        unique.setdefault(os.path.realpath(candidate), Path(os.path.realpath(candidate)))
    return list(unique.values()), problems


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def record_key(content_sha: str, source: str, options: IngestOptions, model_name: str) -> str:
    basis = "|".join([content_sha, source, model_name, str(options.chunk_size), str(options.chunk_overlap), PIPELINE_VERSION])
    return hashlib.sha256(basis.encode()).hexdigest()[:32]


def process_file(path: Path, source: str, content_sha: str, options: IngestOptions, embedder: Embedder) -> DocumentRecord:
    """Load, split, tag and embed one document."""
    document = load(path, max_bytes=options.max_bytes)
    try:
        size = path.stat().st_size
    except FileNotFoundError as exc:
        raise LoadError("the file disappeared while it was being indexed") from exc
    warnings = list(document.warnings)
    if document.metadata.get("evidence") == "primary" and not is_shipped(path, options):
        # Primary evidence outranks everything else in retrieval; a document cannot promote itself.
        document.metadata = {k: v for k, v in document.metadata.items() if k != "evidence"}
        warnings.append("'evidence: primary' ignored: only the shipped corpus is ranked as primary evidence")
    reference_text = "\n\n".join(s.text for s in document.sections if is_reference_section(s.heading_path))
    references = parse_references(reference_text) if reference_text else []
    chunks = split_document(document, source, options.chunk_size, options.chunk_overlap, references)
    if not chunks:
        raise LoadError("no indexable text was found")
    sentences = [(c.chunk_id, s) for c in chunks for s in c.quotable_sentences()]
    chunk_vectors = embedder.embed_documents([c.embedding_text() for c in chunks])
    sentence_vectors = (
        embedder.embed_documents([s for _, s in sentences]) if sentences else np.zeros((0, chunk_vectors.shape[1]), np.float32)
    )
    now = time.strftime("%Y-%m-%dT%H:%M:%S")
    entry = {
        "source": source,
        "path": str(path),
        "sha256": content_sha,
        "size": size,
        "title": document.title,
        "short_title": str(document.metadata.get("short_title") or document.title),
        "chunks": len(chunks),
        "themes": sorted({t for c in chunks for t in c.themes}),
        "metadata": {k: v for k, v in document.metadata.items() if isinstance(v, (str, int, float, list))},
        "warnings": warnings,
        "added_at": now,
        "indexed_at": now,
    }
    return DocumentRecord(entry, chunks, chunk_vectors, sentences, sentence_vectors, [r.to_dict() for r in references])


@contextmanager
def index_lock(index_dir: Path, on_wait: Callable[[str], None] | None = None):
    """One writer at a time (the UI and the CLI may both ingest); a waiting writer says why it waits."""
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / ".lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            who = f" (process {holder})" if holder.isdigit() else ""
            message = (
                f"Another ingest{who} is updating the index in {index_dir}; waiting for it to finish "
                "(the UI's Library tab or another `assistant ingest`)..."
            )
            (on_wait or _print_wait)(message)
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)


def _print_wait(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _under(path: str, roots: list[Path]) -> bool:
    resolved = Path(os.path.realpath(path))
    return any(resolved == r or r in resolved.parents for r in roots)


def ingest(
    paths: list[Path],
    store: IndexStore,
    embedder: Embedder,
    options: IngestOptions,
    rebuild: bool = False,
    remove_sources: Iterable[str] = (),
    progress: Progress | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> IngestReport:
    """Bring the index in line with the files under `paths`: only new and changed documents are written,
    and readers keep the previous version of each document until its new one is committed."""
    started = time.perf_counter()
    report = IngestReport()
    with index_lock(store.index_dir, on_wait), store.writer(rebuild) as writer:
        previous = tolerant_manifest(
            {**(writer.manifest["meta"] or {}), "documents": {s: d["entry"] for s, d in writer.manifest["documents"].items()}}
        )
        previous_docs: dict[str, dict] = previous.get("documents", {})
        committed_keys = {s: d["key"] for s, d in writer.manifest["documents"].items()}
        settings_changed = previous.get("embedding_model") not in (None, embedder.name) or previous.get("chunking") not in (
            None,
            {"size": options.chunk_size, "overlap": options.chunk_overlap, "pipeline": PIPELINE_VERSION},
        )
        files, problems = collect_files(paths)
        report.outcomes.extend(problems)
        roots = [Path(os.path.realpath(p)) for p in paths]
        records: dict[str, tuple[str, DocumentRecord]] = {}

        removals = set(remove_sources) | hidden_sources(store.index_dir.parent)  # hidden in the library: stay out
        work: list[tuple[Path, str]] = [(path, source_id(path, options)) for path in files]  # realpath never raises on loops
        work = [(path, source) for path, source in work if source not in removals]
        scanned_sources = {source for _, source in work}
        # Documents outside this run's paths stay as they are, re-embedded only if settings changed.
        for source, entry in previous_docs.items():
            if source in scanned_sources or source in removals:
                continue
            if _under(str(entry.get("path", "")), roots) and not Path(str(entry.get("path", ""))).exists():
                report.outcomes.append(FileOutcome(source, entry["path"], "removed", message="file no longer exists"))
                continue
            key = record_key(entry["sha256"], source, options, embedder.name)
            record = None if rebuild else writer.record(key)
            if record is not None:
                records[source] = (key, record)
                writer.stage(key, record)
            elif Path(entry["path"]).exists():
                work.append((Path(entry["path"]), source))
            else:
                report.outcomes.append(
                    FileOutcome(source, entry["path"], "removed", message="file missing; could not re-index with new settings")
                )
        for source in removals & set(previous_docs):
            report.outcomes.append(FileOutcome(source, previous_docs[source]["path"], "removed", message="removed on request"))

        bar = _progress_bar(len(work)) if progress is None else None
        for done, (path, source) in enumerate(work, start=1):
            if progress:
                progress(done - 1, len(work), path.name)
            try:
                outcome = _index_one(path, source, previous_docs.get(source), writer, embedder, options, rebuild, records)
            except Exception as exc:  # one file's unexpected failure is that file's FAILED line, never the batch's
                if isinstance(exc, IndexMissing):
                    raise  # the store itself is unreachable: the whole run stops, nothing committed
                message = f"could not be indexed ({exc.__class__.__name__}: {exc})"
                records.pop(source, None)
                outcome = _keep_previous(source, path, previous_docs.get(source), writer, options, embedder, records, message)
            report.outcomes.append(outcome)
            if bar is not None:
                bar.set_postfix_str(path.name[-40:])
                bar.update(1)
        if bar is not None:
            bar.close()
        if progress:
            progress(len(work), len(work), "")

        changed = (
            any(o.status in ("added", "updated", "removed") for o in report.outcomes)
            or {s: k for s, (k, _) in records.items()} != committed_keys
        )
        if changed or rebuild or settings_changed or not writer.tables_match():
            meta = {
                "format": 2,
                "embedding_model": embedder.name,
                "chunking": {"size": options.chunk_size, "overlap": options.chunk_overlap, "pipeline": PIPELINE_VERSION},
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
            report.generation = writer.commit(records, meta)
        else:
            report.generation = writer.publish_committed()
        store.cache.prune({key for key, _ in records.values()})
    report.seconds = time.perf_counter() - started
    return report


def _index_one(path, source, previous_entry, writer: IndexWriter, embedder, options, rebuild, records) -> FileOutcome:
    try:
        check_regular_file(path)
        content_sha = file_sha256(path)
    except LoadError as exc:
        return _keep_previous(source, path, previous_entry, writer, options, embedder, records, str(exc))
    except FileNotFoundError:
        return _keep_previous(
            source, path, previous_entry, writer, options, embedder, records, "the file disappeared before it could be read"
        )
    except OSError as exc:
        return _keep_previous(
            source, path, previous_entry, writer, options, embedder, records, f"cannot read the file: {exc.strerror or exc}"
        )
    key = record_key(content_sha, source, options, embedder.name)
    unchanged = previous_entry is not None and previous_entry["sha256"] == content_sha
    record = None if rebuild else writer.record(key)
    if record is not None:
        status = "unchanged" if unchanged else ("updated" if previous_entry else "added")
    else:
        try:
            record = process_file(path, source, content_sha, options, embedder)
        except LoadError as exc:
            return _keep_previous(source, path, previous_entry, writer, options, embedder, records, str(exc))
        if previous_entry:
            record.manifest_entry["added_at"] = previous_entry.get("added_at", record.manifest_entry["added_at"])
        writer.store.cache.put(key, record)
        status = "updated" if previous_entry and not unchanged else ("unchanged" if unchanged else "added")
    records[source] = (key, record)
    writer.stage(key, record)
    return FileOutcome(source, str(path), status, chunks=len(record.chunks), message="; ".join(record.manifest_entry.get("warnings", [])))


def _keep_previous(source, path, previous_entry, writer: IndexWriter, options, embedder, records, message) -> FileOutcome:
    """A file that fails now keeps its last good version in the index, if it had one."""
    if previous_entry:
        key = record_key(previous_entry["sha256"], source, options, embedder.name)
        record = writer.record(key)
        if record is not None:
            records[source] = (key, record)
            writer.stage(key, record)
            message += " (the previously indexed version is kept)"
    return FileOutcome(source, str(path), "failed", message=message)


def _progress_bar(total: int):
    from tqdm import tqdm

    return tqdm(total=total, unit="file", desc="Indexing", disable=total == 0)
