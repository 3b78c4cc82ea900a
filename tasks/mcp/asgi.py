"""What the project mounts: ``/mcp`` behind bearer auth, the protected-resource metadata, and
the lifespan hook that runs the SDK's session manager.

The SDK is imported when the lifespan starts, not when Django starts, so management commands
and tests that never serve MCP do not pay for it.

Every JSON-RPC message but a tool call spends one call of the user's ``task_read`` budget here
(a tool call spends the budget of what it does, in the tool); past it, the answer is HTTP 429
with ``Retry-After`` and a JSON-RPC error whose ``data`` holds ``retry_after``.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack, asynccontextmanager

import pydantic_core
from django.conf import settings

from tasks.api.throttles import READ
from tasks.mcp import ratelimit
from tasks.mcp.auth import (
    METADATA_PATH,
    RESOURCE_PATH,
    BearerAuth,
    current_user,
    protected_resource_metadata,
    send_json,
)

__all__ = ["METADATA_PATH", "RESOURCE_PATH", "lifespan", "mcp_app", "protected_resource_metadata"]

# The running session manager of each event loop (one per served ASGI app).
_managers: dict[asyncio.AbstractEventLoop, object] = {}


async def _dispatch(scope, receive, send) -> None:
    if scope.get("method") == "GET":
        # A stateless endpoint has no stream to offer; the spec's answer is 405 (the SDK
        # would hold the request open instead).
        await send_json(
            send,
            405,
            {"error": "method_not_allowed", "error_description": "POST JSON-RPC messages."},
            [(b"allow", b"POST")],
        )
        return
    manager = _managers.get(asyncio.get_running_loop())
    if manager is None:
        await send_json(
            send,
            503,
            {
                "error": "mcp_not_started",
                "error_description": "The MCP endpoint starts with the ASGI lifespan; serve the "
                "app with uvicorn (make run / manage.py serve).",
            },
        )
        return
    if scope.get("method") == "POST":
        receive = await _limit_other_methods(receive, send)
        if receive is None:
            return
    await manager.handle_request(scope, receive, send)


async def _read_body(receive) -> tuple[bytes | None, list[dict]]:
    """The request's body and the messages it came in; ``None`` past the size limit (the
    SDK answers that with 413 when the messages are replayed to it)."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    messages: list[dict] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return None, messages
        size += len(message.get("body", b""))
        if size > limit:
            return None, messages
        if not message.get("more_body", False):
            return b"".join(m.get("body", b"") for m in messages), messages


async def _limit_other_methods(receive, send):
    """Spend the user's read budget on anything but a tool call. Returns the ``receive`` the
    SDK reads the (already read) body from, or ``None`` when the request was answered 429."""
    body, messages = await _read_body(receive)
    message = None
    if body is not None:
        try:
            message = pydantic_core.from_json(body)
        except ValueError:
            message = None  # the SDK answers its parse error; the call still counts
    if not ratelimit.is_tool_call(message):
        try:
            await ratelimit.consume_async(READ, current_user().id)
        except ratelimit.RateLimited as exc:
            await send_json(
                send,
                429,
                ratelimit.rate_limited_body(message, exc.retry_after),
                [(b"retry-after", str(exc.retry_after).encode())],
            )
            return None

    async def replay() -> dict:
        return messages.pop(0) if messages else await receive()

    return replay


mcp_app = BearerAuth(_dispatch)


@asynccontextmanager
async def lifespan(*, database_threads: bool = True, listen: bool = True):
    """Run a session manager for this event loop; ``database_threads`` gives the tools their
    own threads with kept connections, ``listen`` receives live changes for listen streams
    (both off for one-request servers such as runserver's)."""
    from tasks.mcp import server

    manager = server.build_session_manager()
    loop = asyncio.get_running_loop()
    async with AsyncExitStack() as stack:
        if database_threads:
            stack.enter_context(server.database_threads(settings.WEB_THREADS))
        if listen:
            await stack.enter_async_context(server.bus.running())
        await stack.enter_async_context(manager.run())
        _managers[loop] = manager
        try:
            yield
        finally:
            _managers.pop(loop, None)
