# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Start the service with the embedded default (SQLite + sample region and data) on :8000
run: $(STAMP)
	$(BIN)/python -m app serve --demo

## Lint, type-check and run the whole test suite (SQLite and PostgreSQL)
test: $(STAMP)
	$(BIN)/ruff check app bench tests migrations
	$(BIN)/ruff format --check app bench tests migrations
	$(BIN)/mypy app bench
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) osm_cache/*.pkl osm_cache/*.npz
