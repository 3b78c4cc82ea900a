"""Every REST operation is rate limited: per user for a caller with a token (writes, lists and
other reads each on a budget of their own), per client address for a request without a usable
one. A spent budget answers 429 with ``Retry-After`` and the JSON error shape; nothing is done.
"""

from __future__ import annotations

import json

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.settings import api_settings
from rest_framework.test import APIClient
from rest_framework.views import APIView

from events.models import OutboxEvent
from tasks.api.base import ThrottledView
from tasks.api.throttles import BudgetThrottle
from tasks.models import Task
from todo_project.testing import client_for

pytestmark = pytest.mark.django_db


def _operations() -> list[tuple[str, str]]:
    from drf_spectacular.generators import SchemaGenerator

    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    return [(method.upper(), path) for path, methods in paths.items() for method in methods]


# Password sign-in has budgets of its own, per address and per username
# (todo_project/tests/test_signin.py).
OPERATIONS = [op for op in _operations() if op[1] != "/api/auth/token/"]


def assert_throttled(response) -> None:
    assert response.status_code == 429, (response.status_code, response.content[:300])
    assert 1 <= int(response["Retry-After"]) <= 60
    error = response.json()["error"]
    assert error["code"] == "throttled"
    assert error["message"].startswith("Request was throttled.")


def _views(patterns, prefix: str = ""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _views(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), getattr(pattern.callback, "cls", None)


def test_every_api_view_that_needs_a_token_counts_its_refusals_and_uses_the_one_throttle():
    """A new view cannot forget: it is a ``ThrottledView`` and keeps the default throttle."""
    assert [BudgetThrottle] == api_settings.DEFAULT_THROTTLE_CLASSES
    checked = []
    for route, view in _views(get_resolver().url_patterns):
        if view is None or not issubclass(view, APIView):
            continue
        assert view.throttle_classes == [BudgetThrottle], route
        if view.authentication_classes:
            assert issubclass(view, ThrottledView), route
            checked.append(route)
    assert len(checked) >= 7, checked


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_each_operation_answers_429_past_its_budget(rates, user_id, make_task, method, path):
    rates(task_write="1/min", task_list="1/min", task_read="1/min")
    task = make_task(title="kept")
    url = path.format(task_id=task.pk, notification_id=999_999)
    api = client_for(user_id)

    def call():
        body = {"title": "changed"} if method in ("PUT", "PATCH", "POST") else None
        return api.generic(method, url, json.dumps(body or {}), content_type="application/json")

    def state():
        rows = Task.objects.filter(user_id=user_id).values_list("id", "title", "version")
        return sorted(rows), OutboxEvent.objects.count()

    assert call().status_code != 429
    before = state()

    limited = call()

    assert_throttled(limited)
    assert state() == before


def test_reading_one_task_has_a_budget_of_its_own(rates, api, make_task):
    rates(task_read="2/min")
    task = make_task()
    assert [api.get(f"/api/tasks/{task.pk}/").status_code for _ in range(2)] == [200, 200]

    assert_throttled(api.get(f"/api/tasks/{task.pk}/"))
    assert api.get("/api/tasks/").status_code == 200  # lists are another budget
    assert api.patch(f"/api/tasks/{task.pk}/", {"title": "t"}, format="json").status_code == 200


def test_a_write_past_its_budget_writes_nothing(rates, api, user_id):
    rates(task_write="1/min")
    assert api.post("/api/tasks/", {"title": "one"}, format="json").status_code == 201

    assert_throttled(api.post("/api/tasks/", {"title": "two"}, format="json"))
    assert list(Task.objects.filter(user_id=user_id).values_list("title", flat=True)) == ["one"]
    assert OutboxEvent.objects.filter(user_id=user_id).count() == 1


def test_requests_without_a_usable_token_are_limited_per_client_address(rates, user_id):
    rates(anonymous="3/min")
    stranger = APIClient()
    assert stranger.get("/api/tasks/").status_code == 401
    assert stranger.get("/api/notifications/", HTTP_AUTHORIZATION="Bearer nope").status_code == 401
    assert stranger.post("/api/tasks/", {"title": "x"}, format="json").status_code == 401

    # the address's budget is spent, whatever the path, and a forged X-Forwarded-For is no way out
    assert_throttled(stranger.get("/api/tasks/"))
    assert_throttled(stranger.get("/api/tasks/", HTTP_X_FORWARDED_FOR="203.0.113.9"))
    schema = stranger.get("/api/schema/")
    assert schema.status_code == 429 and int(schema["Retry-After"]) >= 1
    assert not Task.objects.exists()
    # another address has a budget of its own; a caller with a token is not held back
    assert stranger.get("/api/tasks/", REMOTE_ADDR="192.0.2.7").status_code == 401
    assert client_for(user_id).get("/api/tasks/").status_code == 200
    # probes are not limited
    for path in ("/healthz", "/readyz", "/metrics"):
        assert stranger.get(path).status_code == 200, path
