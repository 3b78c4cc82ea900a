"""The distributed layout: channels-redis (Redis at REDIS_URL, or the test run's own) carries the
fan-out from a ``run_consumer realtime`` process to the sockets of every web process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

import httpx
import pytest
import websockets
from django.conf import settings as django_settings

from bench.benchmarks import database_url, free_port, uvicorn_command
from core.auth import issue_token
from realtime import delivery, fanout
from realtime.tests.conftest import connect_user, in_thread
from tasks import services

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(
    params=[
        "channels_redis.core.RedisChannelLayer",
        "channels_redis.pubsub.RedisPubSubChannelLayer",
    ]
)
def redis_layer(settings, request, redis_url):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": request.param,
            "CONFIG": {
                "hosts": [{"address": redis_url, "max_connections": 50, "socket_timeout": 30}],
                "prefix": f"test-{uuid.uuid4().hex[:8]}",
            },
        }
    }


async def test_a_process_without_sockets_delivers_through_redis(
    redis_layer, user_id, other_user_id
):
    from events.models import OutboxEvent
    from events.schemas import parse_envelope

    mine, _ = await connect_user(user_id)
    theirs, _ = await connect_user(other_user_id)
    await in_thread(services.task_create, user_id=user_id, title="Through Redis")
    row = await in_thread(OutboxEvent.objects.get, user_id=user_id, sequence=1)

    # As in a `run_consumer realtime` process: no server loop here, so the fan-out uses its own
    # loop thread and the Redis layer, not the sockets' loop.
    delivery.unbind_loop(asyncio.get_running_loop())
    assert delivery.server_loop() is None
    await in_thread(fanout.deliver, parse_envelope(row.envelope))

    frame = await mine.receive_json_from(timeout=5)
    assert (frame["sequence"], frame["task"]["title"]) == (1, "Through Redis")
    assert await theirs.receive_nothing(timeout=0.5)
    await mine.disconnect()
    await theirs.disconnect()


def _spawn(command: list[str], env: dict) -> subprocess.Popen:
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed when the test stops the process)
    process = subprocess.Popen(
        command,
        env=env,
        cwd=django_settings.BASE_DIR,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    process.log = log
    return process


def _output(process: subprocess.Popen) -> str:
    process.log.seek(0)
    return process.log.read().decode(errors="replace")[-3000:]


def _wait_ready(port: int, processes: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                raise AssertionError(f"{process.args} exited:\n{_output(process)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise AssertionError("a web process did not become ready")


@pytest.mark.parametrize("redis_channel_layer", ["pubsub", "core"])
def test_two_web_processes_and_a_consumer_process_share_events_through_redis(
    user_id, other_user_id, redis_channel_layer, redis_url
):
    from django.db import connection

    env = {
        **os.environ,
        "DATABASE_URL": database_url(connection.settings_dict["NAME"]),
        "REDIS_URL": redis_url,
        "REDIS_CHANNEL_LAYER": redis_channel_layer,
        "RUN_WORKERS_IN_PROCESS": "0",
        "EVENTS_BROKER": "embedded",
        "LOG_LEVEL": "WARNING",
    }
    ports = [free_port(), free_port()]
    manage = [sys.executable, "manage.py"]
    processes = [_spawn(uvicorn_command(port), env) for port in ports]
    processes.append(_spawn([*manage, "relay_events", "--metrics-port", "0"], env))
    processes.append(_spawn([*manage, "run_consumer", "realtime", "--metrics-port", "0"], env))
    token = issue_token(user_id)
    try:
        for port in ports:
            _wait_ready(port, processes)

        async def scenario():
            def url(port):
                return f"ws://127.0.0.1:{port}/ws/tasks/"

            async with (
                websockets.connect(url(ports[0]), subprotocols=["bearer", token]) as first,
                websockets.connect(url(ports[1]), subprotocols=["bearer", token]) as second,
                websockets.connect(
                    url(ports[1]), subprotocols=["bearer", issue_token(other_user_id)]
                ) as stranger,
            ):
                for ws in (first, second, stranger):
                    assert json.loads(await ws.recv())["type"] == "hello"
                if redis_channel_layer == "core":
                    # Idle for longer than the layer's 5-second blocking read: with redis-py
                    # 8's default socket timeout the waiting consumers would crash here.
                    await asyncio.sleep(6)
                async with httpx.AsyncClient() as http:
                    response = await http.post(
                        f"http://127.0.0.1:{ports[0]}/api/tasks/",
                        json={"title": "Seen by every web process"},
                        headers={"Authorization": f"Bearer {token}"},
                    )
                assert response.status_code == 201, response.text
                for ws in (first, second):
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 15))
                    assert frame["type"] == "event"
                    assert frame["task"] == response.json()
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(stranger.recv(), 1)

        asyncio.run(scenario())
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
            process.log.close()
