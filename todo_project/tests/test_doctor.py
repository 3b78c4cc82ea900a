"""``manage.py doctor``: healthy, and broken in the ways an operator meets (database down, the
wrong Dapr port, a missing secret, a consumer far behind), each with its line and fix."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command

from events import health
from todo_project import doctor

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_positions():
    health.forget_positions()
    yield
    health.forget_positions()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_doctor() -> tuple[str, bool]:
    """Its output, and whether it exited non-zero."""
    out = StringIO()
    try:
        call_command("doctor", stdout=out)
    except CommandError as exc:
        return out.getvalue() + f"\n{exc}", True
    return out.getvalue(), False


def line_of(output: str, status: str, check: str) -> str:
    for line in output.splitlines():
        if line.startswith(f"{status:<4}  {check} "):
            return line
    raise AssertionError(f"no {status} line for {check!r} in:\n{output}")


@contextmanager
def dapr_sidecar(metadata: dict, *, healthz: int = 204) -> Iterator[str]:
    """A sidecar's HTTP API on loopback: ``/v1.0/healthz`` and ``/v1.0/metadata``."""
    body = json.dumps(metadata).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/v1.0/healthz":
                self.send_response(healthz)
                self.end_headers()
            elif self.path == "/v1.0/metadata":
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)
            else:
                self.send_response(404)
                self.end_headers()

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


HEALTHY_METADATA = {
    "id": "todo-web",
    "components": [
        {"name": "pubsub", "type": "pubsub.kafka", "version": "v1"},
        {"name": "secretstore", "type": "secretstores.kubernetes", "version": "v1"},
    ],
    "scheduler": {"connected_addresses": ["dapr-scheduler-server-0:50006"]},
}


@pytest.fixture
def dapr_mode(settings, monkeypatch):
    settings.EVENTS_BROKER = "dapr"
    settings.APP_API_TOKEN = "app-token"

    def point_at(endpoint: str) -> None:
        monkeypatch.setenv("DAPR_HTTP_ENDPOINT", endpoint)

    return point_at


def test_a_healthy_embedded_deployment_is_all_ok(settings):
    settings.REDIS_URL = ""
    output, failed = run_doctor()
    assert not failed, output
    assert "FAIL" not in output
    assert "PostgreSQL" in line_of(output, "OK", "database")
    assert line_of(output, "OK", "migrations").endswith("all applied")
    line_of(output, "SKIP", "redis")
    line_of(output, "SKIP", "dapr")
    line_of(output, "OK", "SECRET_KEY")
    line_of(output, "OK", "JWT keys")
    for consumer in ("audit", "notifications", "recurrence", "realtime"):
        line_of(output, "OK", f"consumer {consumer}")
    line_of(output, "OK", "relay")


def test_a_database_that_is_down_fails_with_its_fix(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "todo_project.settings",
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{closed_port()}/todo",
        "SECRET_KEY": "s" * 50,
        "JWT_SECRET": "j" * 40,
        "EMBEDDED_PG_DIR": str(tmp_path / "pg"),
        "EVENTS_BROKER": "embedded",
    }
    env.pop("REDIS_URL", None)
    finished = subprocess.run(
        [sys.executable, "manage.py", "doctor"],
        env=env,
        cwd=django_settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert finished.returncode != 0
    failing = line_of(finished.stdout, "FAIL", "database")
    assert "cannot connect to 127.0.0.1" in failing and "Traceback" not in finished.stderr
    assert "fix: start PostgreSQL or correct DATABASE_URL" in finished.stdout
    line_of(finished.stdout, "SKIP", "migrations")
    line_of(finished.stdout, "OK", "JWT keys")
    assert "1 check(s) failed: database" in finished.stderr


def test_a_wrong_dapr_port_fails_with_its_fix(dapr_mode):
    dapr_mode(f"http://127.0.0.1:{closed_port()}")
    output, failed = run_doctor()
    assert failed
    assert "/v1.0/healthz" in line_of(output, "FAIL", "dapr sidecar")
    assert "DAPR_HTTP_ENDPOINT or DAPR_HTTP_PORT" in output
    line_of(output, "OK", "database")


def test_a_healthy_sidecar_with_its_components_is_ok(dapr_mode, settings):
    with dapr_sidecar(HEALTHY_METADATA) as endpoint:
        dapr_mode(endpoint)
        output, failed = run_doctor()
    assert not failed, output
    line_of(output, "OK", "dapr sidecar")
    assert "pubsub.kafka" in line_of(output, "OK", "dapr pubsub")
    line_of(output, "OK", "dapr jobs")
    line_of(output, "OK", "APP_API_TOKEN")
    # with a broker, the consumers' positions are the broker's
    assert "kept by the broker" in line_of(output, "OK", "consumer audit")


def test_a_sidecar_without_the_pubsub_or_the_scheduler_fails_for_each(dapr_mode):
    metadata = {"components": [{"name": "statestore", "type": "state.redis"}]}
    with dapr_sidecar(metadata) as endpoint:
        dapr_mode(endpoint)
        output, failed = run_doctor()
    assert failed
    assert "no pub/sub component named 'pubsub'" in line_of(output, "FAIL", "dapr pubsub")
    assert "statestore (state.redis)" in output
    line_of(output, "FAIL", "dapr jobs")


def test_an_unhealthy_sidecar_fails(dapr_mode):
    with dapr_sidecar(HEALTHY_METADATA, healthz=500) as endpoint:
        dapr_mode(endpoint)
        output, failed = run_doctor()
    assert failed and "answered 500" in line_of(output, "FAIL", "dapr sidecar")


def test_a_missing_jwt_secret_fails_with_its_fix(settings):
    settings.JWT_SECRET = ""
    settings.JWT_JWKS_URL = ""
    output, failed = run_doctor()
    assert failed
    assert "neither JWT_SECRET nor JWT_JWKS_URL" in line_of(output, "FAIL", "JWT keys")
    assert "fix: set JWT_SECRET" in output
    assert "1 check(s) failed: JWT keys" in output


def test_the_dapr_app_token_is_required_for_job_callbacks(dapr_mode, settings):
    settings.APP_API_TOKEN = ""
    with dapr_sidecar(HEALTHY_METADATA) as endpoint:
        dapr_mode(endpoint)
        output, failed = run_doctor()
    assert failed and "reminders never fire" in line_of(output, "FAIL", "APP_API_TOKEN")


def test_redis_that_does_not_answer_fails(settings):
    settings.REDIS_URL = f"redis://:hunter2@127.0.0.1:{closed_port()}/0"
    output, failed = run_doctor()
    assert failed
    assert "cannot reach redis://:***@127.0.0.1" in line_of(output, "FAIL", "redis")
    assert "hunter2" not in output


def test_a_consumer_far_behind_fails(monkeypatch, make_task):
    monkeypatch.setattr(doctor, "CONSUMER_LAG_LIMIT", 1)
    make_task(title="one")
    make_task(title="two")
    output, failed = run_doctor()
    assert failed
    assert "2 events behind" in line_of(output, "FAIL", "consumer audit")
    assert "run_consumer audit" in output
