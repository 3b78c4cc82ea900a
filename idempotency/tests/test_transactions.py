"""The transaction shape of a keyed create: no savepoint directly inside the request's
transaction, a savepoint wherever a caller catches a service's error and goes on."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from events.models import OutboxEvent
from idempotency.models import IdempotencyKey
from idempotency.transactions import request_transaction, service_savepoint
from tasks import services
from tasks.errors import TaskConflict, TaskValidationError
from tasks.models import Task
from tasks.signals import task_changed


def post(api, body, key=None, path="/api/tasks/"):
    extra = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return api.post(path, body, format="json", **extra)


def savepoints(queries) -> list[str]:
    return [q["sql"] for q in queries if "SAVEPOINT" in q["sql"].upper()]


@pytest.fixture
def refuse_title():
    """A receiver that refuses one title inside the service's block, after the insert."""

    def refuse(sender, change, **kwargs):
        if change.task.title == "refused":
            raise TaskValidationError("Refused by a receiver.", field="title")

    task_changed.connect(refuse, dispatch_uid="test.sync.refuse_title")
    yield
    task_changed.disconnect(dispatch_uid="test.sync.refuse_title")


@pytest.mark.django_db(transaction=True)
def test_a_keyed_create_and_a_plain_one_take_no_savepoint(api, user_id):
    # when a plain create and a keyed create run, each in its own top-level transaction
    with CaptureQueriesContext(connection) as plain:
        assert post(api, {"title": "plain"}).status_code == 201
    with CaptureQueriesContext(connection) as keyed:
        assert post(api, {"title": "keyed"}, "k-shape").status_code == 201

    # then neither sets a savepoint, and the keyed one takes the user's lock with its claim:
    # it adds one statement, the answer
    assert savepoints(plain.captured_queries) == []
    assert savepoints(keyed.captured_queries) == []
    assert len(keyed.captured_queries) == len(plain.captured_queries) + 1
    locks = [q["sql"] for q in keyed.captured_queries if "pg_advisory_xact_lock" in q["sql"]]
    assert len(locks) == 1 and "INSERT INTO idempotency_idempotencykey" in locks[0]
    key = IdempotencyKey.objects.get(user_id=user_id, key="k-shape")
    assert key.status == 201
    assert Task.objects.filter(user_id=user_id).count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_keyed_create_refused_inside_the_service_keeps_nothing_and_frees_the_key(
    api, user_id, refuse_title
):
    # when a keyed create is refused after its insert (the service has no savepoint here)
    refused = post(api, {"title": "refused"}, "k-refused")

    # then the whole request is undone: no task, no event, no key
    assert refused.status_code == 400
    assert refused.json()["error"]["fields"][0]["field"] == "title"
    assert not Task.objects.filter(user_id=user_id).exists()
    assert not OutboxEvent.objects.filter(user_id=user_id).exists()
    assert not IdempotencyKey.objects.filter(user_id=user_id).exists()

    # and the key is free for the request that can succeed
    accepted = post(api, {"title": "accepted"}, "k-refused")
    assert accepted.status_code == 201
    assert list(Task.objects.filter(user_id=user_id).values_list("title", flat=True)) == [
        "accepted"
    ]
    assert IdempotencyKey.objects.get(user_id=user_id, key="k-refused").status == 201


@pytest.mark.django_db(transaction=True)
def test_a_keyed_batch_keeps_a_savepoint_per_operation(api, user_id, refuse_title):
    # when a keyed, non-atomic batch has a create that is refused inside its service
    with CaptureQueriesContext(connection) as batch:
        response = post(
            api,
            {
                "operations": [
                    {"op": "create", "data": {"title": "first"}},
                    {"op": "create", "data": {"title": "refused"}},
                    {"op": "create", "data": {"title": "third"}},
                ]
            },
            "k-batch",
            path="/api/tasks/bulk/",
        )

    # then the refused one alone is undone (its savepoint), the others are kept with the key
    assert response.status_code == 200
    assert [r["status"] for r in response.json()["results"]] == [201, 400, 201]
    assert savepoints(batch.captured_queries)
    assert sorted(Task.objects.filter(user_id=user_id).values_list("title", flat=True)) == [
        "first",
        "third",
    ]
    assert IdempotencyKey.objects.get(user_id=user_id, key="k-batch").status == 200


@pytest.mark.django_db
def test_a_caller_that_catches_a_duplicate_instance_goes_on_writing(make_task, user_id):
    # given a recurring task (the recurrence consumer's situation: it catches the duplicate)
    due = timezone.now() + timedelta(days=1)
    first = make_task(due_date=due, recurrence_pattern="daily")

    # when, inside one transaction, the same instance is created again and the caller goes on
    with transaction.atomic():
        with pytest.raises(TaskConflict) as conflict:
            services.task_create(
                user_id=user_id,
                title="again",
                due_date=due,
                recurrence_pattern="daily",
                series_id=first.series_id,
                series_anchor=first.series_anchor,
            )
        after = services.task_create(user_id=user_id, title="after the conflict")

    # then the duplicate was refused and undone, and the transaction went on
    assert conflict.value.code == "duplicate_instance"
    assert Task.objects.filter(series_id=first.series_id).count() == 1
    assert Task.objects.get(pk=after.pk).title == "after the conflict"


@pytest.mark.django_db
def test_a_service_skips_its_savepoint_only_directly_inside_the_request_transaction():
    assert service_savepoint() is True
    with request_transaction():
        assert service_savepoint() is False
        with transaction.atomic():
            assert service_savepoint() is True
        assert service_savepoint() is False
    with transaction.atomic():
        assert service_savepoint() is True
    assert service_savepoint() is True
