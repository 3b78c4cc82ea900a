"""The task socket: handshake and auth, per-user groups, live frames, resume and resync, and the
heartbeat. Events come from real task changes through the events framework
(``realtime.tests.conftest.drain``). Clients that misbehave: ``test_hostile_socket.py``."""

from __future__ import annotations

import asyncio
import time

import pytest

from core.auth import issue_token
from realtime.frames import CloseCode
from realtime.tests.conftest import (
    connect_user,
    drain,
    expect_close,
    in_thread,
    open_socket,
    receive_frames,
)
from tasks import services
from tasks.representation import task_to_dict

pytestmark = pytest.mark.django_db(transaction=True)


async def create_task(**kwargs):
    return await in_thread(services.task_create, **kwargs)


async def complete_task(**kwargs):
    return await in_thread(services.task_complete, **kwargs)


async def delete_task(**kwargs):
    return await in_thread(services.task_delete, **kwargs)


# --- handshake -----------------------------------------------------------------------------


async def test_token_in_subprotocol_is_accepted_with_the_bearer_subprotocol(user_id):
    from realtime.tests.conftest import WebsocketCommunicator, asgi_app

    communicator = WebsocketCommunicator(
        asgi_app(), "/ws/tasks/", subprotocols=["bearer", issue_token(user_id)]
    )
    connected, subprotocol = await communicator.connect()
    # Given `bearer, <token>`, the server selects "bearer" (browsers insist on one of theirs).
    assert (connected, subprotocol) == (True, "bearer")
    hello = await communicator.receive_json_from()
    assert hello == {"type": "hello", "user_id": user_id, "last_sequence": 0, "ping_interval": 25}
    await communicator.disconnect()


async def test_token_in_query_string_is_accepted(user_id):
    communicator, hello = await connect_user(user_id, via="query")
    assert hello["user_id"] == user_id
    await communicator.disconnect()


@pytest.mark.parametrize(
    ("token", "code", "reason"),
    [
        (None, CloseCode.UNAUTHORIZED, "missing_token"),
        ("not-a-jwt", CloseCode.UNAUTHORIZED, "invalid_token"),
        ("forged", CloseCode.UNAUTHORIZED, "invalid_token"),
        ("expired", CloseCode.TOKEN_EXPIRED, "token_expired"),
    ],
)
async def test_refused_tokens_close_with_their_code_before_any_data(user_id, token, code, reason):
    if token == "forged":
        import jwt

        token = jwt.encode(
            {"sub": user_id, "exp": int(time.time()) + 600},
            "not-the-secret-but-long-enough-for-hs256",
            algorithm="HS256",
        )
    elif token == "expired":
        token = issue_token(user_id, extra={"exp": int(time.time()) - 3600})
    communicator = await open_socket(token=token)
    # The very first thing after the accept is the close: no hello, no event.
    message = await expect_close(communicator, code)
    assert message["reason"] == reason
    assert await communicator.receive_nothing(timeout=0.1)


async def test_a_foreign_origin_is_refused_and_the_served_host_is_allowed(user_id):
    foreign = await open_socket(user_id, headers=[(b"origin", b"https://evil.example")])
    await expect_close(foreign, CloseCode.FORBIDDEN)

    same, hello = await connect_user(user_id, headers=[(b"origin", b"http://127.0.0.1:8000")])
    assert hello["type"] == "hello"
    await same.disconnect()


async def test_trusted_origins_come_from_settings(user_id, settings):
    settings.REALTIME_ALLOWED_ORIGINS = ["https://app.example.com"]
    communicator, _ = await connect_user(user_id, headers=[(b"origin", b"https://app.example.com")])
    await communicator.disconnect()


async def test_a_malformed_last_sequence_closes_4400(user_id):
    communicator = await open_socket(user_id, query="last_sequence=abc")
    await expect_close(communicator, CloseCode.BAD_REQUEST)


async def test_other_websocket_paths_close_4404(user_id):
    communicator = await open_socket(user_id, path="/ws/other/")
    await expect_close(communicator, CloseCode.NOT_FOUND)


async def test_a_token_that_expires_while_connected_closes_4408(user_id, settings):
    settings.JWT_LEEWAY_SECONDS = 0
    # At least a full second of life (exp is whole seconds), so the handshake completes first
    # even on a loaded machine; then the token runs out while the socket is open.
    token = issue_token(user_id, extra={"exp": int(time.time()) + 2})
    communicator, _ = await connect_user(None, token=token)
    await expect_close(communicator, CloseCode.TOKEN_EXPIRED, timeout=6)


# --- live frames and isolation -------------------------------------------------------------


async def test_an_event_reaches_every_socket_of_its_user_and_no_other(user_id, other_user_id):
    first, _ = await connect_user(user_id)
    second, _ = await connect_user(user_id)
    stranger, _ = await connect_user(other_user_id)

    task = await create_task(user_id=user_id, title="Buy milk", priority="high", tags=["home"])
    await drain()

    for communicator in (first, second):
        frame = await communicator.receive_json_from(timeout=5)
        assert frame["type"] == "event"
        assert frame["event_type"] == "task.created"
        assert frame["sequence"] == 1
        assert frame["task_id"] == task.pk
        assert frame["task"] == task_to_dict(task)
        assert frame["notification"] is None
        assert len(frame["event_id"]) == 36
    # The other user's socket got nothing at all.
    assert await stranger.receive_nothing(timeout=0.3)

    # And the other way round.
    theirs = await create_task(user_id=other_user_id, title="Their task")
    await drain()
    frame = await stranger.receive_json_from(timeout=5)
    assert (frame["task_id"], frame["sequence"]) == (theirs.pk, 1)
    assert await first.receive_nothing(timeout=0.3)
    assert await second.receive_nothing(timeout=0.1)
    for communicator in (first, second, stranger):
        await communicator.disconnect()


async def test_frames_for_completion_and_deletion(user_id):
    communicator, _ = await connect_user(user_id)
    task = await create_task(user_id=user_id, title="Water plants")
    await complete_task(user_id=user_id, task_id=task.pk)
    await delete_task(user_id=user_id, task_id=task.pk)
    await drain()

    created, completed, deleted = await receive_frames(communicator, 3)
    assert [f["event_type"] for f in (created, completed, deleted)] == [
        "task.created",
        "task.completed",
        "task.deleted",
    ]
    assert [f["sequence"] for f in (created, completed, deleted)] == [1, 2, 3]
    assert completed["task"]["completed"] is True
    assert "completed" in completed["changed_fields"]
    assert deleted["task"] is None
    assert deleted["task_id"] == task.pk
    await communicator.disconnect()


async def test_notification_events_reach_the_users_sockets(user_id, other_user_id):
    from events.schemas import build_envelope
    from realtime import fanout

    mine, _ = await connect_user(user_id)
    theirs, _ = await connect_user(other_user_id)
    notification = {
        "id": 7,
        "kind": "reminder",
        "task_id": 3,
        "title": "Pay rent",
        "due_date": "2030-01-01T09:00:00Z",
        "remind_at": "2030-01-01T08:00:00Z",
        "late": False,
        "created_at": "2030-01-01T08:00:01Z",
        "read_at": None,
        "dismissed_at": None,
    }
    envelope = build_envelope(
        event_type="notification.created",
        user_id=user_id,
        payload={"notification_id": 7, "notification": notification},
        sequence=1,
    )
    await in_thread(fanout.deliver, envelope)
    frame = await mine.receive_json_from(timeout=5)
    assert frame["event_type"] == "notification.created"
    assert frame["notification"] == notification
    assert (frame["task_id"], frame["task"], frame["sequence"]) == (3, None, 1)
    assert await theirs.receive_nothing(timeout=0.3)
    await mine.disconnect()
    await theirs.disconnect()


async def test_a_redelivered_event_is_sent_once(user_id):
    from events.models import OutboxEvent
    from events.schemas import parse_envelope
    from realtime import fanout

    communicator, _ = await connect_user(user_id)
    await create_task(user_id=user_id, title="Once")
    await drain()
    first = await communicator.receive_json_from(timeout=5)

    row = await in_thread(OutboxEvent.objects.get, user_id=user_id, sequence=1)
    # At-least-once delivery: the same envelope handed over again.
    await in_thread(fanout.deliver, parse_envelope(row.envelope))
    assert first["sequence"] == 1
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


async def test_a_lost_message_is_filled_in_from_the_log_before_the_next_one(user_id):
    from events.models import OutboxEvent
    from events.schemas import parse_envelope
    from realtime import fanout

    communicator, hello = await connect_user(user_id)
    assert hello["last_sequence"] == 0
    for n in range(1, 4):
        await create_task(user_id=user_id, title=f"Task {n}")
    third = await in_thread(OutboxEvent.objects.get, user_id=user_id, sequence=3)

    # Only the third event reaches the layer (the first two were lost on the way).
    await in_thread(fanout.deliver, parse_envelope(third.envelope))
    frames = await receive_frames(communicator, 3)
    assert [f["sequence"] for f in frames] == [1, 2, 3]
    assert [f["task"]["title"] for f in frames] == ["Task 1", "Task 2", "Task 3"]
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


async def test_a_lost_last_event_is_found_by_the_watch(user_id, settings):
    settings.REALTIME_PING_SECONDS = 0.2
    communicator, _ = await connect_user(user_id)
    # Committed, but its message never reaches the socket (nothing runs the fan-out), and no
    # later event comes to reveal the gap.
    task = await create_task(user_id=user_id, title="Lost on the way")
    frames = []
    while len(frames) < 1:
        frame = await communicator.receive_json_from(timeout=3)
        if frame["type"] != "ping":
            frames.append(frame)
    assert (frames[0]["sequence"], frames[0]["task_id"]) == (1, task.pk)
    await communicator.disconnect()


async def test_without_a_socket_loop_in_this_process_the_in_memory_layer_sends_nothing(user_id):
    from events.schemas import parse_envelope
    from realtime import delivery, fanout

    await create_task(user_id=user_id, title="Nobody listens")
    from events.models import OutboxEvent

    row = await in_thread(OutboxEvent.objects.get, user_id=user_id, sequence=1)
    delivery.unbind_loop(asyncio.get_running_loop())
    # No server loop bound and an in-memory layer: no socket here could receive it.
    assert delivery.server_loop() is None
    sent = await asyncio.to_thread(
        delivery.group_send_many, [("user.x", fanout.layer_message(parse_envelope(row.envelope)))]
    )
    assert sent is False


# --- resume and resync ---------------------------------------------------------------------


async def test_resume_on_connect_replays_what_was_missed_in_order_then_goes_live(user_id):
    tasks = [await create_task(user_id=user_id, title=f"Task {n}") for n in range(1, 4)]
    await complete_task(user_id=user_id, task_id=tasks[0].pk)

    communicator, hello = await connect_user(user_id, query="last_sequence=1")
    assert hello["last_sequence"] == 4
    replayed = await receive_frames(communicator, 3)
    assert [f["sequence"] for f in replayed] == [2, 3, 4]
    assert [f["event_type"] for f in replayed] == ["task.created", "task.created", "task.completed"]
    assert replayed[0]["task"]["title"] == "Task 2"
    assert await communicator.receive_nothing(timeout=0.2)

    # Events the consumer delivers afterwards are not sent twice; new ones are.
    await create_task(user_id=user_id, title="Task 4")
    await drain()
    live = await communicator.receive_json_from(timeout=5)
    assert live["sequence"] == 5
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


async def test_resume_in_a_first_message(user_id):
    for n in range(2):
        await create_task(user_id=user_id, title=f"Task {n}")
    communicator, hello = await connect_user(user_id)
    assert hello["last_sequence"] == 2
    await communicator.send_json_to({"type": "resume", "last_sequence": 0})
    frames = await receive_frames(communicator, 2)
    assert [f["sequence"] for f in frames] == [1, 2]
    await communicator.disconnect()


async def test_resume_after_live_events_were_sent_is_a_resync(user_id):
    communicator, _ = await connect_user(user_id)
    await create_task(user_id=user_id, title="Live")
    await drain()
    assert (await communicator.receive_json_from(timeout=5))["sequence"] == 1
    await communicator.send_json_to({"type": "resume", "last_sequence": 0})
    frame = await communicator.receive_json_from()
    assert frame == {"type": "resync", "reason": "resume_too_late", "last_sequence": 1}
    await communicator.disconnect()


async def test_missed_events_older_than_the_retention_window_mean_resync(user_id, settings):
    settings.REALTIME_RETENTION_SECONDS = 0
    await create_task(user_id=user_id, title="Old")
    await create_task(user_id=user_id, title="Old too")
    communicator, hello = await connect_user(user_id, query="last_sequence=0")
    assert hello["last_sequence"] == 2
    frame = await communicator.receive_json_from()
    assert frame == {"type": "resync", "reason": "expired", "last_sequence": 2}
    assert await communicator.receive_nothing(timeout=0.2)
    await communicator.disconnect()


async def test_a_sequence_the_server_never_issued_means_resync(user_id):
    await create_task(user_id=user_id, title="One")
    communicator, _ = await connect_user(user_id, query="last_sequence=99")
    frame = await communicator.receive_json_from()
    assert frame == {"type": "resync", "reason": "unknown_sequence", "last_sequence": 1}
    await communicator.disconnect()


async def test_resume_never_replays_another_users_events(user_id, other_user_id):
    await create_task(user_id=other_user_id, title="Not yours")
    await create_task(user_id=other_user_id, title="Not yours either")
    await create_task(user_id=user_id, title="Yours")
    communicator, hello = await connect_user(user_id, query="last_sequence=0")
    assert hello["last_sequence"] == 1
    frame = await communicator.receive_json_from()
    assert (frame["sequence"], frame["task"]["title"]) == (1, "Yours")
    assert await communicator.receive_nothing(timeout=0.2)
    await communicator.disconnect()


async def test_up_to_date_client_gets_nothing_replayed(user_id):
    await create_task(user_id=user_id, title="Seen")
    communicator, hello = await connect_user(user_id, query="last_sequence=1")
    assert hello["last_sequence"] == 1
    assert await communicator.receive_nothing(timeout=0.2)
    await communicator.disconnect()


# --- heartbeat -----------------------------------------------------------------------------


async def test_heartbeat_pings_idle_sockets(user_id, settings):
    settings.REALTIME_PING_SECONDS = 0.2
    communicator, hello = await connect_user(user_id)
    assert hello["ping_interval"] == 0.2
    assert await communicator.receive_json_from(timeout=2) == {"type": "ping"}
    await communicator.disconnect()


# --- metrics -------------------------------------------------------------------------------


async def test_open_sockets_and_fan_out_latency_are_measured(user_id):
    from prometheus_client import REGISTRY

    def sample(name):
        return REGISTRY.get_sample_value(name) or 0.0

    before_open = sample("todo_websocket_connections")
    before_frames = sample("todo_websocket_fanout_seconds_count")
    communicator, _ = await connect_user(user_id)
    refused = await open_socket(token="nope")
    await expect_close(refused, CloseCode.UNAUTHORIZED)
    assert sample("todo_websocket_connections") == before_open + 1

    await create_task(user_id=user_id, title="Counted")
    await drain()
    await communicator.receive_json_from(timeout=5)
    assert sample("todo_websocket_fanout_seconds_count") == before_frames + 1

    await communicator.disconnect()
    assert sample("todo_websocket_connections") == before_open
