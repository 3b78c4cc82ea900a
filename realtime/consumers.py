"""``/ws/tasks/``: one socket, one user, that user's task and notification events in order.

A socket is refused (accepted, then closed with a ``realtime.frames.CloseCode``) or it joins the
user's group, sends ``hello`` and what the client missed from the event log, then live events
through a bounded queue. ``docs/realtime.md`` is the protocol; ``docs/decisions/realtime-*.md``
say why it is built this way. Nothing a client sends can raise out of the consumer.
"""

from __future__ import annotations

import asyncio
import logging
import time

from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from core.auth import AuthError, TokenUser, verify_token_async
from core.hosts import allowed_host
from core.parsers import InvalidJSON, load_json
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
# A restart closes every socket at once; past the Redis pool's size joins would fail, not wait.
MAX_GROUP_OPERATIONS = 32

_group_operation_limits: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}


class _SocketSlots:
    """The open sockets of this process (its one event loop serves them all), per user; not
    shared between processes (``docs/realtime.md``)."""

    def __init__(self):
        self.total = 0
        self.per_user: dict[str, int] = {}

    def process_full(self) -> bool:
        return self.total >= settings.REALTIME_MAX_SOCKETS_PER_PROCESS

    def reserve(self, user_id: str) -> tuple[CloseCode, str] | None:
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


_socket_slots_by_loop: dict[asyncio.AbstractEventLoop, _SocketSlots] = {}


def _socket_slots() -> _SocketSlots:
    return delivery.per_loop(_socket_slots_by_loop, asyncio.get_running_loop(), _SocketSlots)


class _MissedEventCheck:
    """Every ping interval, one query for the newest sequence of each user with a socket here;
    a socket still behind what it lacked one interval earlier fills the gap from the log
    (``docs/decisions/realtime-missed-event-check.md``)."""

    def __init__(self):
        self.sockets: set[TaskUpdatesConsumer] = set()
        self.task: asyncio.Task | None = None

    def watch(self, socket: TaskUpdatesConsumer) -> None:
        self.sockets.add(socket)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._check_every_interval())

    def forget(self, socket: TaskUpdatesConsumer) -> None:
        self.sockets.discard(socket)
        if not self.sockets and self.task is not None:
            self.task.cancel()
            self.task = None

    async def _check_every_interval(self) -> None:
        while self.sockets:
            await asyncio.sleep(settings.REALTIME_PING_SECONDS)
            users = {socket.user.id for socket in self.sockets if socket.user is not None}
            if not users:
                continue
            try:
                newest = await database_sync_to_async(replay.latest_sequences)(users)
            except Exception:
                logger.warning("checking sockets for missed events failed", exc_info=True)
                continue
            for socket in list(self.sockets):
                socket._catch_up_if_still_behind(newest.get(socket.user.id, 0))


_missed_event_checks: dict[asyncio.AbstractEventLoop, _MissedEventCheck] = {}


def _missed_event_check() -> _MissedEventCheck:
    return delivery.per_loop(_missed_event_checks, asyncio.get_running_loop(), _MissedEventCheck)


def _group_operation() -> asyncio.Semaphore:
    """A turn among this process's group joins and leaves (at most MAX_GROUP_OPERATIONS)."""
    return delivery.per_loop(
        _group_operation_limits,
        asyncio.get_running_loop(),
        lambda: asyncio.Semaphore(MAX_GROUP_OPERATIONS),
    )


class TaskUpdatesConsumer(AsyncWebsocketConsumer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.user: TokenUser | None = None
        self.group: str | None = None
        # Frames to write, each with the commit time of its event (None: not an event).
        self._queue: asyncio.Queue[tuple[str, float | None]] = asyncio.Queue()
        self._queue_limit = settings.REALTIME_SEND_QUEUE
        self._last_sequence = 0  # newest event sequence queued for (or known to) this client
        self._held_live_events: list[dict] | None = []  # None: not catching up
        self._live_events_sent = False
        self._resumed = False
        self._closing = False
        self._background_tasks: list[asyncio.Task] = []
        self._invalid_frames = 0
        self._window_started = time.monotonic()
        self._window_count = 0
        self._expiry_handle: asyncio.TimerHandle | None = None
        # The user's newest sequence at the last missed-event check, when this socket lacked it.
        self._lacking_at_last_check: int | None = None
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
            _socket_slots().release(user_id)

    # --- dispatch ------------------------------------------------------------------------
    async def dispatch(self, message):
        # Skips Channels' per-message close_old_connections thread hop: database_sync_to_async
        # does it for the only database work (handshake and resume).
        handler = getattr(self, message["type"].replace(".", "_"), None)
        if handler is None:
            logger.warning("unexpected message type %r on a task socket", message["type"])
            return
        await handler(message)

    # --- handshake -----------------------------------------------------------------------
    async def websocket_connect(self, message):
        delivery.bind_loop()
        try:
            request = handshake.parse(self.scope)
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
            await self._refuse(request.subprotocol, CloseCode.BAD_REQUEST, "disallowed_host")
            return
        if not handshake.origin_allowed(self.scope):
            await self._refuse(request.subprotocol, CloseCode.FORBIDDEN, "origin_not_allowed")
            return
        if _socket_slots().process_full():
            await self._refuse(
                request.subprotocol, CloseCode.TRY_AGAIN_LATER, "try_again_later", counted=False
            )
            return
        if not request.token:
            await self._refuse(request.subprotocol, CloseCode.UNAUTHORIZED, "missing_token")
            return
        try:
            user = await verify_token_async(request.token)
        except AuthError as exc:
            code = (
                CloseCode.TOKEN_EXPIRED if exc.code == "token_expired" else CloseCode.UNAUTHORIZED
            )
            await self._refuse(request.subprotocol, code, exc.code)
            return
        if (reason := handshake.scope_refusal(user)) is not None:
            await self._refuse(request.subprotocol, CloseCode.FORBIDDEN, reason)
            return
        refusal = _socket_slots().reserve(user.id)
        if refusal is not None:
            await self._refuse(request.subprotocol, *refusal, counted=False)
            return
        self._slot_user = user.id

        self.user = user
        await self.accept(subprotocol=request.subprotocol)
        group = group_for_user(user.id)
        async with _group_operation():
            await self.channel_layer.group_add(group, self.channel_name)
        self.group = group
        WEBSOCKET_CONNECTIONS.inc()
        self._background_tasks.append(asyncio.create_task(self._write_frames()))
        self._background_tasks.append(asyncio.create_task(self._heartbeat()))
        self._schedule_expiry(user)
        self._resumed = request.last_sequence is not None
        await self._catch_up(request.last_sequence, first=True)
        _missed_event_check().watch(self)

    async def _refuse(
        self, subprotocol: str | None, code: CloseCode, reason: str, *, counted: bool = True
    ) -> None:
        """Accept, then close with ``code`` (a browser sees no code when the handshake itself
        fails); a refusal ``counted`` against the address is 4429 once its budget is spent."""
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
            lambda: self._start_task(self._shutdown(CloseCode.TOKEN_EXPIRED, "token_expired")),
        )
        self._expiry_handle = handle

    # --- catching up ---------------------------------------------------------------------
    async def _catch_up(self, after: int | None, *, first: bool) -> None:
        """Send ``hello`` (first time) and what the client missed after ``after``, then release
        live events held meanwhile."""
        missed = await self._read_missed_events(after)
        if missed is None:
            return
        if first:
            self._enqueue(
                frames.dumps(
                    frames.hello_frame(
                        user_id=self.user.id,
                        last_sequence=missed.latest,
                        ping_interval=settings.REALTIME_PING_SECONDS,
                    )
                )
            )
        self._send_missed_events(missed)

    async def _fill_gap(self, after: int, through: int) -> None:
        """Send the events after ``after`` up to ``through`` from the log: a live event skipped
        them (the layer lost a message, or a fan-out died after its commit)."""
        missed = await self._read_missed_events(after, through=through)
        if missed is not None:
            self._send_missed_events(missed)

    async def _read_missed_events(
        self, after: int | None, *, through: int | None = None
    ) -> replay.ResumePlan | None:
        """What to replay after ``after``; None when the socket closed meanwhile."""
        try:
            missed = await database_sync_to_async(replay.plan)(self.user.id, after, upto=through)
        except Exception:
            logger.exception("reading the event log for a socket failed")
            await self._shutdown(1011, "server_error")
            return None
        return None if self._closing else missed

    def _send_missed_events(self, missed: replay.ResumePlan) -> None:
        """Queue the replay (or ``resync``), then the live events held while reading it."""
        if missed.resync_reason:
            self._enqueue(
                frames.dumps(
                    frames.resync_frame(reason=missed.resync_reason, last_sequence=missed.latest)
                )
            )
        for _sequence, text in missed.frames:
            self._enqueue(text)
        # Replayed frames may exceed the live bound once; the bound applies to what follows.
        self._queue_limit = max(
            self._queue_limit, self._queue.qsize() + settings.REALTIME_SEND_QUEUE
        )
        self._last_sequence = max(self._last_sequence, missed.latest)
        held, self._held_live_events = self._held_live_events or [], None
        for message in held:
            self._deliver_live(message)

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
            self._deliver_live(message)
        except Exception:  # a malformed layer message must not take the socket down
            logger.exception("could not queue an event for a socket")

    def _deliver_live(self, message: dict) -> None:
        """Queue a live event in sequence order: hold it while catching up, drop what was
        already sent, and fill a gap before it from the log."""
        if self._held_live_events is not None:
            if len(self._held_live_events) >= settings.REALTIME_SEND_QUEUE:
                self._start_task(self._shutdown(CloseCode.TOO_SLOW, "too_slow"))
                return
            self._held_live_events.append(message)
            return
        sequence = message["sequence"]
        if sequence <= self._last_sequence:
            return  # already replayed, or a redelivery
        if sequence > self._last_sequence + 1:
            self._held_live_events = [message]
            self._start_task(self._fill_gap(self._last_sequence, sequence - 1))
            return
        if self._queue.qsize() >= self._queue_limit:
            self._start_task(self._shutdown(CloseCode.TOO_SLOW, "too_slow"))
            return
        self._last_sequence = sequence
        self._live_events_sent = True
        self._queue.put_nowait((message["text"], message.get("ts")))

    def _catch_up_if_still_behind(self, newest: int) -> None:
        """From the missed-event check, with the user's newest sequence."""
        if self._closing or self._held_live_events is not None or newest <= self._last_sequence:
            self._lacking_at_last_check = None
            return
        lacking = self._lacking_at_last_check
        if lacking is not None and self._last_sequence < lacking:
            # Still missing what was committed a whole interval ago: it is not on its way.
            self._lacking_at_last_check = newest
            self._held_live_events = []
            self._start_task(self._fill_gap(self._last_sequence, lacking))
            return
        self._lacking_at_last_check = newest

    def _enqueue(self, text: str) -> None:
        self._queue.put_nowait((text, None))

    async def _write_frames(self) -> None:
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
                self._enqueue(frames.PING)
            if time.monotonic() >= refresh_at:
                async with _group_operation():
                    await self.channel_layer.group_add(self.group, self.channel_name)
                refresh_at = time.monotonic() + GROUP_REFRESH_SECONDS

    # --- frames from the client ----------------------------------------------------------
    async def websocket_receive(self, message):
        if self._closing or self.user is None:
            return
        try:
            await self._handle_client_frame(message)
        except Exception:
            logger.exception("handling a client frame failed")
            self._reply(frames.error_frame(code="server_error", message="Could not handle it."))

    async def _handle_client_frame(self, message) -> None:
        now = time.monotonic()
        if now - self._window_started > MESSAGE_WINDOW_SECONDS:
            self._window_started, self._window_count = now, 0
        self._window_count += 1
        if self._window_count > MAX_MESSAGES_PER_WINDOW:
            await self._shutdown(CloseCode.POLICY, "too_many_messages")
            return
        text = message.get("text")
        if text is None:
            await self._refuse_frame("binary_frame", "Frames are JSON text.")
            return
        if len(text) > MAX_CLIENT_FRAME:
            await self._refuse_frame(
                "frame_too_large", f"Frames are at most {MAX_CLIENT_FRAME} bytes."
            )
            return
        try:
            data = load_json(text)
        except InvalidJSON:
            await self._refuse_frame("invalid_json", "Frames are JSON objects.")
            return
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "ping":
            self._reply_text(frames.PONG)
        elif kind == "pong":
            pass
        elif kind == "resume":
            await self._resume(data)
        else:
            await self._refuse_frame("unknown_type", "Known frame types: ping, pong, resume.")

    async def _resume(self, data: dict) -> None:
        try:
            after = handshake.parse_sequence(data.get("last_sequence"))
        except handshake.HandshakeError as exc:
            await self._refuse_frame("invalid_sequence", exc.reason)
            return
        if self._resumed:
            await self._refuse_frame("already_resumed", "Resume once, as the first message.")
            return
        self._resumed = True
        if self._live_events_sent or self._held_live_events is not None:
            # Older events replayed after newer ones would break the client's order.
            self._reply(
                frames.resync_frame(reason="resume_too_late", last_sequence=self._last_sequence)
            )
            return
        self._held_live_events = []
        await self._catch_up(after, first=False)

    async def _refuse_frame(self, code: str, message: str) -> None:
        self._invalid_frames += 1
        if self._invalid_frames > MAX_INVALID_FRAMES:
            await self._shutdown(CloseCode.POLICY, "too_many_invalid_frames")
            return
        self._reply(frames.error_frame(code=code, message=message))

    def _reply(self, frame: dict) -> None:
        self._reply_text(frames.dumps(frame))

    def _reply_text(self, text: str) -> None:
        if self._queue.qsize() >= self._queue_limit:
            self._start_task(self._shutdown(CloseCode.TOO_SLOW, "too_slow"))
            return
        self._enqueue(text)

    # --- closing -------------------------------------------------------------------------
    def _start_task(self, coroutine) -> None:
        self._background_tasks.append(asyncio.create_task(coroutine))

    async def _shutdown(self, code: int, reason: str) -> None:
        """Leave the group, stop writing and close (callers that must not wait for a client that
        does not read run it as its own task)."""
        if self._closing:
            return
        self._stop_tasks()
        await self._leave_group()
        if code == CloseCode.TOO_SLOW:
            logger.info("closing a socket that does not keep up", extra={"user_id": self.user.id})
        try:
            await self.close(code=int(code), reason=reason)
        except Exception:
            logger.debug("closing a socket failed", exc_info=True)

    async def _leave_group(self) -> None:
        _missed_event_check().forget(self)
        if self.group is not None:
            group, self.group = self.group, None
            try:
                async with _group_operation():
                    await self.channel_layer.group_discard(group, self.channel_name)
            except Exception:  # the membership expires by itself; nothing else to undo
                logger.warning("leaving a channel-layer group failed", exc_info=True)
            WEBSOCKET_CONNECTIONS.dec()

    def _stop_tasks(self) -> None:
        """Mark the socket closing and stop its timer and tasks (except the calling one)."""
        self._closing = True
        if self._expiry_handle is not None:
            self._expiry_handle.cancel()
        current = asyncio.current_task()
        for task in self._background_tasks:
            if task is not current:
                task.cancel()

    async def websocket_disconnect(self, message):
        self._stop_tasks()
        await self._leave_group()
        raise StopConsumer()


class NotFoundConsumer(AsyncWebsocketConsumer):
    """Any other WebSocket path: accepted and closed with 4404."""

    async def connect(self):
        await self.accept()
        await self.close(code=int(CloseCode.NOT_FOUND), reason="not_found")
