"""Fixtures every app's tests share: users with tokens, an API client, a task factory."""

from __future__ import annotations

import itertools
import os
import types
from collections.abc import Iterator

import pytest
from rest_framework.test import APIClient

from bench.reliability.processes import PrivateRedis
from tasks import services
from todo_project.testing import LiveServer, client_for, end_other_database_connections

_counter = itertools.count(1)

# What makes a test "slow" (left out by ``make test-fast``, run by ``make test``): it starts a
# server (uvicorn, the in-process Dapr stand-in), a browser or other processes, or it searches
# many generated inputs (schemathesis, Hypothesis).
SLOW_FIXTURES = frozenset(
    {
        "live",  # tasks/tests/test_mcp.py: uvicorn
        "server",  # todo_project.testing.LiveServer: uvicorn
        "live_server_asgi",  # realtime/tests/conftest.py: uvicorn with the whole ASGI app
        "redis_layer",  # realtime/tests/test_redis.py: web and consumer processes on Redis
        "sidecar",  # the in-process Dapr gRPC stand-in
        "workers",  # todo_project/tests/test_faults.py: kill -9 of worker processes
        "spawn",  # events/tests/test_crash.py: consumer and relay processes
    }
)
SLOW_MODULES = frozenset(
    {
        "tasks/tests/test_schema_fuzz.py",  # schemathesis against a live server
        "todo_project/tests/test_faults.py",  # fault runs
        "events/tests/test_crash.py",  # processes killed mid-batch
        "deploy/tests/test_deploy.py",  # helm, hadolint and schema validators as processes
        "realtime/tests/test_redis.py",  # web and consumer processes sharing Redis
    }
)


def _starts_processes(function: object) -> bool:
    """Whether ``function``, or a function of its module that it calls, uses ``subprocess``."""
    seen: set[types.CodeType] = set()
    code = getattr(function, "__code__", None)
    names = getattr(function, "__globals__", {})
    pending = [code] if code is not None else []
    while pending:
        code = pending.pop()
        if code in seen:
            continue
        seen.add(code)
        if "subprocess" in code.co_names:
            return True
        pending += [const for const in code.co_consts if isinstance(const, types.CodeType)]
        pending += [
            helper.__code__
            for name in code.co_names
            if isinstance(helper := names.get(name), types.FunctionType)
            and helper.__globals__ is names
        ]
    return False


def _is_slow(item: pytest.Item) -> bool:
    test = getattr(item, "obj", None)
    module = item.path.relative_to(item.config.rootpath).as_posix()
    return (
        bool(set(getattr(item, "fixturenames", ())) & SLOW_FIXTURES)
        or module in SLOW_MODULES
        or item.get_closest_marker("browser") is not None
        or getattr(test, "is_hypothesis_test", False)
        or _starts_processes(test)
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _is_slow(item):
            item.add_marker(pytest.mark.slow)


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


@pytest.fixture(scope="module")
def server(django_db_blocker):
    """The project's ASGI app under uvicorn for one module's tests. Its threads keep database
    connections; they are ended after the module, or the test database could not be dropped."""
    with LiveServer() as running:
        yield running
    with django_db_blocker.unblock():
        end_other_database_connections()


@pytest.fixture
def rates(settings, monkeypatch):
    """Set some rate-limit budgets for one test: ``rates(anonymous="2/min")``. The budgets' clock
    stands still 30 s into a minute (and an hour), so a test's calls never straddle two windows."""
    from tasks.api import throttles

    monkeypatch.setattr(throttles, "_now", lambda: 1_800_000_030.0)

    def set_rates(**budgets: str) -> None:
        current = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
        monkeypatch.setitem(
            settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES", {**current, **budgets}
        )

    return set_rates


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> Iterator[str]:
    """The Redis the Redis tests use: ``REDIS_URL`` when set, otherwise a ``redis-server`` of
    the test run's own on a free port (``realtime/tests/ensure_redis.sh`` installs it), so that
    they never depend on, or disturb, a Redis the machine shares."""
    if url := os.environ.get("REDIS_URL"):
        yield url
        return
    if not PrivateRedis.available():
        pytest.fail(
            "the Redis tests need redis-server on the PATH (Debian: apt-get install -y "
            "redis-server) or REDIS_URL set to a Redis they may use"
        )
    redis = PrivateRedis(tmp_path_factory.mktemp("redis")).start()
    try:
        yield redis.url
    finally:
        redis.stop()
