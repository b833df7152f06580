# The two commands of the quick start: `make demo` and `make test`.
# `make demo` installs what the framework needs to run (the runtime dependencies) and
# nothing else; the checks (`make test`, lint, typecheck, unit, bench) add the dev tools.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.installed-runtime
DEV := $(VENV)/.installed-dev
DOCS := $(VENV)/.installed-docs

.PHONY: demo test lint typecheck unit bench docs docs-check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(RUNTIME): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[ops]'
	touch $@

$(DEV): $(RUNTIME)
	$(BIN)/python -m pip install --quiet -e '.[dev,ops]'
	touch $@

$(DOCS): $(DEV)
	$(BIN)/python -m pip install --quiet -e '.[dev,ops,docs]'
	touch $@

# The chat service (apps/chat) under load: crashed and hot-upgraded (docs/guides/chat.md).
demo: $(RUNTIME)
	$(BIN)/python -m apps.chat.demo

test: lint typecheck unit docs-check

lint: $(DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(DEV)
	$(BIN)/mypy

unit: $(DEV)
	$(BIN)/pytest -q

bench: $(DEV)
	$(BIN)/python bench/compare.py

# `make docs` serves the site at http://127.0.0.1:8000 (rebuilt on save); `make docs-check`
# builds it as `make test` does: --strict fails on a broken link or a reference that fails.
docs: $(DOCS)
	$(BIN)/mkdocs serve

docs-check: $(DOCS)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) site build dist .mypy_cache .ruff_cache .hypothesis .benchmarks
