"""The bench commands exist under bench.settings only: the product does not ship them."""

from __future__ import annotations

from pathlib import Path

from django.core.management import find_commands, get_commands

import bench

BENCH_COMMANDS = {
    "bench_events",
    "bench_mcp",
    "bench_queries",
    "bench_realtime",
    "bench_recurrence",
    "bench_reminders",
    "bench_search_migration",
    "bench_sync",
    "fault_check",
    "loadtest",
}


def test_the_product_settings_have_no_bench_command():
    # given the product's settings, when Django lists the management commands
    commands = get_commands()
    # then none of the tooling is among them, while the product's own commands are
    assert not BENCH_COMMANDS & set(commands)
    assert {"serve", "relay_events", "run_consumer"} <= set(commands)


def test_the_bench_app_provides_every_bench_command():
    # given the bench app's management package, when Django looks for commands in it
    found = set(find_commands(str(Path(bench.__file__).parent / "management")))
    # then every benchmark, the load test and the fault run are there
    assert found == BENCH_COMMANDS


def test_bench_settings_are_the_product_settings_plus_the_bench_app():
    from bench import settings as bench_settings
    from todo_project import settings as product

    installed = bench_settings.INSTALLED_APPS
    assert installed == [*product.INSTALLED_APPS, "bench.apps.BenchConfig"]
    shared = {name for name in dir(product) if name.isupper()} - {"INSTALLED_APPS"}
    assert {name: getattr(bench_settings, name) for name in shared} == {
        name: getattr(product, name) for name in shared
    }
