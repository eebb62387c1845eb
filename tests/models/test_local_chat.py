"""The packaged local model (Qwen2.5-Coder-1.5B through llama-cpp-python) answering real questions.

`make test` runs `make local-llm` first, so the model is installed wherever the suite runs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest

from assistant.answering.cite import states_disagreement
from assistant.answering.generate import EVIDENCE_HEADING, GenerativeAnswerer, numbers_in
from assistant.models.local_chat import load_llama
from assistant.models.local_model import packaged_model_path
from assistant.models.prompts import load_prompt
from assistant.retrieval.conversation import rewrite_with_model, standalone_query
from assistant.service import AssistantService, Draft, Evidence, Final
from assistant.settings import PROJECT_ROOT
from tests.conftest import make_settings

MODEL = packaged_model_path(PROJECT_ROOT / "data")

ANSWERABLE = [
    "What is a trigger film in experience-based co-design?",
    "How can a facilitator stop clinicians dominating a co-design workshop?",
    "What should senior leaders do to make co-production lead to real change?",
    "What criteria must an Always Event meet?",
]
# A 1.5B model sometimes writes a sentence no passage supports; verification then serves the quotes
# instead. The bar: at least three questions answered by the model with verified citations.
MODEL_ANSWERED_AT_LEAST = 3
# Time limits in these tests are generous: they check behaviour on a machine other work may be loading;
# the speed targets are measured by benchmarks/backend_latency.py.
PATIENT_TIMEOUT = 300


def local_service(data_dir, **overrides) -> AssistantService:
    assert MODEL.exists(), f"{MODEL} is missing: run `make local-llm` (make test does)"
    return AssistantService(
        make_settings(data_dir, backend="local", llm_model_path=str(MODEL), **{"llm_timeout": PATIENT_TIMEOUT, **overrides})
    )


@pytest.fixture(scope="module")
def service(corpus_data_dir):
    return local_service(corpus_data_dir)


@pytest.fixture(scope="module")
def answers(service):
    """Each answerable question asked once through the stream: (events, final answer, seconds)."""
    results = []
    for question in ANSWERABLE:
        started = time.perf_counter()
        events = list(service.ask_stream(question))
        results.append((events, events[-1].answer, time.perf_counter() - started))
    return results


def test_the_local_model_writes_answers_with_verified_citations(answers):
    written = 0
    for events, answer, _ in answers:
        data = answer.to_dict()
        assert not data["abstained"] and data["citations"]
        passages = {p["chunk_id"]: p["text"] for p in data["retrieved"]}
        numbers = {c["n"] for c in data["citations"]}
        for n in {int(m) for m in re.findall(r"\[(\d+)\]", data["answer"])}:
            assert n in numbers, f"[{n}] has no citation in {data['answer']!r}"
        for citation in data["citations"]:
            assert citation["chunk_id"] in passages and citation["quote"]
        # what the model said is kept apart from what is shown, whichever was served
        assert data["citations_reported"] and all("sources" in r for r in data["citations_reported"])
        evidence = events[0].answer
        if data["backend"] == "local":
            written += 1
            assert data["model"] == MODEL.name and data["fallback"] is None
            kept = [c for c in data["verification"] if c["action"] in ("kept", "recited")]
            assert kept and all(c["supported_by"] for c in kept), data["verification"]
            # the model adds to the quotes: its short answer, then the evidence it was given, unchanged
            written_part, quoted = data["answer"].split(f"\n\n{EVIDENCE_HEADING}\n")
            assert quoted == evidence.text and data["citations"][: len(evidence.citations)] == [c.to_dict() for c in evidence.citations]
            assert 1 <= len(data["verification"]) <= 4 and re.search(r"\[\d+\]", written_part)
        else:  # the model's answer failed verification or declined: said so, and the quotes are served
            assert data["backend"] == "extractive" and data["answer"] == evidence.text
            assert data["fallback"] in ("unverified", "declined"), data["notice"]
            assert ("could not be verified" if data["fallback"] == "unverified" else "quoted below") in data["notice"]
    assert written >= MODEL_ANSWERED_AT_LEAST, [a.to_dict()["verification"] for _, a, _ in answers]


def test_evidence_first_then_the_model_streams_then_the_verified_answer(answers):
    for events, answer, _ in answers:
        assert isinstance(events[0], Evidence) and isinstance(events[-1], Final) and all(isinstance(e, Draft) for e in events[1:-1])
        assert len(events) - 2 >= 3, "the model's words arrive while it writes"
        assert events[0].answer.backend == "extractive"
        if answer.backend == "local":
            assert answer.timings_ms["first_token"] < answer.timings_ms["generate"]


def test_out_of_scope_question_is_declined(service):
    answer = service.ask("What dose of statins should an adult with high cholesterol take?")
    assert answer.abstained and "don't cover" in answer.text
    assert answer.backend == "local"


def test_a_question_beyond_the_passages_is_declined_not_invented(service):
    """Near the corpus (retrieval finds payment passages), but no passage states a fee: nothing invented."""
    answer = service.ask("What hourly rate in pounds does NHS England pay patient partners in 2026?")
    cited_text = {c.chunk_id: p.chunk.text for c in answer.citations for p in answer.passages if p.chunk.chunk_id == c.chunk_id}
    for check in answer.verification or []:
        if check["action"] in ("kept", "recited"):  # a figure shown as cited must be in the passage it cites
            assert numbers_in(check["text"]) <= set().union(*(numbers_in(t) for t in cited_text.values())), check


def test_the_fixed_instructions_stay_evaluated(service):
    """Per question llama.cpp evaluates the excerpts and question only, also after another prompt (a rewrite) ran."""
    model = service.chat_model("local")
    llama = load_llama(model.model_path, model.n_ctx, model.n_threads).llama
    evaluated: list[int] = []
    original = llama.eval
    llama.eval = lambda tokens: (evaluated.append(len(tokens)), original(tokens))[1]
    try:
        prompt_evals = []
        for question, rewrite_first in ((ANSWERABLE[1], False), (ANSWERABLE[2], False), (ANSWERABLE[3], True)):
            if rewrite_first:  # a different system prompt takes the context in between
                rewrite_with_model(model, "local", "And what about carers?", [ANSWERABLE[2]], PATIENT_TIMEOUT)
            evaluated.clear()
            answer = service.ask(question)
            evidence = service.ask(question, backend="extractive")
            writer = GenerativeAnswerer(service.settings, "local", model, service.index, service.embedder, None)
            messages, _ = writer.fit(question, writer.excerpts(evidence))
            prompt_evals.append((evaluated[0], model.count_tokens(str(messages[1].content)), answer.backend))
    finally:
        del llama.eval
    system = model.count_tokens(load_prompt("answer").system)
    assert system > 150
    for done, user, _ in prompt_evals[1:]:
        # the user turn plus the chat template's few tokens around it; never the instructions again
        assert done <= user + 12, prompt_evals


def test_a_count_the_sources_disagree_on_is_carried(service):
    """The EBCD-stages case: the toolkits disagree on the count, and the written answer says so."""
    answer = service.ask("What are the stages of experience-based co-design?")
    assert not answer.abstained and answer.citations
    if answer.backend == "local":
        written = answer.text.split(f"\n\n{EVIDENCE_HEADING}\n")[0]
        assert re.search(r"disagree|no single agreed|versions?|according to", written, re.IGNORECASE), written
        for check in answer.verification:
            if check["action"] in ("kept", "recited") and numbers_in(check["text"]):
                assert not check.get("qualifications_dropped"), check
    else:  # served as quotes: the quoted answer leads with the sentence saying the toolkits disagree
        assert answer.fallback in ("unverified", "declined") and states_disagreement(answer.citations[0].quote), answer.text


def test_a_follow_up_keeps_its_topic_with_the_model(service):
    """Recruiting seldom-heard groups, then "and what if they drop out halfway?": the search is about dropping out."""
    earlier = "how do you reach seldom heard groups for a codesign project"
    follow_up = "and what if they drop out halfway?"
    model = service.chat_model("local")
    query, by_model = service.search_query(follow_up, [earlier], model, "local")
    rewritten = rewrite_with_model(model, "local", follow_up, [earlier], PATIENT_TIMEOUT)
    assert by_model == (rewritten is not None)
    assert query == (rewritten or standalone_query(follow_up, [earlier]))
    assert re.search(r"drop", query, re.IGNORECASE) and re.search(r"co-?design|recruit|participa|group", query, re.IGNORECASE), query
    answer = service.ask(follow_up, history=[earlier])
    assert answer.search_query == query and not answer.abstained
    assert any("drop out" in p.chunk.text or "attrition" in p.chunk.text.lower() for p in answer.passages[:5]), answer.search_query


def test_a_reply_cut_short_gives_an_answer_or_the_quotes(corpus_data_dir):
    """Out of tokens mid-JSON (32): repaired if a sentence survives, else the quotes with a notice; never an error."""
    answer = local_service(corpus_data_dir, llm_max_tokens=32).ask(ANSWERABLE[0])
    assert not answer.abstained and answer.citations
    if answer.backend == "extractive":
        assert answer.fallback in ("malformed", "unverified", "declined") and answer.notice
    else:
        assert answer.verification and answer.fallback is None


@pytest.mark.parametrize("content", ["truncated", "garbage"])
def test_an_unreadable_model_file_gives_the_quotes_with_a_plain_notice(corpus_data_dir, tmp_path, content):
    bad = tmp_path / "model.gguf"
    with MODEL.open("rb") as source:
        bad.write_bytes(source.read(20_000_000) if content == "truncated" else b"GGUF" + os.urandom(4096))
    started = time.perf_counter()
    answer = AssistantService(make_settings(corpus_data_dir, backend="local", llm_model_path=str(bad))).ask(ANSWERABLE[0])
    assert time.perf_counter() - started < 60
    assert answer.backend == "extractive" and answer.fallback == "unreadable" and answer.citations
    assert "could not be loaded as a GGUF model" in answer.notice and "make local-llm" in answer.notice
    assert answer.notice.endswith("quoted from the sources instead.")


def test_time_limit_falls_back_to_quotes(corpus_data_dir):
    service = local_service(corpus_data_dir, llm_timeout=0.5)
    started = time.perf_counter()
    answer = service.ask(ANSWERABLE[0])
    assert time.perf_counter() - started < 60
    assert answer.backend == "extractive" and answer.fallback == "timeout"
    assert "in time" in answer.notice and answer.citations


def test_context_overflow_falls_back_to_quotes(corpus_data_dir):
    answer = local_service(corpus_data_dir, llm_context=512).ask(ANSWERABLE[0])
    assert answer.fallback == "context" and "context window" in answer.notice
    assert not answer.abstained and answer.citations


def test_missing_model_file_names_the_fix(corpus_data_dir):
    service = AssistantService(make_settings(corpus_data_dir, backend="local", llm_model_path=str(corpus_data_dir / "absent.gguf")))
    answer = service.ask(ANSWERABLE[0])
    assert answer.fallback == "missing" and "make local-llm" in answer.notice
    assert answer.citations and answer.backend == "extractive"


def test_batch_json_contract_with_the_local_backend(corpus_data_dir, tmp_path):
    lines = [ANSWERABLE[0], "x" * 50_000, "What dose of statins should an adult take?"]
    env = {
        **os.environ,
        "ASSISTANT_DATA_DIR": str(corpus_data_dir),
        "ASSISTANT_LLM_MODEL_PATH": str(MODEL),
    }
    result = subprocess.run(
        [sys.executable, "-m", "assistant", "ask", "--backend", "local", "--json", "-"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    replies = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(replies) == 3
    first, long, out_of_scope = replies
    assert first["backend"] == "local" and first["citations"] and first["model"] == MODEL.name
    assert long["error"] and "limit" in long["error"] and long["abstained"]
    assert out_of_scope["abstained"]
    for reply in replies:
        assert {"question", "answer", "abstained", "citations", "retrieved", "timings_ms", "backend", "citations_reported"} <= set(reply)
