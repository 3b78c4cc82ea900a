"""POST /api/tasks/bulk/: each operation answered as its single endpoint would answer it."""

from __future__ import annotations

import pytest

from events.models import OutboxEvent
from tasks import services
from tasks.models import Task
from tasks.signals import task_changed

pytestmark = pytest.mark.django_db

URL = "/api/tasks/bulk/"


def bulk(api, operations, **extra):
    return api.post(URL, {"operations": operations, **extra}, format="json")


def event_types(user_id):
    return list(
        OutboxEvent.objects.filter(user_id=user_id)
        .order_by("sequence")
        .values_list("event_type", flat=True)
    )


def test_each_operation_is_answered_in_order_with_one_event_per_change(api, make_task, user_id):
    # given two tasks
    a, b = make_task(title="a"), make_task(title="b")
    before = len(event_types(user_id))

    # when a batch creates, updates, completes, reopens and deletes
    response = bulk(
        api,
        [
            {"op": "create", "data": {"title": "new", "priority": "high"}},
            {"op": "update", "task_id": a.pk, "data": {"title": "a2"}, "version": 1},
            {"op": "complete", "task_id": b.pk},
            {"op": "reopen", "task_id": b.pk},
            {"op": "delete", "task_id": a.pk},
        ],
    )

    # then each has the answer of its endpoint, in order
    assert response.status_code == 200
    results = response.json()["results"]
    assert [(r["index"], r["op"], r["status"]) for r in results] == [
        (0, "create", 201),
        (1, "update", 200),
        (2, "complete", 200),
        (3, "reopen", 200),
        (4, "delete", 204),
    ]
    assert results[0]["body"]["title"] == "new" and results[0]["body"]["priority"] == "high"
    assert results[1]["body"]["version"] == 2
    assert results[3]["body"]["completed"] is False
    assert results[4]["body"] is None
    # and one event per change, as if called one by one
    assert event_types(user_id)[before:] == [
        "task.created",
        "task.updated",
        "task.completed",
        "task.reopened",
        "task.deleted",
    ]


def test_a_failing_operation_fails_alone_when_not_atomic(api, make_task, user_id):
    task = make_task(title="kept")

    response = bulk(
        api,
        [
            {"op": "create", "data": {"title": "first"}},
            {"op": "create", "data": {"title": "  "}},  # blank: refused as POST would
            {"op": "update", "task_id": task.pk, "data": {"title": "x"}, "version": 9},
            {"op": "complete", "task_id": 999_999_999},
            {"op": "create", "data": {"title": "last", "bogus": 1}},
            {"op": "create", "data": {"title": "after"}},
        ],
    )

    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["status"] for r in results] == [201, 400, 409, 404, 400, 201]
    assert results[1]["body"]["error"]["fields"][0]["field"] == "title"
    assert results[2]["body"]["error"]["code"] == "version_conflict"
    assert results[4]["body"]["error"]["code"] == "unknown_field"
    assert sorted(Task.objects.filter(user_id=user_id).values_list("title", flat=True)) == [
        "after",
        "first",
        "kept",
    ]


def test_an_atomic_batch_with_a_failing_operation_changes_nothing(api, make_task, user_id):
    task = make_task(title="before")
    events_before = event_types(user_id)

    response = bulk(
        api,
        [
            {"op": "create", "data": {"title": "would be"}},
            {"op": "update", "task_id": task.pk, "data": {"title": "changed"}},
            {"op": "complete", "task_id": 999_999_999},
            {"op": "create", "data": {"title": "never tried"}},
        ],
        atomic=True,
    )

    # then the request fails with the failing operation's status, naming it
    assert response.status_code == 404
    body = response.json()
    assert body["error"]["code"] == "operation_failed"
    assert body["error"]["fields"][0]["field"] == "operations[2]"
    assert body["error"]["fields"][0]["code"] == "not_found"
    assert [r["status"] for r in body["results"]] == [424, 424, 404, 424]
    assert body["results"][0]["body"]["error"]["code"] == "not_applied"
    # and nothing happened: no task, no change, no event
    assert list(Task.objects.filter(user_id=user_id).values_list("title", flat=True)) == ["before"]
    assert event_types(user_id) == events_before


def test_an_atomic_batch_that_succeeds_applies_everything(api, user_id):
    response = bulk(
        api, [{"op": "create", "data": {"title": f"t{i}"}} for i in range(3)], atomic=True
    )

    assert response.status_code == 200
    assert [r["status"] for r in response.json()["results"]] == [201, 201, 201]
    assert Task.objects.filter(user_id=user_id).count() == 3


def test_a_batch_of_100_is_taken_and_101_is_refused(api, user_id):
    ops = [{"op": "create", "data": {"title": f"t{i}"}} for i in range(101)]

    refused = bulk(api, ops)
    assert refused.status_code == 400
    assert refused.json()["error"]["fields"][0]["field"] == "operations"
    assert not Task.objects.filter(user_id=user_id).exists()

    assert bulk(api, ops[:100]).status_code == 200
    assert Task.objects.filter(user_id=user_id).count() == 100


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"operations": []}, "operations"),
        ({"operations": "create"}, "operations"),
        ({"operations": [{"op": "explode", "task_id": 1}]}, "operations[0].op"),
        ({"operations": [{"op": "complete"}]}, "operations[0].task_id"),
        ({"operations": [{"op": "create", "task_id": 3, "data": {}}]}, "operations[0].task_id"),
        ({"operations": [{"op": "create"}]}, "operations[0].data"),
        ({"operations": [{"op": "complete", "task_id": "7"}]}, "operations[0].task_id"),
        (
            {"operations": [{"op": "complete", "task_id": 7, "data": {"a": 1}}]},
            "operations[0].data",
        ),
        ({"operations": [{"op": "create", "data": {}, "extra": 1}]}, "extra"),
        ({"operations": [{"op": "create", "data": {}}], "atomic": "yes"}, "atomic"),
        ({"operations": [], "other": 1}, "other"),
    ],
)
def test_a_malformed_batch_is_400_naming_the_field(api, user_id, body, field):
    response = api.post(URL, body, format="json")

    assert response.status_code == 400
    fields = [f["field"] for f in response.json()["error"]["fields"]]
    assert field in fields
    assert not Task.objects.filter(user_id=user_id).exists()


def test_a_body_that_is_not_an_object_is_400(api):
    response = api.post(URL, [1, 2], format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert response.json()["error"]["fields"][0]["field"] is None


def test_every_operation_counts_against_the_write_budget(api, rates, user_id):
    rates(task_write="10/min")

    ops = [{"op": "create", "data": {"title": f"t{i}"}} for i in range(8)]
    assert bulk(api, ops).status_code == 200  # 8 of 10

    refused = bulk(api, ops[:3])  # 11 would be over
    assert refused.status_code == 429
    assert refused["Retry-After"]
    assert Task.objects.filter(user_id=user_id).count() == 8


def test_operations_on_another_users_task_are_not_found(api, other_user_id, make_task):
    theirs = make_task(user_id=other_user_id, title="theirs")

    response = bulk(api, [{"op": "delete", "task_id": theirs.pk}])

    assert response.json()["results"][0]["status"] == 404
    assert Task.objects.filter(pk=theirs.pk).exists()


def test_delete_data_is_its_query(api, make_task, user_id):
    task = make_task(title="x")

    response = bulk(api, [{"op": "delete", "task_id": task.pk, "data": {"nonsense": True}}])

    result = response.json()["results"][0]
    assert result["status"] == 400
    assert result["body"]["error"]["fields"][0]["field"] == "nonsense"


@pytest.mark.parametrize(
    "data",
    [
        {"é会\U0001f600": "Ü"},  # beyond Latin-1, where a query string is decoded from
        {"permanent=true&stop_series": "true"},  # no parameter smuggled in
        {"permanent": "true & more"},
    ],
)
def test_delete_data_of_any_text_is_a_clear_refusal(api, make_task, user_id, data):
    task = make_task(title="x")

    response = bulk(api, [{"op": "delete", "task_id": task.pk, "data": data}])

    assert response.status_code == 200
    result = response.json()["results"][0]
    assert result["status"] == 400, result
    assert Task.objects.filter(pk=task.pk, deleted_at__isnull=True).exists()


def test_a_bulk_with_an_idempotency_key_is_done_once(api, user_id):
    ops = {"operations": [{"op": "create", "data": {"title": "once"}}]}

    first = api.post(URL, ops, format="json", HTTP_IDEMPOTENCY_KEY="bulk-1")
    again = api.post(URL, ops, format="json", HTTP_IDEMPOTENCY_KEY="bulk-1")

    assert first.content == again.content
    assert Task.objects.filter(user_id=user_id).count() == 1


# --- Runs of creates: one task_create_many, the events of creates one by one -----------------

VOLATILE = frozenset(
    {"event_id", "timestamp", "sequence", "user_id", "id", "task_id", "series_id"}
    | {"created_at", "updated_at", "token_id"}
)
CREATES = [
    {"title": "plain"},
    {"title": "full", "description": "d", "priority": "urgent", "tags": ["a", "b"]},
    {"title": "due", "due_date": "2031-05-01T09:00:00Z", "timezone": "Europe/Paris"},
    {"title": "series", "due_date": "2031-05-01", "recurrence_pattern": "weekly"},
    {"title": "from done", "due_date": "2031-05-01", "recurrence_pattern": "daily",
     "repeat_from": "completion"},
]  # fmt: skip


def _stable(value):
    """An event with what differs between two users' identical histories left out."""
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def envelopes(user_id):
    return [
        _stable(envelope)
        for envelope in OutboxEvent.objects.filter(user_id=user_id)
        .order_by("sequence")
        .values_list("envelope", flat=True)
    ]


def test_a_run_of_creates_records_exactly_the_events_of_single_creates(
    api, other_api, user_id, other_user_id
):
    # given the same creates, sent one by one by one user and as one batch by another
    for data in CREATES:
        assert other_api.post("/api/tasks/", data, format="json").status_code == 201
    response = bulk(api, [{"op": "create", "data": data} for data in CREATES])

    # then each create answers what the single endpoint answers
    singles = list(Task.objects.filter(user_id=other_user_id).order_by("pk"))
    results = response.json()["results"]
    assert [r["status"] for r in results] == [201] * len(CREATES)
    assert [_stable(r["body"]) for r in results] == [
        _stable(other_api.get(f"/api/tasks/{task.pk}/").json()) for task in singles
    ]
    # and the batch recorded the same events, in the same order, with the same payloads
    assert envelopes(user_id) == envelopes(other_user_id)
    assert len(envelopes(user_id)) == len(CREATES)
    # numbered one after another, each naming its own task
    created = OutboxEvent.objects.filter(user_id=user_id).order_by("sequence")
    assert [e.sequence for e in created] == [1, 2, 3, 4, 5]
    assert [e.envelope["payload"]["task_id"] for e in created] == [r["body"]["id"] for r in results]


def test_reminders_of_a_run_follow_the_tasks_events(api, other_api, user_id, other_user_id):
    creates = [
        {"title": f"remind {i}", "due_date": "2031-05-01T09:00:00Z", "reminder_time": "1h"}
        for i in range(3)
    ]
    for data in creates:
        other_api.post("/api/tasks/", data, format="json")

    bulk(api, [{"op": "create", "data": data} for data in creates])

    # the same events, each task's before its reminder's; in a batch the tasks' come first
    batch = envelopes(user_id)
    assert sorted(map(repr, batch)) == sorted(map(repr, envelopes(other_user_id)))
    assert [e["event_type"] for e in batch] == ["task.created"] * 3 + ["reminder.scheduled"] * 3
    rows = OutboxEvent.objects.filter(user_id=user_id).order_by("sequence")
    tasks = [r.envelope["payload"]["task_id"] for r in rows]
    assert tasks[:3] == tasks[3:]


def test_a_create_refused_by_the_service_answers_alone_in_a_run(api, other_api, user_id):
    # a daily rule without a due date passes the serializer and is refused by task_create
    refused = {"title": "no due", "recurrence_pattern": "daily"}

    response = bulk(
        api,
        [
            {"op": "create", "data": {"title": "before"}},
            {"op": "create", "data": refused},
            {"op": "create", "data": {"title": "after"}},
        ],
    )

    results = response.json()["results"]
    assert [r["status"] for r in results] == [201, 400, 201]
    single = other_api.post("/api/tasks/", refused, format="json")
    assert results[1]["body"] == single.json()
    assert [r["body"]["title"] for r in (results[0], results[2])] == ["before", "after"]
    assert event_types(user_id) == ["task.created", "task.created"]


def test_an_atomic_run_with_a_refused_create_writes_nothing(api, user_id):
    response = bulk(
        api,
        [
            {"op": "create", "data": {"title": "one"}},
            {"op": "create", "data": {"title": "two"}},
            {"op": "create", "data": {"title": "three", "due_date": "soon"}},
            {"op": "create", "data": {"title": "four"}},
        ],
        atomic=True,
    )

    assert response.status_code == 400
    body = response.json()
    assert body["error"]["fields"][0]["field"] == "operations[2]"
    assert [r["status"] for r in body["results"]] == [424, 424, 400, 424]
    assert not Task.objects.filter(user_id=user_id).exists()
    assert event_types(user_id) == []


def test_a_create_that_completes_keeps_its_place(api, user_id):
    response = bulk(
        api,
        [
            {"op": "create", "data": {"title": "a"}},
            {"op": "create", "data": {"title": "done", "completed": True}},
            {"op": "create", "data": {"title": "b"}},
        ],
    )

    assert [r["status"] for r in response.json()["results"]] == [201, 201, 201]
    assert response.json()["results"][1]["body"]["completed"] is True
    assert event_types(user_id) == [
        "task.created",
        "task.created",
        "task.completed",
        "task.created",
    ]


def test_task_create_many_names_the_refused_item_and_writes_nothing(user_id):
    with pytest.raises(services.InvalidItem) as refused:
        services.task_create_many(
            user_id=user_id,
            items=[{"title": "ok"}, {"title": "ok too"}, {"title": " "}, {"title": "never"}],
        )

    assert refused.value.index == 2
    assert refused.value.error.field == "title"
    assert not Task.objects.filter(user_id=user_id).exists()
    assert event_types(user_id) == []


def test_task_create_many_is_undone_with_its_events_when_a_receiver_fails(user_id):
    def explode(sender, change, **kwargs):
        if change.task.title == "second":
            raise RuntimeError("receiver failed")

    task_changed.connect(explode, dispatch_uid="test.explode_on_second")
    try:
        with pytest.raises(RuntimeError):
            services.task_create_many(
                user_id=user_id, items=[{"title": "first"}, {"title": "second"}]
            )
    finally:
        task_changed.disconnect(dispatch_uid="test.explode_on_second")

    assert not Task.objects.filter(user_id=user_id).exists()
    assert event_types(user_id) == []


def test_task_create_many_of_nothing_writes_nothing(user_id, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert services.task_create_many(user_id=user_id, items=[]) == []


def test_a_batch_verifies_its_token_once_for_all_its_operations(api, make_task, monkeypatch):
    from core import auth

    tasks = [make_task(title=f"t{i}") for i in range(3)]
    verified = []
    real = auth.verify_token

    def counted(token):
        verified.append(token)
        return real(token)

    monkeypatch.setattr(auth, "verify_token", counted)

    response = bulk(api, [{"op": "complete", "task_id": task.pk} for task in tasks])

    assert [r["status"] for r in response.json()["results"]] == [200, 200, 200]
    assert len(verified) == 1
