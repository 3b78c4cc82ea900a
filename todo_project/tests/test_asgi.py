"""What ``todo_project/asgi.py`` serves: every scope type, and the lifespan parts of each mode."""

from __future__ import annotations

import httpx
import pytest

from todo_project.asgi import application, lifespan_parts


def _names(parts) -> list[str]:
    return [name for name, _ in parts]


def test_the_embedded_mode_runs_every_part_in_order(settings):
    settings.RUN_WORKERS_IN_PROCESS = True
    settings.EVENTS_BROKER = "embedded"

    assert _names(lifespan_parts()) == ["mcp", "events", "reminder-scheduler", "realtime"]


@pytest.mark.parametrize(
    ("broker", "jobs_owner", "expected"),
    [
        ("dapr", True, ["mcp", "reminder-scheduler", "realtime"]),
        ("dapr", False, ["mcp", "realtime"]),
        ("embedded", True, ["mcp", "realtime"]),
    ],
)
def test_without_in_process_workers_only_the_jobs_owner_runs_the_scheduler(
    settings, broker, jobs_owner, expected
):
    settings.RUN_WORKERS_IN_PROCESS = False
    settings.EVENTS_BROKER = broker
    settings.REMINDER_JOBS_OWNER = jobs_owner

    assert _names(lifespan_parts()) == expected


async def test_mcp_is_mounted_before_django_behind_the_host_check():
    transport = httpx.ASGITransport(app=application)  # runs no lifespan
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        unauthenticated = await client.post("/mcp", json={})
        metadata = await client.get("/.well-known/oauth-protected-resource/mcp")
        forged = await client.post("/mcp", json={}, headers={"Host": "evil.example"})

    assert unauthenticated.status_code == 401
    assert metadata.json()["resource"] == "http://127.0.0.1/mcp"
    assert (forged.status_code, forged.json()["error"]["code"]) == (400, "disallowed_host")


async def test_a_scope_type_nothing_serves_is_an_error():
    async def never(*args):
        raise AssertionError

    with pytest.raises(ValueError, match="No application configured for scope type 'other'"):
        await application({"type": "other"}, never, never)
