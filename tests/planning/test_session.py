"""Session plans over the real index: timings, honest citations, thin evidence, bad input, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from assistant.answering.cite import lexical_support
from assistant.planning.catalogue import activity_texts, audience_texts, match_audience
from assistant.planning.evidence import ANSWER_MIN_LOGIT, TOPIC_MIN_LOGIT
from assistant.planning.render import render
from assistant.planning.session import (
    REVIEW_SOURCE,
    PlanError,
    activity_kind,
    allocate_minutes,
    build_activity,
    build_agenda,
    build_plan,
    check_format,
    check_request,
    tidy_quote,
)
from assistant.service import AssistantService
from tests.answering.citation_checks import citation_problems
from tests.conftest import make_settings

POWER = "power dynamics in co-design workshops"
LEGO = "using Lego serious play in co-design"
AUDIENCE = "ward managers and patient partners"


@pytest.fixture(scope="module")
def power_plan(ce_service):
    plan = build_plan(ce_service, POWER, AUDIENCE, 90)
    assert plan.relevance_method == "cross-encoder"
    return plan


@pytest.fixture(scope="module")
def audience_plans(ce_service):
    return {
        key: build_plan(ce_service, POWER, audience, 90)
        for key, audience in (
            ("board", "hospital board members"),
            ("managers", "ward managers"),
            ("patients", "patient partners and carers"),
        )
    }


@pytest.fixture(scope="module")
def thin_plan(corpus_service):
    return build_plan(corpus_service, "knitting techniques", None, 45)


def assert_valid(citation, answer):
    """The citation is one the answer gave: its chunk was retrieved, and its quote is that passage's words."""
    assert not answer.abstained
    passages = {p.chunk.chunk_id: p for p in answer.passages}
    assert citation.chunk_id in passages, f"{citation.chunk_id} not retrieved for {answer.question!r}"
    assert lexical_support(citation.quote, passages[citation.chunk_id].chunk.text) == 1.0, citation.quote
    assert any(c.chunk_id == citation.chunk_id and c.quote == citation.quote for c in answer.citations)
    assert citation_problems("[1]", [citation], set(passages)) == []


# -- the agenda ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("minutes", [15, 45, 90, 480])
def test_agenda_adds_up_to_the_duration(corpus_service, minutes):
    plan = build_plan(corpus_service, POWER, AUDIENCE, minutes)
    assert sum(item.minutes for item in plan.agenda) == minutes
    assert all(item.minutes >= 5 and item.minutes % 5 == 0 for item in plan.agenda)
    starts = [item.start for item in plan.agenda]
    assert starts[0] == 0 and starts == sorted(starts)
    assert plan.agenda[-1].start + plan.agenda[-1].minutes == minutes
    assert plan.activity.minutes == next(i.minutes for i in plan.agenda if i.title.startswith("Activity:"))


@pytest.mark.parametrize("minutes", list(range(15, 481, 7)) + [15, 16, 19, 20, 29, 30, 119, 120, 299, 300, 479, 480])
def test_agenda_allocation_is_exact_for_every_duration(minutes):
    activity = build_activity("power", POWER, AUDIENCE, 0)
    for thin, has_assumptions in ((False, True), (True, False)):
        agenda = build_agenda(minutes, POWER, activity, thin, has_assumptions, 4)
        assert sum(item.minutes for item in agenda) == minutes
        assert all(item.minutes >= 5 for item in agenda)
        # Rounded to 5 minutes where possible: only the activity absorbs a remainder.
        assert sum(1 for item in agenda if item.minutes % 5) <= 1
        assert any(item.title.startswith("Activity:") for item in agenda)
        if minutes >= 120:
            assert any("Break" in item.title or "break" in item.title for item in agenda)


def test_allocation_is_proportional_and_deterministic():
    assert allocate_minutes([1, 1], 20) == [10, 10]
    assert allocate_minutes([1, 3], 40) == [10, 30]
    assert allocate_minutes([1, 2, 1], 47) == allocate_minutes([1, 2, 1], 47)
    assert sum(allocate_minutes([1, 2, 1], 47)) == 47
    with pytest.raises(ValueError):
        allocate_minutes([1, 1, 1, 1], 15)


def test_short_sessions_keep_the_evidence_and_the_activity(corpus_service):
    plan = build_plan(corpus_service, POWER, AUDIENCE, 15)
    titles = [item.title for item in plan.agenda]
    assert len(titles) == 3
    assert any(t.startswith("What the evidence says") for t in titles)
    assert any(t.startswith("Activity:") for t in titles)


# -- key messages and their evidence ------------------------------------------------------------------


def test_every_key_message_has_a_valid_citation(power_plan):
    assert len(power_plan.key_messages) >= 2
    assert power_plan.evidence_notice is None
    for message in power_plan.key_messages:
        assert message.citations
        answer = power_plan.evidence[message.question]
        for citation in message.citations:
            assert_valid(citation, answer)
        assert message.text == tidy_quote(message.citations[0].quote)  # the extractive writer adds no words


def test_key_messages_are_standalone_evidence_about_the_topic(power_plan):
    texts = [m.text for m in power_plan.key_messages]
    assert len(set(texts)) == len(texts)
    assert any("power" in t.lower() for t in texts)
    for message in power_plan.key_messages:
        citation = message.citations[0]
        assert not citation.section.endswith("References")
        assert not message.text.endswith("?")
        assert not message.text.lower().startswith("our suggestion")
        assert len(message.text.split()) >= 9


def test_sub_topic_questions_come_from_the_topic(power_plan):
    questions = list(power_plan.evidence)
    assert f"What does the evidence say about {POWER}?" in questions
    assert f"What gets in the way of {POWER}?" in questions
    assert f"What practical steps help with {POWER}?" in questions
    assert f"How can we measure {POWER}?" in questions


def test_the_same_request_gives_the_same_plan(ce_service, power_plan):
    again = build_plan(ce_service, POWER, AUDIENCE, 90)
    assert again.to_dict() == power_plan.to_dict()


def test_assumptions_come_from_the_review_with_valid_citations(power_plan):
    pairs = power_plan.assumptions_vs_evidence
    assert len(pairs) >= 2
    assert any("assume" in p.assumption.text.lower() for p in pairs)
    for pair in pairs:
        for finding in (pair.assumption, pair.evidence):
            if finding is None:
                continue
            answer = power_plan.evidence[finding.question]
            assert answer.passages and all(p.chunk.source == REVIEW_SOURCE for p in answer.passages)
            for citation in finding.citations:
                assert citation.source == REVIEW_SOURCE
                assert_valid(citation, answer)
        assert pair.evidence is None or pair.evidence.text != pair.assumption.text


def test_references_list_the_primary_studies_and_documents_with_links(power_plan):
    studies = [r for r in power_plan.references if r.kind == "study"]
    documents = [r for r in power_plan.references if r.kind == "document"]
    review = next(d for d in documents if "literature review" in d.text.lower())
    assert review.url and review.url.startswith("https://www.england.nhs.uk/")
    assert len(studies) >= 3 and all(s.url for s in studies)
    listed = {s.url for s in studies} | {d.url for d in documents}
    cited = [c for m in power_plan.key_messages for c in m.citations]
    cited += [c for p in power_plan.assumptions_vs_evidence for f in (p.assumption, p.evidence) if f for c in f.citations]
    for citation in cited:
        for reference in citation.references:
            url = reference.get("url") or (f"https://doi.org/{reference['doi']}" if reference.get("doi") else None)
            assert url in listed, reference
        assert citation.source in {c.source for c in cited}
    assert any("Lord" in s.text for s in studies)


def test_activity_and_teaching_content_follow_the_topic(power_plan):
    assert power_plan.activity.kind == "power"
    assert "role play" in power_plan.activity.name.lower()
    assert power_plan.activity.steps and power_plan.activity.facilitator_notes
    assert len(power_plan.objectives) >= 3
    assert len(power_plan.discussion_questions) >= 4
    assert len(power_plan.handout.questions) == 3
    assert 1 <= len(power_plan.handout.key_messages) <= 4
    assert power_plan.handout.read_more


@pytest.mark.parametrize(
    "topic, kind",
    [
        ("power dynamics in co-design workshops", "power"),
        ("hierarchy in ward meetings", "power"),
        ("running an EBCD project", "experience"),
        ("patient experience touchpoints", "experience"),
        ("recruiting seldom-heard groups", "recruitment"),
        ("measuring the impact of co-production", "measurement"),
        ("paying patient partners", "default"),
    ],
)
def test_activity_kind_is_chosen_by_theme(topic, kind):
    assert activity_kind(topic) == kind
    assert build_activity(kind, topic, AUDIENCE, 30).kind == kind


AUDIENCES = ("hospital board members", "ward managers", "patient partners and carers", AUDIENCE, "nurses")


def test_activity_instructions_invent_no_figures():
    for kind in ("power", "experience", "recruitment", "measurement", "default"):
        for thin in (False, True):
            for audience in AUDIENCES:
                activity = build_activity(kind, "a topic", audience, 30, thin)
                cards = [t for c in activity.role_cards for t in (c.role, c.brief, c.private_brief)]
                sheet = [activity.observer_sheet.instructions, *activity.observer_sheet.rows] if activity.observer_sheet else []
                text = " ".join(
                    [
                        activity.name,
                        activity.purpose,
                        *activity.materials,
                        *activity.steps,
                        *activity.facilitator_notes,
                        *activity.debrief,
                        *cards,
                        *sheet,
                    ]
                )
                assert not any(ch.isdigit() for ch in text), (kind, audience, text)
                assert "{" not in text and "}" not in text, (kind, audience, text)  # every placeholder filled


@pytest.mark.parametrize("kind", ["power", "experience", "recruitment", "measurement", "default", "thin"])
@pytest.mark.parametrize("audience", AUDIENCES)
def test_activities_carry_the_role_cards_and_observer_sheet_they_ask_for(kind, audience):
    activity = build_activity(kind, "a topic", audience, 30, thin=kind == "thin")
    needs = " ".join(activity.materials + activity.steps).lower()
    if "role card" in needs:
        assert len(activity.role_cards) >= 3 and all(c.role and c.brief and c.private_brief for c in activity.role_cards)
        for card in activity.role_cards:
            assert card.role in " ".join(activity.steps)  # the steps name the cards they hand out
    else:
        assert activity.role_cards == []
    if "observer sheet" in needs:
        sheet = activity.observer_sheet
        assert sheet and sheet.rows and len(sheet.columns) == 2 and sheet.instructions
    else:
        assert activity.observer_sheet is None


def test_the_power_plan_prints_its_role_cards_and_observer_sheet(power_plan):
    activity = power_plan.activity
    assert activity.role_cards and activity.observer_sheet
    page = render(power_plan, "md")
    for card in activity.role_cards:
        assert f"**{card.role}**" in page and card.private_brief in page
    assert f"### {activity.observer_sheet.title}" in page
    assert all(f"| {row} |" in page for row in activity.observer_sheet.rows)


# -- audiences ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "audience, profile",
    [
        ("hospital board members", "board"),
        ("trust board", "board"),
        ("Non-executive directors", "board"),
        ("ward managers", "managers"),
        ("ward sisters", "managers"),
        ("matrons and team leaders", "managers"),
        ("patient partners and carers", "patients"),
        ("service users", "patients"),
        ("ward managers and patient partners", "mixed"),
        ("staff and patient partners", "mixed"),
        ("nurses", "staff"),
        ("", "mixed"),
        ("people who like cake", "mixed"),
    ],
)
def test_free_text_audiences_match_a_profile(audience, profile):
    assert match_audience(audience).key == profile


def test_every_profile_has_its_words_or_takes_them_from_mixed():
    data = audience_texts()
    assert data["default"] in data["profiles"] and set(data["order"]) <= set(data["profiles"])
    for key in data["profiles"]:
        audience = match_audience(data["profiles"][key]["match"][0]) if data["profiles"][key]["match"] else match_audience("")
        assert audience.key == key
        for kind in ("power", "experience", "recruitment", "measurement", "default"):
            assert audience.get("objectives", "by_kind", kind) and len(audience.get("discussion", kind)) == 2
            assert audience.get("handout", "first_question", kind)
    assert set(activity_texts()) == {"power", "experience", "recruitment", "measurement", "thin", "default"}


def test_board_managers_and_patients_get_different_plans(audience_plans):
    board, managers, patients = audience_plans["board"], audience_plans["managers"], audience_plans["patients"]
    assert (board.audience_profile, managers.audience_profile, patients.audience_profile) == ("board", "managers", "patients")
    for a, b in ((board, managers), (board, patients), (managers, patients)):
        assert set(a.objectives).isdisjoint(b.objectives)
        assert a.activity.name != b.activity.name or a.activity.steps != b.activity.steps
        assert [c.role for c in a.activity.role_cards] != [
            c.role for c in b.activity.role_cards
        ] or a.activity.facilitator_notes != b.activity.facilitator_notes
        assert a.handout.intro != b.handout.intro and a.handout.points != b.handout.points
        assert set(a.handout.questions).isdisjoint(b.handout.questions)
        assert set(a.discussion_questions[:2]).isdisjoint(b.discussion_questions[:2])
        # The evidence is the same: only the planner's own words follow the audience.
        assert [m.text for m in a.key_messages] == [m.text for m in b.key_messages]
    assert "board" in " ".join(board.objectives).lower() and "board" in board.activity.name.lower()
    assert "board" in board.handout.intro.lower() and "board" not in " ".join(managers.objectives).lower()
    assert "ward" in " ".join(managers.objectives).lower() and "ward" in managers.activity.steps[0].lower()
    assert "Medical director" in [c.role for c in board.activity.role_cards]
    assert "Staff nurse" in [c.role for c in managers.activity.role_cards]
    assert any("you" in p.lower().split() for p in patients.handout.points)
    assert "patient partners and carers" in patients.activity.name.lower() or "being heard" in patients.activity.name.lower()


def test_the_handout_points_only_to_public_places(audience_plans, power_plan):
    for plan in [power_plan, *audience_plans.values()]:
        assert plan.handout.read_more
        for entry in plan.handout.read_more:
            assert entry.url and entry.url.startswith(("https://", "http://")), entry
        for fmt in ("md", "html"):
            handout = render(plan, fmt).split("Handout:")[-1].split("References")[0]
            assert "library" not in handout.lower() and "in the assistant" not in handout.lower()


# -- thin evidence ------------------------------------------------------------------------------------


def test_key_messages_address_the_topic_by_the_cross_encoder(ce_service, power_plan):
    scores = ce_service.relevance_scores(POWER, [m.text for m in power_plan.key_messages])
    assert all(float(s) >= TOPIC_MIN_LOGIT for s in scores), scores
    assert [m.relevance for m in power_plan.key_messages] == pytest.approx([float(s) for s in scores], abs=0.01)


def test_a_topic_only_its_framing_covers_gets_the_thin_evidence_warning(ce_service):
    plan = build_plan(ce_service, LEGO, "ward managers", 90)
    assert plan.relevance_method == "cross-encoder"
    assert plan.evidence_notice and "say little" in plan.evidence_notice and "left out" in plan.evidence_notice
    assert len(plan.key_messages) < 2 and plan.nearest_sections
    assert plan.activity.kind == "default" and "find out" in plan.activity.name  # no activity the evidence cannot back
    # The co-design quotes it retrieves are really not about Lego serious play: none reaches the bar.
    quotes = sorted({c.quote for q, a in plan.evidence.items() if q.endswith(f"{LEGO}?") for c in a.citations})
    assert quotes and float(max(ce_service.relevance_scores(LEGO, quotes))) < TOPIC_MIN_LOGIT
    assert "**Evidence is thin.**" in render(plan, "md")


def test_every_assumption_is_answered_by_its_evidence(ce_service, power_plan, audience_plans):
    for plan in [power_plan, *audience_plans.values()]:
        assert plan.assumptions_vs_evidence
        for pair in plan.assumptions_vs_evidence:
            assert pair.evidence is not None and pair.challenge.endswith("?")
            score = float(ce_service.relevance_scores(pair.challenge, [pair.evidence.text])[0])
            assert score >= ANSWER_MIN_LOGIT, (pair.challenge, pair.evidence.text, score)
            assert not pair.evidence.text.lower().startswith(("to overcome this", "these ", "this "))


def test_the_planner_falls_back_to_the_embedding_without_a_cross_encoder(corpus_data_dir, tmp_path):
    service = AssistantService(make_settings(corpus_data_dir, cross_encoder_path=str(tmp_path / "no-cross-encoder")))
    plan = build_plan(service, POWER, AUDIENCE, 45)
    assert plan.relevance_method == "cosine"
    assert plan.evidence_notice is None and len(plan.key_messages) >= 2


def test_a_topic_the_corpus_barely_covers_gets_a_plan_that_says_so(thin_plan):
    assert thin_plan.key_messages == []
    assert thin_plan.evidence_notice and "little" in thin_plan.evidence_notice and "no key messages" in thin_plan.evidence_notice
    assert thin_plan.nearest_sections
    assert sum(item.minutes for item in thin_plan.agenda) == 45
    assert any("do not cover" in item.title for item in thin_plan.agenda)
    assert thin_plan.handout.key_messages == []
    assert thin_plan.to_dict()["evidence_notice"] == thin_plan.evidence_notice


# -- bad input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "topic, minutes, message",
    [
        ("", 90, "topic"),
        ("   ", 90, "topic"),
        (POWER, 14, "between 15 and 480"),
        (POWER, 0, "between 15 and 480"),
        (POWER, -30, "between 15 and 480"),
        (POWER, 481, "between 15 and 480"),
        (POWER, "ninety", "whole number"),
        ("x" * 201, 90, "limit"),
    ],
)
def test_bad_requests_are_refused_plainly(corpus_service, topic, minutes, message):
    with pytest.raises(PlanError, match=message):
        build_plan(corpus_service, topic, None, minutes)


def test_request_is_normalised():
    assert check_request("  power   dynamics?  ", "", "60") == ("power dynamics", "staff and patient partners", 60)
    assert check_format("Markdown") == "md" and check_format(".HTML") == "html"
    with pytest.raises(PlanError, match="Unknown format 'pdf'"):
        check_format("pdf")


def test_plan_error_is_a_value_error():
    assert issubclass(PlanError, ValueError)


# -- the command --------------------------------------------------------------------------------------


def run_cli(args, data_dir):
    env = dict(os.environ, ASSISTANT_DATA_DIR=str(data_dir))
    return subprocess.run([sys.executable, "-m", "assistant", *args], capture_output=True, text=True, env=env, timeout=300)


def test_cli_prints_a_markdown_plan(corpus_data_dir):
    result = run_cli(["prepare", "--topic", POWER, "--audience", AUDIENCE, "--minutes", "60"], corpus_data_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"# Session plan: {POWER}")
    for heading in ("## Learning objectives", "## Agenda", "## Key messages", "## References"):
        assert heading in result.stdout


def test_cli_json_has_the_plan_as_data(corpus_data_dir, tmp_path):
    out = tmp_path / "plan.json"
    result = run_cli(["prepare", "--topic", POWER, "--minutes", "45", "--format", "json", "--out", str(out)], corpus_data_dir)
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text(encoding="utf-8"))
    for key in (
        "agenda",
        "key_messages",
        "references",
        "objectives",
        "discussion_questions",
        "activity",
        "assumptions_vs_evidence",
        "handout",
        "evidence_notice",
        "topic",
        "audience",
        "minutes",
    ):
        assert key in data, key
    assert sum(item["minutes"] for item in data["agenda"]) == 45 == data["minutes"]
    assert all({"title", "minutes"} <= set(item) for item in data["agenda"])
    assert all(m["text"] and m["citations"] for m in data["key_messages"])


def test_cli_thin_topic_still_succeeds_and_says_so(corpus_data_dir):
    result = run_cli(["prepare", "--topic", "knitting techniques", "--minutes", "30"], corpus_data_dir)
    assert result.returncode == 0, result.stderr
    assert "Evidence is thin" in result.stdout and "No key messages" in result.stdout
    assert "say little" in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--topic", ""], "Please give a topic"),
        (["--topic", POWER, "--minutes", "10"], "between 15 and 480"),
        (["--topic", POWER, "--minutes", "500"], "between 15 and 480"),
        (["--topic", POWER, "--format", "pdf"], "Unknown format 'pdf'"),
        (["--topic", POWER, "--format", "docx"], "--out"),
    ],
)
def test_cli_bad_input_exits_2_with_a_plain_message(corpus_data_dir, args, message):
    result = run_cli(["prepare", *args], corpus_data_dir)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_cli_without_an_index_says_what_to_do(tmp_path):
    result = run_cli(["prepare", "--topic", POWER], tmp_path / "empty")
    assert result.returncode == 2
    assert "assistant ingest" in result.stderr
