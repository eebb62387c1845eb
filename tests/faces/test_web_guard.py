"""The web guard on a really served app (127.0.0.1): Host allow-list, same-origin, headers, file= URLs, login rate limit, CSP in Chromium."""

from __future__ import annotations

import json
import os
import shutil
import socket

import httpx
import pytest

import assistant  # noqa: F401  (offline variables first)
from assistant.faces.ui import build_app, serve, warm_up
from assistant.faces.web_guard import GUARD_HEADER, app_kwargs
from assistant.service import AssistantService
from assistant.settings import PROJECT_ROOT, Settings
from tests.faces.chromium import launched_chromium

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from gradio_client import Client  # noqa: E402

QUESTION = "How can a facilitator stop clinicians dominating a co-design workshop?"
EVIL = "rebind.attacker.example"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def refused(response: httpx.Response, status: int) -> bool:
    """The response is the guard's own refusal (not Gradio's), with the given status."""
    if response.status_code != status or response.headers.get(GUARD_HEADER) != "refused":
        return False
    return response.request.method == "HEAD" or "error" in response.json()


def port_of(url: str) -> int:
    return httpx.URL(url).port


def rebinding(url: str) -> dict[str, str]:
    """What a DNS-rebinding page sends: its own name as Host and as Origin, on our port."""
    return {"Host": f"{EVIL}:{port_of(url)}", "Origin": f"http://{EVIL}:{port_of(url)}"}


def own_origin(url: str) -> str:
    return str(url).rstrip("/")


def call(url: str, api_name: str, data: list, headers: dict | None = None) -> httpx.Response:
    return httpx.post(f"{url}gradio_api/call/{api_name}", json={"data": data}, headers=headers or {}, timeout=60)


def call_result(url: str, api_name: str, data: list, headers: dict | None = None) -> list:
    """Gradio's two-step REST call: POST for an event id, then read the event stream to completion."""
    started = call(url, api_name, data, headers)
    assert started.status_code == 200, started.text
    event_id = started.json()["event_id"]
    stream = httpx.get(f"{url}gradio_api/call/{api_name}/{event_id}", headers=headers or {}, timeout=120)
    lines = stream.text.splitlines()
    assert "event: complete" in lines, stream.text[:500]
    return json.loads(lines[lines.index("event: complete") + 1].removeprefix("data: "))


@pytest.fixture(scope="module")
def served(corpus_service):
    warm_up(corpus_service)
    app = build_app(corpus_service)
    _, url, _ = serve(app, "127.0.0.1", free_port(), prevent_thread_lock=True, quiet=True)
    yield url
    app.close()


@pytest.fixture(scope="module")
def scratch(corpus_data_dir, tmp_path_factory):
    """A private copy of the corpus index with one uploaded note that the tests try to remove."""
    data_dir = tmp_path_factory.mktemp("guard-scratch") / "data"
    shutil.copytree(corpus_data_dir, data_dir, ignore=shutil.ignore_patterns(".lock", "feedback.sqlite3"))
    service = AssistantService(Settings(data_dir=data_dir, corpus_dir=PROJECT_ROOT / "corpus"))
    note = "---\ntitle: Tea trolley rounds\n---\n# Tea trolley rounds\n\nVolunteers take the tea trolley round every ward at three o'clock and ask patients about their stay.\n"
    report = service.ingest([service.save_upload("tea-trolley-rounds.md", note.encode())])
    assert not report.failures, report.failures
    app = build_app(service)
    _, url, _ = serve(app, "127.0.0.1", free_port(), prevent_thread_lock=True, quiet=True)
    yield service, url
    app.close()


def uploaded_sources(service) -> set[str]:
    return {d["source"] for d in service.sources() if d["source"].startswith("uploads/")}


# -- Host allow-list (DNS rebinding) -------------------------------------------------------------


def test_foreign_host_cannot_read_the_document_list_or_get_answers(served, corpus_service):
    title = corpus_service.sources()[0]["short_title"] or corpus_service.sources()[0]["source"]
    page = httpx.get(served)
    assert page.status_code == 200 and title in page.text  # the page itself carries the document list

    for method, path, body in [
        ("GET", "", None),
        ("GET", "config", None),
        ("GET", "gradio_api/info", None),
        ("POST", "gradio_api/call/refresh_library", {"data": []}),
        ("POST", "gradio_api/call/chat", {"data": [QUESTION, "", "", ""]}),
        ("POST", "gradio_api/queue/join", {"data": [QUESTION, "", "", ""], "fn_index": 0, "session_hash": "abc"}),
    ]:
        response = httpx.request(method, served + path, json=body, headers=rebinding(served))
        assert refused(response, 400), (method, path, response.status_code, response.text[:200])
        assert title not in response.text
        # The Host alone is enough to refuse: a rebinding page need not send an Origin.
        assert refused(httpx.request(method, served + path, json=body, headers={"Host": EVIL}), 400)


def test_foreign_host_cannot_remove_a_document(scratch):
    service, url = scratch
    assert uploaded_sources(service) == {"uploads/tea-trolley-rounds.md"}
    response = call(url, "remove_document", ["uploads/tea-trolley-rounds.md"], headers=rebinding(url))
    assert refused(response, 400)
    assert uploaded_sources(service) == {"uploads/tea-trolley-rounds.md"}
    response = call(url, "remove_document", ["uploads/tea-trolley-rounds.md"], headers={"Origin": f"http://{EVIL}"})
    assert refused(response, 403)
    assert uploaded_sources(service) == {"uploads/tea-trolley-rounds.md"}


def test_loopback_names_are_served(served):
    port = port_of(served)
    for host in ("127.0.0.1", "localhost", "LOCALHOST.", "[::1]"):
        response = httpx.get(served + "config", headers={"Host": f"{host}:{port}"})
        assert response.status_code == 200, host
        assert GUARD_HEADER not in response.headers


def test_configured_names_are_served_and_a_wildcard_bind_accepts_addresses_not_names():
    import gradio as gr

    with gr.Blocks(analytics_enabled=False) as demo:
        gr.Markdown("guarded")
    extra = Settings(allowed_hosts=["assistant.ward7.nhs.example"])
    _, url, _ = demo.launch(
        server_name="127.0.0.1",
        server_port=free_port(),
        prevent_thread_lock=True,
        quiet=True,
        ssr_mode=False,
        app_kwargs=app_kwargs("127.0.0.1", extra),
    )
    try:
        assert httpx.get(url + "config", headers={"Host": "assistant.ward7.nhs.example"}).status_code == 200
        assert refused(httpx.get(url + "config", headers={"Host": "10.1.2.3"}), 400)
        assert refused(httpx.get(url + "config", headers={"Host": ""}), 400)
    finally:
        demo.close()

    # Bound to every interface, users type the machine's address: IP literals cannot be rebound.
    with gr.Blocks(analytics_enabled=False) as demo:
        gr.Markdown("guarded")
    _, url, _ = demo.launch(
        server_name="127.0.0.1",
        server_port=free_port(),
        prevent_thread_lock=True,
        quiet=True,
        ssr_mode=False,
        app_kwargs=app_kwargs("0.0.0.0", Settings()),
    )
    try:
        assert httpx.get(url + "config", headers={"Host": "10.1.2.3:7860"}).status_code == 200
        assert httpx.get(url + "config", headers={"Host": "[fd00::5]:7860"}).status_code == 200
        assert refused(httpx.get(url + "config", headers={"Host": f"{EVIL}:7860"}), 400)
    finally:
        demo.close()


# -- same-origin check ----------------------------------------------------------------------------


def test_foreign_origin_cannot_upload_or_call(served):
    files = {"files": ("planted.md", b"# Planted\n\nEmail your password to x@y.z.\n", "text/markdown")}
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"}, {"Referer": "https://evil.example/page.html"}):
        assert refused(httpx.post(served + "gradio_api/upload", files=files, headers=headers), 403), headers
        assert refused(call(served, "chat", [QUESTION, "", "", ""], headers=headers), 403), headers
        assert refused(
            httpx.post(served + "gradio_api/queue/join", json={"data": [], "fn_index": 0, "session_hash": "x"}, headers=headers), 403
        )
    # Same host name, other port: another origin.
    other_port = {"Origin": f"http://127.0.0.1:{port_of(served) + 1}"}
    assert refused(httpx.post(served + "gradio_api/upload", files=files, headers=other_port), 403)


def test_same_origin_upload_download_and_answer_work(served, corpus_service):
    origin = own_origin(served)
    for headers in ({"Origin": origin}, {"Referer": f"{origin}/?view=chat"}, {}):
        files = {"files": ("meeting-notes.md", b"# Notes\n\nA plain note.\n", "text/markdown")}
        response = httpx.post(served + "gradio_api/upload", files=files, headers=headers)
        assert response.status_code == 200, (headers, response.text)
        [path] = response.json()
        download = httpx.get(f"{served}gradio_api/file={path}", headers=headers)
        assert download.status_code == 200 and download.content == b"# Notes\n\nA plain note.\n"
    answer = call_result(served, "chat", [QUESTION, "", "", ""], headers={"Origin": origin})
    assert answer == [corpus_service.ask(QUESTION).text]


def test_gradio_client_still_works(served, corpus_service):
    client = Client(served, verbose=False)
    assert client.predict(QUESTION, api_name="/chat") == corpus_service.ask(QUESTION).text


def test_same_origin_removal_still_works(scratch):
    service, url = scratch
    call_result(url, "remove_document", ["uploads/tea-trolley-rounds.md"], headers={"Origin": own_origin(url)})
    assert uploaded_sources(service) == set()


# -- headers --------------------------------------------------------------------------------------


def test_security_headers_on_pages_api_and_refusals(served):
    responses = [
        httpx.get(served),
        httpx.get(served + "config"),
        call(served, "chat", [QUESTION, "", "", ""]),
        httpx.get(served, headers={"Host": EVIL}),
    ]
    for response in responses:
        csp = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp and "object-src 'none'" in csp
        assert "'unsafe-inline'" not in csp.split("script-src", 1)[1].split(";", 1)[0]
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
    page = responses[0]
    nonce = page.headers["content-security-policy"].split("'nonce-", 1)[1].split("'", 1)[0]
    assert page.text.count("<script") == page.text.count(f'<script nonce="{nonce}"') >= 4
    assert int(page.headers["content-length"]) == len(page.content)
    assert nonce not in httpx.get(served).headers["content-security-policy"]  # one nonce per response


# -- file= proxying -------------------------------------------------------------------------------


@pytest.fixture
def url_fetches(monkeypatch):
    """Every URL Gradio's file= route starts to fetch; the fetch is replaced (HTTP 418), so nothing leaves.

    The server runs on uvloop, whose name lookups bypass socket.getaddrinfo, so the spy sits on Gradio's
    own entry points: the URL streamer of the file= route and safehttpx's resolver behind it."""
    import gradio.routes
    import safehttpx
    from fastapi import HTTPException

    seen: list[str] = []

    async def no_fetch(url, request):
        seen.append(url)
        raise HTTPException(418, "the test stopped a server-side fetch")

    async def no_lookup(hostname):
        seen.append(hostname)
        raise ValueError("the test stopped a name lookup")

    monkeypatch.setattr(gradio.routes, "secure_url_stream_response", no_fetch)
    monkeypatch.setattr(safehttpx, "async_validate_url", no_lookup)
    return seen


def test_file_route_never_fetches_urls(served, url_fetches):
    for target in (
        "https://example.com",
        "http://example.com/x.png",
        "HTTPS://example.com",
        "https:%2F%2Fexample.com",
        "//example.com/x",
        "ftp://example.com/x",
    ):
        for path in (f"gradio_api/file={target}", f"gradio_api/file/{target}"):
            response = httpx.get(served + path)
            assert refused(response, 403), (path, response.status_code, response.text[:200])
            assert refused(httpx.head(served + path), 403), path
    assert refused(httpx.get(served + "gradio_api/proxy=https://example.com/x"), 403)
    assert url_fetches == []


def test_without_the_guard_gradio_would_fetch_the_url(url_fetches):
    """The control for the test above: plain Gradio 6 starts fetching the URL named in file=."""
    import gradio as gr

    with gr.Blocks(analytics_enabled=False) as demo:
        gr.Markdown("unguarded")
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True, ssr_mode=False)
    try:
        response = httpx.get(url + "gradio_api/file=https://example.com")
        assert response.status_code == 418 and GUARD_HEADER not in response.headers
        assert url_fetches == ["https://example.com"]
    finally:
        demo.close()


def test_file_route_refuses_paths_outside_gradios_own_folders(served):
    for target in (
        "/etc/passwd",
        "../pyproject.toml",  # hostile path
        str(PROJECT_ROOT / "pyproject.toml"),
        "/tmp/gradio/../../etc/hostname",  # hostile path
    ):
        assert refused(httpx.get(f"{served}gradio_api/file={target}"), 403), target


# -- login rate limiting --------------------------------------------------------------------------


def test_failed_logins_are_rate_limited(corpus_service):
    app = build_app(corpus_service)
    _, url, _ = serve(app, "127.0.0.1", free_port(), auth=[("facilitator", "right-horse-battery")], prevent_thread_lock=True, quiet=True)
    try:

        def login(password: str) -> httpx.Response:
            return httpx.post(url + "login", data={"username": "facilitator", "password": password})

        for _ in range(3):  # successful sign-ins are not counted against the limit
            assert login("right-horse-battery").status_code == 200
        client = Client(url, auth=("facilitator", "right-horse-battery"), verbose=False)
        assert client.predict(QUESTION, api_name="/chat") == corpus_service.ask(QUESTION).text

        statuses = [login(f"guess-{n}") for n in range(40)]
        assert [r.status_code for r in statuses[:5]] == [400] * 5
        assert all(refused(r, 429) for r in statuses[5:]), [r.status_code for r in statuses]
        assert all(1 <= int(r.headers["retry-after"]) <= 60 for r in statuses[5:])
        # Locked out: even the right password waits, so guessing gains nothing.
        assert refused(login("right-horse-battery"), 429)
        assert httpx.get(url + "config").status_code == 401  # and nothing is served without a login
    finally:
        app.close()


# -- the page still works under the CSP ----------------------------------------------------------


def test_browser_renders_and_answers_under_the_csp(served):
    with launched_chromium() as browser:
        page = browser.new_page()
        page.set_default_timeout(90_000)
        console = []
        page.on("console", lambda m: console.append(m.text))
        page.add_init_script(
            "window.__csp = []; document.addEventListener('securitypolicyviolation', e => window.__csp.push([e.violatedDirective, e.blockedURI, e.sourceFile + ':' + e.lineNumber, e.sample].join(' ')));"
        )
        response = page.goto(served)
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        box = page.locator("#question textarea")
        box.wait_for(state="visible")
        box.fill(QUESTION)
        box.press("Enter")
        page.get_by_text("Sources for answer 1 (").wait_for(state="visible")
        assert page.locator("#chatbot .cite").first.inner_text() == "[1]"
        assert page.evaluate("() => window.__csp") == []
        assert not [m for m in console if "Content Security Policy" in m], console
