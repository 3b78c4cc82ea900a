"""``subscriptions/listen`` (2026-07-28) over real HTTP: an agent hears of its own changes,
made through REST, in order, and never of another user's.

The server runs the MCP endpoint and the in-process event workers (relay and consumers, as
the embedded mode does), so a change goes the whole way: REST, outbox, the ``mcp`` consumer of
``task-updates``, the channel layer, the listen stream.
"""

from __future__ import annotations

import json
import queue
import threading
import time

import httpx
import pytest

from core.auth import issue_token
from tasks import services
from todo_project.testing import LiveServer, end_other_database_connections

# Slow: a server with its own event workers (conftest.py marks the shared ``server`` only).
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

MODERN = "2026-07-28"


def _app():
    from channels.routing import ProtocolTypeRouter

    from events.runners import in_process_workers
    from tasks.mcp.asgi import lifespan as mcp_lifespan
    from todo_project.asgi import http_app
    from todo_project.lifespan import Lifespan

    return ProtocolTypeRouter(
        {
            "http": http_app,
            "lifespan": Lifespan(lambda: [("mcp", mcp_lifespan), ("events", in_process_workers)]),
        }
    )


@pytest.fixture(scope="module")
def workers_server(django_db_setup, django_db_blocker):
    """The server's event workers poll the database between tests too."""
    with django_db_blocker.unblock():
        with LiveServer(app=_app()) as running:
            yield running
        end_other_database_connections()


def modern_request(method: str, params: dict, request_id: int = 1) -> dict:
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "listen-test", "version": "1"},
    }
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": method,
        "params": {**params, "_meta": meta},
    }


def headers(token: str, method: str) -> dict:
    return {
        "Authorization": f"Bearer {token}",
        "Mcp-Method": method,
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "MCP-Protocol-Version": MODERN,
    }


class Listener:
    """One listen stream in a thread; its frames (JSON-RPC messages) arrive on ``frames``."""

    def __init__(self, url: str, token: str, uris: list[str]):
        self.frames: queue.Queue = queue.Queue()
        self.stop = threading.Event()
        body = modern_request(
            "subscriptions/listen", {"notifications": {"resourceSubscriptions": uris}}, 7
        )
        self.thread = threading.Thread(target=self._run, args=(url, token, body), daemon=True)

    def _run(self, url, token, body) -> None:
        with httpx.stream(
            "POST",
            url,
            json=body,
            headers=headers(token, body["method"]),
            timeout=httpx.Timeout(30, read=None),
        ) as response:
            for line in response.iter_lines():
                if line.startswith("data:"):
                    self.frames.put(json.loads(line[5:]))
                if self.stop.is_set():
                    return

    def __enter__(self) -> Listener:
        self.thread.start()
        ack = self.frames.get(timeout=10)
        assert ack["method"] == "notifications/subscriptions/acknowledged", ack
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()

    def updates(self, count: int, timeout: float = 10) -> list[str]:
        uris = []
        deadline = time.monotonic() + timeout
        while len(uris) < count:
            frame = self.frames.get(timeout=max(0.01, deadline - time.monotonic()))
            assert frame["method"] == "notifications/resources/updated", frame
            assert frame["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == 7
            uris.append(frame["params"]["uri"])
        return uris

    def nothing_more(self, wait: float = 1.0) -> bool:
        try:
            frame = self.frames.get(timeout=wait)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected frame {frame}")


def test_a_listening_agent_hears_its_changes_in_order_and_never_another_users(
    workers_server, user_id, other_user_id
):
    first = services.task_create(user_id=user_id, title="First")
    second = services.task_create(user_id=user_id, title="Second")
    foreign = services.task_create(user_id=other_user_id, title="Not yours")
    mine, theirs = issue_token(user_id), issue_token(other_user_id)
    rest = f"{workers_server.url}/api/tasks"
    uris = [f"task://{first.pk}", f"task://{second.pk}", f"task://{foreign.pk}"]

    with Listener(f"{workers_server.url}/mcp", mine, uris) as listener:
        auth = {"Authorization": f"Bearer {theirs}"}
        # Another user's change to a task whose URI the stream names: never delivered.
        assert httpx.patch(f"{rest}/{foreign.pk}/", json={"title": "x"}, headers=auth).is_success
        auth = {"Authorization": f"Bearer {mine}"}
        for task_id, change in [(first.pk, "a"), (second.pk, "b"), (first.pk, "c")]:
            answer = httpx.patch(f"{rest}/{task_id}/", json={"title": change}, headers=auth)
            assert answer.status_code == 200, answer.text

        assert listener.updates(3) == [uris[0], uris[1], uris[0]]
        assert listener.nothing_more()


def test_a_due_date_change_updates_the_list_resources(workers_server, user_id):
    task = services.task_create(user_id=user_id, title="Due", due_date="2030-01-01T09:00:00Z")
    token = issue_token(user_id)
    lists = ["tasks://today", "tasks://overdue", "tasks://upcoming"]

    with Listener(f"{workers_server.url}/mcp", token, lists) as listener:
        answer = httpx.post(
            f"{workers_server.url}/api/tasks/{task.pk}/complete/",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 200, answer.text

        assert listener.updates(3) == lists
        assert listener.nothing_more(0.5)
