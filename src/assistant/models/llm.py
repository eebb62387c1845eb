"""The generative backends: one LangChain chat model per backend (built from its record in models.backends, lazily, once per process), and their failures in plain words."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

from assistant.models.backends import BACKENDS, GENERATIVE_BACKENDS, INSTALL_HINTS, REGISTRY  # noqa: F401 (re-exported)
from assistant.settings import Settings

_CACHE: dict[tuple, object] = {}
_CACHE_LOCK = threading.Lock()


class ModelError(RuntimeError):
    """A model call that failed, with the reason in words a facilitator can act on."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind  # not_installed, missing, unreadable, unreachable, timeout, auth, context, malformed, failed


def _require(module: str, backend: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ModelError(
            f"The {backend} backend needs the Python package {module!r}, which is not installed. Install it with: {INSTALL_HINTS[backend]}",
            "not_installed",
        ) from None


def model_label(settings: Settings, backend: str) -> str:
    """The model a backend answers with, as shown to users and stamped on answers."""
    record = REGISTRY.get(backend)
    return record.model_label(settings) if record is not None else "extractive"


def _settings_key(settings: Settings, backend: str) -> tuple:
    return (backend, settings.llm_timeout, settings.llm_max_tokens, settings.llm_context, *REGISTRY[backend].settings_key(settings))


def chat_model(settings: Settings, backend: str):
    """The LangChain chat model for a generative backend (built once per configuration and process)."""
    if backend not in GENERATIVE_BACKENDS:
        raise ModelError(f"{backend!r} is not a generative backend; choose one of {', '.join(GENERATIVE_BACKENDS)}", "failed")
    key = _settings_key(settings, backend)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = _build(settings, backend)
        return _CACHE[key]


def _build(settings: Settings, backend: str):
    record = REGISTRY[backend]
    if record.build is None:
        raise ModelError(f"{backend!r} has no chat model to build", "failed")
    _require(record.package, backend)
    return record.build(settings)


def stream_text(
    model, messages, backend: str, timeout: float, json_schema: dict | None = None, openai_format: str = "json_schema"
) -> Iterator[str]:
    """The model's reply in pieces as it is written, constrained to `json_schema` where the backend can be.

    The clients bound each wait for the server by `timeout`; the whole reply is bounded by it too, so a
    server trickling words slowly cannot hold a question for longer than about twice that."""
    kwargs: dict = {}
    if json_schema is not None and backend in REGISTRY:
        kwargs = REGISTRY[backend].structured_output(json_schema, openai_format)
    deadline = time.monotonic() + timeout
    try:
        for chunk in model.stream(messages, **kwargs):
            if time.monotonic() > deadline:
                raise ModelError(f"The {backend} model did not answer in time (its answer took longer than {timeout:g} s).", "timeout")
            content = chunk.content
            if isinstance(content, list):
                content = "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
            if content:
                yield content
    except ModelError:
        raise
    except Exception as exc:  # every client library raises its own types: translate them all
        raise explain(exc, backend, model) from exc


def complete_text(model, messages, backend: str, timeout: float) -> str:
    return "".join(stream_text(model, messages, backend, timeout))


def _where(model) -> str:
    return getattr(model, "base_url", None) or getattr(model, "openai_api_base", None) or "the model server"


def explain(exc: Exception, backend: str, model=None) -> ModelError:
    """A plain-words ModelError for whatever a backend raised."""
    name = type(exc).__name__
    lineage = {cls.__name__ for cls in type(exc).__mro__}  # client libraries wrap errors in their own subclasses
    text = str(exc)
    lower = text.lower()
    status = getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", None)
    where = _where(model)
    if name == "LocalModelUnreadable":
        return ModelError(
            f"The local model file cannot be used: {text}. Run `make local-llm` again, or point ASSISTANT_LLM_MODEL_PATH at a complete GGUF file.",
            "unreadable",
        )
    if isinstance(exc, TimeoutError) or "timeout" in name.lower() or "timed out" in lower:
        if name == "LocalModelBusy":
            return ModelError(f"The local model is busy with other answers: {text}.", "timeout")
        return ModelError(f"The {backend} model did not answer in time ({text or name}).", "timeout")
    if (
        lineage & {"ConnectError", "APIConnectionError", "ConnectionError", "ConnectionRefusedError"}
        or "connection refused" in lower
        or "failed to connect" in lower
    ):
        return ModelError(f"The {backend} model server at {where} is not reachable. Is it running?", "unreachable")
    if status in (401, 403) or lineage & {"AuthenticationError", "PermissionDeniedError"}:
        fix = REGISTRY[backend].auth_hint if backend in REGISTRY else ""
        fix = fix or "Check the server's login (Ollama reads OLLAMA_API_KEY)."
        return ModelError(f"The {backend} model server at {where} refused the request's credentials (HTTP {status or 401}). {fix}", "auth")
    if status == 404 or name == "NotFoundError" or ("not found" in lower and "model" in lower):
        return ModelError(f"The {backend} model server at {where} does not have the configured model ({text[:200]}).", "missing")
    if status is not None and status >= 400 and "response_format" in lower:  # llama-cpp-python's server says 500
        return ModelError(
            f"The {backend} model server at {where} rejected the request for JSON output (HTTP {status}). "
            "Set ASSISTANT_OPENAI_RESPONSE_FORMAT to json_object (llama-cpp-python's server) or off.",
            "failed",
        )
    if "context" in lower and any(w in lower for w in ("exceed", "length", "too long", "window", "overflow")):
        return ModelError(f"The question and passages are too long for the {backend} model's context window.", "context")
    if status is None and (
        isinstance(exc, json.JSONDecodeError) or "ValidationError" in lineage or "json" in lower or "no generation chunks" in lower
    ):
        return ModelError(f"The {backend} model server sent a reply that could not be read ({text[:200]}).", "malformed")
    return ModelError(f"The {backend} model failed: {name}: {text[:300]}", "failed")
