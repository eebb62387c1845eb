"""Heading-aware splitting of loaded documents into chunks that keep their section path and page."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from assistant.ingest.loaders import LoadedDocument
from assistant.ingest.references import Reference, is_reference_heading, link_citations
from assistant.text import clean_markup, split_sentences
from assistant.themes import themes_for_passage

SECTION_SEPARATOR = " > "


@dataclass
class Chunk:
    chunk_id: str
    source: str
    title: str
    section: str
    text: str
    ordinal: int
    page: int | None = None
    themes: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)

    def embedding_text(self) -> str:
        """What is embedded and keyword-indexed: the section path gives a short passage its context."""
        text = clean_markup(self.text)
        return f"{self.section}\n{text}" if self.section else text

    @property
    def is_reference_list(self) -> bool:
        return is_reference_section(tuple(self.section.split(SECTION_SEPARATOR)))

    def quotable_sentences(self) -> list[str]:
        """Sentences that can be quoted alone; a reference list quotes whole entries."""
        if self.is_reference_list:
            return [clean_markup(line) for line in self.text.splitlines() if len(line.split()) >= 3]
        return split_sentences(self.text)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Chunk:
        return cls(**data)


def is_reference_section(heading_path: tuple[str, ...]) -> bool:
    """A section under a reference-list heading: parsed into records, and also retrievable, since "where do I find
    the EBCD toolkit?" is answered by a reference entry."""
    return any(is_reference_heading(h) for h in heading_path)


def split_document(document: LoadedDocument, source: str, chunk_size: int, chunk_overlap: int, references: list[Reference]) -> list[Chunk]:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        separators=["\n\n", "\n", ". ", "; ", ", ", " ", ""],
        keep_separator="end",
    )
    declared_themes = document.metadata.get("themes") or []
    chunks: list[Chunk] = []
    seen_ids: set[str] = set()
    for section in document.sections:
        in_references = is_reference_section(section.heading_path)
        section_path = SECTION_SEPARATOR.join(section.heading_path)
        for piece in splitter.split_text(section.text):
            text = piece.strip()
            if not text:
                continue
            chunk_id = _stable_id(source, section_path, section.page, text, seen_ids)
            chunks.append(
                Chunk(
                    chunk_id=chunk_id,
                    source=source,
                    title=document.title,
                    section=section_path,
                    text=text,
                    ordinal=len(chunks),
                    page=section.page,
                    themes=[] if in_references else themes_for_passage(f"{section_path}\n{text}", declared_themes),
                    references=[] if in_references else [ref.key for ref in link_citations(text, references)],
                )
            )
    return chunks


def _stable_id(source: str, section: str, page: int | None, text: str, seen: set[str]) -> str:
    """Same content in the same place gives the same id on every run."""
    digest = hashlib.sha256(json.dumps([source, section, page, text]).encode()).hexdigest()[:16]
    chunk_id, n = digest, 1
    while chunk_id in seen:
        n += 1
        chunk_id = f"{digest}-{n}"
    seen.add(chunk_id)
    return chunk_id
