"""The helpers every bench command shares: the report sections and the servers' environment."""

from __future__ import annotations

from bench.benchmarks import server_env, write_marked_section


def test_a_section_is_replaced_in_place_and_the_rest_of_the_report_stays(tmp_path):
    # given a report with hand-written text around two generated sections
    report = tmp_path / "performance.md"
    report.write_text(
        "# Title\n\nintro\n\n<!-- bench:a -->\nold a\n<!-- /bench:a -->\n\nmiddle\n\n"
        "<!-- bench:b -->\nold b\n<!-- /bench:b -->\n"
    )
    # when section a is written again
    write_marked_section(report, "bench:a", "new a\n", header="# Title\n")
    # then only section a changed
    assert report.read_text() == (
        "# Title\n\nintro\n\n<!-- bench:a -->\nnew a\n<!-- /bench:a -->\n\nmiddle\n\n"
        "<!-- bench:b -->\nold b\n<!-- /bench:b -->\n"
    )


def test_a_new_section_is_appended_and_a_missing_report_starts_with_its_header(tmp_path):
    report = tmp_path / "docs" / "reliability.md"
    write_marked_section(report, "reliability:x", "x", header="# Reliability\n")
    write_marked_section(report, "reliability:y", "y", header="# Reliability\n")
    assert report.read_text() == (
        "# Reliability\n\n<!-- reliability:x -->\nx\n<!-- /reliability:x -->\n\n"
        "<!-- reliability:y -->\ny\n<!-- /reliability:y -->\n"
    )


def test_a_bench_server_runs_the_product_settings_without_external_services(monkeypatch):
    # given a bench command running under bench.settings with services in its environment
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "bench.settings")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("DAPR_GRPC_PORT", "50001")
    # when it builds the environment of a server it starts
    env = server_env("postgresql://u@/db?host=/tmp", RUN_WORKERS_IN_PROCESS="0")
    # then the server serves the product, on that database, with the broker embedded
    assert env["DJANGO_SETTINGS_MODULE"] == "todo_project.settings"
    assert env["DATABASE_URL"] == "postgresql://u@/db?host=/tmp"
    assert env["EVENTS_BROKER"] == "embedded"
    assert env["RUN_WORKERS_IN_PROCESS"] == "0"
    assert "REDIS_URL" not in env and "DAPR_GRPC_PORT" not in env
