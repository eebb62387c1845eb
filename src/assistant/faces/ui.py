"""The facilitator chat UI: a Gradio Blocks app that is a thin client of AssistantService."""

from __future__ import annotations

import ipaddress
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import gradio as gr

from assistant.faces.export import conversation_docx, conversation_markdown
from assistant.faces.ui_library import LibraryActions, about_tab, document_choices, library_tab, wire_library
from assistant.faces.ui_prepare import prepare_tab
from assistant.faces.ui_render import answer_html, answer_message, conversation, highlight, source_card, suggest_followups, turn_messages  # noqa: F401
from assistant.faces.web_guard import app_kwargs as web_guard_kwargs
from assistant.feedback import FeedbackStore
from assistant.service import Draft, Evidence, Final, IndexMissing, QuestionError
from assistant.text import escape_html as esc
from assistant.themes import THEMES

CHAT_CONCURRENCY = 16  # answers computed at once (each takes milliseconds of CPU; most of its time is the streamed pauses)
QUEUE_SIZE = 64
STREAM_UPDATES = 10  # partial updates per quoted answer: each re-sends the conversation, so 16 users need few
STREAM_PAUSE = 0.04  # seconds between updates: visibly streamed, and other users' threads get the CPU
DRAFT_INTERVAL = 0.15  # seconds between redraws of a model's draft (each redraw re-sends the conversation)
WHILE_WRITING = "<p><em>Quoted from the sources while the model writes its answer:</em></p>"
AUTH_ENV = "ASSISTANT_AUTH"

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
#chatbot .message-content, #chatbot .prose, #chatbot .title { overflow-wrap: anywhere; word-break: break-word; min-width: 0; }
#chatbot .prose a { overflow-wrap: anywhere; word-break: break-all; }
#chatbot pre, #chatbot code { white-space: pre-wrap; overflow-wrap: anywhere; }
#chatbot .message.thought + .message-buttons { display: none; }
.cite { font-weight: 600; color: #0b3d91; white-space: nowrap; cursor: pointer; text-decoration: underline dotted; border-radius: 3px; }
.cite:focus-visible { outline: 2px solid #0b3d91; outline-offset: 1px; }
.dark .cite { color: #9cc3ff; }
.source-card { font-size: 1rem; line-height: 1.55; overflow-wrap: anywhere; color: var(--body-text-color) !important; opacity: 1 !important; }
#chatbot .thought .content, #chatbot .thought .content .prose { color: var(--body-text-color) !important; opacity: 1 !important; }
#chatbot .source-card, #chatbot .source-card p, #chatbot .source-card blockquote { font-size: 1rem !important; line-height: 1.55 !important; }
.notice { background: #eef4ff; color: #0b2a5b; border-left: 4px solid #0b3d91; padding: 0.35em 0.6em; margin: 0 0 0.6em 0; }
.dark .notice { background: #1f2a40; color: #dce8ff; }
#feedback-status:empty { display: none; }
#library-table table { table-layout: fixed; width: 100%; }
#library-table td, #library-table th { overflow-wrap: anywhere; }
.source-card .card-meta { margin: 0 0 0.4em 0; }
.source-card blockquote { margin: 0.4em 0; padding: 0.4em 0.7em; border-left: 4px solid #0b3d91;
  background: #f4f6fa; color: #111827 !important; max-height: 22em; overflow-y: auto; }
.source-card mark { background: #ffe066; color: #000; padding: 0 0.1em; font-size: inherit !important; line-height: inherit; }
.dark .source-card blockquote { background: #1f2430; color: #f0f0f0 !important; border-left-color: #9cc3ff; }
.source-card a { color: #0b3d91; text-decoration: underline; }
.dark .source-card a { color: #9cc3ff; }
#feedback-status, #upload-report { overflow-wrap: anywhere; }
.unsupported { background: #fff3cd; color: #5c3c00; }
.dark .unsupported { background: #4a3b00; color: #ffe8a3; }
.provenance { font-size: 0.85rem; opacity: 0.85; margin-top: 0.5em; }
@media (max-width: 480px) {
  .gradio-container { padding: 4px !important; }
  [role="tablist"] button { padding-left: 4px !important; padding-right: 4px !important; font-size: 0.85rem !important; }
  #app-title h1 { font-size: 1.2rem; }
}
"""

# [n] markers open their card: a click, Enter or Space on a marker opens the answer's "Sources" group and the
# card numbered n, then scrolls to it. Markers get role=button and tabindex here because the chat's HTML
# sanitizer keeps only the class attribute.
CITE_SCRIPT = """
(() => {
  const following = (node, pattern) => [...document.querySelectorAll('#chatbot .title')].find(
    t => (node.compareDocumentPosition(t) & Node.DOCUMENT_POSITION_FOLLOWING) && pattern.test(t.textContent.trim()));
  const open = t => { if (!t.classList.contains('expanded')) t.click(); };
  const activate = cite => {
    const n = cite.textContent.replace(/\\D/g, '');
    const sources = following(cite, /^Sources for answer/);
    if (!sources) return;
    open(sources);
    let tries = 0;
    const find = () => {
      const group = sources.closest('.thought-group');
      const card = group && [...group.querySelectorAll('.children .title')].find(t => t.textContent.trim().startsWith('[' + n + ']'));
      if (!card) { if (tries++ < 40) setTimeout(find, 25); return; }
      open(card);
      setTimeout(() => { card.scrollIntoView({block: 'start'}); card.focus({preventScroll: true}); }, 60);
    };
    find();
  };
  const mark = () => document.querySelectorAll('#chatbot .cite:not([tabindex])').forEach(c => {
    c.setAttribute('tabindex', '0');
    c.setAttribute('role', 'button');
    c.setAttribute('aria-label', 'Open source card ' + c.textContent.replace(/\\D/g, ''));
  });
  document.addEventListener('click', e => {
    const cite = e.target.closest && e.target.closest('#chatbot .cite');
    if (cite) { e.preventDefault(); e.stopPropagation(); activate(cite); }
  }, true);
  document.addEventListener('keydown', e => {
    const cite = e.target.closest && e.target.closest('#chatbot .cite');
    if (cite && (e.key === 'Enter' || e.key === ' ')) { e.preventDefault(); activate(cite); }
  }, true);
  new MutationObserver(mark).observe(document.documentElement, {subtree: true, childList: true});
})();
"""


def head_html() -> str:
    """A <script src> for CITE_SCRIPT. The page's content security policy runs no inline script that Gradio
    inserts, but does run same-origin files: the script is written where Gradio serves files from."""
    folder = Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio") / "assistant-ui"
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "cite-links.js"
    if not script.exists() or script.read_text(encoding="utf-8") != CITE_SCRIPT:
        tmp = folder / f"cite-links.{os.getpid()}.tmp"
        tmp.write_text(CITE_SCRIPT, encoding="utf-8")
        os.replace(tmp, script)
    gr.set_static_paths([str(folder)])
    return f'<script src="/gradio_api/file={script.resolve().as_posix()}"></script>'


def _answered(turns: list[dict]) -> list[dict]:
    return [t for t in turns if not t.get("error")]


def _answer_choices(turns: list[dict]) -> list[tuple[str, int]]:
    choices = []
    for number, turn in enumerate(turns, start=1):
        if not turn.get("error"):
            q = turn["question"]
            choices.append((f"{number}. {q[:60]}{'…' if len(q) > 60 else ''}", number))
    return choices


_document_choices = document_choices


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


class ChatUI(LibraryActions):
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
        generative = self.service.is_generative(chosen)
        events = self.service.ask_stream(message, history=history, document=document or None, theme=theme or None, backend=chosen)
        answer, evidence, last_draft = None, None, time.perf_counter()
        try:
            for event in events:
                match event:
                    case Final(answer=final):
                        answer = final
                    case Evidence(answer=quoted) if generative:
                        evidence = gr.ChatMessage(role="assistant", content=WHILE_WRITING + answer_html(quoted.text))
                        yield "", shown + [question_msg, evidence, writing("")], turns, gr.skip()
                        last_draft = time.perf_counter()
                    case Draft(text=draft) if evidence is not None and time.perf_counter() - last_draft >= DRAFT_INTERVAL:
                        yield "", shown + [question_msg, evidence, writing(draft)], turns, gr.skip()
                        last_draft = time.perf_counter()
        except (QuestionError, IndexMissing) as exc:
            turns.append({"question": message, "error": str(exc)})
            yield "", conversation(turns)[0], turns, gr.skip()
            return
        if not generative:  # computed in milliseconds: streamed word by word so it reads as an answer
            text = answer_message(answer)
            pieces = re.findall(r"\S+\s*", text)
            step = max(3, -(-len(pieces) // STREAM_UPDATES))
            for end in range(step, len(pieces), step):
                yield "", shown + [question_msg, gr.ChatMessage(role="assistant", content="".join(pieces[:end]))], turns, gr.skip()
                time.sleep(STREAM_PAUSE)
        assert answer is not None, "ask_stream ends with Final unless it raised"
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
        gr.Info(f"Thank you: answer {number} is marked {verdict}.")
        return (
            rated,
            f"Thank you: answer {number} is marked {verdict} and saved on this computer. You can add a comment under “Rate an answer”.",
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

    def export(self, turns, fmt: str = "md"):
        """The conversation as a Markdown (md) or Word (docx) file; returns its path."""
        records = [
            {
                "question": t["question"],
                "answer": t.get("answer") or {"answer": t.get("error", "")},
                "document": t.get("document"),
                "theme": t.get("theme"),
            }
            for t in turns or []
        ]
        fmt = "docx" if str(fmt or "").lower().lstrip(".") == "docx" else "md"
        target = Path(tempfile.mkdtemp(dir=self.export_dir)) / f"conversation-{time.strftime('%Y%m%d-%H%M%S')}-{len(records)}.{fmt}"
        if fmt == "docx":
            target.write_bytes(conversation_docx(records))
        else:
            target.write_text(conversation_markdown(records), encoding="utf-8")
        return str(target)

    def export_docx(self, turns):
        return self.export(turns, "docx")


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
                    document = gr.Dropdown(
                        _document_choices(sources), value="", label="Search in document", min_width=200, elem_id="document-filter"
                    )
                    theme = gr.Dropdown(_theme_choices(), value="", label="Search on theme", min_width=200, elem_id="theme-filter")
                    backend = gr.Dropdown(
                        [(b.label, b.name) for b in service.backends()],
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
                    )
                    send = gr.Button("Ask", variant="primary", scale=1, min_width=80, elem_id="ask")
                feedback_status = gr.Markdown(elem_id="feedback-status")
                with gr.Row():
                    clear = gr.Button("New conversation", variant="secondary", size="sm", min_width=120)
                    export = gr.Button("Export (Markdown)", size="sm", min_width=120, elem_id="export")
                    export_word = gr.Button("Export (Word)", size="sm", min_width=120, elem_id="export-docx")
                export_file = gr.File(label="Download the conversation", interactive=False, visible=False, elem_id="export-file")
                with gr.Accordion("Rate an answer", open=False, elem_id="feedback"):
                    gr.Markdown("Use the thumbs under an answer, or choose it here. A comment helps us add a test for it.")
                    with gr.Row():
                        rated_answer = gr.Dropdown(choices=[], value=None, label="Answer", min_width=200, elem_id="feedback-answer")
                        rating = gr.Radio([("Helpful", "up"), ("Not helpful", "down")], label="Rating", min_width=200)
                    comment = gr.Textbox(label="Comment (optional)", lines=2, placeholder="What was missing or wrong?")
                    send_feedback = gr.Button("Send feedback", size="sm")

            with gr.Tab("Prepare a session", id="prepare"):
                prepare_tab(service)

            with gr.Tab("Library", id="library"):
                library = library_tab(ui, sources, service.settings.max_file_mb)

            with gr.Tab("About", id="about"):
                about = about_tab(ui)

        ask_outputs = [message, chatbot, turns, rated_answer]
        chat_events: dict[str, Any] = dict(concurrency_limit=CHAT_CONCURRENCY, concurrency_id="chat", show_progress="hidden")
        message.submit(ui.ask, [message, turns, document, theme, backend], ask_outputs, api_name="ask", **chat_events)
        send.click(ui.ask, [message, turns, document, theme, backend], ask_outputs, api_name="ask_button", **chat_events)
        chatbot.example_select(ui.ask_selected, [turns, document, theme, backend], ask_outputs, api_name="ask_starter", **chat_events)
        chatbot.option_select(ui.ask_selected, [turns, document, theme, backend], ask_outputs, api_name="ask_followup", **chat_events)
        gr.api(ui.chat, api_name="chat", concurrency_limit=CHAT_CONCURRENCY, concurrency_id="chat")
        clear.click(ui.clear, None, [chatbot, turns, rated, rated_answer, feedback_status, export_file], api_name="clear")

        chatbot.like(ui.rate_message, [turns, rated], [rated, feedback_status, rated_answer, rating], api_name="rate_message")
        send_feedback.click(ui.send_feedback, [rated_answer, rating, comment, turns, rated], [rated, feedback_status], api_name="feedback")
        show: dict[str, Any] = dict(fn=lambda: gr.File(visible=True), inputs=None, outputs=[export_file], api_visibility="private")
        export.click(ui.export, [turns], [export_file], api_name="export").then(api_name="show_export", **show)
        export_word.click(ui.export_docx, [turns], [export_file], api_name="export_docx").then(api_name="show_export_docx", **show)
        wire_library(app, ui, library, about, document, backend)

    app.queue(default_concurrency_limit=4, max_size=QUEUE_SIZE)
    app.assistant_ui = ui
    app.launch_options = {
        "css": CSS,
        "head": head_html(),
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


def serve(
    app: gr.Blocks, host: str = "127.0.0.1", port: int | None = None, auth=None, prevent_thread_lock: bool = False, quiet: bool = False
):
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
        app_kwargs=web_guard_kwargs(host),  # Host/Origin checks, CSP, login limit, no file= URL fetching
        **getattr(app, "launch_options", {}),
    )


def warm_up(service) -> None:
    """Load the models and the index before the first user arrives."""
    try:
        service.ask("How do we involve patients early in a co-production project?")
    except Exception as exc:  # noqa: BLE001 - no index yet, or no model: the Library tab can add documents
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
