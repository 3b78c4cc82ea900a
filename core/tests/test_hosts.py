"""The internal endpoints answer kubelet, Dapr and Prometheus whatever ``Host`` they send; every
other path still refuses a host outside ``ALLOWED_HOSTS``."""

import httpx
import pytest
from django.test import Client

from core.hosts import is_internal_path

PUBLIC_HOST = "tasks.example.com"
APP_TOKEN = "app-token-for-host-tests"
# What each caller puts in Host: kubelet and Prometheus the pod's address, daprd its loopback.
CALLER_HOSTS = {
    "kubelet": "10.244.1.7:8000",
    "prometheus": "10.244.1.7:9090",
    "dapr": "127.0.0.1:8000",
    "localhost": "localhost:8000",
    "forged": "evil.example",
}


@pytest.fixture
def production(settings):
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = [PUBLIC_HOST]
    settings.EVENTS_BROKER = "dapr"
    settings.APP_API_TOKEN = APP_TOKEN
    return Client()


@pytest.mark.parametrize("caller", CALLER_HOSTS)
@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
@pytest.mark.django_db
def test_probes_and_metrics_answer_whatever_the_host(production, caller, path):
    response = production.get(path, headers={"Host": CALLER_HOSTS[caller]})

    assert response.status_code == 200
    assert CALLER_HOSTS[caller].encode() not in response.content


@pytest.mark.parametrize("caller", CALLER_HOSTS)
@pytest.mark.django_db
def test_the_job_callback_answers_whatever_the_host_but_keeps_its_token(production, caller):
    host = CALLER_HOSTS[caller]

    without_token = production.post("/job/reminder-task-1", headers={"Host": host})
    wrong_token = production.post(
        "/job/reminder-task-1", headers={"Host": host, "dapr-api-token": "guess"}
    )
    with_token = production.post(
        "/job/reminder-task-1",
        data="{}",
        content_type="application/json",
        headers={"Host": host, "dapr-api-token": APP_TOKEN},
    )

    assert (without_token.status_code, without_token.json()["error"]["code"]) == (
        401,
        "invalid_token",
    )
    assert wrong_token.status_code == 401
    # past the token: the body names no generation, which is the caller's error, not the host's
    assert (with_token.status_code, with_token.json()["error"]["code"]) == (400, "invalid")


@pytest.mark.parametrize("host", ["10.244.1.7:8000", "127.0.0.1:8000", "evil.example"])
@pytest.mark.parametrize("path", ["/api/tasks/", "/admin/login/", "/", "/api/schema/"])
@pytest.mark.django_db
def test_every_other_path_refuses_a_host_outside_allowed_hosts(production, host, path):
    response = production.get(path, headers={"Host": host})

    assert response.status_code == 400
    assert host.encode() not in response.content
    assert "Location" not in response


@pytest.mark.django_db
def test_the_public_host_still_reaches_the_api(production):
    response = production.get("/api/tasks/", headers={"Host": PUBLIC_HOST})

    assert response.status_code == 401  # past the host check, at the token check


async def test_mounts_beside_django_still_refuse_a_pod_address(settings):
    from todo_project.asgi import application

    settings.DEBUG = False
    settings.ALLOWED_HOSTS = [PUBLIC_HOST]
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://10.244.1.7:8000") as client:
        refused = await client.post("/mcp", json={})

    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "disallowed_host")


@pytest.mark.parametrize(
    ("path", "internal"),
    [
        ("/healthz", True),
        ("/readyz", True),
        ("/metrics", True),
        ("/job/reminder-task-7", True),
        ("/dapr/subscribe", True),
        ("/healthz/", False),
        ("/healthzz", False),
        ("/metrics.json", False),
        ("/jobs/x", False),
        ("/api/tasks/", False),
        ("/admin/", False),
        ("/mcp", False),
    ],
)
def test_only_the_internal_paths_are_internal(path, internal):
    assert is_internal_path(path) is internal
