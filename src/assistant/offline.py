"""Keeps the process offline and telemetry-free before any third-party library is imported."""

import os

# Each of these libraries phones home by default; they read the variables at import time,
# so this module must run before chromadb, gradio, onnxruntime or huggingface_hub load.
_OFFLINE_DEFAULTS = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "ORT_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "DO_NOT_TRACK": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    # LangChain traces to LangSmith only when asked; say no explicitly so an inherited key changes nothing.
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
}


def enforce_offline() -> None:
    """Set the privacy variables, leaving any value the user chose explicitly."""
    for name, value in _OFFLINE_DEFAULTS.items():
        os.environ.setdefault(name, value)
