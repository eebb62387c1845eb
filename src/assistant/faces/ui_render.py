"""The chat's HTML: answers with [n] markers that open their cards, source cards, notices and suggested follow-ups."""

from __future__ import annotations

import re
from urllib.parse import urlparse

import gradio as gr
from gradio.components.chatbot import MetadataDict

from assistant.faces.export import facilitator_notice, reference_label, reference_link, safe_url
from assistant.faces.ui_library import link
from assistant.service import WRITTEN_BY
from assistant.text import escape_html as esc

# -- rendering (pure functions, each escapes the document text it shows) -------------------------


def _leaf(section: str) -> str:
    parts = [p.strip() for p in re.split(r"\s*>\s*", section or "") if p.strip()]
    return parts[-1] if parts else ""


def _plain_lines(text: str) -> str:
    """Passage text as written, with Markdown link targets dropped (labels kept) and its line breaks."""
    text = re.sub(r"\[([^\]]+)\]\((https?://[^)\s]+)\)", r"\1", text or "")
    return re.sub(r"<(https?://[^>\s]+)>", r"\1", text)


def _quote_pattern(quote: str) -> str:
    """A regex for a quoted sentence inside its passage: any whitespace between words, and the
    emphasis marks (*, _, `) that quoting removed allowed between characters."""
    words = re.findall(r"\S+", quote or "")
    return r"[*_`]*\s+[*_`]*".join("[*_`]*".join(re.escape(ch) for ch in word) for word in words)


def highlight(passage: str, quote: str) -> str:
    """The passage as escaped HTML (one block, no blank lines) with the quoted sentence in <mark>."""
    plain = _plain_lines(passage)
    pattern = _quote_pattern(quote)
    match = (re.search(pattern, plain) or re.search(pattern, plain, re.IGNORECASE)) if pattern else None
    if match:
        body = esc(plain[: match.start()]) + "<mark>" + esc(match.group(0)) + "</mark>" + esc(plain[match.end() :])
    else:
        body = "<mark>" + esc(quote) + "</mark>" + ("<br><br>" + esc(plain) if plain else "")
    body = re.sub(r"\n\s*\n+", "<br><br>", body.strip())
    return body.replace("\n", "<br>")


_link = link


def source_card(citation, passage_text: str | None) -> str:
    """A source card: document, section path, page, the passage with the quote marked, the primary study."""
    meta = [f"<strong>Document:</strong> {esc(citation.title)} (<code>{esc(citation.source)}</code>)"]
    if citation.section:
        meta.append(f"<strong>Section:</strong> {esc(citation.section)}")
    if citation.page:
        meta.append(f"<strong>Page:</strong> {int(citation.page)}")
    if citation.source_url and safe_url(citation.source_url):
        meta.append(f"<strong>Original:</strong> {_link(citation.source_url, citation.source_url)}")
    parts = [
        '<div class="source-card">',
        f'<p class="card-meta">{"<br>".join(meta)}</p>',
        f"<blockquote>{highlight(passage_text or citation.quote, citation.quote)}</blockquote>",
    ]
    references = citation.references or ([citation.reference] if citation.reference else [])
    for ref in references:
        link = reference_link(ref)
        label = f"doi:{ref['doi']}" if ref.get("doi") and not ref.get("url") else f"{urlparse(link).netloc or 'link'} ↗"
        linked = _link(link, label) if link else ""
        parts.append(f"<p><strong>{reference_label(ref)}:</strong> {esc(ref.get('text') or ref.get('title'))} {linked}</p>")
    if not references:
        parts.append("<p><em>No primary study is cited next to this sentence; the document itself is the source.</em></p>")
    parts.append("</div>")
    return "".join(parts)


def answer_html(text: str) -> str:
    """The answer as escaped Markdown, with [n] markers that open their cards and any sentence the sources do
    not support marked as such. Quoted in-text citations stay plain text: a Markdown link keeps only its label
    and every other bracket is an entity, so "(NESTA 2013)" can never become a link."""
    from assistant.service import UNSUPPORTED_NOTE

    text = re.sub(r"\[([^\]\n]*)\]\([^)\s]*\)", r"\1", text or "")
    body = esc(text).replace("[", "&#91;").replace("]", "&#93;")
    body = re.sub(r"&#91;(\d{1,3})&#93;", r'<span class="cite">[\1]</span>', body)
    note = re.escape(esc(UNSUPPORTED_NOTE))
    return re.sub(rf"⚠ (.*?) {note}", rf'<span class="unsupported">⚠ \1 <em>{esc(UNSUPPORTED_NOTE)}</em></span>', body)


def notice_html(answer) -> str:
    """A notice about the answer (a model's answer replaced by quotes, sentences flagged), shown before it."""
    notice = facilitator_notice({"notice": answer.notice, "fallback": answer.fallback})
    return f'<p class="notice">{esc(notice)}</p>' if notice else ""


def provenance(answer) -> str:
    """Who wrote the answer and how it was checked (after the answer)."""
    if answer.model and not answer.abstained:
        return f'<p class="provenance"><em>{WRITTEN_BY.format(model=esc(answer.model))}</em></p>'
    return ""


def answer_message(answer) -> str:
    return notice_html(answer) + answer_html(answer.text) + provenance(answer)


# Next questions a facilitator would ask, by the theme of the passages an answer drew on (each answered by the corpus).
FOLLOW_UPS: dict[str, list[str]] = {
    "power-dynamics": [
        "How can we make patients feel safe to speak openly in a mixed group?",
        "How can co-facilitation with people with lived experience balance power?",
    ],
    "recruitment": [
        "How do we reach seldom-heard groups rather than the usual faces?",
        "How should we pay or reimburse patient partners for their time?",
    ],
    "measurement": [
        "How can we show the impact of co-production on the quality of care?",
        "What should we measure before and after a co-design project?",
    ],
    "running-co-production": [
        "What should senior leaders do to make co-production lead to real change?",
        "How do we keep patient partners involved after the first meeting?",
    ],
    "ebcd": ["What are the stages of experience-based co-design?", "How is a trigger film made and used in EBCD?"],
    "always-events": ["What is an Always Event and how do we choose one?", "How do we test an Always Event on a ward?"],
    "principles": ["What are the core principles of co-production?", "What is the difference between engagement and co-production?"],
    "payment": ["How should we pay or reimburse patient partners for their time?", "Can payment affect the benefits of patient partners?"],
}
FOLLOW_UP_ORDER = (
    "power-dynamics",
    "recruitment",
    "measurement",
    "running-co-production",
    "ebcd",
    "always-events",
    "principles",
    "payment",
)


def suggest_followups(answer, asked: list[str]) -> list[str]:
    """Up to three next questions on the themes the answer drew on, then on other themes; none after a decline."""
    if answer.abstained or not answer.citations:
        return []
    asked_lower = {q.strip().lower() for q in asked}
    own = list(dict.fromkeys(t for p in answer.passages[:4] for t in p.chunk.themes if t in FOLLOW_UPS))
    candidates = [q for t in own for q in FOLLOW_UPS[t]] + [FOLLOW_UPS[t][0] for t in FOLLOW_UP_ORDER if t not in own]
    suggestions: list[str] = []
    for question in candidates:
        if question.lower() not in asked_lower and question not in suggestions:
            suggestions.append(question)
    return suggestions[:3]
    return suggestions


def turn_messages(number: int, turn: dict) -> list[gr.ChatMessage]:
    """The chat messages of one turn: the question, the answer, and one card per citation."""
    messages = [gr.ChatMessage(role="user", content=esc(turn["question"]))]
    if turn.get("error"):
        messages.append(gr.ChatMessage(role="assistant", content=esc(turn["error"])))
        return messages
    answer = turn["answer_obj"]
    messages.append(gr.ChatMessage(role="assistant", content=answer_message(answer)))
    passages = {p.chunk.chunk_id: p.chunk.text for p in answer.passages}
    if answer.citations:
        parent = f"sources-{number}"
        messages.append(
            gr.ChatMessage(
                role="assistant",
                content="Select a number in the answer, or open a card here, to see the passage with the quoted sentence highlighted and the study it cites.",
                metadata={
                    "title": f"Sources for answer {number} ({len(answer.citations)} card{'s' if len(answer.citations) != 1 else ''})",
                    "id": parent,
                },
            )
        )
        for c in answer.citations:
            where = esc(c.title) + (f" › {esc(_leaf(c.section))}" if c.section else "")
            metadata: MetadataDict = {"title": f"[{c.n}] {where}", "id": f"{parent}-{c.n}", "parent_id": parent, "status": "done"}
            if c.page:
                metadata["log"] = f"page {int(c.page)}"
            messages.append(gr.ChatMessage(role="assistant", content=source_card(c, passages.get(c.chunk_id)), metadata=metadata))
    suggestions = turn.get("suggestions") or []
    if suggestions:  # Gradio shows the options of the last top-level message of the latest answer
        top_level = [m for m in messages if not (m.metadata or {}).get("parent_id")]
        top_level[-1].options = [{"value": s, "label": s} for s in suggestions]
    return messages


def conversation(turns: list[dict]) -> tuple[list[gr.ChatMessage], list[int]]:
    """All messages, and for each message the number (1-based) of the turn it belongs to."""
    messages, owners = [], []
    for number, turn in enumerate(turns, start=1):
        these = turn_messages(number, turn)
        messages += these
        owners += [number] * len(these)
    return messages, owners
