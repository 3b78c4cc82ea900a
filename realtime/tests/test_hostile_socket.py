"""Hostile input against ``/ws/tasks/``: handshakes with a forged ``Host``, forged, stale and
malformed tokens, too many sockets, too many refused handshakes, and frames of every bad kind
(deeply nested, oversized, binary, floods), plus property-based fuzzing of frame sequences.
Every answer is a documented close code or ``error`` frame (docs/realtime.md), sent before any
data when the handshake is refused, and nothing raises out of the consumer.

Already covered elsewhere and not repeated here: the refusals of a missing, malformed or
expired token and of a foreign Origin (``realtime/tests/test_consumer.py``), cross-user frames
and resume (the same module).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st

from core.auth import issue_token
from realtime.frames import CloseCode
from realtime.tests.conftest import connect_user, expect_close, open_socket
from todo_project.testing import (
    FORGERIES,
    NASTY_TEXT,
    LiveServer,
    forged_token,
    hostile_values,
    hs256_with_public_key,
    jwks_keys,
    signed_token,
    use_strict_claims,
)

pytestmark = pytest.mark.django_db(transaction=True)

FUZZ_EXAMPLES = int(os.environ.get("HOSTILE_FUZZ_EXAMPLES", "60"))


async def refused_before_any_data(communicator, code: int, reason: str) -> None:
    message = await expect_close(communicator, code)
    assert message["reason"] == reason
    assert await communicator.receive_nothing(timeout=0.1)


# --- the handshake ------------------------------------------------------------------------


@pytest.mark.parametrize("host", [b"evil.example", b"evil.example:8000", b"127.0.0.1.evil"])
async def test_a_host_outside_allowed_hosts_closes_4400_before_any_data(user_id, host):
    communicator = await open_socket(user_id, headers=[(b"host", host)])
    await refused_before_any_data(communicator, CloseCode.BAD_REQUEST, "disallowed_host")

    allowed, hello = await connect_user(user_id, headers=[(b"host", b"127.0.0.1:8000")])
    assert hello["type"] == "hello"
    await allowed.disconnect()


def _has_first_frame(received: bytes) -> bool:
    """The response head and one whole short server frame (no mask, length < 126)."""
    _, separator, body = received.partition(b"\r\n\r\n")
    return bool(separator) and len(body) >= 2 and len(body) >= 2 + body[1]


def test_a_host_outside_allowed_hosts_is_refused_by_the_real_server(transactional_db, user_id):
    """Through uvicorn, where the Host header is the client's: the upgrade is accepted (so the
    browser sees the code), then closed 4400 with no frame before it."""
    with LiveServer() as server, socket.create_connection(("127.0.0.1", server.port)) as conn:
        conn.settimeout(10)
        conn.sendall(
            b"GET /ws/tasks/ HTTP/1.1\r\nHost: evil.example\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: bearer, "
            + issue_token(user_id).encode()
            + b"\r\n\r\n"
        )
        received = b""
        while not _has_first_frame(received):
            chunk = conn.recv(4096)
            assert chunk, received
            received += chunk
    head, frame = received.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101")
    assert b"evil" not in head
    assert frame[0] == 0x88  # the first frame is the close
    assert int.from_bytes(frame[2:4], "big") == CloseCode.BAD_REQUEST
    assert frame[4 : 2 + frame[1]] == b"disallowed_host"


@pytest.mark.parametrize(
    "subject", ["user\x00one", "user\x07", "user\x1b[31m", "user\x7f", "user\x85", "user\ud800"]
)
async def test_a_signed_token_whose_subject_holds_control_characters_closes_4401(subject):
    token = signed_token({"sub": subject, "exp": int(time.time()) + 600})
    communicator = await open_socket(token=token)
    await refused_before_any_data(communicator, CloseCode.UNAUTHORIZED, "invalid_token")


@pytest.mark.parametrize("kind", FORGERIES)
async def test_the_socket_refuses_forged_and_stale_tokens_before_any_data(settings, user_id, kind):
    use_strict_claims(settings)
    socket_ = await open_socket(token=forged_token(kind, user_id))
    message = await socket_.receive_output(timeout=5)
    assert message["type"] == "websocket.close", message
    assert message["code"] == (4408 if kind == "expired" else 4401), (kind, message)


async def test_hs256_signed_with_the_public_key_is_refused(settings, user_id):
    with jwks_keys(settings) as key:
        claims = {"sub": user_id, "exp": int(time.time()) + 600}
        socket_ = await open_socket(token=hs256_with_public_key(claims, key))
        message = await socket_.receive_output(timeout=5)
    assert (message["type"], message.get("code")) == ("websocket.close", 4401)


async def test_an_oversized_socket_token_is_refused(user_id):
    socket_ = await open_socket(token="t" * (64 * 1024))
    message = await socket_.receive_output(timeout=5)
    assert (message["type"], message.get("code")) == ("websocket.close", 4401)


async def test_refused_handshakes_are_limited_per_address(rates, user_id):
    rates(anonymous="2/min")
    for _ in range(2):
        refused = await open_socket(token="not-a-jwt")
        await refused_before_any_data(refused, CloseCode.UNAUTHORIZED, "invalid_token")

    limited = await open_socket(token="not-a-jwt")
    await refused_before_any_data(limited, CloseCode.POLICY, "rate_limited")
    # a good token is not held back by the address's budget
    communicator, hello = await connect_user(user_id)
    assert hello["type"] == "hello"
    await communicator.disconnect()


# --- how many sockets -----------------------------------------------------------------------


async def test_the_21st_socket_of_a_user_closes_4429_and_a_dropped_one_frees_its_slot(
    user_id, other_user_id
):
    sockets = [(await connect_user(user_id))[0] for _ in range(20)]

    extra = await open_socket(user_id)
    await refused_before_any_data(extra, CloseCode.POLICY, "too_many_sockets")
    other, _ = await connect_user(other_user_id)  # another user has slots of their own

    # an abrupt end (no close handshake) frees the slot as a clean one does
    await sockets.pop().disconnect(code=1006)
    replacement, hello = await connect_user(user_id)
    assert hello["type"] == "hello"

    for communicator in [*sockets, replacement, other]:
        await communicator.disconnect()


async def test_past_the_process_cap_a_socket_closes_1013(settings, user_id, other_user_id):
    settings.REALTIME_MAX_SOCKETS_PER_PROCESS = 2
    first, _ = await connect_user(user_id)
    second, _ = await connect_user(other_user_id)

    refused = await open_socket(f"{user_id}-c")
    await refused_before_any_data(refused, CloseCode.TRY_AGAIN_LATER, "try_again_later")

    await first.disconnect()
    third, hello = await connect_user(f"{user_id}-c")
    assert hello["type"] == "hello"
    await second.disconnect()
    await third.disconnect()


# --- frames ---------------------------------------------------------------------------------


async def test_a_frame_nested_2000_deep_is_invalid_json_and_counted(user_id, caplog):
    caplog.set_level(logging.WARNING)
    communicator, _ = await connect_user(user_id)
    deep = "[" * 2000 + "]" * 2000

    for _ in range(5):
        await communicator.send_to(text_data=deep)
        assert await communicator.receive_json_from() == {
            "type": "error",
            "code": "invalid_json",
            "message": "Frames are JSON objects.",
        }
    await communicator.send_to(text_data='{"a":' * 2000 + "1" + "}" * 2000)

    message = await expect_close(communicator, CloseCode.POLICY)
    assert message["reason"] == "too_many_invalid_frames"
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_ping_gets_pong_and_invalid_frames_get_errors(user_id):
    communicator, _ = await connect_user(user_id)
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from() == {"type": "pong"}

    await communicator.send_to(text_data="{not json")
    assert (await communicator.receive_json_from())["code"] == "invalid_json"
    await communicator.send_json_to({"type": "subscribe", "user_id": "someone-else"})
    assert (await communicator.receive_json_from())["code"] == "unknown_type"
    await communicator.send_to(bytes_data=b"\x00\x01")
    assert (await communicator.receive_json_from())["code"] == "binary_frame"
    await communicator.send_to(text_data="x" * 5000)
    assert (await communicator.receive_json_from())["code"] == "frame_too_large"
    await communicator.send_json_to({"type": "resume", "last_sequence": -1})
    assert (await communicator.receive_json_from())["code"] == "invalid_sequence"
    await communicator.disconnect()


async def test_repeated_invalid_frames_close_4429(user_id):
    communicator, _ = await connect_user(user_id)
    for _ in range(5):
        await communicator.send_json_to(["not", "an", "object"])
        assert (await communicator.receive_json_from())["type"] == "error"
    await communicator.send_json_to(["again"])
    await expect_close(communicator, CloseCode.POLICY)


async def test_a_flood_of_messages_closes_4429(user_id):
    communicator, _ = await connect_user(user_id)
    for _ in range(101):
        await communicator.send_json_to({"type": "pong"})
    await expect_close(communicator, CloseCode.POLICY)


# --- hypothesis: any frames -----------------------------------------------------------------

DOCUMENTED_ERROR_CODES = {
    "invalid_json",
    "binary_frame",
    "frame_too_large",
    "unknown_type",
    "invalid_sequence",
    "already_resumed",
}
VALUES = hostile_values()
FRAME = st.one_of(
    st.builds(lambda v: ("text", json.dumps(v)), VALUES),
    st.builds(
        lambda kind, extra: ("text", json.dumps({"type": kind, **extra})),
        st.sampled_from(["ping", "pong", "resume", "event", "hello", "", "PING"]),
        st.dictionaries(st.sampled_from(["last_sequence", "type", "x"]), VALUES, max_size=2),
    ),
    st.builds(lambda t: ("text", t), st.text(max_size=200) | st.sampled_from(NASTY_TEXT)),
    st.builds(lambda b: ("bytes", b), st.binary(max_size=200)),
    st.just(("text", "x" * 5000)),
    st.integers(min_value=1, max_value=2000).map(lambda n: ("text", "[" * n + "]" * n)),
)


async def _socket_survives(user: str, frames: list[tuple[str, str | bytes]]) -> None:
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    socket_ = await open_socket(user)
    hello = json.loads(await socket_.receive_from(timeout=5))
    assert hello["type"] == "hello"
    for kind, payload in frames:
        if kind == "text":
            await socket_.send_to(text_data=payload)
        else:
            await socket_.send_to(bytes_data=payload)
    await socket_.send_to(text_data='{"type": "ping"}')
    # Every answer is a documented frame; the ping at the end gets its pong, unless the socket
    # was closed for abuse (more than 5 invalid frames), which is documented too.
    while True:
        message = await socket_.receive_output(timeout=5)
        if message["type"] == "websocket.close":
            assert message.get("code") == 4429, message
            return
        frame = json.loads(message["text"])
        assert frame["type"] in {"error", "pong", "resync", "event", "ping"}, frame
        if frame["type"] == "error":
            assert frame["code"] in DOCUMENTED_ERROR_CODES, frame
        if frame["type"] == "pong":
            break
    await socket_.disconnect()


@given(frames=st.lists(FRAME, max_size=8))
@examples(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_any_client_frames_get_documented_answers_never_a_crash(frames):
    asyncio.run(_socket_survives("hostile-owner-ws", frames))
