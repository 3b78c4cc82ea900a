"""A token's ``scope`` at the WebSocket handshake: a socket only reads, so a token that may
read tasks connects, and one whose scope names no task scope is closed 4403
``insufficient_scope`` before any data."""

from __future__ import annotations

import pytest

from core.auth import issue_token
from realtime.frames import CloseCode
from realtime.tests.conftest import connect_user, expect_close, open_socket

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("scope", ["tasks:read", "tasks:write", "profile tasks:read"])
async def test_a_token_that_may_read_tasks_connects(user_id, scope):
    token = issue_token(user_id, extra={"scope": scope})

    communicator, hello = await connect_user(user_id, token=token)

    assert hello["user_id"] == user_id
    await communicator.disconnect()


@pytest.mark.parametrize("scope", ["profile", ""])
async def test_a_token_without_a_task_scope_is_refused_before_any_data(user_id, scope):
    token = issue_token(user_id, extra={"scope": scope})

    communicator = await open_socket(token=token)

    message = await expect_close(communicator, CloseCode.FORBIDDEN)
    assert message["reason"] == "insufficient_scope"
    assert await communicator.receive_nothing(timeout=0.1)
