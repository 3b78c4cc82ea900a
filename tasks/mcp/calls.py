"""Running a tool's database work: like one Django request, on the MCP server's own threads.

Each call spends one call of the caller's REST budget, then runs the same service or selector
as the REST view in a sync thread, and turns the domain's refusals into tool errors.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from typing import TypeVar

from asgiref.sync import sync_to_async
from django.db import close_old_connections, connections
from mcp.types import CallToolResult

from core.auth import TokenUser
from idempotency.services import KeyInFlight
from tasks.errors import TaskError
from tasks.mcp.auth import current_user
from tasks.mcp.ratelimit import RateLimited, consume
from tasks.mcp.request_keys import KeyReused, current_key, in_flight_error, once, reused_error
from tasks.mcp.results import task_error, tool_error

T = TypeVar("T")

# The database threads of each running event loop (one pool per served ASGI app).
_executors: dict[asyncio.AbstractEventLoop, ThreadPoolExecutor] = {}


@contextmanager
def database_threads(size: int):
    """Run the tools' database work on ``size`` threads that keep their connections (as the
    project's WSGI threads do, see ``todo_project/asgi.py``), and close those connections when
    the app stops. Without it (``manage.py runserver``), the work runs in the request's thread."""
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="mcp-db")
    _executors[loop] = executor
    try:
        yield executor
    finally:
        _executors.pop(loop, None)
        # One job per thread (the barrier keeps each on its own thread) closes its connection.
        barrier = threading.Barrier(size)

        def close_connection() -> None:
            connections.close_all()
            with suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=10)

        for _ in range(size):
            executor.submit(close_connection)
        executor.shutdown(wait=True)


def _handle(budget: str, user: TokenUser, work: Callable[[str], T], cost: int = 1) -> T:
    """One call is handled like one Django request: unusable or expired connections are closed
    before and after (``CONN_MAX_AGE``, health checks), the rest are kept for the next call."""
    close_old_connections()
    try:
        consume(budget, user, cost)
        return work(user.id)
    finally:
        close_old_connections()


async def in_database_thread(budget: str, work: Callable[[str], T], cost: int = 1) -> T:
    """``work(user_id)`` for the signed-in user, after spending ``cost`` calls of ``budget``."""
    user = current_user()
    executor = _executors.get(asyncio.get_running_loop())
    if executor is None:
        return await sync_to_async(_handle, thread_sensitive=True)(budget, user, work, cost)
    return await sync_to_async(_handle, thread_sensitive=False, executor=executor)(
        budget, user, work, cost
    )


async def serve(
    *,
    budget: str,
    work: Callable[[str], T],
    present: Callable[[T], CallToolResult],
    task_id: int | None = None,
    subject: tuple[str, int] | None = None,
    cost: int = 1,
) -> CallToolResult:
    """Run ``work`` and ``present`` its value; a rate limit or a domain refusal becomes a tool
    error naming its code and field. A call with a ``client_request_id`` runs once
    (``tasks.mcp.request_keys``)."""
    subject = subject or (("task_id", task_id) if task_id else None)
    request = current_key()
    try:
        if request is not None:
            return await in_database_thread(
                budget,
                lambda owner: once(request, owner, lambda: _answer(work, present, owner, subject)),
                cost,
            )
        value = await in_database_thread(budget, work, cost)
    except RateLimited as exc:
        return tool_error(str(exc), code="rate_limited", retry_after=exc.retry_after)
    except TaskError as exc:
        return task_error(exc, subject)
    except KeyInFlight:
        return in_flight_error()
    except KeyReused:
        return reused_error()
    return present(value)


def _answer(
    work: Callable[[str], T],
    present: Callable[[T], CallToolResult],
    owner: str,
    subject: tuple[str, int] | None,
) -> CallToolResult:
    try:
        value = work(owner)
    except TaskError as exc:
        return task_error(exc, subject)
    return present(value)
