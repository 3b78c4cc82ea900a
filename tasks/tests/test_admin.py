"""The task admin as an operator uses it, through Django's test client as a staff user: every
save and action goes through the services, and what deletes or ends something asks first."""

from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages

from events.models import OutboxEvent
from tasks import services
from tasks.models import Task
from tasks.signals import task_changed

pytestmark = pytest.mark.django_db

LIST = "/admin/tasks/task/"


@pytest.fixture
def admin_client(client):
    user = User.objects.create_superuser("ops", "ops@example.com", "a-long-password-1")
    client.force_login(user)
    return client


@pytest.fixture
def announced():
    changes = []

    def receiver(sender, change, **kwargs):
        changes.append(change.action)

    task_changed.connect(receiver)
    yield changes
    task_changed.disconnect(receiver)


def form_for(user_id: str, **fields) -> dict:
    """What the change form posts for a task with no due date, ``fields`` on top."""
    return {
        "user_id": user_id,
        "title": "a task",
        "description": "",
        "priority_label": "medium",
        "tags_text": "",
        "due_at_0": "",
        "due_at_1": "",
        "recurrence_rule": "none",
        "timezone": "UTC",
        "reminder": "",
        **fields,
    }


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def test_admin_lists_searches_and_filters(admin_client, make_task):
    make_task(title="Find me", tags=["ops"], priority="urgent")
    make_task(title="Other")
    response = admin_client.get(LIST, {"q": "Find"})
    assert response.status_code == 200
    assert b"Find me" in response.content and b"Other" not in response.content
    response = admin_client.get(LIST, {"priority__exact": "4", "due": "none", "tag": "ops"})
    assert b"Find me" in response.content and b"Other" not in response.content


def test_the_list_cuts_long_titles_and_rules(admin_client, make_task):
    make_task(title="word" * 50, due_date="2030-01-07T09:00:00Z", recurrence_pattern="weekly")
    response = admin_client.get(LIST)
    assert response.status_code == 200
    # (the whole title is only in the row checkbox's aria-label, which takes no width)
    assert (">" + "word" * 50 + "<").encode() not in response.content
    assert (">" + "word" * 14 + "wor…<").encode() in response.content
    assert b"updated_at" not in response.content  # fewer columns than there are fields


def test_adding_a_task_names_it_by_its_title(admin_client, user_id, announced):
    response = admin_client.post(
        "/admin/tasks/task/add/", form_for(user_id, title="Water the plants"), follow=True
    )
    task = Task.objects.get(user_id=user_id)
    link = f'<a href="/admin/tasks/task/{task.pk}/change/">Water the plants (#{task.pk})</a>'
    assert messages_of(response) == [f"The task “{link}” was added successfully."]
    assert announced == ["created"]


def test_changing_a_task_names_it_by_its_new_title(admin_client, make_task, user_id):
    task = make_task(title="before")
    response = admin_client.post(
        f"/admin/tasks/task/{task.pk}/change/", form_for(user_id, title="after"), follow=True
    )
    link = f'<a href="/admin/tasks/task/{task.pk}/change/">after (#{task.pk})</a>'
    assert messages_of(response) == [f"The task “{link}” was changed successfully."]


def test_tags_are_edited_as_comma_separated_text(admin_client, make_task, user_id, announced):
    task = make_task(title="t", tags=["familia"])
    page = admin_client.get(f"/admin/tasks/task/{task.pk}/change/")
    assert b'value="familia"' in page.content
    announced.clear()
    response = admin_client.post(
        f"/admin/tasks/task/{task.pk}/change/",
        form_for(user_id, title="t", tags_text="familia, Errands , ,home"),
    )
    assert response.status_code == 302, response.content[:2000]
    task.refresh_from_db()
    assert task.tags == ["familia", "Errands", "home"]
    assert announced == ["updated"]


def test_tags_are_refused_as_the_api_refuses_them(admin_client, make_task, user_id, announced):
    task = make_task(title="t", tags=["keep"])
    announced.clear()
    response = admin_client.post(
        f"/admin/tasks/task/{task.pk}/change/", form_for(user_id, title="t", tags_text="x" * 51)
    )
    assert response.status_code == 200
    assert b"Each tag may have at most 50 characters." in response.content
    too_many = ", ".join(f"t{n}" for n in range(21))
    response = admin_client.post(
        f"/admin/tasks/task/{task.pk}/change/", form_for(user_id, title="t", tags_text=too_many)
    )
    assert b"At most 20 tags are allowed." in response.content
    task.refresh_from_db()
    assert task.tags == ["keep"] and announced == []


def test_saving_a_recurring_task_without_touching_the_rule_keeps_its_series(
    admin_client, make_task, user_id
):
    # given a weekly task whose due time has microseconds the form cannot show
    due = datetime(2030, 1, 7, 9, 0, 0, 123456, tzinfo=UTC)
    task = make_task(
        title="standup", due_date=due, recurrence_pattern="FREQ=WEEKLY;BYDAY=MO", tags=["a,b"]
    )
    series_id, anchor, rule = task.series_id, task.series_anchor, task.recurrence_rule
    # when the operator posts the form as the page shows it, with a new title
    page = admin_client.get(f"/admin/tasks/task/{task.pk}/change/")
    assert page.context["adminform"].form["recurrence_rule"].value() == rule
    response = admin_client.post(
        f"/admin/tasks/task/{task.pk}/change/",
        form_for(
            user_id,
            title="stand-up",
            due_at_0="2030-01-07",
            due_at_1="09:00:00",
            recurrence_rule=rule,
            tags_text="a,b",
        ),
    )
    # then only the title changed: same rule, series, anchor, due time and tag
    assert response.status_code == 302, response.content[:2000]
    task.refresh_from_db()
    assert task.title == "stand-up"
    assert (task.recurrence_rule, task.series_id, task.series_anchor) == (rule, series_id, anchor)
    assert task.due_at == due and task.tags == ["a,b"]


def test_the_form_shows_service_validation_errors(admin_client, make_task, user_id):
    task = make_task(title="t")
    response = admin_client.post(
        f"/admin/tasks/task/{task.pk}/change/",
        form_for(user_id, title="t", recurrence_rule="daily"),
    )
    assert response.status_code == 200
    assert b"recurring task needs a due date" in response.content
    task.refresh_from_db()
    assert task.recurrence_rule == "none"


def test_complete_and_reopen_go_through_the_services(admin_client, make_task, announced):
    task = make_task(title="act on me")
    announced.clear()
    admin_client.post(LIST, {"action": "complete_tasks", "_selected_action": [task.pk]})
    task.refresh_from_db()
    assert task.completed
    admin_client.post(LIST, {"action": "reopen_tasks", "_selected_action": [task.pk]})
    task.refresh_from_db()
    assert not task.completed
    assert announced == ["completed", "reopened"]


def test_delete_asks_first_and_lists_what_will_happen(admin_client, make_task, announced):
    # given a task with a reminder and another one
    task = make_task(title="goes", due_date="2030-01-07T09:00:00Z", reminder_time="1h")
    other = make_task(title="also goes")
    announced.clear()
    selected = {"action": "delete_tasks", "_selected_action": [task.pk, other.pk]}

    # when the action is chosen, a page lists each task and what happens to it
    page = admin_client.post(LIST, selected)
    assert page.status_code == 200
    assert b"Move these tasks to the trash?" in page.content
    assert f"goes (#{task.pk})".encode() in page.content
    assert f"also goes (#{other.pk})".encode() in page.content
    assert b"the task goes to the trash (restorable for 30 days" in page.content
    assert b"its reminder is cancelled" in page.content
    assert b'name="post" value="yes"' in page.content
    assert Task.objects.filter(pk__in=[task.pk, other.pk], deleted_at=None).count() == 2
    assert announced == []

    # then only the confirmation deletes, through the service (into the trash)
    response = admin_client.post(LIST, {**selected, "post": "yes"}, follow=True)
    assert not Task.objects.filter(pk__in=[task.pk, other.pk], deleted_at=None).exists()
    assert announced == ["deleted", "deleted"]
    assert "Trashed 2 task(s)." in messages_of(response)


def test_delete_and_end_the_series_asks_first(admin_client, make_task, user_id):
    task = make_task(title="weekly", due_date="2030-01-07T09:00:00Z", recurrence_pattern="weekly")
    selected = {"action": "delete_and_stop_series", "_selected_action": [task.pk]}
    page = admin_client.post(LIST, selected)
    assert b"its series ends: no further instance is created" in page.content
    task.refresh_from_db()
    assert task.deleted_at is None

    admin_client.post(LIST, {**selected, "post": "yes"})
    task.refresh_from_db()
    assert task.deleted_at is not None
    deleted = OutboxEvent.objects.get(user_id=user_id, event_type="task.deleted")
    assert deleted.envelope["payload"]["stop_series"] is True


def test_restore_from_the_trash_asks_first(admin_client, make_task, user_id, announced):
    trashed = make_task(title="come back")
    services.task_delete(user_id=user_id, task_id=trashed.pk)
    kept = make_task(title="never left")
    announced.clear()
    selected = {"action": "restore_tasks", "_selected_action": [trashed.pk, kept.pk]}

    page = admin_client.post(LIST, selected)
    assert b"Restore these tasks from the trash?" in page.content
    assert b"the task comes back as it was" in page.content
    assert b"not in the trash: nothing changes" in page.content
    assert announced == []

    admin_client.post(LIST, {**selected, "post": "yes"})
    trashed.refresh_from_db()
    assert trashed.deleted_at is None and announced == ["restored"]


def test_purge_asks_first_and_deletes_for_good(admin_client, make_task, user_id, announced):
    trashed = make_task(title="in the trash")
    services.task_delete(user_id=user_id, task_id=trashed.pk)
    live = make_task(title="straight out")
    announced.clear()
    selected = {"action": "purge_tasks", "_selected_action": [trashed.pk, live.pk]}

    page = admin_client.post(LIST, selected)
    assert b"Delete these tasks for good?" in page.content
    assert b"deleted for good, with no way back; a task.purged event" in page.content
    assert b"without going through the trash" in page.content
    assert Task.objects.filter(pk__in=[trashed.pk, live.pk]).count() == 2

    admin_client.post(LIST, {**selected, "post": "yes"})
    assert not Task.objects.filter(pk__in=[trashed.pk, live.pk]).exists()
    assert sorted(announced) == ["deleted", "purged"]


def test_a_task_in_the_trash_is_listed_apart_and_read_only(admin_client, make_task, user_id):
    trashed = make_task(title="binned")
    services.task_delete(user_id=user_id, task_id=trashed.pk)
    make_task(title="still-here")
    response = admin_client.get(LIST, {"trash": "yes"})
    assert b"binned" in response.content and b"still-here" not in response.content
    response = admin_client.get(LIST, {"trash": "no"})
    assert b"binned" not in response.content and b"still-here" in response.content
    page = admin_client.get(f"/admin/tasks/task/{trashed.pk}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert b"binned" in page.content


def test_stop_repeating_asks_first_and_keeps_the_task(admin_client, make_task, announced):
    task = make_task(title="daily", due_date="2030-01-07T09:00:00Z", recurrence_pattern="daily")
    plain = make_task(title="plain")
    announced.clear()
    selected = {"action": "stop_series", "_selected_action": [task.pk, plain.pk]}
    page = admin_client.post(LIST, selected)
    assert b"Stop these tasks repeating?" in page.content
    assert b"not recurring: nothing changes" in page.content
    task.refresh_from_db()
    assert task.recurrence_rule == "daily" and announced == []

    admin_client.post(LIST, {**selected, "post": "yes"})
    task.refresh_from_db()
    assert task.recurrence_rule == "none" and task.series_id is None
    assert announced == ["updated"]


def test_the_bulk_delete_that_bypasses_the_services_is_not_offered(admin_client, make_task):
    make_task()
    response = admin_client.get(LIST)
    assert b"delete_selected" not in response.content
