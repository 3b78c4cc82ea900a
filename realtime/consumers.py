"""``/ws/tasks/``: one socket, one user, that user's task and notification events in order.

Life of a socket:
1. handshake: Host and Origin checks, token (subprotocol ``bearer, <jwt>`` or ``?token=``),
   optional ``?last_sequence=N``, a free slot (per user and per process); failures are accepted
   and closed at once with a close code from ``realtime.frames.CloseCode``, before any data
   frame. Refused handshakes count against the client address's ``anonymous`` rate limit;
2. join the user's group (``realtime.groups``), then read the newest sequence and, when
   resuming, what the user missed from the event log; send ``hello``, the missed events (or
   ``resync``), then whatever arrived live meanwhile that is newer;
3. live: every event from the group is queued for the socket's writer. The queue is bounded, so a
   client that does not read cannot hold anything up: its socket is closed with 4409 and it
   resumes from its last sequence when it reconnects.

Frames from the client are small JSON objects (``ping``, ``pong``, ``resume``); anything else gets
an ``error`` frame, and repeated abuse closes with 4429. Nothing a client sends can raise out of
the consumer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from core.auth import AuthError, TokenUser, verify_token_async
from core.hosts import allowed_host
from realtime import delivery, frames, handshake, replay
from realtime.frames import CloseCode
from realtime.groups import group_for_user
from realtime.metrics import WEBSOCKET_CONNECTIONS, WEBSOCKET_FANOUT
from tasks.api.throttles import ANONYMOUS, client_address, spend_async

logger = logging.getLogger(__name__)

MAX_CLIENT_FRAME = 4096
MAX_INVALID_FRAMES = 5
MESSAGE_WINDOW_SECONDS = 10.0
MAX_MESSAGES_PER_WINDOW = 100
# Channel-layer group memberships expire (one day by default); sockets re-join well before.
GROUP_REFRESH_SECONDS = 3600.0
# Group joins and leaves in flight at once per process: a server restart closes every socket at
# the same moment, and channels-redis would otherwise ask its pool for a connection per socket
# (redis-py refuses past ``max_connections`` rather than waiting).
MAX_GROUP_OPERATIONS = 32

_group_slots: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}


class _Slots:
    """The open sockets of this process (its one event loop serves them all), per user.

    Per process, not shared between processes: ``docs/realtime.md`` says what that means."""

    def __init__(self):
        self.total = 0
        self.per_user: dict[str, int] = {}

    def process_full(self) -> bool:
        return self.total >= settings.REALTIME_MAX_SOCKETS_PER_PROCESS

    def take(self, user_id: str) -> tuple[CloseCode, str] | None:
        """Hold a slot for ``user_id``; when there is none, the close code and reason."""
        if self.process_full():
            return CloseCode.TRY_AGAIN_LATER, "try_again_later"
        if self.per_user.get(user_id, 0) >= settings.REALTIME_MAX_SOCKETS_PER_USER:
            return CloseCode.POLICY, "too_many_sockets"
        self.per_user[user_id] = self.per_user.get(user_id, 0) + 1
        self.total += 1
        return None

    def release(self, user_id: str) -> None:
        left = self.per_user.get(user_id, 0) - 1
        if left > 0:
            self.per_user[user_id] = left
        else:
            self.per_user.pop(user_id, None)
        self.total = max(0, self.total - 1)


_slot_registry: dict[asyncio.AbstractEventLoop, _Slots] = {}


def _slots() -> _Slots:
    return delivery.per_loop(_slot_registry, asyncio.get_running_loop(), _Slots)


class _Watch:
    """A safety net for messages lost between the fan-out and the sockets (the fan-out process
    died right after its commit; the layer dropped a message) when no later event of the user
    comes to reveal the gap. Per process, every ping interval, one query reads the newest
    sequence of every user with a socket here; a socket still behind a sequence it was already
    behind one interval earlier fills the gap from the log."""

    def __init__(self):
        self.sockets: set[TaskUpdatesConsumer] = set()
        self.task: asyncio.Task | None = None

    def add(self, socket: TaskUpdatesConsumer) -> None:
        self.sockets.add(socket)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())

    def discard(self, socket: TaskUpdatesConsumer) -> None:
        self.sockets.discard(socket)
        if not self.sockets and self.task is not None:
            self.task.cancel()
            self.task = None

    async def _run(self) -> None:
        while self.sockets:
            await asyncio.sleep(settings.REALTIME_PING_SECONDS)
            users = {socket.user.id for socket in self.sockets if socket.user is not None}
            if not users:
                continue
            try:
                latest = await database_sync_to_async(replay.latest_sequences)(users)
            except Exception:
                logger.warning("checking sockets for missed events failed", exc_info=True)
                continue
            for socket in list(self.sockets):
                socket._check_behind(latest.get(socket.user.id, 0))


_watches: dict[asyncio.AbstractEventLoop, _Watch] = {}


def _watch() -> _Watch:
    return delivery.per_loop(_watches, asyncio.get_running_loop(), _Watch)


def _group_slot() -> asyncio.Semaphore:
    return delivery.per_loop(
        _group_slots, asyncio.get_running_loop(), lambda: asyncio.Semaphore(MAX_GROUP_OPERATIONS)
    )


class TaskUpdatesConsumer(AsyncWebsocketConsumer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.user: TokenUser | None = None
        self.group: str | None = None
        self._queue: asyncio.Queue[tuple[str, float | None]] = asyncio.Queue()
        self._queue_limit = settings.REALTIME_SEND_QUEUE
        self._cursor = 0  # newest event sequence queued for (or known to) this client
        self._holding: list[dict] | None = []  # live events held while catching up
        self._live_events_sent = False
        self._resumed = False
        self._closing = False
        self._tasks: list[asyncio.Task] = []
        self._invalid_frames = 0
        self._window_started = time.monotonic()
        self._window_count = 0
        self._expiry_handle: asyncio.TimerHandle | None = None
        self._behind: int | None = None  # a newer sequence the last watch saw and we lacked
        self._slot_user: str | None = None  # whose slot this socket holds, until it ends

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            # However the socket ended (close, abrupt disconnect, cancelled), its slot is free.
            self._release_slot()

    def _release_slot(self) -> None:
        if self._slot_user is not None:
            user_id, self._slot_user = self._slot_user, None
            _slots().release(user_id)

    # --- dispatch ------------------------------------------------------------------------
    async def dispatch(self, message):
        # Channels closes stale DB connections (a thread hop) before every message; only the
        # handshake and ``resume`` touch the database, and they go through
        # ``database_sync_to_async``, which does that itself.
        handler = getattr(self, message["type"].replace(".", "_"), None)
        if handler is None:
            logger.warning("unexpected message type %r on a task socket", message["type"])
            return
        await handler(message)

    # --- handshake -----------------------------------------------------------------------
    async def websocket_connect(self, message):
        delivery.bind_loop()
        try:
            shake = handshake.parse(self.scope)
        except handshake.HandshakeError as exc:
            subprotocol = (
                handshake.BEARER_SUBPROTOCOL
                if handshake.BEARER_SUBPROTOCOL in (self.scope.get("subprotocols") or ())
                else None
            )
            await self._refuse(subprotocol, CloseCode.BAD_REQUEST, "bad_request")
            logger.info("websocket refused: %s", exc.reason)
            return
        if allowed_host(self.scope) is None:
            await self._refuse(shake.subprotocol, CloseCode.BAD_REQUEST, "disallowed_host")
            return
        if not handshake.origin_allowed(self.scope):
            await self._refuse(shake.subprotocol, CloseCode.FORBIDDEN, "origin_not_allowed")
            return
        if _slots().process_full():
            await self._refuse(
                shake.subprotocol, CloseCode.TRY_AGAIN_LATER, "try_again_later", counted=False
            )
            return
        if not shake.token:
            await self._refuse(shake.subprotocol, CloseCode.UNAUTHORIZED, "missing_token")
            return
        try:
            user = await verify_token_async(shake.token)
        except AuthError as exc:
            code = (
                CloseCode.TOKEN_EXPIRED if exc.code == "token_expired" else CloseCode.UNAUTHORIZED
            )
            await self._refuse(shake.subprotocol, code, exc.code)
            return
        full = _slots().take(user.id)
        if full is not None:
            await self._refuse(shake.subprotocol, *full, counted=False)
            return
        self._slot_user = user.id

        self.user = user
        await self.accept(subprotocol=shake.subprotocol)
        group = group_for_user(user.id)
        async with _group_slot():
            await self.channel_layer.group_add(group, self.channel_name)
        self.group = group
        WEBSOCKET_CONNECTIONS.inc()
        self._tasks.append(asyncio.create_task(self._writer()))
        self._tasks.append(asyncio.create_task(self._heartbeat()))
        self._schedule_expiry(user)
        self._resumed = shake.last_sequence is not None
        await self._catch_up(shake.last_sequence, first=True)
        _watch().add(self)

    async def _refuse(
        self, subprotocol: str | None, code: CloseCode, reason: str, *, counted: bool = True
    ) -> None:
        """Accept, then close with ``code``: a close before accepting reaches browsers as a
        failed handshake with no code at all. A refusal ``counted`` against the client's address
        becomes 4429 once that address has spent its budget."""
        self._closing = True
        if counted and await spend_async(ANONYMOUS, client_address(self.scope)) is not None:
            code, reason = CloseCode.POLICY, "rate_limited"
        await self.accept(subprotocol=subprotocol)
        await self.close(code=int(code), reason=reason)

    def _schedule_expiry(self, user: TokenUser) -> None:
        expires = user.claims.get("exp")
        if not isinstance(expires, int | float):
            return
        delay = max(0.0, expires + settings.JWT_LEEWAY_SECONDS - time.time())
        loop = asyncio.get_running_loop()
        handle = loop.call_later(
            delay,
            lambda: self._spawn(self._shutdown(CloseCode.TOKEN_EXPIRED, "token_expired")),
        )
        self._expiry_handle = handle

    # --- catching up ---------------------------------------------------------------------
    async def _catch_up(self, after: int | None, *, first: bool) -> None:
        """Send ``hello`` (first time) and what the client missed after ``after``, then release
        live events held meanwhile."""
        plan = await self._plan(after)
        if plan is None:
            return
        if first:
            self._put(
                frames.dumps(
                    frames.hello_frame(
                        user_id=self.user.id,
                        last_sequence=plan.latest,
                        ping_interval=settings.REALTIME_PING_SECONDS,
                    )
                )
            )
        self._apply(plan)

    async def _fill_gap(self, after: int, upto: int) -> None:
        """A live event skipped sequence numbers (a message the layer lost, or a fan-out that
        died after its commit): send the missing ones from the log before it."""
        plan = await self._plan(after, upto=upto)
        if plan is not None:
            self._apply(plan)

    async def _plan(self, after: int | None, *, upto: int | None = None):
        try:
            plan = await database_sync_to_async(replay.plan)(self.user.id, after, upto=upto)
        except Exception:
            logger.exception("reading the event log for a socket failed")
            await self._shutdown(1011, "server_error")
            return None
        return None if self._closing else plan

    def _apply(self, plan) -> None:
        if plan.resync_reason:
            self._put(
                frames.dumps(
                    frames.resync_frame(reason=plan.resync_reason, last_sequence=plan.latest)
                )
            )
        for _sequence, text in plan.frames:
            self._put(text)
        # Replayed frames may exceed the live bound once; the bound applies to what follows.
        self._queue_limit = max(
            self._queue_limit, self._queue.qsize() + settings.REALTIME_SEND_QUEUE
        )
        self._cursor = max(self._cursor, plan.latest)
        held, self._holding = self._holding or [], None
        for message in held:
            self._release(message)

    # --- live events ---------------------------------------------------------------------
    async def realtime_event(self, message: dict) -> None:
        if self._closing or self.user is None:
            return
        if message.get("user_id") != self.user.id:
            # The group is derived from the user id, so this cannot happen; if it ever does,
            # the frame is not this user's to see.
            logger.error("dropped an event addressed to another user on a task socket")
            return
        try:
            self._release(message)
        except Exception:  # a malformed layer message must not take the socket down
            logger.exception("could not queue an event for a socket")

    def _release(self, message: dict) -> None:
        if self._holding is not None:
            if len(self._holding) >= settings.REALTIME_SEND_QUEUE:
                self._spawn(self._shutdown(CloseCode.TOO_SLOW, "too_slow"))
                return
            self._holding.append(message)
            return
        sequence = message["sequence"]
        if sequence <= self._cursor:
            return  # already replayed, or a redelivery
        if sequence > self._cursor + 1:
            self._holding = [message]
            self._spawn(self._fill_gap(self._cursor, sequence - 1))
            return
        if self._queue.qsize() >= self._queue_limit:
            self._spawn(self._shutdown(CloseCode.TOO_SLOW, "too_slow"))
            return
        self._cursor = sequence
        self._live_events_sent = True
        self._queue.put_nowait((message["text"], message.get("ts")))

    def _check_behind(self, latest: int) -> None:
        """Called by the watch with the user's newest sequence."""
        if self._closing or self._holding is not None or latest <= self._cursor:
            self._behind = None
            return
        if self._behind is not None and self._cursor < self._behind:
            # Still missing what was committed a whole interval ago: it is not on its way.
            upto, self._behind = self._behind, latest
            self._holding = []
            self._spawn(self._fill_gap(self._cursor, upto))
            return
        self._behind = latest

    def _put(self, text: str) -> None:
        self._queue.put_nowait((text, None))

    async def _writer(self) -> None:
        send = self.send
        queue = self._queue
        try:
            while True:
                text, committed_at = await queue.get()
                await send(text_data=text)
                if committed_at is not None:
                    WEBSOCKET_FANOUT.observe(max(0.0, time.time() - committed_at))
        except asyncio.CancelledError:
            raise
        except Exception:  # the client went away mid-send; the disconnect follows
            logger.debug("socket writer stopped", exc_info=True)

    async def _heartbeat(self) -> None:
        interval = settings.REALTIME_PING_SECONDS
        refresh_at = time.monotonic() + GROUP_REFRESH_SECONDS
        while True:
            await asyncio.sleep(interval)
            if self._queue.qsize() < self._queue_limit:
                self._put(frames.PING)
            if time.monotonic() >= refresh_at:
                async with _group_slot():
                    await self.channel_layer.group_add(self.group, self.channel_name)
                refresh_at = time.monotonic() + GROUP_REFRESH_SECONDS

    # --- frames from the client ----------------------------------------------------------
    async def websocket_receive(self, message):
        if self._closing or self.user is None:
            return
        try:
            await self._receive(message)
        except Exception:
            logger.exception("handling a client frame failed")
            self._reply(frames.error_frame(code="server_error", message="Could not handle it."))

    async def _receive(self, message) -> None:
        now = time.monotonic()
        if now - self._window_started > MESSAGE_WINDOW_SECONDS:
            self._window_started, self._window_count = now, 0
        self._window_count += 1
        if self._window_count > MAX_MESSAGES_PER_WINDOW:
            await self._shutdown(CloseCode.POLICY, "too_many_messages")
            return
        text = message.get("text")
        if text is None:
            await self._invalid("binary_frame", "Frames are JSON text.")
            return
        if len(text) > MAX_CLIENT_FRAME:
            await self._invalid("frame_too_large", f"Frames are at most {MAX_CLIENT_FRAME} bytes.")
            return
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: nested too deep
            await self._invalid("invalid_json", "Frames are JSON objects.")
            return
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "ping":
            self._reply_text(frames.PONG)
        elif kind == "pong":
            pass
        elif kind == "resume":
            await self._resume(data)
        else:
            await self._invalid("unknown_type", "Known frame types: ping, pong, resume.")

    async def _resume(self, data: dict) -> None:
        try:
            after = handshake.parse_sequence(data.get("last_sequence"))
        except handshake.HandshakeError as exc:
            await self._invalid("invalid_sequence", exc.reason)
            return
        if self._resumed:
            await self._invalid("already_resumed", "Resume once, as the first message.")
            return
        self._resumed = True
        if self._live_events_sent or self._holding is not None:
            # Newer events already went out; replaying older ones after them would break the
            # order the client relies on. Start over from a fresh state instead.
            self._reply(frames.resync_frame(reason="resume_too_late", last_sequence=self._cursor))
            return
        self._holding = []
        await self._catch_up(after, first=False)

    async def _invalid(self, code: str, message: str) -> None:
        self._invalid_frames += 1
        if self._invalid_frames > MAX_INVALID_FRAMES:
            await self._shutdown(CloseCode.POLICY, "too_many_invalid_frames")
            return
        self._reply(frames.error_frame(code=code, message=message))

    def _reply(self, frame: dict) -> None:
        self._reply_text(frames.dumps(frame))

    def _reply_text(self, text: str) -> None:
        if self._queue.qsize() >= self._queue_limit:
            self._spawn(self._shutdown(CloseCode.TOO_SLOW, "too_slow"))
            return
        self._put(text)

    # --- closing -------------------------------------------------------------------------
    def _spawn(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.append(task)

    async def _shutdown(self, code: int, reason: str) -> None:
        """Leave the group, stop writing and close. The close itself may wait for a client that
        does not read; it runs in its own task so nothing else waits with it."""
        if self._closing:
            return
        self._stop()
        await self._leave_group()
        if code == CloseCode.TOO_SLOW:
            logger.info("closing a socket that does not keep up", extra={"user_id": self.user.id})
        try:
            await self.close(code=int(code), reason=reason)
        except Exception:
            logger.debug("closing a socket failed", exc_info=True)

    async def _leave_group(self) -> None:
        _watch().discard(self)
        if self.group is not None:
            group, self.group = self.group, None
            try:
                async with _group_slot():
                    await self.channel_layer.group_discard(group, self.channel_name)
            except Exception:  # the membership expires by itself; nothing else to undo
                logger.warning("leaving a channel-layer group failed", exc_info=True)
            WEBSOCKET_CONNECTIONS.dec()

    def _stop(self) -> None:
        """Mark the socket closing and stop its timer and tasks (except the calling one)."""
        self._closing = True
        if self._expiry_handle is not None:
            self._expiry_handle.cancel()
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()

    async def websocket_disconnect(self, message):
        self._stop()
        await self._leave_group()
        raise StopConsumer()


class NotFoundConsumer(AsyncWebsocketConsumer):
    """Any other WebSocket path: accepted and closed with 4404."""

    async def connect(self):
        await self.accept()
        await self.close(code=int(CloseCode.NOT_FOUND), reason="not_found")
