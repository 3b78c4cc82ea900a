# Two commands do all the set-up: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test lint format bench bench-queries bench-events clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements.lock -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: install  ## serve everything on http://127.0.0.1:8000 (PORT overrides)
	$(PY) manage.py serve

test: install  ## the whole suite against a real PostgreSQL (embedded unless DATABASE_URL)
	$(PY) manage.py check --fail-level WARNING
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: bench-queries  ## every benchmark; writes docs/performance.md

bench-queries: install
	$(PY) manage.py bench_queries

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache
