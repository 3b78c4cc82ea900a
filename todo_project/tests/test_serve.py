"""``manage.py serve`` (``make run``) as an operator meets it: a port in use stops it before
anything starts, the banner's commands work as printed, and each log record is written once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
from django.conf import settings
from django.db import connection

from bench.benchmarks import database_url
from todo_project.management.commands.serve import Command, manage_command
from todo_project.testing import end_other_database_connections

START_SECONDS = 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def closed_port_url() -> str:
    return f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"


def serve_env(tmp_path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "todo_project.settings",
        "SECRET_KEY": "s" * 50,
        "JWT_SECRET": "j" * 40,
        "EMBEDDED_PG_DIR": str(tmp_path / "pg"),
        "EVENTS_BROKER": "embedded",
        "RUN_WORKERS_IN_PROCESS": "0",
        **extra,
    }
    env.pop("REDIS_URL", None)
    return env


def manage(*args: str) -> list[str]:
    return [sys.executable, "manage.py", *args]


def test_a_port_in_use_stops_serve_with_one_line_before_anything_starts(tmp_path):
    # given something listening on the port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # when serve is started on it (with a database that would fail if it were reached)
        finished = subprocess.run(
            manage("serve", "--port", str(port)),
            env=serve_env(tmp_path, DATABASE_URL=closed_port_url()),
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            timeout=60,
        )
    # then it fails at once, with one line that says why and what to do, and no banner or token
    assert finished.returncode != 0
    assert finished.stdout == ""
    lines = finished.stderr.strip().splitlines()
    assert len(lines) == 1, finished.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in lines[0]
    assert f"PORT={port + 1} make run" in lines[0]
    assert not (tmp_path / "pg").exists()  # the embedded database was not started either


def test_the_banner_sets_the_token_before_the_curl_that_uses_it(settings):
    settings.JWT_SECRET = "j" * 40
    banner = Command().banner("127.0.0.1", 8123)
    lines = [line.strip() for line in banner.splitlines()]
    export = next(n for n, line in enumerate(lines) if line.startswith("export TOKEN=ey"))
    curl = next(n for n, line in enumerate(lines) if line.startswith("curl "))
    assert export < curl
    assert '"Authorization: Bearer $TOKEN"' in lines[curl]
    assert f"{manage_command()} issue_token demo" in banner
    assert f"{manage_command()} createsuperuser" in banner
    assert "python manage.py" not in banner.replace(manage_command(), "")


def test_the_printed_manage_command_works_in_a_fresh_shell(tmp_path):
    # A shell without the virtual environment on its PATH, as a new terminal is.
    env = serve_env(tmp_path, PATH="/usr/bin:/bin")
    env.pop("VIRTUAL_ENV", None)
    finished = subprocess.run(
        ["/bin/sh", "-c", f"{manage_command()} issue_token demo"],
        env=env,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.startswith("ey")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("debug", ["0", "1"])
def test_each_log_record_is_written_once(tmp_path, debug):
    # given the server as make run starts it, on the test database
    port = free_port()
    env = serve_env(
        tmp_path,
        DATABASE_URL=database_url(connection.settings_dict["NAME"]),
        DEBUG=debug,
        LOG_FORMAT="text",
    )
    server = subprocess.Popen(
        manage("serve", "--port", str(port), "--no-migrate"),
        env=env,
        cwd=settings.BASE_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_SECONDS
        while True:
            assert server.poll() is None, server.communicate()[1]
            try:
                httpx.get(f"{base}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        # when a request makes Django log a warning
        assert httpx.get(f"{base}/api/no-such-thing/", timeout=10).status_code == 404
    finally:
        server.send_signal(signal.SIGINT)
        _, stderr = server.communicate(timeout=30)
        with connection.cursor():
            end_other_database_connections()
    # then the warning is in the server's stderr exactly once, formatted by the project
    warnings = [line for line in stderr.splitlines() if "Not Found: /api/no-such-thing/" in line]
    assert len(warnings) == 1, stderr
    assert " WARNING django.request " in warnings[0]
    started = [line for line in stderr.splitlines() if "Application startup complete" in line]
    assert len(started) == 1, stderr
