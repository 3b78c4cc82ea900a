"""GET /api/changes/ and the sequence of GET /api/tasks/."""

from __future__ import annotations

import pytest

from events.models import OutboxEvent
from tasks import services

pytestmark = pytest.mark.django_db


def changes(api, **params):
    return api.get("/api/changes/", params)


def test_the_list_says_which_sequence_it_is_consistent_with(api, make_task):
    empty = api.get("/api/tasks/")
    assert empty.json()["sequence"] == 0
    assert empty["X-Sequence"] == "0"

    make_task(title="a")
    make_task(title="b")

    listed = api.get("/api/tasks/")
    assert listed.json()["sequence"] == 2
    assert listed["X-Sequence"] == "2"


def test_changes_after_a_sequence_carry_the_task_as_it_is_now(api, make_task, user_id):
    # given a task created, updated, and another created then deleted
    task = make_task(title="v1")
    services.task_update(user_id=user_id, task_id=task.pk, changes={"title": "v2"})
    doomed = make_task(title="doomed")
    services.task_delete(user_id=user_id, task_id=doomed.pk, permanent=True)

    # when the client asks for what followed sequence 1
    body = changes(api, since=1).json()

    # then the later events come, oldest first, each with the task now (or its deletion)
    assert [(c["sequence"], c["event_type"]) for c in body["changes"]] == [
        (2, "task.updated"),
        (3, "task.created"),
        (4, "task.deleted"),
    ]
    assert body["changes"][0]["task"]["title"] == "v2"
    assert body["changes"][0]["task_id"] == task.pk
    assert body["changes"][1]["deleted"] is True and "task" not in body["changes"][1]
    assert body["next_since"] == 4
    assert body["has_more"] is False
    envelope = OutboxEvent.objects.get(user_id=user_id, sequence=2).envelope
    assert body["changes"][0]["event_id"] == envelope["event_id"]
    assert body["changes"][0]["timestamp"] == envelope["timestamp"]


def test_a_trashed_task_reads_as_deleted(api, make_task, user_id):
    task = make_task(title="trash me")
    services.task_delete(user_id=user_id, task_id=task.pk)

    body = changes(api, since=0).json()

    assert [c.get("deleted", False) for c in body["changes"]] == [True, True]


def test_pages_follow_next_since(api, make_task):
    for i in range(5):
        make_task(title=f"t{i}")

    first = changes(api, since=0, limit=2).json()
    second = changes(api, since=first["next_since"], limit=2).json()
    last = changes(api, since=second["next_since"], limit=2).json()
    done = changes(api, since=last["next_since"]).json()

    assert [c["sequence"] for c in first["changes"]] == [1, 2] and first["has_more"]
    assert [c["sequence"] for c in second["changes"]] == [3, 4] and second["has_more"]
    assert [c["sequence"] for c in last["changes"]] == [5] and not last["has_more"]
    assert done == {"changes": [], "next_since": 5, "has_more": False}


def test_only_the_callers_changes(api, other_api, make_task, other_user_id):
    make_task(user_id=other_user_id, title="theirs")

    assert changes(api, since=0).json()["changes"] == []
    assert len(changes(other_api, since=0).json()["changes"]) == 1


def test_a_since_past_the_retention_is_410_resync_required(api, make_task, user_id):
    for i in range(3):
        make_task(title=f"t{i}")
    OutboxEvent.objects.filter(user_id=user_id, sequence__lte=2).delete()  # expired

    gone = changes(api, since=1)
    kept = changes(api, since=2)

    assert gone.status_code == 410
    assert gone.json()["error"]["code"] == "resync_required"
    assert kept.status_code == 200
    assert [c["sequence"] for c in kept.json()["changes"]] == [3]


def test_a_since_never_handed_out_is_410(api, make_task):
    make_task()

    response = changes(api, since=7)

    assert response.status_code == 410
    assert response.json()["error"]["code"] == "resync_required"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "since"),
        ({"since": "-1"}, "since"),
        ({"since": "abc"}, "since"),
        ({"since": "1.5"}, "since"),
        ({"since": "9" * 30}, "since"),
        ({"since": "0", "limit": "0"}, "limit"),
        ({"since": "0", "limit": "1001"}, "limit"),
        ({"since": "0", "limit": "x"}, "limit"),
        ({"since": "0", "cursor": "1"}, "cursor"),
        ({"since": ["1", "2"]}, "since"),
    ],
)
def test_bad_parameters_are_400_naming_them(api, params, field):
    response = changes(api, **params)

    assert response.status_code == 400
    assert response.json()["error"]["fields"][0]["field"] == field


def test_limit_1000_is_taken(api):
    assert changes(api, since=0, limit=1000).status_code == 200


def test_the_feed_needs_a_token(client):
    assert client.get("/api/changes/?since=0").status_code == 401
