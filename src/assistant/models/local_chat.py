"""A LangChain chat model over llama-cpp-python: the `local` backend runs a GGUF file in this process, keeping each fixed system prompt evaluated."""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
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


class LocalModelUnreadable(RuntimeError):
    """The model file exists but llama.cpp cannot load it (corrupt, cut short, or not a GGUF model)."""


class _Loaded:
    """A llama.cpp model, the lock that lets one generation run at a time, and its saved prompt prefixes."""

    def __init__(self, llama):
        self.llama = llama
        self.lock = threading.Lock()
        self.prefixes: OrderedDict[str, Any] = OrderedDict()  # system prompt -> LlamaState after evaluating it

    def __iter__(self):  # (llama, lock), as callers unpack it
        return iter((self.llama, self.lock))


PREFIX_STATES = 3  # system prompts kept evaluated (answer, rewrite, judge); each costs its KV cells, a few MB
# Tokens after the shared prefix in a saved state: the empty user turn, the assistant header and the one
# token generated while saving it. A context sharing fewer than (state length - this) tokens lost the prefix.
_STATE_TAIL = 16


def load_llama(model_path: str, n_ctx: int, n_threads: int) -> _Loaded:
    """One llama.cpp model per (file, context, threads) per process: loading takes seconds and 2 GB."""
    key = (model_path, n_ctx, n_threads)
    with _MODELS_LOCK:
        if key not in _MODELS:
            from llama_cpp import Llama

            try:
                llama = Llama(model_path=model_path, n_ctx=n_ctx, n_threads=n_threads or (os.cpu_count() or 1), verbose=False)
            except (ValueError, RuntimeError, OSError) as exc:  # llama.cpp refuses a bad file with "Failed to load model"
                raise LocalModelUnreadable(f"{model_path} could not be loaded as a GGUF model ({exc})") from None
            _MODELS[key] = _Loaded(llama)
        return _MODELS[key]


def _keep_prefix_evaluated(loaded: _Loaded, system: str) -> None:
    """Make the context start with `system` evaluated, so a question costs only its own tokens.

    llama-cpp-python reuses the longest token prefix the context shares with a new prompt; another
    prompt in between (a follow-up rewrite, a judge) would cost the whole instructions again. So the
    state after evaluating each system prompt is saved once and put back when the context lost it."""
    import numpy as np

    llama = loaded.llama
    state = loaded.prefixes.get(system)
    if state is None:
        llama.create_chat_completion(
            messages=[{"role": "system", "content": system}, {"role": "user", "content": ""}], max_tokens=1, temperature=0.0
        )
        state = llama.save_state()
        # the saved logits are never used (the first new token is always evaluated): keep one row, not
        # n_tokens x vocabulary floats (about 150 MB for the answer instructions)
        state.scores = np.zeros((1, state.scores.shape[1]), dtype=np.single)
        loaded.prefixes[system] = state
        while len(loaded.prefixes) > PREFIX_STATES:
            loaded.prefixes.popitem(last=False)
        return
    loaded.prefixes.move_to_end(system)
    shared = 0
    for a, b in zip(llama.input_ids[: llama.n_tokens].tolist(), state.input_ids[: state.n_tokens].tolist()):
        if a != b:
            break
        shared += 1
    if shared < state.n_tokens - _STATE_TAIL:
        llama.load_state(state)


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
    keep_prefix: bool = True  # keep each system prompt evaluated between calls (see _keep_prefix_evaluated)
    _llama: Any = PrivateAttr(default=None)

    @property
    def _llm_type(self) -> str:
        return "llama-cpp-local"

    @property
    def _identifying_params(self) -> dict:
        return {"model_path": self.model_path, "n_ctx": self.n_ctx}

    def count_tokens(self, text: str) -> int:
        llama = load_llama(self.model_path, self.n_ctx, self.n_threads).llama
        return len(llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def _completion(self, messages: list[BaseMessage], stop: list[str] | None, json_schema: dict | None) -> Iterator[str]:
        loaded = load_llama(self.model_path, self.n_ctx, self.n_threads)
        llama, lock = loaded
        deadline = time.monotonic() + self.timeout
        if not lock.acquire(timeout=self.timeout):
            raise LocalModelBusy(f"the local model stayed busy with other answers for {self.timeout:g} s")
        try:
            if self.keep_prefix and messages and messages[0].type == "system":
                _keep_prefix_evaluated(loaded, str(messages[0].content))
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
