# Two commands do all the set-up: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Benchmarks, the load test and the fault run are commands of the bench app (not in the wheel),
# which only bench.settings installs; the servers they start get the product's settings.
BENCH := DJANGO_SETTINGS_MODULE=bench.settings $(PY) manage.py

.PHONY: install run test test-fast lint format bench bench-queries bench-events bench-realtime bench-mcp bench-reminders bench-recurrence bench-sync bench-search-migration bench-load bench-faults bench-schema client-types example clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements.lock -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: install  ## serve everything on http://127.0.0.1:8000 (PORT overrides; a port in use stops it at once)
	$(PY) manage.py serve

# With DATABASE_URL the settings refuse to start without secrets: a test run makes its own.
test: export SECRET_KEY := $(or $(SECRET_KEY),$(shell $(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(48))'))
test: export JWT_SECRET := $(or $(JWT_SECRET),$(shell $(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(48))'))
test: install  ## the whole suite against a real PostgreSQL (embedded unless DATABASE_URL)
	$(PY) manage.py check --fail-level WARNING
	$(PY) manage.py makemigrations --check --dry-run
	bash realtime/tests/ensure_browser.sh
	bash realtime/tests/ensure_redis.sh
	bash deploy/tests/tools/ensure_tools.sh
	bash tasks/tests/ensure_inspector.sh
	$(PY) -m pytest -q

test-fast: install  ## unit and database tests in under a minute: no server, browser, process or fuzzer (conftest.py marks those slow)
	$(PY) -m pytest -q -m "not slow"

lint: install  ## ruff, the layer contracts (.importlinter), and mypy with django-stubs
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: bench-queries bench-events bench-realtime bench-mcp bench-reminders bench-recurrence bench-sync bench-load bench-faults  ## every benchmark; writes docs/performance.md

bench-queries: install
	$(BENCH) bench_queries

bench-events: install  ## service -> outbox -> relay -> consumer, embedded and through Dapr
	$(PY) manage.py migrate --verbosity 0
	$(BENCH) bench_events --write
	$(BENCH) bench_events --write --mode embedded --source outbox --events 40000 --writers 1 --per-transaction 50
	$(BENCH) bench_events --write --mode embedded --source outbox --events 300000 --writers 1 --per-transaction 50 --rate 5000
	$(BENCH) bench_events --write --mode embedded --source outbox --events 40000 --writers 2 --per-transaction 25

bench-realtime: install
	$(BENCH) bench_realtime

bench-mcp: install
	$(BENCH) bench_mcp

bench-reminders: install
	$(BENCH) bench_reminders

bench-recurrence: install
	$(BENCH) bench_recurrence

bench-sync: install  ## Idempotency-Key overhead, bulk vs single creates, the change feed over 1,000 events
	$(BENCH) bench_sync

bench-search-migration: install  ## migration 0006 on 1,000,000 tasks with a writer and a reader running (not in `bench`: about 6 min)
	$(BENCH) bench_search_migration

bench-load: install  ## 1,000 users with a WebSocket each, 60 s: error rate, p95, nothing lost
	$(BENCH) loadtest

bench-faults: install  ## kill -9 every worker and the server, restart PostgreSQL and Redis; invariants
	$(BENCH) fault_check

bench-schema: install  ## schemathesis, every check, 150 examples per API operation (make test runs 25)
	HOSTILE_SCHEMA_EXAMPLES=150 $(PY) -m pytest -q tasks/tests/test_schema_fuzz.py

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache .mypy_cache .import_linter_cache

# The typed TypeScript client and the Next.js example (docs/frontend.md); they need Node 20+.
client-types: install  ## regenerate clients/typescript/src/generated from /api/schema/ and docs/events
	cd clients/typescript && npm ci --no-audit --no-fund && npm run generate

example:  ## the Next.js example on http://localhost:3000, beside `make run` started as docs/frontend.md says
	cd clients/typescript && npm ci --no-audit --no-fund && npm run build
	cd examples/nextjs && npm ci --no-audit --no-fund && NEXT_TELEMETRY_DISABLED=1 npm run build
	cd examples/nextjs && BETTER_AUTH_SECRET="$${BETTER_AUTH_SECRET:-$$(node -e 'console.log(require("crypto").randomBytes(32).toString("base64url"))')}" \
		NEXT_TELEMETRY_DISABLED=1 npm start
