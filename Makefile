# The README's commands. Each creates the virtual environment itself on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000

.PHONY: demo test lint bench clean messages

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

## Fresh demo database with realistic data, served on http://127.0.0.1:$(PORT)
demo: $(VENV)/.installed
	$(BIN)/relance demo --port $(PORT)

## Lint and type-check, then every test (SQLite always; Postgres and Chromium when present)
test: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check app.py cli.py receivables web api portal backoffice webhooks tests bench
	$(BIN)/mypy

## Words: extract every translatable string (babel.cfg) to the template and merge it into the
## catalogs receivables/locale/{en,fr}/LC_MESSAGES/messages.po (then translate the new entries)
LOCALES := receivables/locale
messages: $(VENV)/.installed
	$(BIN)/pybabel extract -F babel.cfg --no-location --sort-output \
		-o $(LOCALES)/messages.pot .
	$(BIN)/pybabel update -i $(LOCALES)/messages.pot -d $(LOCALES) -D messages \
		--no-fuzzy-matching --ignore-obsolete

## Every benchmark (several minutes; needs Postgres at 127.0.0.1:5432)
bench: $(VENV)/.installed
	$(BIN)/python bench/ledger.py
	$(BIN)/python bench/portal.py
	$(BIN)/python bench/backoffice.py
	$(BIN)/python bench/dunning_run.py
	$(BIN)/python bench/outbox.py
	$(BIN)/python bench/webhooks.py
	$(BIN)/python bench/cash.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis
