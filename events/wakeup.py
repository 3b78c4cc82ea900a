"""Waking the relay and the consumers early.

Three channels: ``OUTBOX`` (rows were committed to the outbox for the relay to publish: relays
wake), ``PUBLISHED`` (rows were committed to the embedded log: embedded consumers wake) and
``REMINDERS_DUE`` (a reminder was set to fire soon: polling reminder schedulers wake). A commit
that recorded events wakes the outbox's readers of the configured broker (``EVENTS_BROKER``) in
its own process directly and, with a PostgreSQL ``NOTIFY`` sent after the commit,
waiters in every other process, whose ``Listener`` thread turns the notification into a local wake.

Wakes are only hints: a waiter also polls on a timer, so a lost notification (a crash right after
commit, a dropped listener connection) delays work but never loses it. The ``NOTIFY`` is sent after
commit, not inside the writing transaction, because a ``NOTIFY`` in a transaction serialises the
commits of all notifying transactions on one lock.
"""

from __future__ import annotations

import logging
import threading
import time

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections, transaction

from events import conf

logger = logging.getLogger(__name__)

OUTBOX = "events_outbox"
PUBLISHED = "events_published"
REMINDERS_DUE = "reminders_due"
CHANNELS = (OUTBOX, PUBLISHED, REMINDERS_DUE)

_lock = threading.Lock()
_waiters: dict[str, set[threading.Event]] = {channel: set() for channel in CHANNELS}


def waiter(channel: str) -> threading.Event:
    """An event that is set whenever ``channel`` is woken; clear it before each check."""
    event = threading.Event()
    with _lock:
        _waiters[channel].add(event)
    return event


def forget(channel: str, event: threading.Event) -> None:
    with _lock:
        _waiters[channel].discard(event)


def wake_local(channel: str) -> None:
    with _lock:
        events = list(_waiters[channel])
    for event in events:
        event.set()


def announce(channel: str, *, using: str = DEFAULT_DB_ALIAS) -> None:
    """Wake ``channel`` here and in other processes. Call outside a transaction (after commit)."""
    wake_local(channel)
    if not conf.get("EVENTS_NOTIFY"):
        return
    try:
        with connections[using].cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, '')", [channel])
    except Exception:  # a missed wake only costs one poll interval
        logger.warning("could not send NOTIFY on %s", channel, exc_info=True)


def _announce_recorded() -> None:
    # Embedded consumers read the outbox itself; with a broker, the relay reads it first.
    announce(OUTBOX if conf.relay_publishes() else PUBLISHED)


def wake_readers_after_commit(using: str = DEFAULT_DB_ALIAS) -> None:
    """Register (once per transaction) a wake of the outbox's readers for when the transaction
    commits."""
    connection = connections[using]
    # Entries are (savepoint ids, function, robust); django-stubs 5.2 still types two items.
    if any(entry[1] is _announce_recorded for entry in connection.run_on_commit):
        return
    transaction.on_commit(_announce_recorded, using=using)


class Listener:
    """A thread that LISTENs on every channel and wakes this process's waiters."""

    def __init__(self, *, using: str = DEFAULT_DB_ALIAS):
        self._using = using
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()

    def start(self) -> Listener:
        self._thread = threading.Thread(target=self._run, name="events-listener", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _connect(self) -> psycopg.Connection:
        params = connections[self._using].get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        params.pop("prepare_threshold", None)
        conn = psycopg.connect(**params, autocommit=True)
        for channel in CHANNELS:
            conn.execute(f"LISTEN {channel}")
        return conn

    def _run(self) -> None:
        delay = 0.2
        while not self._stop.is_set():
            try:
                conn = self._connect()
            except Exception:
                logger.warning("events listener cannot connect; retrying in %.1fs", delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 10.0)
                continue
            delay = 0.2
            # Anything may have happened while we were not listening.
            for channel in CHANNELS:
                wake_local(channel)
            self.connected.set()
            try:
                with conn:
                    while not self._stop.is_set():
                        for notify in conn.notifies(timeout=0.5):
                            if notify.channel in _waiters:
                                wake_local(notify.channel)
            except Exception:
                if not self._stop.is_set():
                    logger.warning("events listener lost its connection", exc_info=True)
                    time.sleep(0.1)
            finally:
                self.connected.clear()


_listener: Listener | None = None
_listener_users = 0


def acquire_listener() -> None:
    """Start this process's listener if it is not running (reference counted)."""
    global _listener, _listener_users
    with _lock:
        _listener_users += 1
        if _listener is None:
            _listener = Listener().start()


def release_listener() -> None:
    global _listener, _listener_users
    with _lock:
        _listener_users -= 1
        listener = _listener if _listener_users <= 0 else None
        if listener is not None:
            _listener = None
            _listener_users = 0
    if listener is not None:
        listener.stop()
