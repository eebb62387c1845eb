"""The web surface's guard: Host allow-list, same-origin check, CSP and framing headers, login rate limit, no file= URL fetching."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import tempfile
import time
from collections import deque
from pathlib import Path
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
GUARD_HEADER = "x-web-guard"
LOGIN_PATHS = frozenset({"/login", "/login/"})
# Gradio serves files through /gradio_api/file=<path> (and the older /file/<path>), and fetches
# http(s) URLs given there server-side; /proxy= relays to Hugging Face Spaces. This app needs neither.
FILE_ROUTE = re.compile(r"^/gradio_api/(?:file=|file/)(?P<target>.*)$", re.DOTALL)
PROXY_ROUTE = re.compile(r"^/gradio_api/proxy=")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
SCRIPT_TAG = re.compile(rb"<script(?=[\s>])", re.IGNORECASE)


def content_security_policy(nonce: str) -> str:
    # Gradio's page carries inline bootstrap scripts: each gets this response's nonce, so an injected
    # script or event-handler attribute cannot run. Svelte sets inline styles, hence 'unsafe-inline' for
    # styles only. Nothing may be fetched from, framed by, or submitted to another origin.
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' 'nonce-{nonce}'",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data: blob:",
            "font-src 'self' data:",
            "media-src 'self' data: blob:",
            "connect-src 'self'",
            "worker-src 'self' blob:",
            "frame-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def host_name(value: str) -> str:
    """The lower-case name of a Host header or URL netloc, without port, brackets or trailing dot."""
    value = value.strip().lower()
    if value.startswith("["):
        name = value[1:].split("]", 1)[0]
    elif value.count(":") == 1:
        name = value.split(":", 1)[0]
    else:
        name = value  # a bare IPv6 address, or a name without port
    return name.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _default_port(scheme: str) -> str:
    return {"http": "80", "https": "443"}.get(scheme, "")


def _origin_key(url: str) -> tuple[str, str] | None:
    """(host name, port) of an Origin or Referer value; None when it has no http(s) host."""
    try:
        parts = urlsplit(url)
        port = str(parts.port) if parts.port else _default_port(parts.scheme)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return host_name(parts.hostname), port


def _host_key(host: str) -> tuple[str, str]:
    """(host name, port) of a Host header; the port is "" when the header names none."""
    tail = host.strip().rsplit("]", 1)[-1] if host.strip().startswith("[") else host.strip()
    port = tail.rsplit(":", 1)[1] if tail.count(":") == 1 else ""
    return host_name(host), port


def _matches(source: tuple[str, str] | None, host: tuple[str, str]) -> bool:
    if source is None or source[0] != host[0]:
        return False
    # A Host without a port came through port 80 or 443, possibly via a TLS proxy that keeps the Host.
    return source[1] == host[1] if host[1] else source[1] in ("80", "443")


class LoginLimiter:
    """At most `attempts` failed logins per client within `window` seconds."""

    def __init__(self, attempts: int, window: float):
        self.attempts = attempts
        self.window = window
        self._tries: dict[str, deque[float]] = {}

    def _recent(self, client: str, now: float) -> deque[float]:
        tries = self._tries.setdefault(client, deque())
        while tries and tries[0] <= now - self.window:
            tries.popleft()
        return tries

    def begin(self, client: str) -> tuple[float | None, float]:
        """Count an attempt before it runs (so a burst of parallel tries is counted too); returns
        (seconds to wait, None if allowed) and the attempt's stamp for `succeeded`."""
        now = time.monotonic()
        if len(self._tries) > 10_000:  # many clients: forget the ones with nothing recent
            for key in [k for k, v in self._tries.items() if not v or v[-1] <= now - self.window]:
                del self._tries[key]
        tries = self._recent(client, now)
        if len(tries) >= self.attempts:
            return max(1.0, tries[0] + self.window - now), now
        tries.append(now)
        return None, now

    def succeeded(self, client: str, stamp: float) -> None:
        tries = self._tries.get(client)
        if tries and stamp in tries:
            tries.remove(stamp)


class WebGuard:
    """Pure ASGI middleware in front of the Gradio app."""

    def __init__(
        self,
        app,
        *,
        allowed_hosts: list[str] | tuple[str, ...] = (),
        bind_host: str = "127.0.0.1",
        login_attempts: int = 5,
        login_window: float = 60.0,
        file_roots: list[str] | None = None,
    ):
        self.app = app
        names = set(LOOPBACK_NAMES)
        names.update(host_name(h) for h in allowed_hosts if h.strip())
        self.any_ip = bind_host.strip().lower() in WILDCARD_HOSTS
        if not self.any_ip:
            names.add(host_name(bind_host))
        self.allowed = frozenset(names)
        self.limiter = LoginLimiter(login_attempts, login_window)
        self.file_roots = [os.path.realpath(r) for r in (file_roots if file_roots is not None else gradio_file_roots())]

    # -- decisions ------------------------------------------------------------------------------

    def host_allowed(self, host: str | None) -> bool:
        if not host:
            return False
        name = host_name(host)
        # A DNS-rebinding page reaches us under its own domain name; a literal IP address cannot be
        # rebound, so on a wildcard bind any address the machine answers on is accepted.
        return name in self.allowed or (self.any_ip and _is_ip(name))

    def same_origin(self, headers: Headers, method: str) -> bool:
        own = _host_key(headers.get("host", ""))
        origin = headers.get("origin")
        if origin is not None:
            return _matches(_origin_key(origin), own)  # "null" and foreign origins both fail
        if method in UNSAFE_METHODS:
            referer = headers.get("referer")
            if referer is not None:
                return _matches(_origin_key(referer), own)
        # No Origin and no Referer: not a browser page (gradio_client, curl), which cannot ride on a
        # victim's browser, so the Host check is the defence that applies.
        return True

    def file_allowed(self, target: str) -> bool:
        if SCHEME.match(target) or target.startswith(("//", "\\\\")) or "://" in target:
            return False
        path = os.path.realpath(target)
        return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in self.file_roots)

    # -- ASGI -----------------------------------------------------------------------------------

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        method = scope.get("method", "GET")
        path = scope.get("path", "")
        if not self.host_allowed(headers.get("host")):
            return await self.refuse(scope, receive, send, 400, "This address is not served here (unknown Host header).")
        if not self.same_origin(headers, method):
            return await self.refuse(scope, receive, send, 403, "Requests from other web sites are refused.")
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        if PROXY_ROUTE.match(path):
            return await self.refuse(scope, receive, send, 403, "This server does not fetch other addresses.")
        match = FILE_ROUTE.match(path)
        if match and not self.file_allowed(match.group("target")):
            return await self.refuse(scope, receive, send, 403, "Only files this app created can be downloaded.")
        if method == "POST" and path in LOGIN_PATHS:
            return await self.login(scope, receive, send)
        await self.app(scope, receive, with_security_headers(send, rewrite_html=method == "GET"))

    async def login(self, scope, receive, send):
        client = (scope.get("client") or ("unknown", 0))[0]
        wait, stamp = self.limiter.begin(client)
        if wait is not None:
            return await self.refuse(
                scope, receive, send, 429, "Too many failed sign-ins: wait a minute and try again.", {"retry-after": str(int(wait + 0.999))}
            )
        status = {}

        async def watch(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        await self.app(scope, receive, with_security_headers(watch))
        if status.get("code") == 200:
            self.limiter.succeeded(client, stamp)

    async def refuse(self, scope, receive, send, status: int, message: str, extra: dict[str, str] | None = None):
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": message})
            return
        body = json.dumps({"error": message}).encode("utf-8")
        headers = {"content-type": "application/json", "content-length": str(len(body)), GUARD_HEADER: "refused", **(extra or {})}
        await with_security_headers(send)(
            {"type": "http.response.start", "status": status, "headers": [(k.encode(), v.encode()) for k, v in headers.items()]}
        )
        await send({"type": "http.response.body", "body": body})


def with_security_headers(send, rewrite_html: bool = False):
    """Wrap `send`: framing, sniffing, referrer and CSP headers on every response; script nonces in HTML pages."""
    nonce = secrets.token_urlsafe(18)
    state: dict = {}

    async def wrapped(message):
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            headers["content-security-policy"] = content_security_policy(nonce)
            headers["x-frame-options"] = "DENY"
            headers["x-content-type-options"] = "nosniff"
            headers["referrer-policy"] = "same-origin"
            headers["cross-origin-opener-policy"] = "same-origin"
            if rewrite_html and headers.get("content-type", "").startswith("text/html") and "content-encoding" not in headers:
                state["start"], state["body"] = message, []  # held until the page is complete
                return
            await send(message)
        elif message["type"] == "http.response.body" and "start" in state:
            state["body"].append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = SCRIPT_TAG.sub(f'<script nonce="{nonce}"'.encode(), b"".join(state.pop("body")))
            start = state.pop("start")
            MutableHeaders(scope=start)["content-length"] = str(len(body))
            await send(start)
            await send({"type": "http.response.body", "body": body})
        else:
            await send(message)

    return wrapped


def gradio_file_roots() -> list[str]:
    """Folders whose files Gradio itself wrote: uploads, cached outputs (exports) and cached examples."""
    upload = os.environ.get("GRADIO_TEMP_DIR") or str(Path(tempfile.gettempdir()) / "gradio")
    examples = os.environ.get("GRADIO_EXAMPLES_CACHE", ".gradio/cached_examples")
    return [upload, str(Path(examples).resolve())]


def app_kwargs(host: str, settings=None) -> dict:
    """`launch(app_kwargs=...)` for Gradio: installs the guard before the server takes a request."""
    from starlette.middleware import Middleware

    if settings is None:
        from assistant.settings import get_settings

        settings = get_settings()
    return {
        "middleware": [
            Middleware(
                WebGuard,
                allowed_hosts=list(settings.allowed_hosts),
                bind_host=host,
                login_attempts=settings.login_attempts,
                login_window=settings.login_window,
            )
        ]
    }
