"""The search migration benchmark runs end to end on a few rows: 0005 loaded, 0006 applied while
the writer and the reader keep going, and its database dropped afterwards."""

from __future__ import annotations

import io

import psycopg
from django.core.management import call_command
from django.db import connections

from bench.benchmarks import conninfo
from bench.management.commands.bench_search_migration import BENCH_DB, Command


def test_the_migration_runs_under_writes_and_every_row_gets_the_new_vector(django_db_blocker):
    # given 200 tasks at 0005, when the command migrates them to 0006 with traffic running (in a
    # database of its own on the project's server, as `make bench-search-migration` runs it)
    command, out = Command(), io.StringIO()
    with django_db_blocker.unblock():
        call_command(command, rows=200, users=4, baseline=0.5, no_report=True, stdout=out)
    run = command.run
    # then every phase was seen, each row has the new vector and accent-free words find tasks
    assert run.swap_ms is not None
    assert any(name.startswith("backfill") for name in run.phases)
    assert run.without_vector == 0
    assert run.found_accent_free > 0
    # and the writer and the reader worked before and during it, none of it failing
    assert run.writes.during(run.started, run.ended) and run.writes.before(run.started)
    assert run.reads.during(run.started, run.ended)
    assert run.writes.error_count == run.reads.error_count == 0
    assert "| migration, total |" in out.getvalue()
    # and the bench database is gone
    admin = conninfo(connections["default"].settings_dict["NAME"])
    with django_db_blocker.unblock(), psycopg.connect(admin) as conn:
        gone = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB])
        assert gone.fetchone() is None
