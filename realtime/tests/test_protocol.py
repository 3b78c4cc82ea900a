"""The pieces of the protocol that need no socket: groups, frames, handshake parsing, the log
redaction."""

from __future__ import annotations

import logging

import pytest

from realtime import frames, handshake
from realtime.groups import group_for_user
from realtime.redaction import RedactTokensFilter, redact


def test_each_user_has_one_valid_group_of_their_own():
    from channels.layers import BaseChannelLayer

    layer = BaseChannelLayer()
    users = ["alice", "Alice", "alice ", "user/with:odd chars?", "ü" * 128]
    groups = [group_for_user(user) for user in users]
    assert len(set(groups)) == len(users)
    for group in groups:
        assert layer.require_valid_group_name(group)
        assert len(group) < 100
    assert group_for_user("alice") == group_for_user("alice")
    with pytest.raises(ValueError):
        group_for_user("")


def _envelope(event_type: str, payload: dict) -> dict:
    return {
        "event_id": "6c8a0d0e-3a37-4c7e-9a4b-1b6f3f1f2a10",
        "event_type": event_type,
        "schema_version": 1,
        "user_id": "u1",
        "timestamp": "2026-01-01T00:00:00Z",
        "sequence": 7,
        "payload": payload,
    }


def test_task_frames_carry_the_snapshot_except_for_deletions():
    snapshot = {"id": 3, "title": "T"}
    updated = frames.event_frame(
        _envelope(
            "task.updated",
            {"task_id": 3, "task_data": snapshot, "changed_fields": ["title"], "previous": {}},
        )
    )
    assert updated == {
        "type": "event",
        "event_type": "task.updated",
        "sequence": 7,
        "event_id": "6c8a0d0e-3a37-4c7e-9a4b-1b6f3f1f2a10",
        "timestamp": "2026-01-01T00:00:00Z",
        "task_id": 3,
        "task": snapshot,
        "changed_fields": ["title"],
        "notification": None,
    }
    deleted = frames.event_frame(
        _envelope("task.deleted", {"task_id": 3, "task_data": snapshot, "stop_series": False})
    )
    assert (deleted["task"], deleted["task_id"]) == (None, 3)


@pytest.mark.parametrize(
    ("event_type", "extra", "carries_task"),
    [
        (
            "task.skipped",
            {"changed_fields": ["skipped_at"], "previous": {"skipped_at": None}},
            True,
        ),
        ("task.restored", {"changed_fields": ["deleted_at"], "previous": {}}, True),
        ("task.purged", {"reason": "expired"}, False),
    ],
)
def test_series_and_trash_frames(event_type, extra, carries_task):
    snapshot = {"id": 3, "title": "T"}
    frame = frames.event_frame(
        _envelope(event_type, {"task_id": 3, "task_data": snapshot, **extra})
    )
    assert (frame["event_type"], frame["task_id"]) == (event_type, 3)
    assert frame["task"] == (snapshot if carries_task else None)


def test_notification_frames_carry_the_notification():
    frame = frames.event_frame(
        _envelope(
            "notification.created",
            {"notification_id": 9, "notification": {"id": 9, "task_id": 3, "title": "Due soon"}},
        )
    )
    assert frame["notification"] == {"id": 9, "task_id": 3, "title": "Due soon"}
    assert (frame["task"], frame["task_id"]) == (None, 3)
    bare = frames.event_frame(_envelope("notification.read", {"notification_id": 9}))
    assert bare["notification"] == {"id": 9}


def _scope(query: bytes = b"", subprotocols=(), origin: bytes | None = None) -> dict:
    headers = [(b"host", b"127.0.0.1:8000")]
    if origin is not None:
        headers.append((b"origin", origin))
    return {"query_string": query, "subprotocols": list(subprotocols), "headers": headers}


def test_the_handshake_prefers_the_subprotocol_token_and_reads_the_cursor():
    shake = handshake.parse(
        _scope(b"token=query-token&last_sequence=12", subprotocols=["bearer", "header-token"])
    )
    assert shake == handshake.Handshake(
        token="header-token", subprotocol="bearer", last_sequence=12
    )
    assert handshake.parse(_scope(b"token=query-token")).token == "query-token"
    assert handshake.parse(_scope(b"")).token is None
    assert handshake.parse(_scope(b"last_sequence=")).last_sequence is None


@pytest.mark.parametrize("value", ["-1", "1.5", "abc", "١٢", "9" * 20, " 3"])
def test_a_malformed_cursor_is_refused(value):
    with pytest.raises(handshake.HandshakeError):
        handshake.parse(_scope(f"last_sequence={value}".encode()))


@pytest.mark.parametrize("value", [True, None, -1, 1.0, [1]])
def test_a_resume_message_needs_an_integer(value):
    with pytest.raises(handshake.HandshakeError):
        handshake.parse_sequence(value)


def test_a_resume_message_may_give_the_sequence_as_digits():
    assert handshake.parse_sequence("2") == 2


def test_origins(settings):
    settings.ALLOWED_HOSTS = ["api.example.com", "[::1]"]
    settings.REALTIME_ALLOWED_ORIGINS = ["https://app.example.com"]
    settings.CSRF_TRUSTED_ORIGINS = ["https://admin.example.com"]
    allowed = handshake.origin_allowed
    assert allowed(_scope())  # not a browser
    assert allowed(_scope(origin=b"https://api.example.com"))
    assert allowed(_scope(origin=b"https://app.example.com"))
    assert allowed(_scope(origin=b"https://admin.example.com"))
    assert allowed(_scope(origin=b"http://[::1]:3000"))
    assert not allowed(_scope(origin=b"https://evil.example.com"))
    assert not allowed(_scope(origin=b"https://api.example.com.evil.net"))
    assert not allowed(_scope(origin=b"null"))


def test_tokens_are_redacted_from_log_lines():
    assert redact("/ws/tasks/?token=abc.def.ghi&last_sequence=3") == (
        "/ws/tasks/?token=[redacted]&last_sequence=3"
    )
    assert redact("/ws/tasks/?last_sequence=3&access_token=xyz") == (
        "/ws/tasks/?last_sequence=3&access_token=[redacted]"
    )
    record = logging.LogRecord(
        "uvicorn.error",
        logging.INFO,
        __file__,
        1,
        '%s - "WebSocket %s" [accepted]',
        ("127.0.0.1:5000", "/ws/tasks/?token=secret-jwt"),
        None,
    )
    assert RedactTokensFilter().filter(record)
    assert "secret-jwt" not in record.getMessage()
    assert "token=[redacted]" in record.getMessage()
