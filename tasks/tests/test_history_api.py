"""``GET /api/tasks/<id>/history/``: the owner sees the task's events; nobody else sees anything."""

from __future__ import annotations

import pytest

from events.consumers import get_consumer
from events.tests.support import consume_all, relay_all
from tasks import services
from tasks.consumers import NAME as AUDIT

# The audit consumer reads committed events only.
pytestmark = pytest.mark.django_db(transaction=True)


def audited(user_id: str):
    task = services.task_create(user_id=user_id, title="draft")
    services.task_update(user_id=user_id, task_id=task.pk, changes={"title": "final"})
    services.task_complete(user_id=user_id, task_id=task.pk)
    relay_all()
    consume_all(get_consumer(AUDIT))
    return task


def test_the_owner_sees_the_history_oldest_first(api, user_id):
    task = audited(user_id)
    response = api.get(f"/api/tasks/{task.pk}/history/")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3 and (body["limit"], body["offset"]) == (50, 0)
    assert [entry["event_type"] for entry in body["results"]] == [
        "task.created",
        "task.updated",
        "task.completed",
    ]
    assert [entry["sequence"] for entry in body["results"]] == [1, 2, 3]
    updated = body["results"][1]
    assert updated["changed_fields"] == ["title"]
    assert updated["previous"] == {"title": "draft"}
    assert updated["task"]["title"] == "final"
    assert updated["timestamp"].endswith("Z")


def test_pages_of_history(api, user_id):
    task = audited(user_id)
    body = api.get(f"/api/tasks/{task.pk}/history/?limit=2&offset=1").json()
    assert body["count"] == 3
    assert [entry["sequence"] for entry in body["results"]] == [2, 3]


def test_a_deleted_task_keeps_its_history(api, user_id):
    task = audited(user_id)
    services.task_delete(user_id=user_id, task_id=task.pk)
    relay_all()
    consume_all(get_consumer(AUDIT))
    body = api.get(f"/api/tasks/{task.pk}/history/").json()
    assert body["results"][-1]["event_type"] == "task.deleted"


def test_a_task_whose_history_is_not_recorded_yet_has_an_empty_history(api, user_id):
    task = services.task_create(user_id=user_id, title="just made")
    response = api.get(f"/api/tasks/{task.pk}/history/")
    assert response.status_code == 200
    assert response.json()["results"] == []


def test_another_users_task_history_is_not_found(api, other_api, user_id):
    task = audited(user_id)
    response = other_api.get(f"/api/tasks/{task.pk}/history/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert api.get("/api/tasks/999999/history/").status_code == 404


def test_history_needs_a_token(client, user_id):
    task = audited(user_id)
    assert client.get(f"/api/tasks/{task.pk}/history/").status_code == 401


@pytest.mark.parametrize("query", ["limit=0", "limit=201", "offset=-1", "limit=x", "sort=asc"])
def test_bad_parameters_are_400(api, user_id, query):
    task = audited(user_id)
    response = api.get(f"/api/tasks/{task.pk}/history/?{query}")
    assert response.status_code == 400
    # the error names the parameter at fault
    assert response.json()["error"]["fields"][0]["field"] == query.split("=")[0]
