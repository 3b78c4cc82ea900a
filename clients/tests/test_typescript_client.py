"""The TypeScript client (``clients/typescript``): its generated types match the API and the
event schemas, and its own tests (Node's test runner) pass against the real server.

Needs Node 20+ and npm; it fails, never skips, when they are missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from django.core.management import call_command

from core.auth import issue_token
from todo_project.testing import LiveServer, end_other_database_connections

PACKAGE = Path(__file__).resolve().parents[1] / "typescript"

pytestmark = pytest.mark.django_db(transaction=True)


def npm(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    executable = shutil.which("npm")
    assert executable, (
        "npm is missing: install Node.js 20+ (Debian: apt-get install -y nodejs npm)."
    )
    return subprocess.run(
        [executable, *args],
        cwd=PACKAGE,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def installed():
    """``npm ci`` from the committed lock file (pinned generators and compiler)."""
    result = npm("ci", "--no-audit", "--no-fund")
    assert result.returncode == 0, result.stdout + result.stderr
    return PACKAGE


def test_generated_types_are_current(installed, tmp_path):
    schema = tmp_path / "openapi.json"
    call_command("spectacular", file=str(schema), format="openapi-json", fail_on_warn=True)

    result = npm("run", "check-generated", "--", "--schema", str(schema))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Generated types are current." in result.stdout


def test_the_client_passes_its_tests_against_a_live_server(
    installed, user_id, other_user_id, django_db_blocker
):
    from todo_project.asgi import application

    # The whole application, lifespan included, so the fan-out to sockets runs.
    with LiveServer(application) as server:
        result = npm(
            "test",
            env={
                "TODO_API_URL": server.url,
                "TODO_TOKEN": issue_token(user_id),
                "TODO_OTHER_TOKEN": issue_token(other_user_id),
            },
            timeout=300,
        )
    with django_db_blocker.unblock():
        end_other_database_connections()
    print(result.stdout[-4000:])
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-4000:]
    assert "# fail 0" in result.stdout
    assert "# pass 0" not in result.stdout
