# hilight — two commands do all setup: `make demo` and `make test`.
# Each target creates .venv when it is absent and installs what it needs into it. torch is pinned first to
# 2.13.0, whose CPU build the project's machines hold locally (an unpinned torch pulls a multi-GB CUDA
# build); the requirement files keep ranges so users elsewhere can bring their own build.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
TORCH  := torch==2.13.0
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check
export NUMBA_CACHE_DIR ?= $(CURDIR)/.numba_cache

.PHONY: demo test test-all bench default-model space clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Runtime only: what loading and running the model needs.
$(VENV)/.runtime: requirements.txt | $(PY)
	$(PIP) $(TORCH)
	$(PIP) -r requirements.txt
	touch $@

# Everything: training, data engine, Space, tests.
$(VENV)/.all: $(VENV)/.runtime train/requirements.txt space/requirements.txt requirements-dev.txt
	$(PIP) -r train/requirements.txt -r space/requirements.txt -r requirements-dev.txt
	touch $@

## Answer questions on the example clips with the bundled default model.
demo: $(VENV)/.runtime
	$(PY) examples/demo.py

# Browser tests drive Debian's Chromium (Playwright's own browser download cannot work offline).
CHROMIUM ?= /usr/bin/chromium
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "The browser tests need Debian's chromium: run 'sudo apt-get install chromium' (or set CHROMIUM)." >&2; \
		exit 1; \
	fi

## Lint, then the fast test tier plus the browser test (everything but `slow`).
test: $(VENV)/.all $(CHROMIUM)
	$(PY) -m ruff check .
	HILIGHT_CHROMIUM=$(CHROMIUM) $(PY) -m pytest -m "not slow"

## Every test tier, slow and browser tests included.
test-all: $(VENV)/.all $(CHROMIUM)
	$(PY) -m ruff check .
	HILIGHT_CHROMIUM=$(CHROMIUM) $(PY) -m pytest

## Benchmarks: ratios against named baselines, measured in one run.
bench: $(VENV)/.all
	$(PY) benchmarks/run_all.py

## Reproduce the bundled default model from nothing (data, tokenizer, stages 0-2, evaluation) and install it.
default-model: $(VENV)/.all
	$(PY) train/make_default_model.py --work outputs/default --install

## Serve the Gradio Space on this repo's model (GRADIO_SERVER_PORT, default 7860).
space: $(VENV)/.all
	HILIGHT_MODEL=. $(PY) space/app.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .numba_cache
