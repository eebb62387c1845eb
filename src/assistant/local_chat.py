"""A LangChain chat model over llama-cpp-python: the `local` backend runs a GGUF file in this process."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, PrivateAttr

_MODELS: dict[tuple, Any] = {}
_MODELS_LOCK = threading.Lock()


class LocalModelTimeout(TimeoutError):
    """The local model was still writing when its time ran out."""


class LocalModelBusy(TimeoutError):
    """Another answer held the local model for longer than this call may wait."""


def load_llama(model_path: str, n_ctx: int, n_threads: int):
    """One llama.cpp model per (file, context, threads) per process: loading takes seconds and 2 GB."""
    key = (model_path, n_ctx, n_threads)
    with _MODELS_LOCK:
        if key not in _MODELS:
            from llama_cpp import Llama

            _MODELS[key] = (
                Llama(model_path=model_path, n_ctx=n_ctx, n_threads=n_threads or (os.cpu_count() or 1), verbose=False),
                threading.Lock(),  # a llama.cpp context runs one generation at a time
            )
        return _MODELS[key]


def _role(message: BaseMessage) -> str:
    return {"human": "user", "ai": "assistant", "system": "system"}.get(message.type, "user")


class LocalChatModel(BaseChatModel):
    """Chat completions from a local GGUF model; `json_schema=` constrains the output with a grammar."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_path: str
    n_ctx: int = 4096
    n_threads: int = 0
    max_tokens: int = 400
    temperature: float = 0.0
    timeout: float = 60.0
    _llama: Any = PrivateAttr(default=None)

    @property
    def _llm_type(self) -> str:
        return "llama-cpp-local"

    @property
    def _identifying_params(self) -> dict:
        return {"model_path": self.model_path, "n_ctx": self.n_ctx}

    def count_tokens(self, text: str) -> int:
        llama, _ = load_llama(self.model_path, self.n_ctx, self.n_threads)
        return len(llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def _completion(self, messages: list[BaseMessage], stop: list[str] | None, json_schema: dict | None) -> Iterator[str]:
        llama, lock = load_llama(self.model_path, self.n_ctx, self.n_threads)
        deadline = time.monotonic() + self.timeout
        if not lock.acquire(timeout=self.timeout):
            raise LocalModelBusy(f"the local model stayed busy with other answers for {self.timeout:g} s")
        try:
            stream = llama.create_chat_completion(
                messages=[{"role": _role(m), "content": str(m.content)} for m in messages],
                max_tokens=self.max_tokens,
                temperature=self.temperature,
                stop=stop,
                stream=True,
                response_format={"type": "json_object", "schema": json_schema} if json_schema else None,
            )
            try:
                for chunk in stream:
                    text = chunk["choices"][0].get("delta", {}).get("content")
                    if text:
                        yield text
                    # checked after every token: closing the stream stops llama.cpp generating
                    if time.monotonic() > deadline:
                        raise LocalModelTimeout(f"the local model did not finish within {self.timeout:g} s")
            finally:
                stream.close()
        finally:
            lock.release()

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for text in self._completion(messages, stop, kwargs.get("json_schema")):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=text))
            if run_manager:
                run_manager.on_llm_new_token(text, chunk=chunk)
            yield chunk

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        text = "".join(self._completion(messages, stop, kwargs.get("json_schema")))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])
