"""A conversation as a Markdown file: each question, its cited answer, the quoted passages and full references."""

from __future__ import annotations

import html
import re
import time

from assistant.cite import WRITTEN_BY
from assistant.themes import THEMES


def esc(text) -> str:
    """Document text made inert in Markdown/HTML viewers: no tags, no entities, no raw HTML."""
    return html.escape(str(text or ""), quote=False)


def reference_link(reference: dict | None) -> str:
    """The best link for a reference: its URL, else its DOI as a doi.org link."""
    if not reference:
        return ""
    if reference.get("url"):
        return str(reference["url"])
    if reference.get("doi"):
        return f"https://doi.org/{reference['doi']}"
    return ""


def safe_url(url: str | None) -> str:
    """Only http(s) links are written out; anything else (javascript:, data:) is dropped."""
    url = (url or "").strip()
    return url if re.match(r"^https?://[^\s<>\"'`]+$", url) else ""


def _location(citation: dict) -> str:
    parts = [citation.get("title") or citation.get("source") or ""]
    if citation.get("section"):
        parts.append(citation["section"])
    if citation.get("page"):
        parts.append(f"page {citation['page']}")
    return " > ".join(esc(p) for p in parts if p)


def _quote_block(text: str) -> str:
    return "\n".join("> " + line for line in esc(text).splitlines() or [""])


def conversation_markdown(turns: list[dict], title: str = "Conversation with the co-production assistant", exported_at: str | None = None) -> str:
    """Markdown for a conversation: `turns` holds {question, answer: Answer.to_dict(), document?, theme?}."""
    exported_at = exported_at or time.strftime("%Y-%m-%d %H:%M")
    lines = [f"# {esc(title)}", "", f"Exported {exported_at}. Answers quote the indexed sources, or were written by a language model and checked against them; check each quote against its source.", ""]
    if not turns:
        lines += ["_No questions were asked._", ""]
    all_refs: dict[str, dict] = {}
    documents: dict[str, dict] = {}
    for number, turn in enumerate(turns, start=1):
        answer = turn.get("answer") or {}
        lines += [f"## {number}. {esc(turn.get('question', ''))}", ""]
        scope = []
        if turn.get("document"):
            scope.append(f"document {esc(turn['document'])}")
        if turn.get("theme"):
            scope.append(f"theme {esc(THEMES.get(turn['theme'], turn['theme']))}")
        if scope:
            lines += [f"_Searched only: {', '.join(scope)}._", ""]
        lines += [esc(answer.get("answer", "")), ""]
        if answer.get("model") and not answer.get("abstained"):
            lines += [f"_{WRITTEN_BY.format(model=esc(answer['model']))}_", ""]
        if answer.get("notice"):
            lines += [f"_{esc(answer['notice'])}_", ""]
        citations = answer.get("citations") or []
        if citations:
            lines += ["**Sources**", ""]
        for c in citations:
            lines.append(f"**[{c['n']}] {_location(c)}**")
            lines.append("")
            lines.append(_quote_block(c.get("quote", "")))
            lines.append("")
            lines.append(f"- Document: `{esc(c.get('source'))}`" + (f" ({safe_url(c.get('source_url'))})" if safe_url(c.get("source_url")) else ""))
            for ref in c.get("references") or ([c["reference"]] if c.get("reference") else []):
                link = safe_url(reference_link(ref))
                lines.append(f"- Primary study: {esc(ref.get('text') or ref.get('title'))}" + (f" <{link}>" if link and link not in (ref.get("text") or "") else ""))
                all_refs.setdefault(ref.get("key") or ref.get("text") or link, ref)
            documents.setdefault(c.get("source"), c)
            lines.append("")
    if all_refs:
        lines += ["## References", ""]
        for ref in sorted(all_refs.values(), key=lambda r: (r.get("text") or r.get("title") or "").lower()):
            link = safe_url(reference_link(ref))
            text = esc(ref.get("text") or ref.get("title"))
            lines.append(f"- {text}" + (f" <{link}>" if link and link not in (ref.get("text") or "") else ""))
        lines.append("")
    if documents:
        lines += ["## Documents cited", ""]
        for source, c in sorted(documents.items()):
            url = safe_url(c.get("source_url"))
            lines.append(f"- {esc(c.get('title') or source)} (`{esc(source)}`)" + (f" <{url}>" if url else ""))
        lines.append("")
    return "\n".join(lines)
