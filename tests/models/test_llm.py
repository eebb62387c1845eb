"""Generative backends end to end: the real Ollama and OpenAI clients against fake servers on 127.0.0.1,
over the real corpus index. Checks what is sent, how replies are verified, and that every failure
serves the extractive answer with a plain notice instead of failing the question."""

from __future__ import annotations

import re
import sys
import time
from contextlib import ExitStack

import pytest

import assistant.models.llm
from assistant.answering.extractive import NOT_COVERED
from assistant.answering.generate import EVIDENCE_HEADING, UNSUPPORTED_NOTE, Excerpt, GenerativeAnswerer, answer_schema
from assistant.models.llm import INSTALL_HINTS, model_label
from assistant.retrieval.conversation import standalone_query
from assistant.service import AssistantService, Draft, Evidence, Final
from tests.answering.citation_checks import markers_in
from tests.conftest import make_settings
from tests.llm_servers import FakeOllama, FakeOpenAI, Reply, answer_json, closed_port_url

QUESTION = "How can a facilitator stop clinicians dominating a co-design workshop?"  # answerable, with several plain quotes
UNSUPPORTED = "Patients should be paid £500 per session."
MODEL = "test-model"
# a failing backend must give up well inside this, whatever the server does
PROMPT_RETURN_SECONDS = 15


@pytest.fixture(autouse=True)
def _fresh_chat_models():
    # chat models are cached per process; a test must not reuse another test's client
    assistant.models.llm._CACHE.clear()
    yield
    assistant.models.llm._CACHE.clear()


@pytest.fixture
def service_with(corpus_data_dir):
    """A service over the session's corpus index with the given settings."""

    def build(**overrides) -> AssistantService:
        return AssistantService(make_settings(corpus_data_dir, **overrides))

    return build


@pytest.fixture(scope="module")
def extractive_answer(corpus_service):
    """The extractive answer to QUESTION: what every failing backend must fall back to."""
    answer = corpus_service.ask(QUESTION)
    assert not answer.abstained and answer.citations
    return answer


def ollama_settings(server: FakeOllama, **overrides) -> dict:
    return {"backend": "ollama", "ollama_url": server.url, "ollama_model": MODEL, "llm_timeout": 5, **overrides}


def openai_settings(server: FakeOpenAI, **overrides) -> dict:
    return {"backend": "openai", "openai_base_url": server.base_url, "openai_model": MODEL, "llm_timeout": 5, **overrides}


def given_excerpts(service: AssistantService, question: str = QUESTION) -> tuple[object, list[Excerpt]]:
    """The extractive evidence and the excerpts numbered [n] in the model's prompt, as the service makes them."""
    evidence = service.ask(question, backend="extractive")
    writer = GenerativeAnswerer(service.settings, "ollama", None, service.index, service.embedder, None)
    _, excerpts = writer.fit(question, writer.excerpts(evidence))
    return evidence, excerpts


def quotable(excerpt: Excerpt) -> str:
    """The excerpt's own quoted sentence, when it is a plain declarative one a model could repeat."""
    text = excerpt.text
    # no digits (the number check), no brackets (they would read as [n] markers), not a question or lead-in
    assert 30 <= len(text) <= 400 and text[-1] not in "?:" and not re.search(r"[\d\[\]]", text), (
        f"excerpt {excerpt.number} is not quotable: {text!r}"
    )
    return text if text.endswith(".") else text + "."  # list items have no full stop; a model adds one


def sentences_from(service: AssistantService, question: str = QUESTION) -> tuple[list[Excerpt], str, str]:
    _, excerpts = given_excerpts(service, question)
    assert len(excerpts) >= 2
    return excerpts, quotable(excerpts[0]), quotable(excerpts[1])


def events_of(service: AssistantService, question: str = QUESTION, **kwargs) -> tuple[list, float]:
    started = time.monotonic()
    events = list(service.ask_stream(question, **kwargs))
    return events, time.monotonic() - started


def final(events) -> object:
    assert isinstance(events[0], Evidence), "the quoted evidence comes first, before any model call"
    assert isinstance(events[-1], Final) and not any(isinstance(e, (Evidence, Final)) for e in events[1:-1]), events
    return events[-1].answer


def written_part(answer) -> str:
    """The model's checked sentences: what comes before the quoted evidence."""
    assert EVIDENCE_HEADING in answer.text, answer.text
    return answer.text.split(f"\n\n{EVIDENCE_HEADING}\n")[0]


def assert_citations_verified(service: AssistantService, answer, given: list[Excerpt]) -> None:
    """Every [n] names a citation quoting a sentence of a passage retrieved for the question."""
    by_n = {c.n: c for c in answer.citations}
    shown = {p.chunk.chunk_id for p in answer.passages}
    index = service.index
    assert markers_in(answer.text)
    for n in markers_in(answer.text):
        citation = by_n[n]
        assert citation.chunk_id in shown
        rows = index.sentences_by_chunk[citation.chunk_id]
        assert citation.quote in [index.sentences[r][1] for r in rows], "a quote is the passage's own sentence"


def marker_after(text: str, sentence: str) -> list[int]:
    """The [n] numbers attached to `sentence` in an answer (markers go before its final full stop)."""
    match = re.search(re.escape(sentence.rstrip(".")) + r"((?:\s*\[\d+\])*)(?:\.|\s|$)", text)
    assert match, f"{sentence!r} not in {text!r}"
    return markers_in(match.group(1))


# -- the fake servers themselves -------------------------------------------------------------------


def test_fake_ollama_speaks_the_client_protocol():
    import ollama

    with FakeOllama([Reply(content="Hello there.")]) as server:
        client = ollama.Client(host=server.url, timeout=5)
        assert [m.model for m in client.list().models] == [MODEL]
        assert client.show(MODEL).capabilities == ["completion"]
        whole = client.chat(model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=False)
        parts = list(client.chat(model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True))
        with pytest.raises(ollama.ResponseError) as missing:
            client.show("other")
    assert whole.message.content == "Hello there."
    assert len(parts) > 2 and "".join(p.message.content for p in parts) == "Hello there." and parts[-1].done
    assert missing.value.status_code == 404
    assert [r.path for r in server.requests] == ["/api/tags", "/api/show", "/api/chat", "/api/chat", "/api/show"]


def test_fake_openai_answers_without_streaming_too(service_with):
    with FakeOpenAI([Reply(content="Hello there.")], api_key="sk-test") as server:
        service = service_with(**openai_settings(server, openai_api_key="sk-test"))
        reply = service.chat_model("openai").invoke("hi")
    assert reply.content == "Hello there."
    assert server.requests[0].body.get("stream") in (None, False)


# -- Ollama: a verified answer ---------------------------------------------------------------------


def test_ollama_answer_is_streamed_verified_and_cited(service_with):
    with FakeOllama() as server:
        service = service_with(**ollama_settings(server))
        given, first, second = sentences_from(service)
        server.script([Reply(content=answer_json([(first, [1]), (second, [2])]), chunks=8)])
        events, _ = events_of(service)
    answer = final(events)
    drafts = [e.text for e in events if isinstance(e, Draft)]
    assert all(isinstance(e, Draft) for e in events[1:-1]) and len(drafts) >= 2, events
    assert first in drafts[-1] and all(len(a) <= len(b) for a, b in zip(drafts, drafts[1:])), "drafts grow as the model writes"

    evidence = events[0].answer
    assert answer.backend == "ollama" and not answer.abstained and answer.fallback is None
    assert answer.notice == evidence.notice, "nothing flagged: the only notice is the evidence's own, if any"
    assert answer.model == model_label(service.settings, "ollama") and answer.model.startswith(MODEL)
    assert_citations_verified(service, answer, given)
    assert marker_after(answer.text, first) == [1] and marker_after(answer.text, second) == [2]
    assert answer.citations == evidence.citations, "the written answer cites the evidence's own cards"
    assert answer.text == f"{written_part(answer)}\n\n{EVIDENCE_HEADING}\n{evidence.text}", "the quoted evidence stays under the answer"
    assert written_part(answer) == f"{first.rstrip('.')} [1]. {second.rstrip('.')} [2]."

    data = answer.to_dict()
    assert data["citations_reported"] == [
        {"text": first, "sources": [1], "passages": [given[0].citation.chunk_id]},
        {"text": second, "sources": [2], "passages": [given[1].citation.chunk_id]},
    ]
    assert [(v["action"], v["supported_by"], v["missing"]) for v in data["verification"]] == [("kept", [1], []), ("kept", [2], [])]
    assert {"first_token", "generate", "verify", "total"} <= set(data["timings_ms"])

    (request,) = server.chat_requests()  # no follow-up, so no rewrite call
    body = request.body
    assert body["model"] == MODEL and body["stream"] is True
    assert body["format"] == answer_schema([g.number for g in given]), "the reply is constrained to the answer schema"
    assert body["options"]["num_ctx"] == service.settings.llm_context and body["options"]["temperature"] == 0
    user = body["messages"][-1]["content"]
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert f"Question: {QUESTION}" in user
    for g in given:
        assert f"[{g.number}] ({g.where}) {g.text}" in user, "compact excerpts: the section, then the quoted point"
    assert user.index("[1] ") < user.index("[2] ")
    system = body["messages"][0]["content"]
    assert QUESTION not in system and "[1]" not in system, "the instructions are the same for every question"
    assert len(user) < 350 * 4, "the per-question part stays small"


def test_reply_cut_off_mid_json_is_repaired(service_with):
    with FakeOllama() as server:
        service = service_with(**ollama_settings(server))
        given, first, second = sentences_from(service)
        whole = answer_json([(first, [1]), (second, [2])])
        server.script([Reply(content=whole[: whole.index(second) + len(second) // 2])])  # out of tokens mid-sentence
        answer = service.ask(QUESTION)
    assert answer.backend == "ollama" and answer.fallback is None
    assert marker_after(answer.text, first) == [1]
    assert answer.verification[0]["action"] == "kept"
    assert_citations_verified(service, answer, given)


# -- sentences the passages do not support ---------------------------------------------------------


def test_unsupported_sentence_is_flagged_without_a_marker(service_with):
    with FakeOllama() as server:
        service = service_with(**ollama_settings(server))
        given, first, _ = sentences_from(service)
        server.script([Reply(content=answer_json([(first, [1]), (UNSUPPORTED, [1])]))])
        answer = service.ask(QUESTION)
    assert answer.backend == "ollama"
    assert f"⚠ {UNSUPPORTED} {UNSUPPORTED_NOTE}" in answer.text, "flagged, and no [n] on it"
    assert marker_after(answer.text, first) == [1]
    assert answer.citations == service.ask(QUESTION, backend="extractive").citations, "the evidence's cards, nothing added"
    flagged = answer.verification[1]
    assert flagged["action"] == "flagged" and flagged["supported_by"] == [] and flagged["cited"] == [1]
    assert "1 sentence marked ⚠" in answer.notice
    assert_citations_verified(service, answer, given)


STAGES = "What are the stages of experience-based co-design?"
# The answer the issue found stamped as checked, though the source section says the toolkits disagree.
FOUR_STAGES = "Experience-based co-design has four stages: capture the experience, understand it, improve it, and measure the improvement."


def test_a_count_the_sources_disagree_on_is_flagged_and_the_disagreement_carried(service_with):
    from assistant.answering.cite import states_disagreement
    from assistant.text import split_sentences

    with FakeOllama() as server:
        service = service_with(**ollama_settings(server))
        evidence, excerpts = given_excerpts(service, STAGES)
        four = next((e for e in excerpts if "How many stages" in e.citation.section), None)  # the section on the count
        other = next((e for e in excerpts if e is not four and not re.search(r"[\d\[\]]", e.text)), None)
        assert four and other, [(e.number, e.where, e.text[:80]) for e in excerpts]
        server.script([Reply(content=answer_json([(FOUR_STAGES, [four.number]), (quotable(other), [other.number])]))])
        answer = service.ask(STAGES)
    assert answer.backend == "ollama", answer.notice
    wrong = next(c for c in answer.verification if c["text"] == FOUR_STAGES)
    assert wrong["action"] == "flagged" and wrong["qualifications_dropped"] == ["the sources disagree on the count"]
    written = written_part(answer)
    assert f"⚠ {FOUR_STAGES}" in written, "marked, not presented as checked"
    # the written answer carries the disagreement, quoted from the passage, with a card that quotes it
    added = answer.verification[0]
    assert added["action"] == "added" and states_disagreement(added["text"])
    assert added["text"] in split_sentences(four.passage.chunk.text), "the passage's own sentence"
    assert written.startswith(added["text"].rstrip(".")[:60])
    (n,) = marker_after(written, added["text"])
    card = next(c for c in answer.citations if c.n == n)
    assert added["text"] in card.quote and card.chunk_id == four.citation.chunk_id
    assert answer.citations[: len(evidence.citations)] == evidence.citations
    assert "1 sentence marked ⚠" in answer.notice


def test_unsupported_sentence_is_dropped_when_so_configured(service_with):
    with FakeOllama() as server:
        service = service_with(**ollama_settings(server, unsupported_sentences="drop"))
        given, first, _ = sentences_from(service)
        server.script([Reply(content=answer_json([(first, [1]), (UNSUPPORTED, [1])]))])
        answer = service.ask(QUESTION)
    assert answer.backend == "ollama"
    assert "£500" not in answer.text and "⚠" not in answer.text
    assert [v["action"] for v in answer.verification] == ["kept", "dropped"]
    assert "1 left out" in answer.notice
    assert [r["text"] for r in answer.citations_reported] == [first, UNSUPPORTED], "what the model said is still reported"


def test_answer_with_nothing_supported_falls_back_to_the_quotes(service_with, extractive_answer):
    with FakeOllama([Reply(content=answer_json([(UNSUPPORTED, [1])]))]) as server:
        service = service_with(**ollama_settings(server))
        events, _ = events_of(service)
    answer = final(events)
    assert answer.backend == "extractive" and answer.fallback == "unverified" and answer.model is None
    assert answer.text == extractive_answer.text and answer.citations
    assert "could not be verified" in answer.notice
    assert answer.citations_reported[0]["text"] == UNSUPPORTED
    assert answer.verification[0]["action"] == "flagged"


def test_citing_a_passage_that_was_not_given(service_with):
    with FakeOllama() as server:
        service = service_with(**ollama_settings(server))
        given, first, second = sentences_from(service)
        # three passages were given: [9] does not exist
        server.script([Reply(content=answer_json([(first, [1]), (second, [9]), (UNSUPPORTED, [9])]))])
        answer = service.ask(QUESTION)
    recited, flagged = answer.verification[1], answer.verification[2]
    assert recited["missing"] == [9] and recited["action"] == "recited" and recited["supported_by"] == [2]
    assert flagged["missing"] == [9] and flagged["action"] == "flagged"
    assert answer.citations_reported[1] == {"text": second, "sources": [9], "passages": []}
    (n,) = marker_after(answer.text, second)
    assert next(c for c in answer.citations if c.n == n).chunk_id == given[1].citation.chunk_id
    assert "[9]" not in answer.text and f"⚠ {UNSUPPORTED}" in answer.text
    assert_citations_verified(service, answer, given)


@pytest.mark.parametrize("content", [answer_json([], covered=False), '{"sentences": []}'], ids=["covered-false", "no-sentences"])
def test_model_that_declines_answerable_evidence_is_overruled(service_with, extractive_answer, content):
    """The search found passages that answer the question: a model saying otherwise does not hide them."""
    with FakeOllama([Reply(content=content)]) as server:
        service = service_with(**ollama_settings(server))
        answer = service.ask(QUESTION)
    assert not answer.abstained and answer.citations == extractive_answer.citations
    assert answer.text == extractive_answer.text and not answer.text.startswith(NOT_COVERED)
    assert answer.backend == "extractive" and answer.fallback == "declined" and answer.model is None
    assert "said the sources do not answer this" in answer.notice and "quoted below" in answer.notice


# -- OpenAI-compatible servers ---------------------------------------------------------------------


def test_openai_answer_sends_key_and_schema(service_with):
    with FakeOpenAI(api_key="sk-test") as server:
        service = service_with(**openai_settings(server, openai_api_key="sk-test"))
        given, first, second = sentences_from(service)
        server.script([Reply(content=answer_json([(first, [1]), (second, [2])]), chunks=6)])
        events, _ = events_of(service)
    answer = final(events)
    assert any(isinstance(e, Draft) for e in events)
    assert answer.backend == "openai" and answer.fallback is None
    assert answer.model == model_label(service.settings, "openai") and answer.model.startswith(MODEL)
    assert marker_after(answer.text, first) == [1] and marker_after(answer.text, second) == [2]
    assert_citations_verified(service, answer, given)
    (request,) = server.chat_requests()
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.body["stream"] is True and request.body["model"] == MODEL
    schema = answer_schema([g.number for g in given])
    assert request.body["response_format"] == {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
    assert "[2] " in request.prompt and f"Question: {QUESTION}" in request.prompt


@pytest.mark.parametrize(
    ("response_format", "sent"),
    [
        ("json_object", "json_object"),  # llama-cpp-python's server
        ("off", None),
    ],
)
def test_openai_response_format_setting(service_with, response_format, sent):
    with FakeOpenAI() as server:
        service = service_with(**openai_settings(server, openai_response_format=response_format))
        given, first, second = sentences_from(service)
        # without a format to follow a model writes prose with [n] markers; with one, JSON
        prose = f"{first.rstrip('.')} [1]. {second.rstrip('.')} [2]."
        server.script([Reply(content=answer_json([(first, [1]), (second, [2])]) if sent else prose)])
        answer = service.ask(QUESTION)
    (request,) = server.chat_requests()
    if sent:
        sent = {"type": sent, "schema": answer_schema([g.number for g in given])}
    assert request.body.get("response_format") == sent
    assert answer.backend == "openai" and answer.fallback is None
    assert [(r["sources"], v["action"]) for r, v in zip(answer.citations_reported, answer.verification)] == [([1], "kept"), ([2], "kept")]
    assert marker_after(answer.text, first) == [1] and marker_after(answer.text, second) == [2]
    assert_citations_verified(service, answer, given)


def test_prose_answer_keeps_its_full_stops(service_with):
    with FakeOpenAI() as server:
        service = service_with(**openai_settings(server, openai_response_format="off"))
        _, first, second = sentences_from(service)
        server.script([Reply(content=f"{first.rstrip('.')} [1]. {second.rstrip('.')} [2].")])
        answer = service.ask(QUESTION)
    assert written_part(answer) == f"{first.rstrip('.')} [1]. {second.rstrip('.')} [2]."


# -- failures: the question is still answered, from the quotes -------------------------------------

NOTICE_WORDS = {
    "unreachable": "is not reachable",
    "timeout": "did not answer in time",
    "auth": "refused the request's credentials",
    "missing": "does not have the configured model",
    "malformed": "could not be read",
    "unverified": "could not be verified",
}


def _ollama_down(stack):
    return {"backend": "ollama", "ollama_url": closed_port_url(), "ollama_model": MODEL}


def _openai_down(stack):
    return {"backend": "openai", "openai_base_url": closed_port_url() + "/v1", "openai_model": MODEL}


def _ollama(reply: Reply | None = None, model: str = MODEL):
    def start(stack):
        server = stack.enter_context(FakeOllama([reply or Reply(content="unused")], model=model))
        return ollama_settings(server)

    return start


def _openai(reply: Reply | None = None, model: str = MODEL, key: str | None = None):
    def start(stack):
        server = stack.enter_context(FakeOpenAI([reply or Reply(content="unused")], model=model, api_key=key))
        return openai_settings(server, openai_api_key="sk-wrong")

    return start


FAILURES = [
    pytest.param(_ollama_down, "unreachable", id="ollama-down"),
    pytest.param(_ollama(Reply(delay=30)), "timeout", id="ollama-hangs"),
    pytest.param(_ollama(Reply(content='{"covered": true, "sen', interval=30, chunks=2)), "timeout", id="ollama-stalls-mid-reply"),
    pytest.param(_ollama(model="another-model"), "missing", id="ollama-model-missing"),
    pytest.param(_ollama(Reply(status=401, error="unauthorized")), "auth", id="ollama-401"),
    pytest.param(_ollama(Reply(raw=b"this is not json\n")), "malformed", id="ollama-garbage-lines"),
    pytest.param(_ollama(Reply(content="I would rather talk about the weather today.")), "unverified", id="ollama-answer-not-json"),
    pytest.param(_openai_down, "unreachable", id="openai-down"),
    pytest.param(_openai(Reply(delay=30)), "timeout", id="openai-hangs"),
    pytest.param(_openai(key="sk-right"), "auth", id="openai-wrong-key"),
    pytest.param(_openai(model="another-model"), "missing", id="openai-model-missing"),
    pytest.param(_openai(Reply(raw=b"data: {not json\n\n")), "malformed", id="openai-garbage-sse"),
]


@pytest.mark.parametrize(("start", "kind"), FAILURES)
def test_failing_backend_serves_the_quoted_answer(service_with, extractive_answer, start, kind):
    with ExitStack() as stack:
        settings = {**start(stack), "llm_timeout": 1}
        service = service_with(**settings)
        events, elapsed = events_of(service)
    answer = final(events)
    assert elapsed < PROMPT_RETURN_SECONDS, "a failing model must not hold the question up"
    assert not answer.abstained and answer.citations
    assert answer.text == extractive_answer.text
    assert answer.backend == "extractive" and answer.model is None
    assert answer.notice and re.search(r"quoted from (the sources|them) instead\.$", answer.notice)
    assert service.settings.backend in answer.notice, "the notice names the backend that failed"
    assert answer.fallback == kind, answer.notice
    assert NOTICE_WORDS[kind] in answer.notice


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("", id="empty-reply"),
        pytest.param('{"covered": true, "sentences": [{"text": 42', id="covered-but-no-readable-sentence"),
    ],
)
def test_reply_without_sentences_is_not_a_decline(service_with, extractive_answer, content):
    with FakeOpenAI([Reply(content=content)]) as server:
        service = service_with(**openai_settings(server))
        answer = service.ask(QUESTION)
    assert not answer.abstained, "the sources cover the question; only the model's reply was unusable"
    assert answer.backend == "extractive" and answer.text == extractive_answer.text
    assert answer.fallback in ("malformed", "unverified")


def test_missing_package_names_the_install_command(service_with, monkeypatch, extractive_answer):
    monkeypatch.setitem(sys.modules, "langchain_ollama", None)  # import fails as if it were not installed
    service = service_with(backend="ollama", ollama_url=closed_port_url())
    events, _ = events_of(service)
    answer = final(events)
    assert answer.fallback == "not_installed" and answer.backend == "extractive"
    assert answer.text == extractive_answer.text and answer.citations
    assert INSTALL_HINTS["ollama"] in answer.notice and "langchain_ollama" in answer.notice


# -- follow-up questions ---------------------------------------------------------------------------

EARLIER = "How do we recruit patients for EBCD?"
FOLLOW_UP = "And how do we pay them?"
REWRITTEN = "How do we pay patients who take part in EBCD?"


def test_follow_up_is_rewritten_by_the_model(service_with):
    with FakeOllama([Reply(content=f"{REWRITTEN}\n"), Reply(content=answer_json([], covered=False))]) as server:
        service = service_with(**ollama_settings(server))
        answer = service.ask(FOLLOW_UP, history=[EARLIER])
    rewrite = server.chat_requests()[0]
    assert f"Follow-up question: {FOLLOW_UP}" in rewrite.prompt and EARLIER in rewrite.prompt
    assert rewrite.body.get("format") is None, "the rewrite is plain text, not the answer schema"
    assert answer.search_query == REWRITTEN, "the passages were searched for with the model's question"
    assert answer.fallback == "declined" and len(server.chat_requests()) == 2, "then the model was asked to answer"


RECRUIT = "how do you reach seldom heard groups for a codesign project"
DROP_OUT = "and what if they drop out halfway?"


def test_a_rewrite_that_loses_the_topic_is_refused(service_with):
    # the model kept the topic word but lost the user's words; searched for, it finds nothing on dropping out
    with FakeOllama(
        [Reply(content="How do you handle dropouts in a codesign project?\n"), Reply(content=answer_json([], covered=False))]
    ) as server:
        service = service_with(**ollama_settings(server))
        answer = service.ask(DROP_OUT, history=[RECRUIT])
    assert (
        answer.search_query
        == standalone_query(DROP_OUT, [RECRUIT])
        == "and what if participants drop out halfway? (for a codesign project)"
    )
    # and that query finds what the notes say about people dropping out of co-design
    assert any("drop out" in p.chunk.text or "attrition" in p.chunk.text.lower() for p in answer.passages[:5])


def test_follow_up_falls_back_to_the_rule_when_the_rewrite_fails(service_with):
    with FakeOllama([Reply(status=500, error="out of memory"), Reply(content=answer_json([], covered=False))]) as server:
        service = service_with(**ollama_settings(server))
        answer = service.ask(FOLLOW_UP, history=[EARLIER])
    assert "Follow-up question" in server.chat_requests()[0].prompt, "the model was asked first"
    assert answer.search_query == standalone_query(FOLLOW_UP, [EARLIER]) != FOLLOW_UP


# -- evaluation with a model backend -----------------------------------------------------------------


def quoting_model(request) -> Reply:
    """A model that answers with the first sentence of passage [1] as the prompt shows it."""
    excerpt = re.search(r"^\[1\] \([^)]*\) (.+)$", request.prompt, re.MULTILINE)
    sentence = re.split(r"(?<=[.!?])\s", excerpt.group(1))[0] if excerpt else ""
    return Reply(content=answer_json([(sentence, [1])]))


def test_eval_runs_with_a_model_backend_and_reports_model_figures(service_with, tmp_path, capsys):
    from assistant.evaluation.command import cmd_eval
    from assistant.faces.cli import build_parser

    suite = tmp_path / "mini.yaml"
    suite.write_text(
        "- id: model-001\n  question: What is a trigger film in experience-based co-design?\n  theme: running-co-production\n"
        "  answerable: true\n  evidence:\n    - document: notes/ebcd.md\n      snippet: trigger film\n"
        "- id: model-002\n  question: What is the capital of France?\n  theme: running-co-production\n  answerable: false\n",
        encoding="utf-8",
    )
    with FakeOllama(quoting_model) as server:
        service = service_with(**ollama_settings(server))
        args = build_parser().parse_args(
            ["eval", str(suite), "--backend", "ollama", "--judge", "none", "--no-progress", "--report", str(tmp_path / "out")]
        )
        status = cmd_eval(args, service=service)
    out, err = capsys.readouterr()
    assert status == 0, out + err
    results = __import__("json").loads((tmp_path / "out" / "results.json").read_text())
    turns = {c["id"]: c for c in results["cases"]}
    assert turns["model-001"]["response"]["backend"] == "ollama" and turns["model-001"]["response"]["model"].startswith(MODEL)
    assert turns["model-002"]["scores"]["abstained"]
    overall = results["summary"]["overall"]
    assert overall["model_fallback"] == 0.0 and overall["sentences_unsupported"] == 0.0
    assert overall["citation_validity"] == 1.0 and overall["citation_support"] == 1.0
    assert "first_token_p50_ms" in overall
    assert results["run"]["backend"] == "ollama" and results["run"]["model"].startswith(MODEL)
