"""The series endpoints and rules of REST: ``occurrences/``, ``skip/``, ``repeat_from``,
``apply_to``, and recurrence that nothing but an explicit null or ``"none"`` removes."""

from __future__ import annotations

import pytest

from events.consumers import get_consumer
from events.tests.support import consume_all, relay_all
from reminders.tests.helpers import payloads
from tasks import services
from tasks.consumers import NAME as AUDIT
from tasks.models import Task

pytestmark = pytest.mark.django_db


def detail(task_id):
    return f"/api/tasks/{task_id}/"


def assert_error(response, status, code, field="__any__"):
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code or any(f["code"] == code for f in error.get("fields", []))
    if field != "__any__":
        assert [f["field"] for f in error.get("fields", [])] == [field]
    return error


@pytest.fixture
def weekly(make_task):
    return make_task(
        due_date="2031-01-06T09:00:00",
        recurrence_pattern="weekly",
        timezone_name="Europe/Paris",
        reminder_time="1h",
    )


# --- occurrences ------------------------------------------------------------------------------


def test_occurrences_default_to_ten_in_the_task_zone_and_in_utc(api, weekly):
    response = api.get(f"/api/tasks/{weekly.pk}/occurrences/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["task_id"], body["timezone"], body["repeat_from"]) == (
        weekly.pk,
        "Europe/Paris",
        "due",
    )
    results = body["results"]
    assert len(results) == 10
    assert results[0] == {
        "index": 0,
        "due": "2031-01-06T09:00:00+01:00",
        "due_utc": "2031-01-06T08:00:00Z",
        "task_id": weekly.pk,
    }
    assert results[1] == {
        "index": 1,
        "due": "2031-01-13T09:00:00+01:00",
        "due_utc": "2031-01-13T08:00:00Z",
        "task_id": None,
    }
    # spring forward: still 09:00 on the wall clock
    assert results[-1]["due"] == "2031-03-10T09:00:00+01:00"


def test_occurrences_end_with_the_rule(api, make_task):
    counted = make_task(due_date="2031-01-01T09:00:00Z", recurrence_pattern="FREQ=DAILY;COUNT=3")
    until = make_task(
        due_date="2031-01-01T09:00:00Z", recurrence_pattern="FREQ=WEEKLY;UNTIL=20310115"
    )
    for task, expected in ((counted, 3), (until, 3)):
        body = api.get(f"/api/tasks/{task.pk}/occurrences/?count=100").json()
        assert len(body["results"]) == expected


@pytest.mark.parametrize("count", ["0", "101", "ten", "", "-1"])
def test_a_bad_count_is_a_400_naming_count(api, weekly, count):
    response = api.get(f"/api/tasks/{weekly.pk}/occurrences/?count={count}")
    assert_error(response, 400, response.json()["error"]["code"], field="count")


def test_occurrences_refuse_unknown_parameters(api, weekly):
    assert_error(api.get(f"/api/tasks/{weekly.pk}/occurrences/?cuont=3"), 400, "unknown_parameter")


def test_a_task_that_does_not_repeat_has_no_occurrences(api, make_task):
    once = make_task(due_date="2031-01-01T09:00:00Z")
    assert_error(api.get(f"/api/tasks/{once.pk}/occurrences/"), 400, "not_recurring")


def test_occurrences_of_another_users_or_a_trashed_task_are_not_found(
    api, other_api, user_id, weekly
):
    assert_error(other_api.get(f"/api/tasks/{weekly.pk}/occurrences/"), 404, "not_found")
    services.task_delete(user_id=user_id, task_id=weekly.pk)
    assert_error(api.get(f"/api/tasks/{weekly.pk}/occurrences/"), 404, "not_found")


# --- skip -------------------------------------------------------------------------------------


def test_skip_closes_the_occurrence_without_doing_it(api, user_id, weekly):
    response = api.post(f"/api/tasks/{weekly.pk}/skip/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["skipped_at"] is not None and body["completed"] is False
    assert body["version"] == 2
    (skipped,) = payloads(user_id, "task.skipped")
    assert skipped["changed_fields"] == ["skipped_at"]
    assert skipped["previous"] == {"skipped_at": None}
    # its reminder goes, as for a completion
    assert [p["reason"] for p in payloads(user_id, "reminder.cancelled")] == ["completed"]

    again = api.post(f"/api/tasks/{weekly.pk}/skip/")
    assert (again.status_code, again.json()["version"]) == (200, 2)
    assert len(payloads(user_id, "task.skipped")) == 1


def test_lists_keep_skipped_occurrences_out_of_pending(api, weekly, make_task):
    other = make_task(title="still open")
    api.post(f"/api/tasks/{weekly.pk}/skip/")

    def ids(status):
        return [t["id"] for t in api.get(f"/api/tasks/?status={status}").json()["results"]]

    assert ids("pending") == [other.pk]
    assert ids("skipped") == [weekly.pk]
    assert ids("completed") == []
    assert set(ids("all")) == {weekly.pk, other.pk}
    assert [t["id"] for t in api.get("/api/tasks/?due=overdue").json()["results"]] == []


def test_skipping_a_task_that_does_not_repeat_or_is_done_is_a_409(api, user_id, make_task):
    once = make_task(due_date="2031-01-01T09:00:00Z")
    assert_error(api.post(f"/api/tasks/{once.pk}/skip/"), 409, "not_recurring")
    done = make_task(due_date="2031-01-01T09:00:00Z", recurrence_pattern="daily")
    services.task_complete(user_id=user_id, task_id=done.pk)
    assert_error(api.post(f"/api/tasks/{done.pk}/skip/"), 409, "already_completed")
    assert payloads(user_id, "task.skipped") == []


def test_skip_checks_if_match(api, weekly):
    assert_error(
        api.post(f"/api/tasks/{weekly.pk}/skip/", HTTP_IF_MATCH='"7"'), 409, "version_conflict"
    )


@pytest.mark.django_db(transaction=True)
def test_history_says_skipped(api, weekly):
    api.post(f"/api/tasks/{weekly.pk}/skip/")
    relay_all()
    consume_all(get_consumer(AUDIT))
    history = api.get(f"/api/tasks/{weekly.pk}/history/").json()["results"]
    assert [entry["event_type"] for entry in history] == ["task.created", "task.skipped"]
    assert history[-1]["task"]["skipped_at"] is not None


# --- repeat_from, apply_to and keeping the rule --------------------------------------------------


def test_repeat_from_is_taken_shown_and_checked(api):
    created = api.post(
        "/api/tasks/",
        {
            "title": "water plants",
            "due_date": "2031-01-06T09:00:00Z",
            "recurrence_pattern": "every 3 days",
            "repeat_from": "completion",
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["repeat_from"] == "completion"
    task_id = created.json()["id"]
    assert_error(
        api.patch(detail(task_id), {"repeat_from": "done"}, format="json"),
        400,
        "invalid_choice",
        field="repeat_from",
    )
    changed = api.patch(detail(task_id), {"repeat_from": "due"}, format="json")
    assert changed.json()["repeat_from"] == "due"


def test_apply_to_is_checked_and_only_for_changes(api, weekly):
    assert_error(
        api.patch(detail(weekly.pk), {"apply_to": "everything"}, format="json"),
        400,
        "invalid_choice",
        field="apply_to",
    )
    assert_error(
        api.post("/api/tasks/", {"title": "t", "apply_to": "series"}, format="json"),
        400,
        "unknown_field",
        field="apply_to",
    )


def test_moving_one_occurrence_keeps_the_anchor_and_the_series_moves_with_apply_to(api, weekly):
    anchor = weekly.series_anchor
    api.patch(detail(weekly.pk), {"due_date": "2031-01-07T09:00:00"}, format="json")
    task = Task.objects.get(pk=weekly.pk)
    assert (task.series_anchor, task.due_at.day) == (anchor, 7)

    api.patch(
        detail(weekly.pk),
        {"due_date": "2031-01-08T09:00:00", "apply_to": "series"},
        format="json",
    )
    task = Task.objects.get(pk=weekly.pk)
    assert task.series_anchor == task.due_at
    following = api.get(f"/api/tasks/{weekly.pk}/occurrences/?count=2").json()["results"]
    assert following[1]["due"] == "2031-01-15T09:00:00+01:00"  # Wednesdays now


def test_a_patch_of_other_fields_keeps_the_recurrence(api, weekly):
    response = api.patch(detail(weekly.pk), {"title": "renamed", "priority": "high"}, format="json")
    assert response.status_code == 200
    assert (response.json()["recurrence_pattern"], response.json()["series_id"]) == (
        "weekly",
        str(weekly.series_id),
    )


def test_a_put_that_leaves_the_rule_out_keeps_it(api, weekly):
    response = api.put(
        detail(weekly.pk),
        {"title": "replaced", "due_date": "2031-01-06T09:00:00"},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["title"], body["recurrence_pattern"], body["repeat_from"]) == (
        "replaced",
        "weekly",
        "due",
    )
    assert body["series_id"] == str(weekly.series_id)


@pytest.mark.parametrize("value", [None, "none"])
def test_only_an_explicit_null_or_none_removes_the_recurrence(api, weekly, value):
    response = api.patch(detail(weekly.pk), {"recurrence_pattern": value}, format="json")
    assert response.status_code == 200
    assert (response.json()["recurrence_pattern"], response.json()["series_id"]) == ("none", None)
