import pytest
from django.contrib.auth.models import User

from tasks.models import Task
from tasks.signals import task_changed

pytestmark = pytest.mark.django_db


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


def test_admin_lists_searches_and_filters(admin_client, make_task):
    make_task(title="Find me", tags=["ops"], priority="urgent")
    make_task(title="Other")
    response = admin_client.get("/admin/tasks/task/", {"q": "Find"})
    assert response.status_code == 200
    assert b"Find me" in response.content and b"Other" not in response.content
    response = admin_client.get(
        "/admin/tasks/task/", {"priority__exact": "4", "due": "none", "tag": "ops"}
    )
    assert b"Find me" in response.content and b"Other" not in response.content


def test_admin_actions_go_through_the_services(admin_client, make_task, announced):
    task = make_task(title="act on me")
    announced.clear()
    url = "/admin/tasks/task/"
    admin_client.post(url, {"action": "complete_tasks", "_selected_action": [task.pk]})
    task.refresh_from_db()
    assert task.completed
    admin_client.post(url, {"action": "reopen_tasks", "_selected_action": [task.pk]})
    task.refresh_from_db()
    assert not task.completed
    admin_client.post(url, {"action": "delete_tasks", "_selected_action": [task.pk]})
    assert not Task.objects.filter(pk=task.pk).exists()
    assert announced == ["completed", "reopened", "deleted"]


def test_admin_bulk_delete_that_bypasses_services_is_not_offered(admin_client, make_task):
    make_task()
    response = admin_client.get("/admin/tasks/task/")
    assert b"delete_selected" not in response.content


def test_admin_edit_and_add_use_the_services(admin_client, make_task, announced, user_id):
    task = make_task(title="before")
    announced.clear()
    form = {
        "user_id": user_id,
        "title": "after",
        "description": "",
        "priority_label": "high",
        "tags": '["x"]',
        "recurrence_rule": "none",
        "timezone": "UTC",
        "reminder": "",
    }
    response = admin_client.post(f"/admin/tasks/task/{task.pk}/change/", form)
    assert response.status_code == 302, response.content[:2000]
    task.refresh_from_db()
    assert task.title == "after" and task.priority == 3 and task.tags == ["x"]
    response = admin_client.post("/admin/tasks/task/add/", {**form, "title": "added"})
    assert response.status_code == 302
    assert Task.objects.filter(user_id=user_id, title="added").exists()
    assert announced == ["updated", "created"]


def test_admin_shows_service_validation_errors(admin_client, make_task, user_id):
    task = make_task(title="t")
    form = {
        "user_id": user_id,
        "title": "t",
        "description": "",
        "priority_label": "medium",
        "tags": "[]",
        "recurrence_rule": "daily",  # needs a due date
        "timezone": "UTC",
        "reminder": "",
    }
    response = admin_client.post(f"/admin/tasks/task/{task.pk}/change/", form)
    assert response.status_code == 200
    assert b"recurring task needs a due date" in response.content
    task.refresh_from_db()
    assert task.recurrence_rule == "none"
