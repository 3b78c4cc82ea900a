"""The polling reminder scheduler of the embedded mode (no Dapr).

Each pass takes up to ``batch_size`` due reminders, locks their users and then the reminders
(``SELECT ... FOR UPDATE SKIP LOCKED``), so any number of schedulers (threads, processes,
machines) can run and never fire the same reminder twice, and fires them in that one transaction
(``services.reminders_fire_due``), which records ``reminder.triggered`` for each and marks them
fired. A scheduler that dies mid-pass leaves nothing behind: its transaction rolls back and the
reminders are due for the next pass.

It does not poll at a fixed rate: it sleeps until the earliest scheduled reminder is due
(at most ``max_sleep``), and a reminder scheduled to fire soon wakes it through
``events.wakeup`` (channel ``reminders_due``, announced after commit by ``services``).
Reminders that came due while no scheduler ran are fired on start, marked late.

With Dapr the Jobs API fires reminders instead; the same loop then only re-syncs reminders
whose Jobs API call failed (``reminders.jobs.sync_pending_jobs``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import uuid
from contextlib import asynccontextmanager

from django.db import close_old_connections, connection
from django.utils import timezone

from events import wakeup
from reminders import selectors, services

logger = logging.getLogger(__name__)


class ReminderScheduler:
    def __init__(
        self,
        *,
        name: str | None = None,
        batch_size: int = 100,
        max_sleep: float = 5.0,
        dapr: bool | None = None,
    ):
        self.name = name or f"{socket.gethostname()[:30]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.batch_size = batch_size
        self.max_sleep = max_sleep
        self.dapr = services.dapr_mode() if dapr is None else dapr
        self._stop = threading.Event()
        # Set after each pass that reached the database (``/readyz`` of the command's process).
        self.healthy = threading.Event()
        # Set by ``events.wakeup`` when a reminder is set to fire soon, here or elsewhere.
        self._woken = threading.Event()
        self._failed = False

    # --- one pass ---------------------------------------------------------------------------

    def _fire_one(self, reminder_id: int, user_id: str) -> int:
        try:
            return int(services.reminder_fire_one(reminder_id=reminder_id, user_id=user_id))
        except Exception:
            if not connection.is_usable():
                raise
            logger.exception("firing reminder %s failed; retrying later", reminder_id)
            self._failed = True
            return 0

    def _batch(self) -> services.FirePass | None:
        try:
            return services.reminders_fire_due(limit=self.batch_size)
        except Exception:
            if not connection.is_usable():
                raise
            logger.exception("firing a batch of reminders failed; firing them one by one")
            self._failed = True
            return None

    def _one_by_one(self) -> int:
        rows = selectors.reminders_due(limit=self.batch_size)
        return sum(self._fire_one(pk, user_id) for pk, user_id in rows)

    def fire_due(self) -> int:
        """Fire everything due now, a batch per transaction; returns how many this scheduler
        fired. A batch waits for its users' locks (a task change or a consumer of those users
        committing), which are held for milliseconds."""
        fired = 0
        self._failed = False
        while not self._stop.is_set():
            result = self._batch()
            if result is None:
                return fired + self._one_by_one()
            fired += result.fired
            # A full batch that fired nothing was taken by another scheduler, or its rows are
            # held by task changes: the next pass comes back to them.
            if result.seen < self.batch_size or not result.fired:
                break
        return fired

    # --- the loop ---------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            # Short slices so that stop() is honoured quickly.
            if self._woken.wait(min(remaining, 0.5)):
                self._woken.clear()  # before the next look at the table
                return

    def _next_sleep(self) -> float:
        if self._failed:
            return min(1.0, self.max_sleep)  # a reminder that fails is not retried in a hot loop
        first = selectors.reminder_next_fire_time()
        if first is None:
            return self.max_sleep
        return min(max((first - timezone.now()).total_seconds(), 0.005), self.max_sleep)

    def _resync_jobs(self) -> float:
        from reminders import jobs

        synced, failed = jobs.sync_pending_jobs()
        if synced or failed:
            logger.info("re-synced %s reminder jobs, %s failed", synced, failed)
        return self.max_sleep

    def run(self) -> None:
        logger.info(
            "reminder scheduler %s started (%s)", self.name, "dapr" if self.dapr else "polling"
        )
        if not self.dapr:
            # Registered before the first look at the table, so no wake-up falls in between;
            # the process's listener also wakes every waiter each time it (re)connects.
            self._woken = wakeup.waiter(wakeup.REMINDERS_DUE)
            wakeup.acquire_listener()
        try:
            while not self._stop.is_set():
                try:
                    if self.dapr:
                        pause = self._resync_jobs()
                    else:
                        self.fire_due()
                        pause = self._next_sleep()
                    self.healthy.set()
                except Exception:
                    self.healthy.clear()
                    logger.exception("reminder scheduler: pass failed; retrying in 1s")
                    close_old_connections()
                    if not connection.is_usable():
                        connection.close()
                    pause = 1.0
                if self.dapr:
                    self._stop.wait(pause)
                else:
                    self._sleep(pause)
        finally:
            if not self.dapr:
                wakeup.forget(wakeup.REMINDERS_DUE, self._woken)
                wakeup.release_listener()
            connection.close()
            logger.info("reminder scheduler %s stopped", self.name)


def start_in_thread(
    scheduler: ReminderScheduler | None = None,
) -> tuple[ReminderScheduler, threading.Thread]:
    scheduler = scheduler or ReminderScheduler()
    thread = threading.Thread(target=scheduler.run, name=f"reminders-{scheduler.name}", daemon=True)
    thread.start()
    return scheduler, thread


@asynccontextmanager
async def in_process_scheduler():
    """The scheduler as a thread of the server process (embedded mode's lifespan hook)."""
    scheduler, thread = start_in_thread()
    try:
        yield scheduler
    finally:
        scheduler.stop()
        await asyncio.to_thread(thread.join, 10)
