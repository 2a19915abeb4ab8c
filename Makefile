# The two commands a newcomer needs:
#   make run    the whole system with a live demo (SQLite, no servers needed)
#   make test   the whole test suite (PostgreSQL at $DATABASE_URL, default 127.0.0.1:5432)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
# Tests run against PostgreSQL; `make test DATABASE_URL=sqlite:///var/test.sqlite3` runs them on SQLite
# (the tests that need PostgreSQL's row locking are then skipped).
TEST_DATABASE_URL ?= $(or $(DATABASE_URL),postgres://postgres@127.0.0.1:5432/pandamon)

.PHONY: run test lint venv clean

# The last step installs the project's own tools (pyproject.toml: the dq2 command, the pilot) in editable mode.
$(BIN)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet -e .
	touch $@

venv: $(BIN)/.installed

var/secret_key:
	mkdir -p var
	$(BIN)/python -c "import secrets; print(secrets.token_urlsafe(50))" > $@

run: venv var/secret_key
	DJANGO_SECRET_KEY=$$(cat var/secret_key) $(BIN)/python manage.py run_demo --port $(PORT)

test: venv
	DATABASE_URL=$(TEST_DATABASE_URL) $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf var
