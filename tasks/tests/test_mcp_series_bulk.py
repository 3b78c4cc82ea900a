"""The series, trash, change-feed and bulk tools over real HTTP: each does what its REST
endpoint does, through the same services, and refuses what REST refuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.auth import issue_token
from events.models import OutboxEvent
from tasks import services
from tasks.models import Task
from tasks.tests.test_mcp_surface import Rpc, ok, refused

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def rpc(server, user_id):
    return Rpc(server, issue_token(user_id), "2025-11-25")


def _daily(user_id: str, title: str = "Stand-up") -> Task:
    due = (datetime.now(UTC) + timedelta(days=1)).replace(hour=9, minute=0, second=0, microsecond=0)
    return services.task_create(
        user_id=user_id, title=title, due_date=due, recurrence_pattern="daily"
    )


def _event_count(user_id: str) -> int:
    return OutboxEvent.objects.filter(user_id=user_id).count()


# --- series -------------------------------------------------------------------------------


def test_skip_occurrence_closes_it_and_the_series_goes_on(rpc, user_id):
    task = _daily(user_id)

    skipped = ok(rpc.call("skip_occurrence", task_id=task.pk))

    assert skipped["status"] == "skipped" and skipped["skipped_at"] is not None
    assert skipped["completed"] is False
    event_types = list(
        OutboxEvent.objects.filter(user_id=user_id, event_type__startswith="task.")
        .order_by("sequence")
        .values_list("event_type", flat=True)
    )
    assert event_types == ["task.created", "task.skipped"]


def test_skip_a_task_that_does_not_repeat_is_refused(rpc, user_id):
    task = services.task_create(user_id=user_id, title="Once")

    error = refused(rpc.call("skip_occurrence", task_id=task.pk))

    assert error["code"] == "not_recurring"
    assert Task.objects.get(pk=task.pk).skipped_at is None


def test_reschedule_one_occurrence_or_the_series(rpc, user_id):
    task = _daily(user_id)
    moved_due = (task.due_at + timedelta(hours=2)).isoformat()

    alone = ok(rpc.call("reschedule_occurrence", task_id=task.pk, due_date=moved_due))
    assert alone["status"] == "rescheduled" and alone["apply_to"] == "instance"
    assert alone["updated_fields"][0] == "due_date"
    task.refresh_from_db()
    assert task.series_anchor != task.due_at  # the series' calendar stayed where it was

    series_due = (task.due_at + timedelta(hours=1)).isoformat()
    whole = ok(
        rpc.call("reschedule_occurrence", task_id=task.pk, due_date=series_due, apply_to="series")
    )
    assert whole["apply_to"] == "series"
    task.refresh_from_db()
    assert task.series_anchor == task.due_at


def test_reschedule_refuses_a_bad_date_and_a_bad_scope(rpc, user_id):
    task = _daily(user_id)

    bad_date = refused(rpc.call("reschedule_occurrence", task_id=task.pk, due_date="soonish"))
    bad_scope = refused(
        rpc.call(
            "reschedule_occurrence", task_id=task.pk, due_date="2031-01-01", apply_to="everything"
        )
    )

    assert bad_date["field"] == "due_date"
    assert bad_scope["field"] == "apply_to" and "'series'" in bad_scope["message"]


def test_preview_occurrences_lists_the_next_due_times(rpc, user_id):
    task = _daily(user_id)

    preview = ok(rpc.call("preview_occurrences", task_id=task.pk, count=3))

    assert preview["task_id"] == task.pk
    assert [item["index"] for item in preview["occurrences"]] == [0, 1, 2]
    assert preview["occurrences"][0]["task_id"] == task.pk
    assert preview["occurrences"][1]["task_id"] is None  # still to be created
    assert refused(rpc.call("preview_occurrences", task_id=task.pk, count=0))["field"] == "count"


# --- trash --------------------------------------------------------------------------------


def test_delete_list_trash_and_restore(rpc, user_id):
    task = services.task_create(user_id=user_id, title="Oops")
    services.task_delete(user_id=user_id, task_id=task.pk)

    trash = ok(rpc.call("list_trash"))
    assert [item["task_id"] for item in trash["tasks"]] == [task.pk]
    assert trash["tasks"][0]["purge_after"] and trash["total_count"] == 1

    restored = ok(rpc.call("restore_task", task_id=task.pk))
    assert restored["status"] == "restored" and restored["deleted_at"] is None
    assert ok(rpc.call("list_trash"))["total_count"] == 0

    again = refused(rpc.call("restore_task", task_id=task.pk))
    assert again["code"] == "not_in_trash"


def test_another_users_trash_is_not_found(server, rpc, other_user_id):
    theirs = services.task_create(user_id=other_user_id, title="Theirs")
    services.task_delete(user_id=other_user_id, task_id=theirs.pk)

    error = refused(rpc.call("restore_task", task_id=theirs.pk))

    assert error["code"] == "not_found"
    assert Task.objects.get(pk=theirs.pk).deleted_at is not None
    assert ok(rpc.call("list_trash"))["total_count"] == 0


# --- change feed --------------------------------------------------------------------------


def test_changes_since_has_the_shape_of_rest(rpc, api, user_id):
    kept = services.task_create(user_id=user_id, title="Kept")
    gone = services.task_create(user_id=user_id, title="Gone")
    services.task_delete(user_id=user_id, task_id=gone.pk)

    feed = ok(rpc.call("changes_since", since=0, limit=2))
    rest = api.get("/api/changes/", {"since": 0, "limit": 2}).json()

    assert feed["changes"] == rest["changes"]
    assert feed["has_more"] is True and feed["next_since"] == rest["next_since"]
    rest_tail = api.get("/api/changes/", {"since": feed["next_since"]}).json()
    tail = ok(rpc.call("changes_since", since=feed["next_since"]))
    assert tail["changes"] == rest_tail["changes"]
    assert tail["changes"][-1]["deleted"] is True and tail["has_more"] is False
    assert feed["changes"][0]["task"]["id"] == kept.pk


def test_changes_since_a_sequence_never_given_out_is_resync_required(rpc, user_id):
    services.task_create(user_id=user_id, title="One")

    error = refused(rpc.call("changes_since", since=999))

    assert error["code"] == "resync_required" and error["field"] == "since"
    assert error["latest_sequence"] == 1


# --- bulk ---------------------------------------------------------------------------------


def test_add_tasks_each_item_stands_alone(rpc, user_id):
    answer = ok(
        rpc.call(
            "add_tasks",
            tasks=[
                {"title": "First", "priority": "high"},
                {"title": "Bad", "reminder_time": "2001-01-01T00:00:00Z"},
                {"title": "Third", "tags": ["bulk"]},
            ],
        )
    )

    assert answer["dry_run"] is False
    assert (answer["succeeded"], answer["failed"]) == (2, 1)
    first, bad, third = answer["results"]
    assert first["ok"] and first["status"] == "created"
    assert bad["ok"] is False and bad["error"]["field"] == "reminder_time"
    assert bad["task_id"] is None
    titles = set(Task.objects.filter(user_id=user_id).values_list("title", flat=True))
    assert titles == {"First", "Third"}
    assert Task.objects.get(pk=third["task_id"]).tags == ["bulk"]


def test_dry_run_writes_nothing_and_records_no_event(rpc, user_id):
    task = services.task_create(user_id=user_id, title="Existing")
    events_before = _event_count(user_id)

    added = ok(rpc.call("add_tasks", tasks=[{"title": "Maybe"}], dry_run=True))
    updated = ok(
        rpc.call(
            "update_tasks",
            changes=[{"task_id": task.pk, "title": "Renamed"}, {"task_id": 10**12, "title": "x"}],
            dry_run=True,
        )
    )
    completed = ok(rpc.call("complete_tasks", task_ids=[task.pk], dry_run=True))

    assert added["dry_run"] and added["results"][0] == {
        "index": 0,
        "ok": True,
        "task_id": None,
        "status": "created",
        "title": "Maybe",
    }
    assert updated["results"][0]["status"] == "updated"
    assert updated["results"][1]["error"]["code"] == "not_found"
    assert completed["results"][0]["status"] == "completed"
    assert _event_count(user_id) == events_before
    assert list(Task.objects.filter(user_id=user_id).values_list("title", "completed")) == [
        ("Existing", False)
    ]


def test_update_and_complete_tasks(rpc, user_id):
    one = services.task_create(user_id=user_id, title="One")
    two = services.task_create(user_id=user_id, title="Two")

    updated = ok(
        rpc.call(
            "update_tasks",
            changes=[{"task_id": one.pk, "priority": "urgent"}, {"task_id": two.pk}],
        )
    )
    completed = ok(rpc.call("complete_tasks", task_ids=[one.pk, two.pk, one.pk]))

    assert updated["results"][0]["updated_fields"] == ["priority"]
    assert updated["results"][1]["error"]["code"] == "nothing_to_update"
    assert [item["status"] for item in completed["results"]] == [
        "completed",
        "completed",
        "unchanged",
    ]
    assert Task.objects.filter(user_id=user_id, completed=True).count() == 2


def test_bulk_limits_and_unknown_item_fields_are_refused(rpc, user_id):
    too_many = refused(rpc.call("add_tasks", tasks=[{"title": f"t{i}"} for i in range(51)]))
    unknown = refused(rpc.call("add_tasks", tasks=[{"title": "x", "colour": "red"}]))
    empty = refused(rpc.call("complete_tasks", task_ids=[]))

    assert too_many["field"] == "tasks"
    assert unknown["field"] == "tasks[0].colour"
    assert empty["field"] == "task_ids"
    assert not Task.objects.filter(user_id=user_id).exists()


def test_a_bulk_call_spends_one_write_per_item(rpc, user_id, rates):
    rates(task_write="3/min")

    first = ok(rpc.call("add_tasks", tasks=[{"title": "a"}, {"title": "b"}, {"title": "c"}]))
    error = refused(rpc.call("add_tasks", tasks=[{"title": "d"}]))

    assert first["succeeded"] == 3
    assert error["code"] == "rate_limited"


# --- client_request_id --------------------------------------------------------------------


def test_a_retried_write_with_the_same_client_request_id_runs_once(rpc, user_id):
    first = rpc.call("add_task", title="Once", client_request_id="req-1")
    again = rpc.call("add_task", title="Once", client_request_id="req-1")

    assert ok(first)["task_id"] == ok(again)["task_id"]
    assert again["_meta"]["replayed"] is True and "_meta" not in first
    assert Task.objects.filter(user_id=user_id).count() == 1
    assert _event_count(user_id) == 1


def test_the_same_client_request_id_with_other_arguments_is_refused(rpc, user_id):
    ok(rpc.call("add_tasks", tasks=[{"title": "A"}], client_request_id="batch-1"))

    error = refused(rpc.call("add_tasks", tasks=[{"title": "B"}], client_request_id="batch-1"))
    other_tool = refused(rpc.call("add_task", title="A", client_request_id="batch-1"))

    assert error["code"] == "idempotency_key_reused" and error["field"] == "client_request_id"
    assert other_tool["code"] == "idempotency_key_reused"
    assert list(Task.objects.filter(user_id=user_id).values_list("title", flat=True)) == ["A"]


def test_a_refused_write_keeps_no_client_request_id(rpc, user_id):
    task = services.task_create(user_id=user_id, title="Real")

    missing = refused(rpc.call("complete_task", task_id=10**12, client_request_id="k"))
    done = ok(rpc.call("complete_task", task_id=task.pk, client_request_id="k"))

    assert missing["code"] == "not_found"
    assert done["status"] == "completed"


def test_an_integer_beyond_64_bits_beside_a_client_request_id_is_a_clean_refusal(rpc, user_id):
    # the call's fingerprint is taken before its arguments are checked
    error = refused(rpc.call("update_task", task_id=2**70, title="x", client_request_id="big"))

    assert error["code"] and error["field"] == "task_id"


def test_client_request_id_is_checked_and_only_writes_take_it(rpc, user_id):
    blank = refused(rpc.call("add_task", title="x", client_request_id=""))
    non_ascii = refused(rpc.call("add_task", title="x", client_request_id="ключ"))
    on_a_read = refused(rpc.call("list_tasks", client_request_id="r"))

    assert blank["field"] == "client_request_id" and non_ascii["field"] == "client_request_id"
    assert on_a_read["code"] == "unknown_argument"
    assert not Task.objects.filter(user_id=user_id).exists()
