"""The ASGI lifespan: what the server runs beside the app, started and stopped with it.

``todo_project.asgi`` lists the parts; this enters them in order at start-up and leaves them in
reverse order at shut-down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack

logger = logging.getLogger(__name__)

# A name for the log and a factory of the async context manager that runs the part.
Part = tuple[str, Callable[[], AbstractAsyncContextManager]]


class Lifespan:
    """An ASGI app for the ``lifespan`` scope; ``parts`` is asked at start-up, so it sees the
    settings of the moment."""

    def __init__(self, parts: Callable[[], Sequence[Part]]):
        self.parts = parts

    async def __call__(self, scope, receive, send) -> None:
        stack = AsyncExitStack()
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    for name, factory in self.parts():
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
