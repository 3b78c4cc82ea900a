"""Fixtures every app's tests share: users with tokens, an API client, a task factory."""

from __future__ import annotations

import itertools

import pytest
from rest_framework.test import APIClient

from tasks import services
from todo_project.testing import client_for

_counter = itertools.count(1)


@pytest.fixture
def user_id() -> str:
    return f"user-{next(_counter)}"


@pytest.fixture
def other_user_id() -> str:
    return f"other-{next(_counter)}"


@pytest.fixture
def api(user_id) -> APIClient:
    return client_for(user_id)


@pytest.fixture
def other_api(other_user_id) -> APIClient:
    return client_for(other_user_id)


@pytest.fixture
def make_task(user_id):
    def make(**fields):
        fields.setdefault("title", "A task")
        return services.task_create(user_id=fields.pop("user_id", user_id), **fields)

    return make


@pytest.fixture(autouse=True)
def _clear_rate_limits():
    from django.core.cache import cache

    cache.clear()
    yield
