"""The facilitator chat UI: a Gradio Blocks app that is a thin client of AssistantService."""

from __future__ import annotations

import html
import ipaddress
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import gradio as gr

from assistant.cite import WRITTEN_BY
from assistant.export import conversation_markdown, esc, reference_link, safe_url
from assistant.feedback import FeedbackStore
from assistant.themes import THEMES

CHAT_CONCURRENCY = 8  # answers computed at once; more wait in the queue
QUEUE_SIZE = 64
STREAM_WORDS = 3  # words per streamed update
STREAM_PAUSE = 0.02  # seconds between updates: visibly streamed, and other users' threads get the CPU
DRAFT_INTERVAL = 0.15  # seconds between redraws of a model's draft (each redraw re-sends the conversation)
WHILE_WRITING = "<p><em>Quoted from the sources while the model writes its answer:</em></p>"
BACKEND_LABELS = {
    "extractive": "Quotes only (extractive)",
    "local": "Local model (on this computer)",
    "ollama": "Ollama server",
    "openai": "OpenAI-compatible server",
}
AUTH_ENV = "ASSISTANT_AUTH"
UPLOAD_TYPES = "PDF, DOCX, HTML, Markdown or plain text"
REVIEW_SOURCE = "review/co-production-and-quality-improvement-2020.md"

# One starter per topic theme, worded as facilitators ask.
STARTERS: list[tuple[str, str]] = [
    ("running-co-production", "What should senior leaders do to make co-production lead to real change?"),
    ("power-dynamics", "How can a facilitator stop clinicians dominating a co-design workshop?"),
    ("recruitment", "How do we reach seldom-heard groups rather than the usual faces?"),
    ("measurement", "How can we show the impact of co-production on the quality of care?"),
]

CSS = """
.gradio-container { max-width: 1100px !important; margin: 0 auto; }
#app-title h1 { font-size: 1.5rem; margin: 0.2em 0; }
#app-title p { margin: 0.2em 0; }
.cite { font-weight: 600; color: #0b3d91; white-space: nowrap; }
.dark .cite { color: #9cc3ff; }
.source-card { font-size: 0.95rem; line-height: 1.5; overflow-wrap: anywhere; color: var(--body-text-color) !important; }
.source-card .card-meta { margin: 0 0 0.4em 0; }
.source-card blockquote { margin: 0.4em 0; padding: 0.4em 0.7em; border-left: 4px solid #0b3d91;
  background: #f4f6fa; color: #111827 !important; max-height: 22em; overflow-y: auto; }
.source-card mark { background: #ffe066; color: #000; padding: 0 0.1em; }
.dark .source-card blockquote { background: #1f2430; color: #f0f0f0 !important; border-left-color: #9cc3ff; }
.source-card a { color: #0b3d91; text-decoration: underline; }
.dark .source-card a { color: #9cc3ff; }
#feedback-status, #upload-report { overflow-wrap: anywhere; }
.unsupported { background: #fff3cd; color: #5c3c00; }
.dark .unsupported { background: #4a3b00; color: #ffe8a3; }
.provenance { font-size: 0.85rem; opacity: 0.85; margin-top: 0.5em; }
@media (max-width: 480px) {
  .gradio-container { padding: 4px !important; }
  #app-title h1 { font-size: 1.2rem; }
}
"""


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


def _link(url: str, label: str) -> str:
    url = safe_url(url)
    if not url:
        return ""
    return f'<a href="{html.escape(url, quote=True)}" target="_blank" rel="noopener noreferrer">{esc(label)}</a>'


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
        parts.append(f"<p><strong>Primary study:</strong> {esc(ref.get('text') or ref.get('title'))} {linked}</p>")
    if not references:
        parts.append("<p><em>No primary study is cited next to this sentence; the document itself is the source.</em></p>")
    parts.append("</div>")
    return "".join(parts)


def answer_html(text: str) -> str:
    """The answer as escaped Markdown, with [n] markers styled so they read as links to the cards
    and any sentence the sources do not support marked as such."""
    from assistant.generate import UNSUPPORTED_NOTE

    body = re.sub(r"\[(\d{1,3})\]", r'<span class="cite">[\1]</span>', esc(text))
    note = re.escape(esc(UNSUPPORTED_NOTE))
    return re.sub(rf"⚠ (.*?) {note}", rf'<span class="unsupported">⚠ \1 <em>{esc(UNSUPPORTED_NOTE)}</em></span>', body)


def provenance(answer) -> str:
    """Who wrote the answer and how it was checked, then any notice (fallback, flagged sentences)."""
    lines = []
    if answer.model and not answer.abstained:
        lines.append(WRITTEN_BY.format(model=esc(answer.model)))
    if answer.notice:
        lines.append(esc(answer.notice))
    return "".join(f'<p class="provenance"><em>{line}</em></p>' for line in lines)


def suggest_followups(answer, asked: list[str]) -> list[str]:
    """Deterministic next questions: the sections the answer drew on, then an unasked starter."""
    suggestions: list[str] = []
    sources = answer.citations or [type("P", (), {"section": p.chunk.section})() for p in answer.passages[:3]]
    for item in sources:
        leaf = _leaf(item.section)
        if leaf and len(leaf) < 90 and leaf.lower() not in ("references", "introduction"):
            question = f'Tell me more about "{leaf}"'
            if question not in suggestions and question not in asked:
                suggestions.append(question)
        if len(suggestions) == 2:
            break
    themes = {t for p in answer.passages[:3] for t in p.chunk.themes}
    for theme, question in STARTERS:
        if theme not in themes and question not in asked:
            suggestions.append(question)
            break
    return suggestions[:3]


def turn_messages(number: int, turn: dict) -> list[gr.ChatMessage]:
    """The chat messages of one turn: the question, the answer, and one card per citation."""
    messages = [gr.ChatMessage(role="user", content=esc(turn["question"]))]
    if turn.get("error"):
        messages.append(gr.ChatMessage(role="assistant", content=esc(turn["error"])))
        return messages
    answer = turn["answer_obj"]
    messages.append(gr.ChatMessage(role="assistant", content=answer_html(answer.text) + provenance(answer)))
    passages = {p.chunk.chunk_id: p.chunk.text for p in answer.passages}
    if answer.citations:
        parent = f"sources-{number}"
        messages.append(
            gr.ChatMessage(
                role="assistant",
                content="Open a card to see the passage, with the quoted sentence highlighted, and the study it cites.",
                metadata={"title": f"Sources for answer {number} ({len(answer.citations)} card{'s' if len(answer.citations) != 1 else ''})", "id": parent},
            )
        )
        for c in answer.citations:
            where = esc(c.title) + (f" › {esc(_leaf(c.section))}" if c.section else "")
            metadata = {"title": f"[{c.n}] {where}", "id": f"{parent}-{c.n}", "parent_id": parent, "status": "done"}
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


def _answered(turns: list[dict]) -> list[dict]:
    return [t for t in turns if not t.get("error")]


def _answer_choices(turns: list[dict]) -> list[tuple[str, int]]:
    choices = []
    for number, turn in enumerate(turns, start=1):
        if not turn.get("error"):
            q = turn["question"]
            choices.append((f"{number}. {q[:60]}{'…' if len(q) > 60 else ''}", number))
    return choices


def _document_choices(sources: list[dict]) -> list[tuple[str, str]]:
    return [("All documents", "")] + [(d["short_title"] or d["source"], d["source"]) for d in sources]


BACKEND_NOTES = {
    "extractive": "answers are sentences quoted from the sources, never generated text.",
    "local": "a language model on this computer writes answers; every sentence is checked against the passage it cites.",
    "ollama": "a language model on the configured Ollama server writes answers; every sentence is checked against the passage it cites.",
    "openai": "a language model on the configured OpenAI-compatible server writes answers (the question and passages are sent to it); every sentence is checked against the passage it cites.",
}


def writing(draft: str) -> gr.ChatMessage:
    """The model's answer as it is being written (not yet checked against the sources)."""
    return gr.ChatMessage(
        role="assistant",
        content=answer_html(draft) if draft else "…",
        metadata={"title": "The model is writing; each sentence will be checked against its source", "status": "pending"},
    )


def _theme_choices() -> list[tuple[str, str]]:
    return [("All themes", "")] + [(label, key) for key, label in THEMES.items()]


# -- host and login --------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def parse_auth(value: str | None) -> list[tuple[str, str]] | None:
    """'user:pass' (or several, comma-separated) as Gradio login pairs."""
    if not value or not value.strip():
        return None
    pairs = []
    for item in value.split(","):
        user, sep, password = item.strip().partition(":")
        if not sep or not user or not password:
            raise ValueError("a login is written user:password (several may be separated by commas)")
        pairs.append((user, password))
    return pairs


# -- the app ---------------------------------------------------------------------------------------


class ChatUI:
    """Event handlers over one shared service; per-user state lives in gr.State."""

    def __init__(self, service):
        self.service = service
        self.feedback = FeedbackStore(Path(service.settings.data_dir) / "feedback.sqlite3")
        self.export_dir = Path(tempfile.mkdtemp(prefix="assistant-export-"))

    # chat ---------------------------------------------------------------------------------------

    def _ask(self, message: str, turns: list[dict], document: str, theme: str, backend: str = ""):
        """A generator of (textbox, chatbot, turns, answer picker): the answer streamed as it is written.

        With a language model the quoted evidence shows at once and the model's words appear under it
        as they come; the final, verified answer then replaces both."""
        from assistant.index import IndexMissing
        from assistant.service import QuestionError

        turns = list(turns or [])
        message = (message or "").strip()
        shown, _ = conversation(turns)
        if not message:
            yield "", shown, turns, gr.skip()
            return
        question_msg = gr.ChatMessage(role="user", content=esc(message))
        searching = gr.ChatMessage(role="assistant", content="", metadata={"title": "Searching the indexed sources…", "status": "pending"})
        yield "", shown + [question_msg, searching], turns, gr.skip()
        history = [t["question"] for t in _answered(turns)]
        chosen = backend or self.service.settings.backend
        events = self.service.ask_stream(message, history=history, document=document or None, theme=theme or None, backend=chosen)
        answer, evidence, last_draft = None, None, time.perf_counter()
        try:
            for kind, value in events:
                if kind == "answer":
                    answer = value
                elif kind == "evidence" and chosen != "extractive":
                    evidence = gr.ChatMessage(role="assistant", content=WHILE_WRITING + answer_html(value.text))
                    yield "", shown + [question_msg, evidence, writing("")], turns, gr.skip()
                    last_draft = time.perf_counter()
                elif kind == "draft" and evidence is not None and time.perf_counter() - last_draft >= DRAFT_INTERVAL:
                    yield "", shown + [question_msg, evidence, writing(value)], turns, gr.skip()
                    last_draft = time.perf_counter()
        except (QuestionError, IndexMissing) as exc:
            turns.append({"question": message, "error": str(exc)})
            yield "", conversation(turns)[0], turns, gr.skip()
            return
        if chosen == "extractive":  # computed in milliseconds: streamed word by word so it reads as an answer
            text = answer_html(answer.text)
            pieces = re.findall(r"\S+\s*", text)
            for end in range(STREAM_WORDS, len(pieces), STREAM_WORDS):
                yield "", shown + [question_msg, gr.ChatMessage(role="assistant", content="".join(pieces[:end]))], turns, gr.skip()
                time.sleep(STREAM_PAUSE)
        turn = {
            "question": message,
            "history": history,
            "document": document or None,
            "theme": theme or None,
            "backend": backend or None,
            "answer_obj": answer,
            "answer": answer.to_dict(),
            "suggestions": suggest_followups(answer, history + [message]),
        }
        turns.append(turn)  # Gradio shows only the latest answer's suggestions (and streamed lists must never shrink)
        yield "", conversation(turns)[0], turns, gr.Dropdown(choices=_answer_choices(turns), value=len(turns))

    def ask(self, message, turns, document, theme, backend=""):
        yield from self._ask(message, turns, document, theme, backend)

    def ask_selected(self, selection: gr.SelectData, turns, document, theme, backend=""):
        value = selection.value
        if isinstance(value, dict):
            value = value.get("text") or value.get("value") or ""
        yield from self._ask(str(value or ""), turns, document, theme, backend)

    def chat(self, message: str, document: str = "", theme: str = "", backend: str = "") -> str:
        """One question, answered with [n] markers (no conversation state; errors come back as text)."""
        from assistant.index import IndexMissing
        from assistant.service import QuestionError

        try:
            return self.service.ask(message, document=document or None, theme=theme or None, backend=backend or None).text
        except (QuestionError, IndexMissing) as exc:
            return str(exc)

    def clear(self):
        return [], [], {}, gr.Dropdown(choices=[], value=None), "", gr.File(value=None, visible=False)

    # feedback -----------------------------------------------------------------------------------

    def _store(self, turns, rated, number: int, rating, comment: str | None):
        turns = turns or []
        rated = dict(rated or {})
        if not number or number < 1 or number > len(turns) or turns[number - 1].get("error"):
            return rated, None
        turn = turns[number - 1]
        existing = rated.get(str(number))
        if existing:
            self.feedback.update(existing, rating=rating, comment=comment)
            return rated, existing
        answer = turn["answer"]
        feedback_id = self.feedback.add(
            rating,
            question=turn["question"],
            answer=answer["answer"],
            citations=answer["citations"],
            retrieved=answer["retrieved"],
            backend=answer.get("backend"),
            history=turn.get("history") or [],
            comment=comment or "",
        )
        rated[str(number)] = feedback_id
        return rated, feedback_id

    def rate_message(self, data: gr.LikeData, turns, rated):
        _, owners = conversation(turns or [])
        index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
        number = owners[index] if isinstance(index, int) and 0 <= index < len(owners) else 0
        if data.liked not in (True, False):
            return rated, gr.skip(), gr.skip(), gr.skip()
        rated, feedback_id = self._store(turns, rated, number, 1 if data.liked else -1, None)
        if not feedback_id:
            return rated, "Only answers can be rated.", gr.skip(), gr.skip()
        verdict = "helpful" if data.liked else "not helpful"
        return (
            rated,
            f"Saved: answer {number} marked {verdict}. Add a comment below if you like.",
            gr.Dropdown(value=number),
            "up" if data.liked else "down",
        )

    def send_feedback(self, number, rating, comment, turns, rated):
        if not rating:
            return rated, "Choose Helpful or Not helpful first."
        try:
            number = int(number) if number not in (None, "") else 0
        except (TypeError, ValueError):
            number = 0
        rated, feedback_id = self._store(turns, rated, number, rating, comment or "")
        if not feedback_id:
            return rated, "Ask a question first, then choose the answer to rate."
        return rated, f"Thank you: feedback on answer {number} is saved on this computer (entry {feedback_id})."

    # export -------------------------------------------------------------------------------------

    def export(self, turns):
        records = [
            {"question": t["question"], "answer": t.get("answer") or {"answer": t.get("error", "")}, "document": t.get("document"), "theme": t.get("theme")}
            for t in turns or []
        ]
        target = self.export_dir / f"conversation-{time.strftime('%Y%m%d-%H%M%S')}-{len(records)}.md"
        target.write_text(conversation_markdown(records), encoding="utf-8")
        return str(target)

    # library ------------------------------------------------------------------------------------

    def library_rows(self) -> list[list]:
        return [[d["short_title"], d["source"], d["chunks"], (d.get("added_at") or "").replace("T", " "), d.get("licence") or ""] for d in self.service.sources()]

    def refresh(self):
        sources = self.service.sources()
        documents = _document_choices(sources)
        removable = [(label, value) for label, value in documents if value]
        return (
            self.library_rows(),
            gr.Dropdown(choices=documents),
            gr.Dropdown(choices=removable, value=None),
            self.about_markdown(),
            self.licences_markdown(),
            self.note_sources_markdown(),
        )

    def add_documents(self, files, progress=gr.Progress()):
        from assistant.service import UploadError

        lines, saved = [], []
        for item in files or []:
            path = Path(item if isinstance(item, (str, Path)) else getattr(item, "name", item))
            name = path.name
            try:
                saved.append((name, self.service.save_upload(name, path.read_bytes())))
            except UploadError as exc:
                lines.append(f"- Not added: {esc(exc)}")
            except OSError as exc:
                lines.append(f"- Not added: {esc(name)}: could not read the upload ({esc(exc.strerror or exc)})")
        if saved:
            progress((0, len(saved)), desc="Indexing", unit="files")

            def report(done, total, current):
                progress((done, total), desc=f"Indexing {current}" if current else "Finishing the index", unit="files")

            result = self.service.ingest([p for _, p in saved], progress=report)
            by_path = {Path(o.path).resolve(): o for o in result.outcomes}
            for name, path in saved:
                outcome = by_path.get(path.resolve())
                if outcome is None:
                    lines.append(f"- Not added: {esc(name)}: not indexed")
                elif outcome.status == "failed":
                    lines.append(f"- Not added: {esc(name)}: could not be indexed: {esc(outcome.message)}")
                    path.unlink(missing_ok=True)  # a file that cannot be read is not kept in uploads
                else:
                    note = f" ({esc(outcome.message)})" if outcome.message else ""
                    lines.append(f"- Added: {esc(name)}: {outcome.status}, {outcome.chunks} passages, as `{esc(outcome.source)}`{note}")
        if not lines:
            lines.append(f"Choose one or more files first ({UPLOAD_TYPES}).")
        summary = "\n".join(lines)
        return (summary, None, *self.refresh())

    def remove_document(self, source):
        if not source:
            return ("Choose a document to remove.", *self.refresh())
        try:
            self.service.remove_document(source)
        except KeyError:
            return (f"{esc(source)} is not in the library.", *self.refresh())
        return (f"Removed `{esc(source)}` from the library.", *self.refresh())

    # about --------------------------------------------------------------------------------------

    def _sources(self) -> list[dict]:
        try:
            return self.service.sources()
        except Exception:  # the About tab must render even without an index
            return []

    def about_markdown(self) -> str:
        stats = self.service.stats()
        chunking = stats.get("chunking") or {}
        lines = [
            "### This assistant",
            f"- **Answer backend:** {esc(stats.get('backend'))}: {esc(BACKEND_NOTES.get(stats.get('backend'), ''))}",
            f"- **Documents indexed:** {stats.get('documents', 0)}; **passages:** {stats.get('chunks', 0)}",
            f"- **Embedding model:** {esc(stats.get('embedding_model') or 'none yet')}",
            f"- **Chunking:** {esc(chunking.get('size', '?'))} characters, {esc(chunking.get('overlap', '?'))} overlap" if chunking else "- **Chunking:** no index yet",
            f"- **Index built:** {esc((stats.get('built_at') or 'never').replace('T', ' '))}",
            f"- **Themes:** {esc(', '.join(THEMES.values()))}",
            "",
            "### Privacy",
            self.privacy_line(),
            f"- Feedback is kept in `{esc(self.feedback.path)}`.",
            f"- Uploads are kept in `{esc(self.service.settings.uploads_dir)}` (limit {self.service.settings.max_file_mb:g} MB a file).",
        ]
        return "\n".join(lines)

    def privacy_line(self) -> str:
        settings = self.service.settings
        servers = {"ollama": settings.ollama_url, "openai": settings.openai_base_url}
        line = "- Everything runs on this computer: questions, documents and feedback never leave it, and usage analytics are off."
        if settings.backend in servers:
            url = esc(servers[settings.backend])
            line += f" Exception: with the {esc(settings.backend)} backend, each question and the passages found for it go to {url}."
        return line

    def licences_markdown(self) -> str:
        """Each document's licence, and the review's attribution line (Open Government Licence v3.0)."""
        documents = self._sources()
        lines = ["### Sources and licences", ""]
        review = next((d for d in documents if d["source"] == REVIEW_SOURCE), None)
        if review and review.get("attribution"):
            lines += [f"> {esc(review['attribution'])}", ""]
        for d in documents:
            licence = d.get("licence") or ("see its sources below" if d.get("sources") else "not stated")
            url = _link(d.get("source_url") or "", "original")
            lines.append(f"- **{esc(d['short_title'])}** (`{esc(d['source'])}`): {esc(licence)} {url}".rstrip())
            if d.get("attribution") and d["source"] != REVIEW_SOURCE:
                lines.append(f"  - {esc(d['attribution'])}")
        if len(lines) == 2:
            from assistant.locations import no_index_message

            message = no_index_message(self.service.settings.index_dir)
            lines.append(esc(f"{message[0].upper()}{message[1:]}."))
        return "\n".join(lines)

    def note_sources_markdown(self) -> str:
        """Where each note's information comes from, with each source's licence (front matter `sources`)."""
        lines = []
        for d in self._sources():
            if not d.get("sources"):
                continue
            lines.append(f"**{esc(d['short_title'])}**")
            lines.append("")
            for s in d["sources"]:
                link = _link(s.get("url") or "", s.get("publisher") or s.get("url") or "link") or esc(s.get("publisher") or "")
                lines.append(f"- {link}: {esc(s.get('licence') or 'licence not stated')}")
            lines.append("")
        return "\n".join(lines) or "No document lists its sources."


def build_app(service) -> gr.Blocks:
    """The Gradio app over one shared service (models and index load once, for every user)."""
    ui = ChatUI(service)
    sources = service.sources()
    with gr.Blocks(title="Co-production assistant", analytics_enabled=False) as app:
        turns = gr.State([])
        rated = gr.State({})
        gr.Markdown(
            "# Co-production assistant\n"
            "Cited answers for facilitators of co-production in health and care (EBCD, Always Events®, QI). "
            "Every sentence is quoted from the indexed sources, or written by a model and checked against them: open a numbered card to check it.",
            elem_id="app-title",
        )
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                with gr.Row(equal_height=False):
                    document = gr.Dropdown(_document_choices(sources), value="", label="Search in document", min_width=200, elem_id="document-filter")
                    theme = gr.Dropdown(_theme_choices(), value="", label="Search on theme", min_width=200, elem_id="theme-filter")
                    backend = gr.Dropdown(
                        [(label, key) for key, label in BACKEND_LABELS.items()],
                        value=service.settings.backend,
                        label="Answers",
                        min_width=200,
                        elem_id="backend",
                    )
                chatbot = gr.Chatbot(
                    label="Conversation",
                    show_label=False,
                    elem_id="chatbot",
                    height="62vh",
                    min_height=320,
                    buttons=["copy"],
                    latex_delimiters=[],
                    sanitize_html=True,
                    allow_tags=False,
                    feedback_options=("Like", "Dislike"),
                    placeholder="**Ask about running co-production, power dynamics, recruitment or measurement.** Or start with one of these:",
                    examples=[{"text": q, "display_text": f"{THEMES[t]}: {q}"} for t, q in STARTERS],
                    layout="panel",
                )
                with gr.Row(equal_height=True):
                    message = gr.Textbox(
                        label="Your question",
                        placeholder="Type a question and press Enter",
                        lines=1,
                        max_lines=6,
                        scale=5,
                        min_width=260,
                        elem_id="question",
                        autofocus=True,
                    )
                    send = gr.Button("Ask", variant="primary", scale=1, min_width=80, elem_id="ask")
                with gr.Row():
                    clear = gr.Button("New conversation", variant="secondary", size="sm", min_width=120)
                    export = gr.Button("Export conversation (Markdown)", size="sm", min_width=120, elem_id="export")
                export_file = gr.File(label="Download the conversation", interactive=False, visible=False, elem_id="export-file")
                with gr.Accordion("Rate an answer", open=False, elem_id="feedback"):
                    gr.Markdown("Use the thumbs under an answer, or choose it here. A comment helps us add a test for it.")
                    with gr.Row():
                        rated_answer = gr.Dropdown(choices=[], value=None, label="Answer", min_width=200, elem_id="feedback-answer")
                        rating = gr.Radio([("Helpful", "up"), ("Not helpful", "down")], label="Rating", min_width=200)
                    comment = gr.Textbox(label="Comment (optional)", lines=2, placeholder="What was missing or wrong?")
                    send_feedback = gr.Button("Send feedback", size="sm")
                    feedback_status = gr.Markdown(elem_id="feedback-status")

            with gr.Tab("Library", id="library"):
                library = gr.Dataframe(
                    value=ui.library_rows(),
                    headers=["Title", "Document id", "Passages", "Added", "Licence"],
                    datatype=["str", "str", "number", "str", "str"],
                    interactive=False,
                    wrap=True,
                    label="Indexed documents",
                    elem_id="library-table",
                )
                files = gr.File(
                    label=f"Add documents: {UPLOAD_TYPES}, up to {service.settings.max_file_mb:g} MB each",
                    file_count="multiple",
                    type="filepath",
                    elem_id="upload",
                )
                add = gr.Button("Add to library", variant="primary", elem_id="add-documents")
                upload_report = gr.Markdown(elem_id="upload-report")
                with gr.Row():
                    removable = gr.Dropdown(
                        [c for c in _document_choices(sources) if c[1]], value=None, label="Remove a document", min_width=200
                    )
                    remove = gr.Button("Remove", variant="stop", min_width=100, elem_id="remove-document")

            with gr.Tab("About", id="about"):
                about = gr.Markdown(ui.about_markdown(), elem_id="about")
                licences = gr.Markdown(ui.licences_markdown(), elem_id="licences")
                with gr.Accordion("Where each note's information comes from", open=False):
                    note_sources = gr.Markdown(ui.note_sources_markdown(), elem_id="note-sources")

        ask_outputs = [message, chatbot, turns, rated_answer]
        chat_events = dict(concurrency_limit=CHAT_CONCURRENCY, concurrency_id="chat", show_progress="hidden")
        message.submit(ui.ask, [message, turns, document, theme, backend], ask_outputs, api_name="ask", **chat_events)
        send.click(ui.ask, [message, turns, document, theme, backend], ask_outputs, api_name="ask_button", **chat_events)
        chatbot.example_select(ui.ask_selected, [turns, document, theme, backend], ask_outputs, api_name="ask_starter", **chat_events)
        chatbot.option_select(ui.ask_selected, [turns, document, theme, backend], ask_outputs, api_name="ask_followup", **chat_events)
        gr.api(ui.chat, api_name="chat", concurrency_limit=CHAT_CONCURRENCY, concurrency_id="chat")
        clear.click(ui.clear, None, [chatbot, turns, rated, rated_answer, feedback_status, export_file], api_name="clear")

        chatbot.like(ui.rate_message, [turns, rated], [rated, feedback_status, rated_answer, rating], api_name="rate_message")
        send_feedback.click(ui.send_feedback, [rated_answer, rating, comment, turns, rated], [rated, feedback_status], api_name="feedback")
        export.click(ui.export, [turns], [export_file], api_name="export").then(
            lambda: gr.File(visible=True), None, [export_file], api_name="show_export", api_visibility="private"
        )

        library_outputs = [library, document, removable, about, licences, note_sources]
        library_events = dict(concurrency_limit=1, concurrency_id="library")
        add.click(ui.add_documents, [files], [upload_report, files, *library_outputs], api_name="add_documents", **library_events)
        remove.click(ui.remove_document, [removable], [upload_report, *library_outputs], api_name="remove_document", **library_events)
        app.load(ui.refresh, None, library_outputs, api_name="refresh_library", show_progress="hidden")

    app.queue(default_concurrency_limit=4, max_size=QUEUE_SIZE)
    app.assistant_ui = ui
    app.launch_options = {
        "css": CSS,
        "theme": gr.themes.Default(primary_hue="blue", secondary_hue="slate", neutral_hue="slate"),
        "max_file_size": int(service.settings.max_file_mb * 2_000_000),
        "footer_links": [],
    }
    return app


def require_login_off_loopback(host: str, auth) -> None:
    if not is_loopback(host) and not auth:
        raise SystemExit(
            f"Refusing to listen on {host} without a login: anyone on the network could read the documents. "
            f"Pass --auth user:password or set {AUTH_ENV}=user:password, or bind 127.0.0.1."
        )


def serve(app: gr.Blocks, host: str = "127.0.0.1", port: int | None = None, auth=None, prevent_thread_lock: bool = False, quiet: bool = False):
    """Start the server with the app's styling and limits; refuses a non-loopback address without a login."""
    require_login_off_loopback(host, auth)
    return app.launch(
        server_name=host,
        server_port=port,
        auth=auth,
        auth_message="Sign in to the co-production assistant." if auth else None,
        prevent_thread_lock=prevent_thread_lock,
        quiet=quiet,
        share=False,
        inbrowser=False,
        show_error=True,
        ssr_mode=False,
        pwa=False,
        mcp_server=False,
        enable_monitoring=False,
        **getattr(app, "launch_options", {}),
    )


def warm_up(service) -> None:
    """Load the models and the index before the first user arrives."""
    try:
        service.ask("How do we involve patients early in a co-production project?")
    except Exception as exc:  # no index yet: the Library tab can add documents
        print(f"Note: {exc}", file=sys.stderr)


def launch(host: str | None = None, port: int | None = None, auth: str | None = None) -> None:
    """`assistant serve` / `python app.py`: 127.0.0.1 by default; a login is required on any other address."""
    from assistant.service import AssistantService
    from assistant.settings import get_settings

    settings = get_settings()
    host = host or settings.host
    port = port or settings.port
    try:
        credentials = parse_auth(auth if auth is not None else os.environ.get(AUTH_ENV))
    except ValueError as exc:
        raise SystemExit(f"Bad login: {exc}") from None
    require_login_off_loopback(host, credentials)
    service = AssistantService(settings)
    warm_up(service)
    app = build_app(service)
    print(f"Co-production assistant on http://{host}:{port}" + (" (login required)" if credentials else ""), flush=True)
    serve(app, host, port, credentials, quiet=True)
