"""Hostile calls to the Dapr job trigger ``POST /job/<name>``, against the real ASGI app.

Without the Dapr broker the path answers what an unknown path answers; with it, only Dapr's app
token opens it, and then only a trigger for the reminder's current generation and time, at its
time, fires anything. Every other call gets a JSON answer and changes nothing: not the reminder,
not the inbox, not the outbox.
"""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest

from events.models import OutboxEvent
from reminders.models import Notification, Reminder, ReminderState
from reminders.representation import job_data
from reminders.tests.helpers import soon
from tasks import services

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "sidecar-secret-0123456789abcdef"
DEEP = 5000


@pytest.fixture
def dapr(settings):
    settings.EVENTS_BROKER = "dapr"
    settings.APP_API_TOKEN = TOKEN
    settings.REMINDER_JOBS_OWNER = False  # no sidecar here: nothing may try to schedule a job
    return settings


def _reminder(user_id: str, *, fire_in: timedelta) -> Reminder:
    """A task's reminder (an hour before the task is due) that comes ``fire_in`` from now."""
    task = services.task_create(
        user_id=user_id,
        title="Call Bob",
        due_date=soon(hours=1) + fire_in,
        reminder_time="1h",
        check_reminder_in_past=False,
    )
    return Reminder.objects.get(task_id=task.pk)


@pytest.fixture
def due(dapr, user_id) -> Reminder:
    """A reminder that is due now: any trigger that got through would fire it."""
    return _reminder(user_id, fire_in=timedelta(seconds=1))


@pytest.fixture
def later(dapr, user_id) -> Reminder:
    """A reminder two days away."""
    return _reminder(user_id, fire_in=timedelta(days=2))


def _everything_of(reminder: Reminder) -> dict:
    """What a trigger could change for the reminder's user."""
    row = Reminder.objects.get(pk=reminder.pk)
    return {
        "reminder": (row.state, row.generation, row.fire_at, row.fired_at),
        "notifications": Notification.objects.filter(user_id=reminder.user_id).count(),
        "events": list(
            OutboxEvent.objects.filter(user_id=reminder.user_id)
            .order_by("pk")
            .values_list("event_type", flat=True)
        ),
    }


def _post(server, name: str, body: bytes = b"", *, token: str | None = TOKEN, **headers):
    if token is not None:
        headers["dapr-api-token"] = token
    headers.setdefault("Content-Type", "application/json")
    return httpx.post(f"{server.url}/job/{name}", content=body, headers=headers, timeout=30)


def _name(reminder: Reminder) -> str:
    return f"reminder-task-{reminder.task_id}"


def _body(value) -> bytes:
    return json.dumps(value).encode()


def _error(response) -> tuple[int, str, list[tuple[str, str]]]:
    error = response.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    fields = [(item["field"], item["code"]) for item in error.get("fields", [])]
    return response.status_code, error["code"], fields


# --- routed only with Dapr ------------------------------------------------------------------


def test_without_dapr_the_job_path_answers_what_an_unknown_path_answers(server, settings, user_id):
    # given the embedded broker, a token configured anyway, and a reminder that is due
    settings.EVENTS_BROKER = "embedded"
    settings.APP_API_TOKEN = TOKEN
    reminder = _reminder(user_id, fire_in=timedelta(seconds=1))
    before = _everything_of(reminder)
    unknown = httpx.post(f"{server.url}/no-such-path/{_name(reminder)}", timeout=30)
    assert unknown.status_code == 404

    # when the job path is called with the token and the job's own data, or with nothing
    calls = [
        _post(server, _name(reminder), _body(job_data(reminder))),
        _post(server, _name(reminder), token=None),
        httpx.get(f"{server.url}/job/{_name(reminder)}", timeout=30),
    ]

    # then each gets what the unknown path got, and nothing fired
    for response in calls:
        assert response.status_code == 404
        assert response.headers["content-type"] == unknown.headers["content-type"]
        path = response.request.url.path
        assert response.content.replace(path.encode(), b"") == unknown.content.replace(
            unknown.request.url.path.encode(), b""
        )
    assert _everything_of(reminder) == before


# --- Dapr's app token -----------------------------------------------------------------------


def test_the_bare_probe_without_credentials_is_refused_and_fires_nothing(server, due):
    before = _everything_of(due)

    response = httpx.post(f"{server.url}/job/{_name(due)}", timeout=30)

    assert _error(response) == (401, "invalid_token", [])
    assert _everything_of(due) == before


@pytest.mark.parametrize("given", [None, "", "guess", TOKEN[:-1], TOKEN + "x", TOKEN.upper()])
def test_a_missing_or_wrong_token_gets_one_401_whatever_the_job_name(server, due, given):
    before = _everything_of(due)
    names = [_name(due), "reminder-task-987654321", "reminder-task-abc", "backup"]

    responses = [_post(server, name, _body(job_data(due)), token=given) for name in names]

    assert {(r.status_code, r.content) for r in responses} == {(401, responses[0].content)}, (
        "the answer must not tell which job names exist"
    )
    assert _error(responses[0]) == (401, "invalid_token", [])
    assert _everything_of(due) == before


@pytest.mark.parametrize("given", [None, "", "anything"])
def test_without_a_configured_token_every_call_is_refused(server, settings, due, given):
    settings.APP_API_TOKEN = ""
    before = _everything_of(due)

    response = _post(server, _name(due), _body(job_data(due)), token=given)

    assert _error(response) == (401, "invalid_token", [])
    assert _everything_of(due) == before


def test_the_right_token_and_the_jobs_own_data_fire_the_due_reminder(server, due):
    response = _post(server, _name(due), _body(job_data(due)))

    assert (response.status_code, response.json()) == (200, {"status": "fired"})
    assert Reminder.objects.get(pk=due.pk).state == ReminderState.FIRED


# --- forged triggers with the token ---------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "status"),
    [
        (lambda data: {**data, "generation": data["generation"] + 1}, "stale"),
        (lambda data: {**data, "generation": 10**30}, "stale"),
        (lambda data: {**data, "remind_at": "2031-01-01T09:00:00Z"}, "stale"),
        (lambda data: {**data, "remind_at": "0001-01-01T00:00:00+23:59"}, "stale"),
        (lambda data: {**data, "task_id": data["task_id"] + 1}, "stale"),
    ],
    ids=["another-generation", "huge-generation", "another-time", "year-one", "another-task"],
)
def test_a_trigger_for_another_generation_time_or_task_is_stale(server, due, change, status):
    before = _everything_of(due)

    response = _post(server, _name(due), _body(change(job_data(due))))

    assert (response.status_code, response.json()) == (404, {"status": status})
    assert _everything_of(due) == before


def test_an_early_trigger_fires_nothing(server, later):
    before = _everything_of(later)

    response = _post(server, _name(later), _body(job_data(later)))

    assert (response.status_code, response.json()) == (425, {"status": "early"})
    assert _everything_of(later) == before


@pytest.mark.parametrize(
    ("data", "fields"),
    [
        (None, [("generation", "required"), ("remind_at", "required")]),
        ({}, [("generation", "required"), ("remind_at", "required")]),
        ({"\ud800": 1}, [("generation", "required"), ("remind_at", "required")]),
        ({"remind_at": "2030-13-45T99:00"}, [("generation", "required"), ("remind_at", "invalid")]),
        ({"generation": 1, "remind_at": "2030-13-45T99:00"}, [("remind_at", "invalid")]),
        ({"generation": 1, "remind_at": "2031-01-01T09:00:00"}, [("remind_at", "invalid")]),
        ({"generation": 1, "remind_at": "tomorrow"}, [("remind_at", "invalid")]),
        ({"generation": 1, "remind_at": 1924992000}, [("remind_at", "invalid")]),
        ({"generation": True, "remind_at": "2031-01-01T09:00:00Z"}, [("generation", "invalid")]),
        ({"generation": "1", "remind_at": "2031-01-01T09:00:00Z"}, [("generation", "invalid")]),
        ({"generation": 1.0, "remind_at": "2031-01-01T09:00:00Z"}, [("generation", "invalid")]),
        ({"generation": 0, "remind_at": "2031-01-01T09:00:00Z"}, [("generation", "invalid")]),
        ({"generation": -1, "remind_at": "2031-01-01T09:00:00Z"}, [("generation", "invalid")]),
        (
            {"task_id": True, "generation": 1, "remind_at": "2031-01-01T09:00:00Z"},
            [("task_id", "invalid")],
        ),
    ],
    ids=[
        "empty-body",
        "empty-object",
        "lone-surrogate-key",
        "impossible-remind-at-alone",
        "impossible-remind-at",
        "remind-at-without-offset",
        "remind-at-not-a-date",
        "remind-at-a-number",
        "generation-true",
        "generation-a-string",
        "generation-a-float",
        "generation-zero",
        "generation-negative",
        "task-id-true",
    ],
)
def test_missing_or_wrongly_typed_fields_are_a_400_naming_them(server, due, data, fields):
    before = _everything_of(due)

    response = _post(server, _name(due), b"" if data is None else _body(data))

    assert _error(response) == (400, "invalid", fields)
    assert _everything_of(due) == before


NESTED = b"[" * DEEP + b"]" * DEEP


@pytest.mark.parametrize(
    "body",
    [
        NESTED,
        b'{"generation": ' + NESTED + b', "remind_at": "2031-01-01T09:00:00Z"}',
        _body(
            {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": NESTED.decode()}
        ),
        b'{"generation": ' + b"9" * 5000 + b"}",
        b"[1]",
        b"5",
        b"null",
        b'"text"',
        b'"[1]"',
        b"\xff\xfe\x00not json",
        b"{",
    ],
    ids=[
        "nested-5000",
        "nested-5000-in-a-field",
        "nested-5000-packed",
        "a-5000-digit-number",
        "an-array",
        "a-number",
        "null",
        "a-string",
        "a-string-holding-an-array",
        "bytes-neither-json-nor-protobuf",
        "truncated",
    ],
)
def test_a_body_that_is_not_a_json_object_is_a_400_invalid_json(server, due, body):
    before = _everything_of(due)

    response = _post(server, _name(due), body)

    assert _error(response) == (400, "invalid_json", [])
    assert _everything_of(due) == before


def test_an_oversized_body_is_a_413_and_without_the_token_a_401(server, settings, due):
    before = _everything_of(due)
    huge = b'{"pad": "' + b"x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1024) + b'"}'

    with_token = _post(server, _name(due), huge)
    without = _post(server, _name(due), huge, token=None)

    assert _error(with_token) == (413, "too_large", [])
    assert _error(without) == (401, "invalid_token", [])
    assert _everything_of(due) == before


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_other_methods_get_a_405_in_json(server, due, method):
    before = _everything_of(due)

    response = httpx.request(
        method, f"{server.url}/job/{_name(due)}", headers={"dapr-api-token": TOKEN}, timeout=30
    )

    assert _error(response) == (405, "method_not_allowed", [])
    assert response.headers["allow"] == "POST"
    assert _everything_of(due) == before
