"""The chat UI served for real on 127.0.0.1 and driven through gradio_client: ask, follow up, filter, upload, rate, export."""

from __future__ import annotations

import html
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import assistant  # noqa: F401  (offline variables first)
from assistant.faces.ui import (
    STARTERS,
    answer_html,
    answer_message,
    build_app,
    highlight,
    is_loopback,
    parse_auth,
    require_login_off_loopback,
    serve,
    source_card,
    warm_up,
)
from assistant.index.hidden import hidden_sources
from assistant.service import AssistantService
from assistant.settings import PROJECT_ROOT, Settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from gradio_client import Client, handle_file  # noqa: E402

LEAD = "How can a facilitator stop clinicians dominating a co-design workshop?"
FOLLOW_UP = "How do we measure that?"
OUT_OF_SCOPE = "What is the capital of France?"
MARK = re.compile(r"\[(\d+)\]")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(service, auth=None):
    app = build_app(service)
    _, url, _ = serve(app, "127.0.0.1", free_port(), auth=auth, prevent_thread_lock=True, quiet=True)
    return app, url


def text_of(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


def ask_stream(client: Client, question: str, document: str = "", theme: str = "", api_name: str = "/ask"):
    """Every streamed chatbot value, and the final one."""
    job = client.submit(question, document, theme, api_name=api_name)
    updates = [out[1] for out in job]
    final = job.result()[1]
    return updates, final


def last_turn(messages: list[dict]) -> list[dict]:
    start_at = max(i for i, m in enumerate(messages) if m["role"] == "user")
    return messages[start_at:]


@pytest.fixture(scope="module")
def served(corpus_service):
    warm_up(corpus_service)
    app, url = start(corpus_service)
    yield url
    app.close()


@pytest.fixture
def client(served):
    return Client(served, verbose=False)


@pytest.fixture(scope="module")
def scratch_service(corpus_data_dir, tmp_path_factory):
    """A private copy of the corpus index that tests may add to and remove from; small upload limit."""
    data_dir = tmp_path_factory.mktemp("ui-scratch") / "data"
    shutil.copytree(corpus_data_dir, data_dir, ignore=shutil.ignore_patterns(".lock", "feedback.sqlite3"))
    service = AssistantService(Settings(data_dir=data_dir, corpus_dir=PROJECT_ROOT / "corpus", max_file_mb=0.2))
    warm_up(service)
    return service


@pytest.fixture(scope="module")
def scratch_url(scratch_service):
    app, url = start(scratch_service)
    yield url
    app.close()


# -- plain API and streaming ---------------------------------------------------------------------


def test_chat_endpoint_returns_the_answer_with_markers(client, corpus_service):
    answer = client.predict(LEAD, api_name="/chat")
    assert answer == corpus_service.ask(LEAD).text
    assert MARK.search(answer)


def test_answer_streams_then_shows_one_card_per_marker(client, corpus_service):
    updates, final = ask_stream(client, LEAD)
    expected = corpus_service.ask(LEAD)
    partials = [text_of(u[-1]) for u in updates if u and u[-1]["role"] == "assistant" and not (u[-1].get("metadata") or {}).get("title")]
    assert len(partials) >= 3, "the answer should arrive in several pieces"
    assert all(len(a) <= len(b) for a, b in zip(partials, partials[1:]))
    assert partials[0] and answer_message(expected).startswith(partials[0].rstrip())

    turn = last_turn(final)
    assert text_of(turn[0]) == LEAD
    assert text_of(turn[1]) == answer_message(expected)
    cards = [m for m in turn if (m.get("metadata") or {}).get("parent_id")]
    markers = sorted({int(n) for n in MARK.findall(expected.text)})
    assert [int(MARK.match(m["metadata"]["title"]).group(1)) for m in cards] == markers
    for card, citation in zip(cards, expected.citations):
        body = text_of(card)
        assert citation.source in body and "<mark>" in body
        assert card["metadata"]["status"] == "done"  # collapsed until opened
        if citation.reference and citation.reference.get("url"):
            assert citation.reference["url"] in body
    offered = [m["options"] for m in turn if m.get("options")]
    assert len(offered) == 1 and offered[0], "suggested follow-ups are offered after the answer"
    for option in offered[0]:
        assert option["value"].endswith("?") and not option["value"].startswith("Tell me more"), option
        assert not corpus_service.ask(option["value"]).abstained, f"a suggested follow-up the sources cannot answer: {option['value']}"


def test_follow_up_uses_the_earlier_question(client, corpus_service):
    ask_stream(client, LEAD)
    _, final = ask_stream(client, FOLLOW_UP)
    with_history = corpus_service.ask(FOLLOW_UP, history=[LEAD])
    assert text_of(last_turn(final)[1]) == answer_message(with_history)
    assert with_history.text != corpus_service.ask(FOLLOW_UP).text  # the history really changed the answer


def test_suggested_follow_up_can_be_asked(client, corpus_service):
    _, final = ask_stream(client, LEAD)
    suggestion = [m for m in last_turn(final) if m.get("options")][0]["options"][0]["value"]
    _, after = ask_stream(client, suggestion)
    assert text_of(last_turn(after)[0]) == suggestion
    assert text_of(last_turn(after)[1]) == answer_message(corpus_service.ask(suggestion, history=[LEAD]))


def test_filters_restrict_the_sources(client, corpus_service):
    _, final = ask_stream(client, "How do we run co-design groups?", document="notes/ebcd.md")
    cards = [m for m in last_turn(final) if (m.get("metadata") or {}).get("parent_id")]
    assert cards and all("<code>notes/ebcd.md</code>" in text_of(c) for c in cards)

    themed = client.predict("How do we measure the impact?", "", "measurement", api_name="/chat")
    assert themed == corpus_service.ask("How do we measure the impact?", theme="measurement").text


def test_abstention_and_bad_questions_are_plain(client):
    _, final = ask_stream(client, OUT_OF_SCOPE)
    turn = last_turn(final)
    declined = html.unescape(re.sub(r'^<p class="notice">.*?</p>', "", text_of(turn[1])))  # quotes are entities in the HTML
    assert declined.startswith("The indexed sources don't cover this question")
    assert "nearest sections" in declined
    assert not [m for m in turn if (m.get("metadata") or {}).get("title", "").startswith("Sources for answer")]
    assert not [m for m in turn if m.get("options")], "no follow-ups after a decline"

    _, final = ask_stream(client, "x" * 5000)
    assert "the limit is" in text_of(last_turn(final)[1])
    assert "the limit is" in client.predict("x" * 5000, api_name="/chat")


def test_starters_cover_the_four_themes_and_answer(corpus_service):
    assert [t for t, _ in STARTERS] == ["running-co-production", "power-dynamics", "recruitment", "measurement"]
    for _, question in STARTERS:
        assert not corpus_service.ask(question).abstained, question


# -- feedback and export -------------------------------------------------------------------------


def test_feedback_is_stored_with_the_answer(client, corpus_service):
    ask_stream(client, LEAD)
    ask_stream(client, FOLLOW_UP)
    path = Path(corpus_service.settings.data_dir) / "feedback.sqlite3"
    before = 0
    if path.exists():
        with sqlite3.connect(path) as db:
            before = db.execute("SELECT COUNT(*) FROM feedback").fetchone()[0]
    status = client.predict(2, "down", "Nothing on measurement tools", api_name="/feedback")
    assert "saved" in status
    status = client.predict(2, "up", "Changed my mind", api_name="/feedback")  # the same answer: updated, not duplicated
    assert "saved" in status
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT * FROM feedback ORDER BY id").fetchall()
    assert len(rows) == before + 1
    row = rows[-1]
    assert row["rating"] == 1 and row["comment"] == "Changed my mind"
    assert row["question"] == FOLLOW_UP and row["history_json"] == f'["{LEAD}"]'
    assert row["answer"] == corpus_service.ask(FOLLOW_UP, history=[LEAD]).text
    assert '"chunk_id"' in row["citations_json"] and '"text"' in row["retrieved_json"] and row["backend"] == "extractive"
    with pytest.raises(Exception, match="not in the list of choices"):
        client.predict(9, "up", "", api_name="/feedback")  # no such answer in this conversation


def test_export_downloads_markdown_with_references(client, corpus_service):
    ask_stream(client, LEAD)
    ask_stream(client, FOLLOW_UP)
    path = client.predict(api_name="/export")
    text = Path(path).read_text(encoding="utf-8")
    assert f"## 1. {LEAD}" in text and f"## 2. {FOLLOW_UP}" in text
    for citation in corpus_service.ask(LEAD).citations:
        assert f"**[{citation.n}] " in text
    assert "## Documents cited" in text


def test_new_conversation_forgets_history(client, corpus_service):
    ask_stream(client, LEAD)
    client.predict(api_name="/clear")
    _, final = ask_stream(client, FOLLOW_UP)
    assert len([m for m in final if m["role"] == "user"]) == 1
    assert text_of(final[1]) == answer_message(corpus_service.ask(FOLLOW_UP))


# -- many users --------------------------------------------------------------------------------------


def test_eight_simultaneous_chats_complete_correctly(served, corpus_service):
    questions = [q for _, q in STARTERS] + [LEAD, OUT_OF_SCOPE, "How do we run co-design groups?", "What are Always Events?"]
    expected = {q: answer_message(corpus_service.ask(q)) for q in questions}
    results: dict[str, str] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(questions))

    def run(question):
        try:
            c = Client(served, verbose=False)
            barrier.wait()
            _, final = ask_stream(c, question)
            results[question] = text_of(last_turn(final)[1])
        except BaseException as exc:  # noqa: BLE001 - every thread's failure is reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(q,)) for q in questions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert results == expected


# -- library: upload, bad files, size limit, remove ----------------------------------------------------


def test_upload_bad_and_oversized_files_then_remove(scratch_url, scratch_service, tmp_path):
    client = Client(scratch_url, verbose=False)
    good = tmp_path / "tea-trolley-rounds.md"
    good.write_text(
        "# Tea trolley rounds\n\n## How the rounds work\n\n"
        "Volunteers push a tea trolley around the ward every afternoon and ask each patient one question about their care. "
        "The answers are written on cards and read out at the weekly huddle so that staff hear them first hand.\n",
        encoding="utf-8",
    )
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"this is not a PDF at all")
    unsupported = tmp_path / "tool.exe"
    unsupported.write_bytes(b"MZ\x00\x01")
    huge = tmp_path / "huge.txt"
    huge.write_text("words " * 60_000, encoding="utf-8")  # 0.36 MB, over the 0.2 MB limit

    report, _, table, *_ = client.predict([handle_file(p) for p in (good, broken, unsupported, huge)], api_name="/add_documents")
    assert "Added: tea-trolley-rounds.md: added" in report
    assert "Not added: broken.pdf: could not be indexed" in report
    assert "Not added: tool.exe: unsupported file type" in report
    assert "Not added: huge.txt: the file is 0.4 MB; the limit is 0.2 MB" in report
    assert table["headers"] == ["Title", "Passages", "Added", "Licence"]
    titles = [row[0] for row in table["data"]]
    assert titles[0] == "Tea trolley rounds", "newest first"
    assert "broken" not in " ".join(titles).lower()
    assert not (scratch_service.settings.uploads_dir / "broken.pdf").exists()

    answer = client.predict("What happens on the tea trolley rounds?", "uploads/tea-trolley-rounds.md", "", api_name="/chat")
    assert "[1]" in answer and "tea trolley" in answer.lower()

    question = client.predict("uploads/tea-trolley-rounds.md", api_name="/ask_to_remove")
    assert question.startswith("Remove **Tea trolley rounds**?") and "deleted" in question
    assert "uploads/tea-trolley-rounds.md" in [d["source"] for d in scratch_service.sources()], "asking removes nothing"
    message, table, *_ = client.predict("uploads/tea-trolley-rounds.md", api_name="/remove_document")
    assert "Removed" in message
    assert "Tea trolley rounds" not in [row[0] for row in table["data"]]
    assert not (scratch_service.settings.uploads_dir / "tea-trolley-rounds.md").exists()
    assert "Choose" in client.predict(None, api_name="/remove_document")[0]


# -- safety ----------------------------------------------------------------------------------------------


def test_login_is_required_off_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    with pytest.raises(SystemExit, match="without a login"):
        require_login_off_loopback("0.0.0.0", None)
    require_login_off_loopback("0.0.0.0", [("u", "p")])
    assert parse_auth("ann:secret, bob:pa:ss") == [("ann", "secret"), ("bob", "pa:ss")]
    with pytest.raises(ValueError):
        parse_auth("nopassword")
    env = {k: v for k, v in os.environ.items() if k != "ASSISTANT_AUTH"}
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "app.py"), "--host", "0.0.0.0", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode != 0 and "Refusing to listen on 0.0.0.0 without a login" in result.stderr


def test_login_protects_the_app(corpus_service):
    app, url = start(corpus_service, auth=[("facilitator", "s3cret")])
    try:
        with pytest.raises(Exception):  # noqa: B017 - the client's error for a refused login differs between its versions
            Client(url, verbose=False).predict(LEAD, api_name="/chat")
        answer = Client(url, auth=("facilitator", "s3cret"), verbose=False).predict(LEAD, api_name="/chat")
        assert MARK.search(answer)
    finally:
        app.close()


def test_analytics_off_and_chat_concurrency_set(corpus_service):
    app = build_app(corpus_service)
    assert app.analytics_enabled is False
    limits = {fn.api_name: fn.concurrency_limit for fn in app.fns.values()}
    assert limits["ask"] == 16 and limits["chat"] == 16
    assert all(fn.api_name for fn in app.fns.values())


def test_about_shows_backend_stats_and_the_review_attribution(corpus_service):
    ui = build_app(corpus_service).assistant_ui
    about = ui.about_markdown()
    assert "**Answer backend:** extractive" in about
    chosen = ui.about_markdown("local")
    assert "**Answer backend:** local" in chosen and "make local-llm" in chosen, (
        "the About tab follows the menu and helps administrators"
        and f"**Documents indexed:** {corpus_service.stats()['documents']}" in about
    )
    licences = ui.licences_markdown()
    assert "Contains public sector information licensed under the Open Government Licence v3.0" in licences
    assert "review/co-production-and-quality-improvement-2020.md" in licences
    assert "licence" in ui.note_sources_markdown().lower()


def test_document_text_is_escaped_everywhere():
    hostile = '<script>alert("x")</script> and <img src=x onerror=alert(1)>'
    marked = highlight(f"Intro line.\n\n{hostile} Then more.", hostile)
    assert "<script" not in marked and "<img" not in marked
    assert "<mark>&lt;script&gt;" in marked
    assert "<script" not in answer_html(hostile + " [1]") and '<span class="cite">[1]</span>' in answer_html(hostile + " [1]")

    from assistant.answering.cite import Citation

    citation = Citation(
        n=1,
        chunk_id="c",
        source="uploads/<b>x</b>.md",
        title="<script>t</script>",
        section="A > <img src=x onerror=alert(2)>",
        quote=hostile,
        page=2,
        reference={"key": "k", "text": "<svg onload=alert(3)>", "url": "javascript:alert(4)", "doi": None},
        references=[],
        source_url="javascript:alert(5)",
    )
    card = source_card(citation, hostile)
    assert not re.search(r"<(script|img|svg|b>)", card)
    assert "javascript:" not in card and "\n\n" not in card


def test_model_answer_streams_under_the_evidence_then_shows_checked(corpus_data_dir):
    """With a language model, the quoted evidence shows at once, the model's words stream under it, and
    the checked answer replaces both, naming the model; an unsupported sentence is marked."""
    from assistant.answering.generate import GenerativeAnswerer
    from tests.llm_servers import FakeOllama, Reply, answer_json

    with FakeOllama() as server:
        service = AssistantService(
            Settings(data_dir=corpus_data_dir, backend="ollama", ollama_url=server.url, ollama_model="test-model", llm_timeout=10)
        )
        evidence = service.ask(LEAD, backend="extractive")
        first = (
            GenerativeAnswerer(service.settings, "ollama", None, service.index, service.embedder, None).excerpts(evidence)[0].citation.quote
        )
        reply = answer_json([(first, [1]), ("Facilitators should pay clinicians £90 to stay quiet.", [2])])
        server.script([Reply(content=reply, chunks=12, interval=0.2)])
        app, url = start(service)
        try:
            job = Client(url, verbose=False).submit(LEAD, "", "", "ollama", api_name="/ask")
            updates = [out[1] for out in job]
            final_messages = job.result()[1]
        finally:
            app.close()
    while_writing = [u for u in updates if any("while the model writes" in text_of(m) for m in u)]
    assert while_writing, "the quoted evidence is shown while the model writes"
    assert any(
        (m.get("metadata") or {}).get("status") == "pending" and "writing" in (m.get("metadata") or {}).get("title", "")
        for u in while_writing
        for m in u
    )
    answer = text_of(last_turn(final_messages)[1])
    assert "Written by test-model" in answer
    assert 'class="unsupported"' in answer and "£90" in answer
    assert MARK.search(answer)
    assert not any("while the model writes" in text_of(m) for m in final_messages), "the checked answer replaces the draft"
    cards = [m for m in last_turn(final_messages) if (m.get("metadata") or {}).get("parent_id")]
    assert cards and any(first[:40] in text_of(c) for c in cards)


# -- issue 15: prepare tab, hidden documents, Word export, honest labels, notices -------------------------------


def test_prepare_endpoint_gives_a_preview_and_a_downloadable_plan(client):
    import docx

    preview, path, status = client.predict(
        "power dynamics in co-design workshops", "ward managers and patient partners", 60, "docx", api_name="/prepare"
    )
    assert "ready" in status
    assert "Learning objectives" in preview and "Agenda" in preview
    assert Path(path).name.endswith("60min.docx")
    headings = [p.text for p in docx.Document(path).paragraphs if p.style.name.startswith("Heading")]
    assert "Learning objectives" in headings and "References" in headings

    _, path, _ = client.predict("power dynamics in co-design workshops", "", 90, "md", api_name="/prepare")
    assert Path(path).read_text(encoding="utf-8").startswith("# Session plan: power dynamics in co-design workshops")

    preview, path, status = client.predict("   ", "", 60, "md", api_name="/prepare")
    assert path is None and preview == "" and status.startswith("The plan could not be prepared") and "topic" in status
    with pytest.raises(Exception, match="less than minimum value 15"):
        client.predict("power dynamics", "", 5, "md", api_name="/prepare")


@pytest.fixture
def hide_service(corpus_data_dir, tmp_path):
    data_dir = tmp_path / "data"
    shutil.copytree(corpus_data_dir, data_dir, ignore=shutil.ignore_patterns(".lock", "feedback.sqlite3"))
    return AssistantService(Settings(data_dir=data_dir, corpus_dir=PROJECT_ROOT / "corpus"))


def test_shipped_document_is_hidden_after_confirmation_and_stays_hidden(hide_service):
    source = "notes/glossary.md"
    app, url = start(hide_service)
    try:
        client = Client(url, verbose=False)
        question = client.predict(source, api_name="/ask_to_remove")
        assert question.startswith("Hide **") and "stays on this computer" in question
        message, *_ = client.predict(source, api_name="/remove_document")
        assert message.startswith("Hidden")
        assert source in hidden_sources(hide_service.settings.data_dir)
        assert (PROJECT_ROOT / "corpus" / source).exists(), "a shipped document is never deleted"

        report = hide_service.ingest()  # `assistant ingest` over the default folders
        assert not report.failures
        assert source not in [d["source"] for d in hide_service.sources()]
        assert not [p for p in hide_service.ask("What does co-design mean?").passages if p.chunk.source == source]

        message, table, *_ = client.predict(source, api_name="/restore_document")
        assert "shown and searched again" in message
        assert source in [d["source"] for d in hide_service.sources()] and not hidden_sources(hide_service.settings.data_dir)
    finally:
        app.close()


def test_remove_command_hides_a_shipped_document(hide_service):
    env = dict(os.environ, ASSISTANT_DATA_DIR=str(hide_service.settings.data_dir))
    command = [str(Path(sys.executable).with_name("assistant")), "remove", "notes/payment-and-reimbursement.md"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    assert "Hidden notes/payment-and-reimbursement.md" in result.stdout
    assert "notes/payment-and-reimbursement.md" in hidden_sources(hide_service.settings.data_dir)
    missing = subprocess.run(command[:2] + ["notes/no-such.md"], capture_output=True, text=True, timeout=300, env=env)
    assert missing.returncode == 2 and "no indexed document named" in missing.stderr


def test_word_export_has_the_conversation_with_links(client, corpus_service):
    import docx

    ask_stream(client, LEAD)
    path = client.predict(api_name="/export_docx")
    assert path.endswith(".docx")
    document = docx.Document(path)
    text = "\n".join(p.text for p in document.paragraphs)
    assert f"1. {LEAD}" in text and "Sources" in text and "Documents cited" in text
    for citation in corpus_service.ask(LEAD).citations:
        assert f"[{citation.n}] " in text
    links = [r.target_ref for r in document.part.rels.values() if r.reltype.endswith("/hyperlink")]
    assert links and all(link.startswith("http") for link in links)
    assert round(document.sections[0].page_width.mm) == 210, "A4"


def test_card_labels_say_primary_study_only_for_studies():
    from assistant.answering.cite import Citation

    web = {
        "key": "https://www.kingsfund.org.uk/x",
        "authors": [],
        "year": None,
        "text": "King's Fund: co-design groups",
        "url": "https://www.kingsfund.org.uk/x",
        "doi": None,
    }
    study = {
        "key": "bombard-2018",
        "authors": ["Bombard"],
        "year": "2018",
        "text": "Bombard Y et al (2018) Engaging patients.",
        "url": None,
        "doi": "10.1136/bmjqs-2017-007011",
    }
    base = dict(
        n=1, chunk_id="c", source="notes/x.md", title="T", section="S", quote="A quote.", page=None, reference=None, source_url=None
    )
    web_card = source_card(Citation(**base, references=[web]), "A quote.")
    assert "<strong>Source:</strong>" in web_card and "Primary study" not in web_card
    study_card = source_card(Citation(**base, references=[study]), "A quote.")
    assert "<strong>Primary study:</strong> Bombard" in study_card and "doi.org/10.1136" in study_card


def test_in_text_citations_stay_plain_text():
    html = answer_html("Involve patients early (NESTA 2013) [1]. See [NESTA 2013](#) and [Bombard et al 2018](https://x.org/a) [2].")
    assert "(NESTA 2013)" in html
    assert "](" not in html and "[NESTA" not in html and "<a" not in html
    assert '<span class="cite">[1]</span>' in html and '<span class="cite">[2]</span>' in html


def test_fallback_notice_comes_first_in_plain_sentences(corpus_service):
    from dataclasses import replace

    answer = corpus_service.ask(LEAD)
    failed = replace(
        answer,
        notice="The ollama model server at http://127.0.0.1:1 is not reachable. Is it running?. The sentences below are quoted from the sources instead.",
        fallback="unreachable",
    )
    shown = answer_message(failed)
    assert shown.startswith('<p class="notice">') and shown.index("notice") < shown.index(answer_html(answer.text)[:30])
    notice = re.search(r'<p class="notice">(.*?)</p>', shown).group(1)
    assert "About tab" in notice and "make " not in notice and "?." not in notice and notice.endswith(".")
    missing = replace(answer, notice="The local backend needs ... Install it with: make local-llm", fallback="not_installed")
    assert "make" not in answer_message(missing)
