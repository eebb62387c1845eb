"""The Library and About tabs of the chat UI: list, upload, remove or hide documents; backend, index, privacy, licences."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from assistant.faces.export import safe_url
from assistant.locations import REVIEW_SOURCE
from assistant.text import escape_html as esc
from assistant.themes import THEMES

if TYPE_CHECKING:
    from assistant.feedback import FeedbackStore
    from assistant.service import AssistantService

UPLOAD_TYPES = "PDF, DOCX, HTML, Markdown or plain text"
LIBRARY_HEADERS = ["Title", "Passages", "Added", "Licence"]


def link(url: str, label: str) -> str:
    import html

    url = safe_url(url)
    if not url:
        return ""
    return f'<a href="{html.escape(url, quote=True)}" target="_blank" rel="noopener noreferrer">{esc(label)}</a>'


def document_choices(sources: list[dict]) -> list[tuple[str, str]]:
    return [("All documents", "")] + [(d["short_title"] or d["source"], d["source"]) for d in sources]


class LibraryActions:
    """Library and About handlers; mixed into ChatUI, which provides `service` and `feedback`."""

    service: AssistantService
    feedback: FeedbackStore

    def _sources(self) -> list[dict]:
        try:
            return self.service.sources()
        except Exception:  # noqa: BLE001 - the About tab must render even without an index
            return []

    def library_rows(self) -> list[list]:
        """Title, passages, date added and licence, newest first."""
        documents = sorted(self._sources(), key=lambda d: (d.get("added_at") or "", d["source"]), reverse=True)
        return [
            [d["short_title"], d["chunks"], (d.get("added_at") or "")[:16].replace("T", " "), d.get("licence") or ""] for d in documents
        ]

    def _hidden_choices(self) -> list[tuple[str, str]]:
        return [(source, source) for source in sorted(self.service.hidden_sources())]

    def refresh(self, backend: str | None = None):
        sources = self._sources()
        documents = document_choices(sources)
        hidden = self._hidden_choices()
        return (
            self.library_rows(),
            gr.Dropdown(choices=documents),
            gr.Dropdown(choices=[c for c in documents if c[1]], value=None),
            gr.Dropdown(choices=hidden, value=None),
            gr.Group(visible=bool(hidden)),
            self.about_markdown(backend),
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
        return ("\n".join(lines), None, *self.refresh())

    def ask_to_remove(self, source):
        """The confirmation step before a removal: what will happen, in words, and the two buttons."""
        if not source:
            return "Choose a document to remove.", gr.Group(visible=False), gr.Button()
        title = next((d["short_title"] for d in self._sources() if d["source"] == source), source)
        if self.service.is_upload(source):
            text = f"Remove **{esc(title)}**? The uploaded file is deleted from this computer and its passages are no longer searched."
            button = "Yes, remove it"
        else:
            text = (
                f"Hide **{esc(title)}**? It is part of the documents that come with the assistant: the file stays on this computer "
                "but is no longer searched, also after the library is re-indexed. You can show it again here."
            )
            button = "Yes, hide it"
        return text, gr.Group(visible=True), gr.Button(value=button)

    def remove_document(self, source):
        """Remove an upload, or hide a shipped document (kept hidden across `assistant ingest`)."""
        if not source:
            return ("Choose a document to remove.", gr.Group(visible=False), *self.refresh())
        try:
            done = self.service.remove_or_hide(source)
        except KeyError:
            return (f"{esc(source)} is not in the library.", gr.Group(visible=False), *self.refresh())
        message = (
            f"Removed `{esc(source)}` from the library."
            if done == "removed"
            else f"Hidden `{esc(source)}`: it is no longer searched. Choose it under “Hidden documents” to show it again."
        )
        return (message, gr.Group(visible=False), *self.refresh())

    def cancel_remove(self):
        return "Nothing was removed.", gr.Group(visible=False)

    def restore_document(self, source, progress=gr.Progress()):
        if not source:
            return ("Choose a hidden document to show again.", *self.refresh())
        progress((0, 1), desc="Indexing", unit="files")
        try:
            self.service.restore(source)
        except KeyError:
            return (f"{esc(source)} is not hidden.", *self.refresh())
        return (f"`{esc(source)}` is shown and searched again.", *self.refresh())

    # about ------------------------------------------------------------------------------------------

    def about_markdown(self, backend: str | None = None) -> str:
        """Index statistics and the answer backend chosen in the menu (the configured one until it changes)."""
        stats = self.service.stats()
        backend = backend or stats.get("backend")
        record = next((b for b in self.service.backends() if b.name == backend), None)
        chunking = stats.get("chunking") or {}
        lines = [
            "### This assistant",
            f"- **Answer backend:** {esc(backend)}: {esc(record.note if record else '')}",
            f"- **Documents indexed:** {stats.get('documents', 0)}; **passages:** {stats.get('chunks', 0)}",
            f"- **Embedding model:** {esc(stats.get('embedding_model') or 'none yet')}",
            f"- **Chunking:** {esc(chunking.get('size', '?'))} characters, {esc(chunking.get('overlap', '?'))} overlap"
            if chunking
            else "- **Chunking:** no index yet",
            f"- **Index built:** {esc((stats.get('built_at') or 'never').replace('T', ' '))}",
            f"- **Themes:** {esc(', '.join(THEMES.values()))}",
        ]
        if record and record.setup:  # for administrators only (facilitators are pointed here by the notices in the chat)
            lines.append(f"- **For administrators:** if answers say the language model is not available, {record.setup}")
        lines += [
            "",
            "### Privacy",
            self.privacy_line(backend),
            f"- Feedback is kept in `{esc(self.feedback.path)}`.",
            f"- Uploads are kept in `{esc(self.service.settings.uploads_dir)}` (limit {self.service.settings.max_file_mb:g} MB a file).",
        ]
        return "\n".join(lines)

    def privacy_line(self, backend: str | None = None) -> str:
        backend = backend or self.service.settings.backend
        server = self.service.model_server(backend)
        line = "- Everything runs on this computer: questions, documents and feedback never leave it, and usage analytics are off."
        if server is not None:
            line += f" Exception: with the {esc(backend)} backend, each question and the passages found for it go to {esc(server)}."
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
            url = link(d.get("source_url") or "", "original")
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
            lines += [f"**{esc(d['short_title'])}**", ""]
            for s in d["sources"]:
                shown = link(s.get("url") or "", s.get("publisher") or s.get("url") or "link") or esc(s.get("publisher") or "")
                lines.append(f"- {shown}: {esc(s.get('licence') or 'licence not stated')}")
            lines.append("")
        return "\n".join(lines) or "No document lists its sources."


def library_tab(ui, sources: list[dict], max_file_mb: float) -> dict:
    """The Library tab's components (built inside the open gr.Tab); wired by `wire_library`."""
    c: dict[str, Any] = {}
    c["table"] = gr.Dataframe(
        value=ui.library_rows(),
        headers=LIBRARY_HEADERS,
        datatype=["str", "number", "str", "str"],
        column_widths=["44%", "11%", "17%", "28%"],
        interactive=False,
        wrap=True,
        label="Indexed documents (newest first)",
        elem_id="library-table",
    )
    c["files"] = gr.File(
        label=f"Add documents: {UPLOAD_TYPES}, up to {max_file_mb:g} MB each",
        file_count="multiple",
        type="filepath",
        elem_id="upload",
    )
    c["add"] = gr.Button("Add to library", variant="primary", elem_id="add-documents")
    c["report"] = gr.Markdown(elem_id="upload-report")
    with gr.Row():
        c["removable"] = gr.Dropdown(
            [d for d in document_choices(sources) if d[1]], value=None, label="Remove a document", min_width=200, elem_id="removable"
        )
        c["remove"] = gr.Button("Remove…", variant="stop", min_width=100, elem_id="remove-document")
    with gr.Group(visible=False, elem_id="confirm-remove") as c["confirm"]:
        c["confirm_text"] = gr.Markdown(elem_id="confirm-text")
        with gr.Row():
            c["yes"] = gr.Button("Yes, remove it", variant="stop", min_width=120, elem_id="confirm-yes")
            c["no"] = gr.Button("Cancel", variant="secondary", min_width=120, elem_id="confirm-no")
    hidden = ui._hidden_choices()
    with gr.Group(visible=bool(hidden), elem_id="hidden-documents") as c["hidden_group"], gr.Row():
        c["hidden"] = gr.Dropdown(hidden, value=None, label="Hidden documents", min_width=200, elem_id="hidden-list")
        c["restore"] = gr.Button("Show again", min_width=100, elem_id="restore-document")
    return c


def about_tab(ui) -> dict:
    c = {"about": gr.Markdown(ui.about_markdown(), elem_id="about"), "licences": gr.Markdown(ui.licences_markdown(), elem_id="licences")}
    with gr.Accordion("Where each note's information comes from", open=False):
        c["note_sources"] = gr.Markdown(ui.note_sources_markdown(), elem_id="note-sources")
    return c


def wire_library(app, ui, lib: dict, about: dict, document, backend) -> None:
    """Events of the Library tab; one progress indicator (on the report line) while indexing."""
    outputs = [
        lib["table"],
        document,
        lib["removable"],
        lib["hidden"],
        lib["hidden_group"],
        about["about"],
        about["licences"],
        about["note_sources"],
    ]
    events: dict[str, Any] = dict(concurrency_limit=1, concurrency_id="library")
    lib["add"].click(
        ui.add_documents,
        [lib["files"]],
        [lib["report"], lib["files"], *outputs],
        api_name="add_documents",
        show_progress_on=[lib["report"]],
        **events,
    )
    lib["remove"].click(
        ui.ask_to_remove,
        [lib["removable"]],
        [lib["confirm_text"], lib["confirm"], lib["yes"]],
        api_name="ask_to_remove",
        show_progress="hidden",
    )
    lib["yes"].click(
        ui.remove_document,
        [lib["removable"]],
        [lib["report"], lib["confirm"], *outputs],
        api_name="remove_document",
        show_progress_on=[lib["report"]],
        **events,
    )
    lib["no"].click(ui.cancel_remove, None, [lib["report"], lib["confirm"]], api_name="cancel_remove", show_progress="hidden")
    lib["restore"].click(
        ui.restore_document,
        [lib["hidden"]],
        [lib["report"], *outputs],
        api_name="restore_document",
        show_progress_on=[lib["report"]],
        **events,
    )
    app.load(ui.refresh, [backend], outputs, api_name="refresh_library", show_progress="hidden")
    backend.change(ui.about_markdown, [backend], [about["about"]], api_name="about", show_progress="hidden")
