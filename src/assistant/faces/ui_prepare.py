"""The "Prepare a session" tab of the chat UI: a trainer's session plan from the planner, previewed and downloadable."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import gradio as gr

PLAN_FORMATS = [("Word (.docx)", "docx"), ("Markdown (.md)", "md"), ("Web page (.html)", "html")]
DEFAULT_TOPIC = "power dynamics in co-design workshops"


class PreparePlans:
    """Builds plans through the shared service; each download is written to its own temporary folder."""

    def __init__(self, service):
        self.service = service
        self.folder = Path(tempfile.mkdtemp(prefix="assistant-plans-"))

    def prepare(self, topic: str, audience: str, minutes, fmt: str):
        """(preview Markdown, path of the plan file, status line); a bad request gives a plain message and no file."""
        from assistant.planning.render import filename, render, to_markdown
        from assistant.planning.session import PlanError, build_plan, check_format
        from assistant.service import IndexMissing

        try:
            fmt = check_format(fmt or "docx")
            plan = build_plan(self.service, topic, audience or None, int(minutes) if minutes not in (None, "") else 90)
        except (PlanError, IndexMissing, ValueError, TypeError) as exc:
            return "", None, f"The plan could not be prepared: {exc}"
        output = render(plan, fmt)
        target = Path(tempfile.mkdtemp(dir=self.folder)) / filename(plan, fmt)
        if isinstance(output, bytes):
            target.write_bytes(output)
        else:
            target.write_text(output, encoding="utf-8")
        status = f"The plan for {plan.minutes} minutes is ready: download it below."
        if plan.evidence_notice:
            status += " The sources say little about this topic: the plan says so at the top."
        return to_markdown(plan), str(target), status


def prepare_tab(service) -> PreparePlans:
    """The tab's components and its `/prepare` API endpoint (built inside the open gr.Tab)."""
    plans = PreparePlans(service)
    gr.Markdown(
        "Plan a training session from the sources: learning objectives, a timed agenda, key messages with their "
        "citations, an activity, discussion questions, a handout and the references.",
        elem_id="prepare-intro",
    )
    with gr.Row(equal_height=False):
        topic = gr.Textbox(label="Topic", value="", placeholder=f"e.g. {DEFAULT_TOPIC}", min_width=240, scale=3, elem_id="plan-topic")
        audience = gr.Textbox(
            label="Audience", placeholder="e.g. ward managers and patient partners", min_width=240, scale=3, elem_id="plan-audience"
        )
    with gr.Row(equal_height=False):
        minutes = gr.Number(label="Minutes", value=90, minimum=15, maximum=480, step=5, precision=0, min_width=120, elem_id="plan-minutes")
        fmt = gr.Radio(PLAN_FORMATS, value="docx", label="Download as", min_width=240, elem_id="plan-format")
    make = gr.Button("Prepare the plan", variant="primary", elem_id="plan-make")
    status = gr.Markdown(elem_id="plan-status")
    download = gr.File(label="Download the plan", interactive=False, elem_id="plan-file")
    with gr.Accordion("Preview", open=True, elem_id="plan-preview-box"):
        preview = gr.Markdown(elem_id="plan-preview", sanitize_html=True, latex_delimiters=[])
    inputs, outputs = [topic, audience, minutes, fmt], [preview, download, status]
    events: dict[str, Any] = dict(concurrency_limit=2, concurrency_id="prepare", show_progress_on=[status])
    make.click(plans.prepare, inputs, outputs, api_name="prepare", **events)
    topic.submit(plans.prepare, inputs, outputs, api_name="prepare_submit", api_visibility="private", **events)
    return plans
