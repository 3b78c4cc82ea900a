"""Getting messages from worker threads onto the channel layer, in order, without waiting.

The fan-out handler is synchronous and runs in a worker thread (the in-process workers of the
embedded mode, or ``manage.py run_consumer realtime``). ``InMemoryChannelLayer`` keeps plain
``asyncio.Queue`` objects that belong to the server's event loop, so its ``group_send`` must run
on that loop: the lifespan (and every socket that connects) records the loop here.

Worker threads hand batches to a per-loop ``Sender``: a thread-safe queue drained by one task on
the loop, so messages leave in the order they were handed over (one user's sequence stays in
order) and the worker never waits for a busy loop; a burst costs one wake-up of the loop.

In a process without a server loop (a ``run_consumer`` process) the layer must be a network one
(channels-redis): messages go through one private loop in a daemon thread, which keeps one
connection pool. With the in-memory layer and no server loop in this process there is no socket
that could receive the message, and nothing is sent.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
import time
from collections import deque
from contextlib import asynccontextmanager

from channels.layers import InMemoryChannelLayer, get_channel_layer

logger = logging.getLogger(__name__)

_server_loop: asyncio.AbstractEventLoop | None = None
_private_loop: asyncio.AbstractEventLoop | None = None
_private_lock = threading.Lock()


def bind_loop(loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Record the loop the sockets of this process run on (call it from that loop)."""
    global _server_loop
    _server_loop = loop or asyncio.get_running_loop()


def unbind_loop(loop: asyncio.AbstractEventLoop) -> None:
    global _server_loop
    if _server_loop is loop:
        _server_loop = None


def server_loop() -> asyncio.AbstractEventLoop | None:
    loop = _server_loop
    if loop is None or loop.is_closed() or not loop.is_running():
        return None
    return loop


@asynccontextmanager
async def lifespan():
    """A part of the server's lifespan (``todo_project/asgi.py``): the server's loop is known
    before any worker starts handing events over."""
    loop = asyncio.get_running_loop()
    bind_loop(loop)
    try:
        yield
    finally:
        unbind_loop(loop)


# A loop that falls this far behind is not delivering; what is dropped is filled in from the
# event log by each socket when the user's next event reaches it.
MAX_PENDING_BATCHES = 10_000


class Sender:
    """Ordered, non-blocking hand-over of ``(group, message)`` batches to one loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self._pending: deque[list[tuple[str, dict]]] = deque()
        self._lock = threading.Lock()
        self._running = False
        self._idle = threading.Event()
        self._idle.set()

    def submit(self, batch: list[tuple[str, dict]]) -> bool:
        with self._lock:
            if len(self._pending) >= MAX_PENDING_BATCHES:
                logger.error("realtime delivery is %d batches behind; dropping", len(self._pending))
                return False
            self._pending.append(batch)
            self._idle.clear()
            if self._running:
                return True
            self._running = True
        try:
            self.loop.call_soon_threadsafe(self._start)
        except RuntimeError:  # the loop closed meanwhile
            with self._lock:
                self._pending.clear()
                self._running = False
                self._idle.set()
            return False
        return True

    def _start(self) -> None:
        self.loop.create_task(self._drain())

    async def _drain(self) -> None:
        layer = get_channel_layer()
        while True:
            with self._lock:
                if not self._pending:
                    self._running = False
                    self._idle.set()
                    return
                batch = self._pending.popleft()
            for group, message in batch:
                try:
                    await layer.group_send(group, message)
                except Exception:
                    logger.exception("realtime group_send failed")

    def wait_idle(self, timeout: float) -> bool:
        return self._idle.wait(timeout)


_senders: dict[asyncio.AbstractEventLoop, Sender] = {}
_senders_lock = threading.Lock()


def per_loop(registry: dict, loop: asyncio.AbstractEventLoop, factory):
    """``registry``'s object for ``loop``, made by ``factory`` the first time. Objects tied to a
    loop cannot be shared between loops (each test runs its own); those of closed loops are
    dropped here."""
    found = registry.get(loop)
    if found is None:
        for stale in [known for known in registry if known.is_closed()]:
            del registry[stale]
        found = registry[loop] = factory()
    return found


def _sender(loop: asyncio.AbstractEventLoop) -> Sender:
    with _senders_lock:
        return per_loop(_senders, loop, lambda: Sender(loop))


def _private() -> asyncio.AbstractEventLoop:
    global _private_loop
    with _private_lock:
        if _private_loop is None or _private_loop.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name="realtime-delivery", daemon=True
            )
            thread.start()
            _private_loop = loop
            atexit.register(flush)
        return _private_loop


def flush(timeout: float = 5.0) -> bool:
    """Wait until every batch handed over so far has been given to the layer."""
    deadline = time.monotonic() + timeout
    with _senders_lock:
        senders = list(_senders.values())
    return all(sender.wait_idle(max(0.0, deadline - time.monotonic())) for sender in senders)


def group_send_many(batch: list[tuple[str, dict]]) -> bool:
    """Hand each ``(group, message)`` over, to be sent in this order. Does not wait. False when
    this process cannot reach any socket (in-memory layer, no server loop here)."""
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("CHANNEL_LAYERS is not configured; realtime delivery needs a layer.")
    loop = server_loop()
    if loop is None:
        if isinstance(layer, InMemoryChannelLayer):
            return False
        loop = _private()
    return _sender(loop).submit(batch)
