"""Start-up and shut-down of the ASGI application.

Apps register async context managers here (the MCP session manager, the in-process workers of
the embedded mode); the ASGI lifespan enters them in order at start-up and leaves them in
reverse order at shut-down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack

logger = logging.getLogger(__name__)

_hooks: list[tuple[str, Callable[[], AbstractAsyncContextManager]]] = []


def register(name: str, factory: Callable[[], AbstractAsyncContextManager]) -> None:
    if all(existing != name for existing, _ in _hooks):
        _hooks.append((name, factory))


async def lifespan_app(scope, receive, send) -> None:
    stack = AsyncExitStack()
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                for name, factory in _hooks:
                    logger.info("starting %s", name)
                    await stack.enter_async_context(factory())
            except Exception as exc:
                logger.exception("start-up failed")
                await stack.aclose()
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await stack.aclose()
            await send({"type": "lifespan.shutdown.complete"})
            return
