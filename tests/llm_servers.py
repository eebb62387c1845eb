"""Fake model servers for tests: real HTTP on 127.0.0.1 speaking the Ollama and OpenAI chat APIs.

The real client libraries (ollama over httpx, openai) talk to these exactly as they would to a real server,
so the tests exercise the whole path: request building, streaming, HTTP errors, timeouts and parsing.
Each server replies from a script of `Reply` objects (or a function of the request) and records every
request it received.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    """What the fake model does with one request."""

    content: str = ""  # the text the model writes, sent in `chunks` pieces when streaming
    chunks: int = 5
    status: int = 200  # anything else: an error reply in the API's own error shape
    error: str = ""  # the error message for a non-200 status
    delay: float = 0.0  # seconds to wait before the response starts (a hung server)
    interval: float = 0.0  # seconds between streamed pieces
    raw: bytes | None = None  # a body sent as is, for malformed replies


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: dict | None

    @property
    def prompt(self) -> str:
        """All message contents of a chat request, joined."""
        messages = (self.body or {}).get("messages") or []
        return "\n".join(str(m.get("content", "")) for m in messages)


def split(text: str, pieces: int) -> list[str]:
    """`text` cut into about `pieces` parts (cuts land mid-word and mid-JSON on purpose)."""
    if not text:
        return []
    size = max(1, -(-len(text) // max(1, pieces)))
    return [text[i : i + size] for i in range(0, len(text), size)]


Responder = Callable[[Recorded], Reply]


class FakeModelServer:
    """A ThreadingHTTPServer on an ephemeral port, run in a background thread; use as a context manager."""

    def __init__(self, replies: list[Reply] | Responder | None = None, model: str = "test-model"):
        self.model = model
        self.requests: list[Recorded] = []
        self._script: list[Reply] = []
        self._responder: Responder | None = None
        self._lock = threading.Lock()
        # set on close so handlers sleeping to simulate a hung server return at once instead of holding the test
        self._closing = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        if replies is not None:
            self.script(replies)

    # scripting ----------------------------------------------------------------------------------

    def script(self, replies: list[Reply] | Responder) -> None:
        """Replies used in order, the last one repeated; or a function choosing one per request."""
        with self._lock:
            if callable(replies):
                self._responder, self._script = replies, []
            else:
                self._responder, self._script = None, list(replies)

    def _next(self, request: Recorded) -> Reply:
        with self._lock:
            if self._responder is not None:
                return self._responder(request)
            if not self._script:
                return Reply(content="")
            return self._script.pop(0) if len(self._script) > 1 else self._script[0]

    def chat_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith(self.chat_path)]

    # lifecycle ----------------------------------------------------------------------------------

    chat_path = ""

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeModelServer:
        owner = self

        class Handler(self.handler_class):
            server_owner = owner

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def wait(self, seconds: float) -> bool:
        """Sleep, unless the server is closing; True when it slept the whole time."""
        return not self._closing.wait(seconds)

    handler_class: type[BaseHTTPRequestHandler]


class _Handler(BaseHTTPRequestHandler):
    server_owner: FakeModelServer
    # HTTP/1.0: the body ends when the connection closes, so streamed replies need no chunked encoding
    protocol_version = "HTTP/1.0"

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's own parameter name; keeps test output clean
        pass

    def _record(self) -> Recorded:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = {"_raw": raw.decode("utf-8", "replace")}
        recorded = Recorded(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        self.server_owner.requests.append(recorded)
        return recorded

    def _send_json(self, status: int, value, content_type: str = "application/json") -> None:
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _start_stream(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()

    def _write(self, data: bytes) -> bool:
        try:
            self.wfile.write(data)
            self.wfile.flush()
            return True
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout under test)
            return False

    def _send_raw(self, reply: Reply, content_type: str) -> None:
        self._start_stream(content_type)
        self._write(reply.raw)

    def _stream_pieces(self, reply: Reply, encode: Callable[[str], bytes], finish: bytes) -> None:
        for i, piece in enumerate(split(reply.content, reply.chunks)):
            if i and reply.interval and not self.server_owner.wait(reply.interval):
                return
            if not self._write(encode(piece)):
                return
        self._write(finish)

    def _delay(self, reply: Reply) -> bool:
        return not reply.delay or self.server_owner.wait(reply.delay)


class OllamaHandler(_Handler):
    """/api/chat (NDJSON stream or one JSON object), /api/tags, /api/show, and / ("Ollama is running")."""

    def do_GET(self):
        self._record()
        if self.path == "/":
            data = b"Ollama is running"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif self.path == "/api/tags":
            model = self.server_owner.model
            entry = {
                "name": model,
                "model": model,
                "modified_at": "2025-01-01T00:00:00Z",
                "size": 1,
                "digest": "0" * 64,
                "details": {"format": "gguf"},
            }
            self._send_json(200, {"models": [entry]})
        else:
            self._send_json(404, {"error": "not found"})

    def do_POST(self):
        request = self._record()
        body = request.body or {}
        model = self.server_owner.model
        if self.path == "/api/show":
            if body.get("model") != model:
                self._send_json(404, {"error": f"model '{body.get('model')}' not found"})
            else:
                self._send_json(
                    200,
                    {
                        "modelfile": "",
                        "parameters": "",
                        "template": "{{ .Prompt }}",
                        "details": {"format": "gguf", "family": "test"},
                        "model_info": {"general.architecture": "test", "test.context_length": 32768},
                        "capabilities": ["completion"],
                    },
                )
            return
        if self.path != "/api/chat":
            self._send_json(404, {"error": "not found"})
            return
        reply = self.server_owner._next(request)
        if not self._delay(reply):
            return
        if reply.status != 200:
            self._send_json(reply.status, {"error": reply.error or f"HTTP {reply.status}"})
            return
        if body.get("model") != model:  # what a real Ollama says for a model it has not pulled
            self._send_json(404, {"error": f"model '{body.get('model')}' not found"})
            return
        if reply.raw is not None:
            self._send_raw(reply, "application/x-ndjson")
            return
        created = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        done = {
            "model": model,
            "created_at": created,
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "stop",
            "total_duration": 1000,
            "load_duration": 10,
            "prompt_eval_count": len(request.prompt) // 4,
            "prompt_eval_duration": 100,
            "eval_count": max(1, len(reply.content) // 4),
            "eval_duration": 100,
        }
        if body.get("stream", True) is False:
            self._send_json(200, {**done, "message": {"role": "assistant", "content": reply.content}})
            return
        self._start_stream("application/x-ndjson")

        def line(piece: str) -> bytes:
            part = {"model": model, "created_at": created, "message": {"role": "assistant", "content": piece}, "done": False}
            return json.dumps(part).encode() + b"\n"

        self._stream_pieces(reply, line, json.dumps(done).encode() + b"\n")


class OpenAIHandler(_Handler):
    """/v1/chat/completions (SSE stream or one JSON object) and /v1/models, with an optional API key."""

    def _error(self, status: int, message: str, code: str) -> None:
        self._send_json(status, {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}})

    def _authorised(self) -> bool:
        key = self.server_owner.api_key
        if key is None or self.headers.get("Authorization") == f"Bearer {key}":
            return True
        self._error(401, "Incorrect API key provided.", "invalid_api_key")
        return False

    def do_GET(self):
        self._record()
        if not self._authorised():
            return
        if self.path == "/v1/models":
            self._send_json(
                200, {"object": "list", "data": [{"id": self.server_owner.model, "object": "model", "created": 0, "owned_by": "test"}]}
            )
        else:
            self._error(404, "Not found", "not_found")

    def do_POST(self):
        request = self._record()
        body = request.body or {}
        if self.path != "/v1/chat/completions":
            self._error(404, f"Unknown path {self.path}", "not_found")
            return
        reply = self.server_owner._next(request)
        if not self._delay(reply):
            return
        if not self._authorised():
            return
        if reply.status != 200:
            self._error(reply.status, reply.error or f"HTTP {reply.status}", "error")
            return
        model = self.server_owner.model
        if body.get("model") != model:
            self._error(404, f"The model `{body.get('model')}` does not exist or you do not have access to it.", "model_not_found")
            return
        if reply.raw is not None:
            self._send_raw(reply, "text/event-stream")
            return
        created = int(time.time())
        base = {"id": "chatcmpl-test", "created": created, "model": model, "system_fingerprint": "fp_test"}
        usage = {"prompt_tokens": len(request.prompt) // 4, "completion_tokens": max(1, len(reply.content) // 4)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if not body.get("stream"):
            self._send_json(
                200,
                {
                    **base,
                    "object": "chat.completion",
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": reply.content}, "logprobs": None, "finish_reason": "stop"}
                    ],
                    "usage": usage,
                },
            )
            return
        self._start_stream("text/event-stream")

        def event(value: dict) -> bytes:
            return b"data: " + json.dumps(value).encode() + b"\n\n"

        def delta(piece: str) -> bytes:
            return event(
                {
                    **base,
                    "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": {"content": piece}, "logprobs": None, "finish_reason": None}],
                }
            )

        if not self._write(
            event(
                {
                    **base,
                    "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}],
                }
            )
        ):
            return
        finish = event(
            {**base, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]}
        )
        if (body.get("stream_options") or {}).get("include_usage"):
            finish += event({**base, "object": "chat.completion.chunk", "choices": [], "usage": usage})
        self._stream_pieces(reply, delta, finish + b"data: [DONE]\n\n")


class FakeOllama(FakeModelServer):
    """An Ollama server that has exactly one model pulled (`model`); base URL is `url`."""

    handler_class = OllamaHandler
    chat_path = "/api/chat"


class FakeOpenAI(FakeModelServer):
    """An OpenAI-compatible server; base URL for clients is `base_url` (with /v1)."""

    handler_class = OpenAIHandler
    chat_path = "/v1/chat/completions"

    def __init__(self, replies: list[Reply] | Responder | None = None, model: str = "test-model", api_key: str | None = None):
        super().__init__(replies, model)
        self.api_key = api_key  # None: any key (or none) is accepted, like a local server

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"


def closed_port_url() -> str:
    """The URL of a port nothing listens on: bound to get a free number, then closed."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def answer_json(sentences: list[tuple[str, list[int]]], covered: bool = True) -> str:
    """A reply in the answer schema's shape."""
    return json.dumps({"covered": covered, "sentences": [{"text": text, "sources": sources} for text, sources in sentences]})
