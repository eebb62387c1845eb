"""The service over the real corpus: cited answers, honest markers, abstention, filters and bad input."""

from __future__ import annotations

import pytest

from assistant.service import QuestionError, safe_filename
from tests.answering.citation_checks import citation_problems, markers_in
from tests.conftest import REVIEW

FACILITATOR_QUESTIONS = [
    "How should we handle power dynamics in a co-design group?",
    "How do we get a more diverse group of patients involved?",
    "What should leaders do to support co-production?",
    "How can we measure the impact of co-production?",
    "What is experience-based co-design?",
]


@pytest.mark.parametrize("question", FACILITATOR_QUESTIONS)
def test_every_marker_maps_to_a_retrieved_passage(corpus_service, question):
    answer = corpus_service.ask(question)
    assert not answer.abstained
    assert answer.citations, "an answer must carry citations"
    retrieved = {p.chunk.chunk_id for p in answer.passages}
    assert citation_problems(answer.text, answer.citations, retrieved) == []
    assert sorted(set(markers_in(answer.text))) == [c.n for c in answer.citations]
    for citation in answer.citations:
        passage = next(p for p in answer.passages if p.chunk.chunk_id == citation.chunk_id)
        # The quote is the passage's own words (markup aside), never text the assistant wrote.
        assert _words(citation.quote) <= _words(passage.chunk.text)


def _words(text: str) -> set[str]:
    import re

    return set(re.findall(r"[a-z0-9]+", text.lower()))


def test_power_dynamics_answer_cites_the_review_section(corpus_service):
    answer = corpus_service.ask("How should we handle power dynamics in a co-design group?")
    sections = [p.chunk.section for p in answer.passages[:5]]
    assert any("power dynamics" in s.lower() for s in sections)
    assert any(p.chunk.source == REVIEW for p in answer.passages[:5])


def test_review_citation_carries_its_primary_study(corpus_service):
    answer = corpus_service.ask("Why does early involvement of patients matter in quality improvement projects?")
    cited = [c for c in answer.citations if c.source == REVIEW]
    assert cited, "the review should be cited for this question"
    linked = [c for c in cited if c.reference]
    assert linked, "review passages name the studies they draw on"
    assert all(c.reference["key"] and (c.reference.get("url") or c.reference.get("doi") or c.reference.get("text")) for c in linked)
    assert all(c.source_url and c.source_url.startswith("https://www.england.nhs.uk/") for c in cited)


@pytest.mark.parametrize(
    "question",
    [
        "What is the best recipe for a chocolate cake?",
        "How do I file a self-assessment tax return?",
        "Which football team won the 1966 World Cup?",
    ],
)
def test_out_of_scope_questions_are_declined(corpus_service, question):
    answer = corpus_service.ask(question)
    assert answer.abstained
    assert answer.citations == []
    assert "don't cover" in answer.text
    assert len(answer.passages) >= 1, "the nearest sections are still shown"


def test_json_contract(corpus_service):
    data = corpus_service.ask("What makes co-production successful?").to_dict()
    for key in ("question", "answer", "abstained", "citations", "retrieved", "timings_ms", "backend"):
        assert key in data
    assert data["backend"] == "extractive"
    assert len(data["retrieved"]) >= 5
    for key in ("chunk_id", "text", "source", "title", "section", "score"):
        assert key in data["retrieved"][0]
    for key in ("n", "chunk_id", "source", "title", "section", "quote", "page", "reference"):
        assert key in data["citations"][0]
    assert set(data["timings_ms"]) >= {"retrieve", "answer", "total"}
    scores = [p["score"] for p in data["retrieved"]]
    assert all(isinstance(s, float) for s in scores)


def test_theme_and_document_filters(corpus_service):
    by_theme = corpus_service.ask("How do we find people to take part?", theme="recruitment")
    assert by_theme.passages and all("recruitment" in p.chunk.themes for p in by_theme.passages)
    by_document = corpus_service.ask("How do we find people to take part?", document=REVIEW)
    assert by_document.passages and all(p.chunk.source == REVIEW for p in by_document.passages)
    with pytest.raises(QuestionError, match="Unknown theme"):
        corpus_service.ask("anything", theme="cooking")


def test_follow_up_uses_the_earlier_question(corpus_service):
    answer = corpus_service.ask("And in mental health services?", history=["How do we recruit patients for co-design?"])
    assert "recruit" in answer.search_query and "mental health" in answer.search_query


@pytest.mark.parametrize("question, message", [("", "type a question"), ("   ", "type a question"), ("x" * 50_000, "50,000 characters")])
def test_bad_questions_get_a_clear_error(corpus_service, question, message):
    with pytest.raises(QuestionError, match=message):
        corpus_service.ask(question)


def test_unknown_backend_is_a_clear_error(corpus_service):
    with pytest.raises(QuestionError, match="backend"):
        corpus_service.ask("What is co-production?", backend="gpt-9")


def test_sources_and_stats(corpus_service):
    sources = {d["source"]: d for d in corpus_service.sources()}
    assert REVIEW in sources and sources[REVIEW]["chunks"] > 10
    assert sources[REVIEW]["licence"].startswith("Open Government Licence")
    assert any(s.startswith("notes/") for s in sources)
    stats = corpus_service.stats()
    assert stats["documents"] == len(sources) and stats["chunks"] == sum(d["chunks"] for d in sources.values())


@pytest.mark.parametrize(
    "name, expected",
    [
        ("../../etc/passwd.md", "passwd.md"),
        ("C:\\Users\\me\\report.pdf", "report.pdf"),
        (".hidden.txt", "hidden.txt"),
        ("a<b>|c.docx", "a_b_c.docx"),
    ],
)
def test_upload_names_cannot_escape_the_uploads_folder(name, expected):
    assert safe_filename(name) == expected


# -- the door: what faces, planning and evaluation may use instead of the service's internals ----------


def test_extractive_stream_is_typed_evidence_then_final(corpus_service):
    from assistant.service import Answer, Draft, Evidence, Final

    events = list(corpus_service.ask_stream("What is experience-based co-design?", backend="extractive"))
    assert [type(e) for e in events] == [Evidence, Final], events
    assert isinstance(events[0].answer, Answer) and events[-1].answer is events[0].answer
    assert not any(isinstance(e, Draft) for e in events)
    with pytest.raises(AttributeError):  # frozen: a consumer cannot swap the answer under another one
        events[0].answer = None


def test_every_name_the_service_exports_resolves():
    import assistant.service as service

    assert len(service.__all__) == len(set(service.__all__))
    for name in service.__all__:
        assert getattr(service, name) is not None, name
    assert "not verified" in service.UNSUPPORTED_NOTE  # loaded on first use, not when the service is imported
    with pytest.raises(AttributeError):
        service.NO_SUCH_NAME  # noqa: B018


def test_manifest_index_and_support_scorer(corpus_service):
    manifest = corpus_service.manifest()
    assert manifest["chunk_count"] == corpus_service.stats()["chunks"] > 0
    assert REVIEW in manifest["documents"]
    corpus_service.ensure_index()
    scorer = corpus_service.support_scorer()
    answer = corpus_service.ask("What is experience-based co-design?", backend="extractive")
    citation = answer.citations[0]
    passage = next(p for p in answer.passages if p.chunk.chunk_id == citation.chunk_id)
    check = scorer.check(citation.quote, citation.chunk_id, passage.chunk.text)
    assert check["supported"], check  # a quote is always supported by its own passage
    assert not scorer.check("Patients should be paid £500 per session.", citation.chunk_id, passage.chunk.text)["supported"]


def test_index_missing_is_reported_by_the_door(tmp_path):
    from assistant.service import AssistantService, IndexMissing
    from tests.conftest import make_settings

    service = AssistantService(make_settings(tmp_path))
    assert service.manifest().get("documents", {}) == {}
    with pytest.raises(IndexMissing):
        service.ensure_index()
    assert service.support_scorer().index is None  # scoring still works without the index's sentence vectors


def test_backend_records_and_privacy(corpus_service):
    from assistant.service import BACKENDS

    records = corpus_service.backends()
    assert [b.name for b in records] == list(BACKENDS) == ["extractive", "local", "ollama", "openai"]
    assert all(b.label and b.note for b in records)
    assert [b.name for b in records if b.generative] == ["local", "ollama", "openai"]
    assert (
        corpus_service.is_generative("ollama")
        and not corpus_service.is_generative("extractive")
        and not corpus_service.is_generative("nope")
    )
    settings = corpus_service.settings
    assert corpus_service.model_server("extractive") is None and corpus_service.model_server("local") is None
    assert corpus_service.model_server("ollama") == settings.ollama_url
    assert corpus_service.model_server("openai") == settings.openai_base_url
    assert corpus_service.model_label("extractive") == "extractive"
    assert corpus_service.model_label("ollama") == f"{settings.ollama_model} (Ollama at {settings.ollama_url})"
    with pytest.raises(KeyError, match="available: extractive, local, ollama, openai"):
        corpus_service.backend("gpt-9")
