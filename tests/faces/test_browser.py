"""The chat UI in a real headless Chromium: streamed answers, [n] opening cards, phone widths, the Prepare tab,
confirmed removal and hiding, one set of thumbs per answer, inert document HTML. Screenshots go to test-output/."""

from __future__ import annotations

import re
import shutil
import socket
from pathlib import Path

import pytest
from playwright.sync_api import expect

import assistant  # noqa: F401  (offline variables first)
from assistant.faces.ui import build_app, serve, warm_up
from assistant.service import AssistantService
from assistant.settings import PROJECT_ROOT, Settings
from tests.faces.chromium import launched_chromium

pytestmark = pytest.mark.browser

WAIT_MS = 90_000  # generous: a slow CI machine must not fail a correct UI
PLAN_WAIT_MS = 300_000
QUESTION = "How can a facilitator stop clinicians dominating a co-design workshop?"
HOSTILE_DOC = """---
title: "Huddle safety checklist <img src=x onerror=\\"window.__xss=1;alert(1)\\">"
---
# Huddle safety checklist

## Reading out patient comment cards

At every ward huddle the nurse in charge reads out each patient comment card word for word before any other business.
The checklist text to display is <script>window.__xss=2;alert(2)</script> exactly as written on the laminated card.
The comment box on the form is marked <img src=x onerror="window.__xss=3;alert(3)"> so staff know where patients write.
"""
XSS_QUESTION = "What does the huddle safety checklist say about reading out patient comment cards?"
LONG_URL = "https://www.example.org/toolkits/co-design/" + "very-long-path-segment-without-any-break-" * 4 + "handbook.pdf"
LONG_URL_DOC = f"""# Bedside listening handbook

## Where to find the bedside listening handbook

The bedside listening handbook for ward volunteers is published at {LONG_URL} and is free to download and print.
"""
LONG_URL_QUESTION = "Where is the bedside listening handbook for ward volunteers published?"
SHOTS = PROJECT_ROOT / "test-output" / "screenshots"

# Records every text the chat shows while an answer arrives: a partial answer proves it was streamed.
RECORD_STREAM = """() => {
  window.__snapshots = [];
  const chat = document.querySelector('#chatbot');
  new MutationObserver(() => window.__snapshots.push(chat.innerText)).observe(chat, {subtree: true, childList: true, characterData: true});
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browser_service(corpus_data_dir, tmp_path_factory):
    """A copy of the corpus index plus an uploaded document whose text is hostile HTML."""
    data_dir = tmp_path_factory.mktemp("browser") / "data"
    shutil.copytree(corpus_data_dir, data_dir, ignore=shutil.ignore_patterns(".lock", "feedback.sqlite3"))
    service = AssistantService(Settings(data_dir=data_dir, corpus_dir=PROJECT_ROOT / "corpus"))
    saved = service.save_upload("huddle-checklist.md", HOSTILE_DOC.encode("utf-8"))
    handbook = service.save_upload("bedside-listening.md", LONG_URL_DOC.encode("utf-8"))
    report = service.ingest([saved, handbook])
    assert not report.failures, report.failures
    warm_up(service)
    return service


@pytest.fixture(scope="module")
def url(browser_service):
    app = build_app(browser_service)
    _, address, _ = serve(app, "127.0.0.1", free_port(), prevent_thread_lock=True, quiet=True)
    yield address
    app.close()


@pytest.fixture(scope="module")
def browser():
    with launched_chromium() as browser:
        yield browser


@pytest.fixture
def open_page(browser, url):
    contexts = []

    def make(width: int = 1280, height: int = 900):
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.dialogs = []
        page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
        page.external = []
        page.on(
            "request",
            lambda request: None if request.url.startswith(url) or request.url.startswith("data:") else page.external.append(request.url),
        )
        page.goto(url)
        page.locator("#question textarea").wait_for(state="visible")
        return page

    yield make
    for context in contexts:
        context.close()


def ask(page, question: str, turn: int = 1) -> None:
    page.evaluate(RECORD_STREAM)
    box = page.locator("#question textarea")
    box.click()
    box.fill(question)
    box.press("Enter")
    page.get_by_text(f"Sources for answer {turn} (").wait_for(state="visible")


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name), full_page=True, animations="disabled")


def overflow(page) -> int:
    return page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")


def card_title(page, n: int):
    return page.locator("#chatbot div.title", has_text=re.compile(rf"^\s*\[{n}\] ")).last


def until_expanded(page, n: int, act, tries: int = 6) -> None:
    """Act (a click or a key press on a marker) until card n is expanded.

    On a busy machine the chat can re-render once more after the answer has arrived, which replaces the
    element acted on; acting again on the fresh element is what a user would do.
    """
    for _ in range(tries):
        act()
        try:
            expect(card_title(page, n)).to_have_class(re.compile(r"\bexpanded\b"), timeout=10_000)
            return
        except AssertionError:
            continue
    raise AssertionError(f"card {n} never expanded after {tries} tries")


def open_card(page, n: int):
    title = page.locator("#chatbot div.title", has_text=re.compile(rf"^\s*\[{n}\] ")).last
    title.scroll_into_view_if_needed()
    title.click()
    card = page.locator("#chatbot .source-card").filter(has=page.locator("mark")).last
    card.wait_for(state="visible")
    card.locator("mark").scroll_into_view_if_needed()
    return card


def streamed_partially(page) -> bool:
    """Some snapshot showed the answer's first marker before the sources arrived."""
    return page.evaluate("() => window.__snapshots.some(t => t.includes('[1]') && !t.includes('Sources for answer'))")


def test_question_streams_an_answer_and_a_card_opens(open_page, tmp_path):
    page = open_page()
    ask(page, QUESTION)
    assert streamed_partially(page), "the answer should appear piece by piece"
    markers = page.locator("#chatbot .cite")
    assert markers.first.inner_text() == "[1]"
    assert markers.count() >= 2
    card = open_card(page, 1)
    assert card.locator("mark").inner_text().strip()
    assert "Document:" in card.inner_text()
    follow_up = page.locator("#chatbot button", has_text=re.compile(r"^\s*(How|What|Can)[^?]*\?\s*$")).first
    assert follow_up.is_visible()
    assert page.get_by_role("button", name=re.compile("^Tell me more about")).count() == 0
    page.screenshot(path=str(tmp_path / "desktop-answer.png"), full_page=True, animations="disabled")

    follow_up.click()  # a suggested follow-up
    page.get_by_text("Sources for answer 2 (").wait_for(state="visible")
    assert page.dialogs == [] and page.external == []


def test_phone_width_starter_and_card(open_page, tmp_path):
    page = open_page(375, 812)
    page.get_by_role("button", name=re.compile("Power dynamics: How can")).click()  # a starter question
    page.get_by_text("Sources for answer 1 (").wait_for(state="visible")
    card = open_card(page, 1)
    assert card.locator("mark").is_visible()
    page.screenshot(path=str(tmp_path / "phone-answer.png"), full_page=True, animations="disabled")
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"the page scrolls sideways by {overflow}px at 375px"
    for element in ("#question textarea", "#ask"):
        box = page.locator(element).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 376


def test_document_html_is_shown_as_inert_text(open_page, tmp_path):
    page = open_page()
    ask(page, XSS_QUESTION)
    sources = page.locator("#chatbot div.title", has_text="Huddle safety checklist")
    sources.first.wait_for(state="visible")
    sources.first.click()
    card = page.locator("#chatbot .source-card", has_text="laminated card").last
    card.wait_for(state="visible")
    card.scroll_into_view_if_needed()
    text = card.inner_text()
    assert "<script>window.__xss=2;alert(2)</script>" in text
    assert '<img src=x onerror="window.__xss=3;alert(3)">' in text
    assert card.locator("script, img").count() == 0
    page.screenshot(path=str(tmp_path / "inert-html.png"), full_page=True, animations="disabled")

    page.get_by_role("tab", name="Library").click()
    page.locator("#library-table").get_by_text('Huddle safety checklist <img src=x onerror="window.__xss=1').filter(
        visible=True
    ).first.wait_for(state="visible")
    page.get_by_role("tab", name="About").click()
    page.locator("#licences").get_by_text('Huddle safety checklist <img src=x onerror="window.__xss=1').wait_for(state="visible")
    page.screenshot(path=str(tmp_path / "library-about.png"), full_page=True, animations="disabled")

    assert page.evaluate("() => window.__xss") is None
    assert page.dialogs == []
    assert page.locator("img[src='x']").count() == 0


@pytest.mark.parametrize("width", [320, 375, 414])
def test_phone_widths_wrap_a_long_url(open_page, width):
    page = open_page(width, 812)
    assert page.locator("#app-title h1").bounding_box()["y"] >= 0, "the title is not scrolled away on load"
    assert page.evaluate("() => window.scrollY") == 0
    ask(page, LONG_URL_QUESTION)
    assert LONG_URL[:40] in page.locator("#chatbot").inner_text()
    assert overflow(page) <= 0, f"the page scrolls sideways by {overflow(page)}px at {width}px"
    open_card(page, 1)
    assert overflow(page) <= 0, f"an open card makes the page scroll sideways at {width}px"
    for element in ("#question textarea", "#ask", "#export"):
        box = page.locator(element).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= width + 1, element
    if width == 375:
        page.set_viewport_size({"width": 375, "height": 812})
        shot(page, "phone-375x812-answer.png")


def test_marker_opens_its_card_by_click_and_keyboard(open_page):
    page = open_page(1366, 900)
    ask(page, QUESTION)
    markers = page.locator("#chatbot .cite")
    assert markers.count() >= 2
    assert markers.nth(1).get_attribute("role") == "button" and markers.nth(1).get_attribute("tabindex") == "0"
    second = markers.nth(1).inner_text().strip("[]")
    until_expanded(page, int(second), lambda: markers.nth(1).click())
    title = card_title(page, int(second))
    card = title.locator("xpath=..").locator(".source-card")
    card.wait_for(state="visible")
    assert card.locator("mark").count() == 1
    assert page.evaluate(
        "el => { const r = el.getBoundingClientRect(); return r.top < window.innerHeight && r.bottom > 0; }", title.element_handle()
    )
    style = page.evaluate(
        "el => { const s = getComputedStyle(el); return [parseFloat(s.fontSize), s.opacity, s.color]; }",
        card.locator("blockquote").element_handle(),
    )
    assert style[0] >= 15 and float(style[1]) == 1, f"card passages are readable text, not small or faint: {style}"

    until_expanded(page, 1, lambda: markers.nth(0).press("Enter"))  # press() focuses the marker, then presses
    shot(page, "desktop-1366x900-cards.png")


def test_one_set_of_thumbs_per_answer_with_confirmation(open_page):
    page = open_page(1366, 900)
    ask(page, QUESTION)
    likes = page.locator("#chatbot button[aria-label='Like']").filter(visible=True)
    assert likes.count() == 1
    likes.first.click()
    status = page.locator("#feedback-status")
    status.get_by_text("answer 1 is marked helpful").wait_for(state="visible")


def choose(page, elem_id: str, label: str) -> None:
    box = page.locator(f"#{elem_id} input")
    box.click()
    box.fill(label)
    page.get_by_role("option", name=label).first.click()


def test_prepare_tab_gives_a_downloadable_plan(open_page):
    page = open_page(1366, 900)
    page.get_by_role("tab", name="Prepare a session").click()
    page.locator("#plan-topic textarea").fill("power dynamics in co-design workshops")
    page.locator("#plan-audience textarea").fill("ward managers and patient partners")
    page.locator("#plan-format").get_by_text("Markdown (.md)").click()
    status = page.locator("#plan-status")
    for _ in range(3):
        before = status.inner_text()
        page.locator("#plan-make").click()
        # A plan scores a few hundred passages with the cross-encoder: 5-10 s here, far longer on a busy CI machine.
        page.wait_for_function(
            "before => { const t = document.querySelector('#plan-status').innerText;"
            " return t !== before && /is ready|could not be prepared/.test(t); }",
            arg=before,
            timeout=PLAN_WAIT_MS,
        )
        # On a busy machine the click once reached the server before the typed topic did (CI: "Please give a
        # topic"); a user who clicks again gets the plan, and so must this test. Type it again first.
        if "Please give a topic" not in status.inner_text():
            break
        page.locator("#plan-topic textarea").fill("power dynamics in co-design workshops")
    assert "is ready" in status.inner_text(), status.inner_text()
    assert "Learning objectives" in page.locator("#plan-preview").inner_text()
    link = page.locator("#plan-file a").first
    with page.expect_download() as download:
        link.click()
    saved = download.value.path()
    assert download.value.suggested_filename.endswith("90min.md")
    assert Path(saved).read_text(encoding="utf-8").startswith("# Session plan: power dynamics in co-design workshops")
    assert overflow(page) <= 0
    shot(page, "desktop-1366x900-prepare.png")
    page.set_viewport_size({"width": 375, "height": 812})
    assert overflow(page) <= 0
    shot(page, "phone-375x812-prepare.png")


def test_remove_asks_first_and_a_hidden_document_stays_hidden_after_ingest(open_page, browser_service):
    page = open_page(1366, 900)
    page.get_by_role("tab", name="Library").click()
    table = page.locator("#library-table")
    title = "Paying and reimbursing patient and public partners"
    table.get_by_text(title).first.wait_for(state="visible")
    assert [h.strip() for h in table.locator("th").all_inner_texts()][:4] == ["Title", "Passages", "Added", "Licence"]
    scroller = page.evaluate(
        "() => [...document.querySelectorAll('#library-table *')].some(e => e.scrollWidth > e.clientWidth + 1 && ['auto', 'scroll'].includes(getComputedStyle(e).overflowX))"
    )
    assert not scroller, "the library table scrolls sideways at 1366 px"
    shot(page, "desktop-1366x900-library.png")

    choose(page, "removable", title)
    page.locator("#remove-document").click()
    page.locator("#confirm-text").get_by_text("Hide").wait_for(state="visible")
    assert "stays on this computer" in page.locator("#confirm-text").inner_text()
    page.locator("#confirm-no").click()
    page.locator("#upload-report").get_by_text("Nothing was removed").wait_for(state="visible")
    assert table.get_by_text(title).count() >= 1 and page.dialogs == []

    page.locator("#remove-document").click()
    page.locator("#confirm-yes").click()
    page.locator("#upload-report").get_by_text("Hidden").wait_for(state="visible")
    table.get_by_text(title).first.wait_for(state="detached")

    report = browser_service.ingest()  # what `assistant ingest` does
    assert not report.failures
    page.reload()
    page.get_by_role("tab", name="Library").click()
    table.get_by_text("Passages").first.wait_for(state="visible")
    assert table.get_by_text(title).count() == 0, "a hidden shipped document stays hidden after ingest"
    page.locator("#hidden-list").wait_for(state="visible")
