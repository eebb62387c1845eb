"""Test-only checks that an answer's [n] markers are honest (the answerers build citations so that they are)."""

from __future__ import annotations

import re

from assistant.answering.cite import Citation

MARKER = re.compile(r"\[(\d{1,3})\]")


def markers_in(text: str) -> list[int]:
    return [int(m) for m in MARKER.findall(text)]


def citation_problems(answer_text: str, citations: list[Citation], retrieved_ids: set[str]) -> list[str]:
    """Every [n] must name a citation, and every citation a passage that was retrieved."""
    problems = []
    numbers = {c.n for c in citations}
    for n in markers_in(answer_text):
        if n not in numbers:
            problems.append(f"[{n}] has no citation")
    for citation in citations:
        if citation.chunk_id not in retrieved_ids:
            problems.append(f"[{citation.n}] cites {citation.chunk_id}, which was not retrieved")
    return problems
