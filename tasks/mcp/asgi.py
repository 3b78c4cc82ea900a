"""What the project mounts: ``/mcp`` behind bearer auth, the protected-resource metadata, and
the lifespan hook that runs the SDK's session manager.

The SDK is imported when the lifespan starts, not when Django starts, so management commands
and tests that never serve MCP do not pay for it.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack, asynccontextmanager

from tasks.mcp.auth import (
    METADATA_PATH,
    RESOURCE_PATH,
    BearerAuth,
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
    await manager.handle_request(scope, receive, send)


mcp_app = BearerAuth(_dispatch)


@asynccontextmanager
async def lifespan(*, database_threads: bool = True):
    """Run a session manager for this event loop; ``database_threads`` gives the tools their
    own threads with kept connections (off for one-request servers such as runserver's)."""
    from django.conf import settings

    from tasks.mcp import server

    manager = server.build_session_manager()
    loop = asyncio.get_running_loop()
    async with AsyncExitStack() as stack:
        if database_threads:
            stack.enter_context(server.database_threads(settings.WEB_THREADS))
        await stack.enter_async_context(manager.run())
        _managers[loop] = manager
        try:
            yield
        finally:
            _managers.pop(loop, None)
