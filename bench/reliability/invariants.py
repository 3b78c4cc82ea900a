"""What must hold after any crash, restart or redelivery, checked from the database alone.

``check`` reads the outbox, the tasks, the consumers' idempotency keys and effects for the users
whose id starts with a prefix, and answers a ``Report``: each invariant with how many things it
looked at and what (if anything) broke it.

- every committed change has exactly one event: a task's events carry its versions 1..N, each
  once, N is the row's version (or the task has exactly one event that removed it: a delete at
  once or a purge from the trash; a move to the trash is a versioned change), and every change
  the client was told succeeded (the ledger) has its event; per user, sequences 1..last with no
  gap or repeat;
- every event went through the relay (out of its queue; with Dapr, also marked sent). The
  embedded mode queues nothing, so there it holds by construction; the consumers' checks
  below are what show the embedded log delivered every event;
- every consumer applied every event it wants (its ``(consumer, event_id)`` key exists), once:
  one audit history row per task event, one next instance per completed recurring task (the
  series' first instances, the only ones a stream completes), one notification per fired
  reminder and one firing per reminder time, no reminder left overdue, no dead letter.

It takes any DB-API cursor that accepts ``%s`` parameters (Django's, or psycopg's), so the fault
run can read a database its own process is not configured for.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from events import log

TASK_EVENTS = ("task.created", "task.updated", "task.completed", "task.reopened")
LEDGER_KINDS = ("created", "updated", "completed", "reopened", "deleted")


@dataclass(frozen=True)
class ConsumerSpec:
    """What a consumer wants: the topic it reads and the event types it handles (None: all)."""

    name: str
    topic: str
    event_types: frozenset[str] | None

    def wants(self, topics: Iterable[str], event_type: str) -> bool:
        return self.topic in topics and (self.event_types is None or event_type in self.event_types)

    @classmethod
    def registered(cls, *names: str) -> list[ConsumerSpec]:
        from events.consumers import get_consumer

        return [
            cls(name=c.name, topic=c.topic, event_types=c.event_types)
            for c in map(get_consumer, names)
        ]


@dataclass(frozen=True)
class Ack:
    """A change the client was told had committed: the task and the version it answered with
    (``kind`` is one of ``LEDGER_KINDS``; a delete has no version)."""

    task_id: int
    kind: str
    version: int | None = None


@dataclass
class Check:
    name: str
    checked: int = 0
    problems: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.problems.append(message)


@dataclass
class Report:
    checks: list[Check]
    counts: dict[str, int]

    @property
    def ok(self) -> bool:
        return not any(check.problems for check in self.checks)

    def problems(self, limit: int = 20) -> list[str]:
        found = [f"{check.name}: {p}" for check in self.checks for p in check.problems]
        return found[:limit] + ([f"... {len(found) - limit} more"] if len(found) > limit else [])

    def lines(self) -> list[str]:
        return [
            f"{'ok  ' if not check.problems else 'FAIL'} {check.name} "
            f"({check.checked} checked{', ' + str(len(check.problems)) + ' broken' if check.problems else ''})"
            for check in self.checks
        ]


@dataclass(frozen=True)
class _Event:
    event_id: str
    user_id: str
    sequence: int
    event_type: str
    topics: tuple[str, ...]
    published: bool
    payload: dict

    @property
    def task_id(self) -> int | None:
        value = self.payload.get("task_id")
        return int(value) if value is not None else None

    @property
    def task(self) -> dict:
        return self.payload.get("task_data") or {}


def _like(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _when(value) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _events(cursor, like: str) -> list[_Event]:
    cursor.execute(
        "SELECT event_id::text, user_id, sequence, event_type, topics, "
        # published: out of the relay's queue (the embedded log has it from its commit on;
        # the Dapr relay marks it sent as it takes it out)
        "NOT EXISTS (SELECT 1 FROM events_outboxpending p WHERE p.id = o.id), "
        "envelope->'payload' "
        "FROM events_outboxevent o WHERE user_id LIKE %s ORDER BY user_id, sequence",
        [like],
    )
    events = []
    for event_id, user_id, sequence, event_type, topics, published, payload in cursor.fetchall():
        if isinstance(payload, str):
            payload = json.loads(payload)
        events.append(
            _Event(event_id, user_id, sequence, event_type, tuple(topics), published, payload)
        )
    return events


def user_logs(cursor, user_prefix: str) -> dict[str, dict[int, str]]:
    """Each user's event log (sequence -> event id), for the users whose id starts with
    ``user_prefix``: what a client's socket must have received."""
    cursor.execute(
        "SELECT user_id, sequence, event_id::text FROM events_outboxevent WHERE user_id LIKE %s",
        [_like(user_prefix)],
    )
    logs: dict[str, dict[int, str]] = defaultdict(dict)
    for user_id, sequence, event_id in cursor.fetchall():
        logs[user_id][sequence] = event_id
    return logs


def check(
    cursor,
    *,
    user_prefix: str,
    consumers: Iterable[ConsumerSpec] = (),
    ledger: Iterable[Ack] = (),
    embedded_log: bool = True,
    overdue_grace_seconds: float = 5.0,
) -> Report:
    like = _like(user_prefix)
    events = _events(cursor, like)
    consumers = list(consumers)
    checks = [
        _sequences(cursor, like, events),
        _task_versions(cursor, like, events),
        _ledger(events, list(ledger)),
    ]
    if embedded_log:
        checks.append(_published(events))
    checks.append(_consumed(cursor, events, consumers))
    names = {spec.name for spec in consumers}
    if "audit" in names:
        checks.append(_audit(cursor, like, events))
    if "recurrence" in names:
        checks.append(_recurrence(events))
    if "notifications" in names:
        checks.append(_reminders(cursor, like, events, overdue_grace_seconds))
    checks.append(_dead_letters(cursor, like, names))
    by_type = Counter(event.event_type for event in events)
    counts = {
        "events": len(events),
        "users": len({event.user_id for event in events}),
        "tasks": len({event.task_id for event in events if event.event_type in TASK_EVENTS}),
        **{f"events.{name}": number for name, number in sorted(by_type.items())},
    }
    return Report(checks=checks, counts=counts)


# --- one event per committed change ---------------------------------------------------------


def _sequences(cursor, like: str, events: list[_Event]) -> Check:
    result = Check("per-user sequences are 1..last, each once")
    seen: dict[str, list[int]] = defaultdict(list)
    for event in events:
        seen[event.user_id].append(event.sequence)
    cursor.execute(
        "SELECT user_id, last_sequence FROM events_usereventsequence WHERE user_id LIKE %s", [like]
    )
    last = dict(cursor.fetchall())
    for user_id in sorted(set(seen) | set(last)):
        numbers = seen.get(user_id, [])
        result.checked += len(numbers)
        expected = list(range(1, last.get(user_id, 0) + 1))
        if sorted(numbers) != expected:
            missing = sorted(set(expected) - set(numbers))[:5]
            repeated = [n for n, c in Counter(numbers).items() if c > 1][:5]
            result.fail(
                f"user {user_id}: {len(numbers)} events for last sequence "
                f"{last.get(user_id)} (missing {missing}, repeated {repeated})"
            )
    return result


def _task_versions(cursor, like: str, events: list[_Event]) -> Check:
    result = Check("each task's events carry versions 1..N once; N is the row's version")
    versions: dict[int, list[int]] = defaultdict(list)
    created: Counter[int] = Counter()
    deleted: Counter[int] = Counter()
    owner: dict[int, str] = {}
    for event in events:
        if not event.event_type.startswith("task."):
            continue
        task_id = event.task_id
        owner.setdefault(task_id, event.user_id)
        if owner[task_id] != event.user_id:
            result.fail(f"task {task_id}: events of two users")
        # Gone for good: a delete at once, or a purge from the trash. A move to the trash is a
        # change like any other (the row stays, its version goes up).
        if event.event_type == "task.purged" or (
            event.event_type == "task.deleted" and not event.payload.get("trashed")
        ):
            deleted[task_id] += 1
            continue
        versions[task_id].append(int(event.task["version"]))
        if event.event_type == "task.created":
            created[task_id] += 1
    cursor.execute("SELECT id, user_id, version FROM tasks_task WHERE user_id LIKE %s", [like])
    rows = {task_id: (user_id, version) for task_id, user_id, version in cursor.fetchall()}
    for task_id in sorted(set(versions) | set(rows) | set(deleted)):
        result.checked += 1
        numbers = sorted(versions.get(task_id, []))
        if created[task_id] != 1:
            result.fail(f"task {task_id}: {created[task_id]} task.created events")
        if numbers != list(range(1, len(numbers) + 1)):
            result.fail(f"task {task_id}: event versions {numbers[:12]}")
        if task_id in rows:
            user_id, version = rows[task_id]
            if deleted[task_id]:
                result.fail(f"task {task_id}: exists but has an event that removed it")
            if not numbers or numbers[-1] != version:
                result.fail(
                    f"task {task_id}: row at version {version}, events up to "
                    f"{numbers[-1] if numbers else None}"
                )
            if owner.get(task_id, user_id) != user_id:
                result.fail(f"task {task_id}: events name another owner")
        elif deleted[task_id] != 1:
            result.fail(f"task {task_id}: gone with {deleted[task_id]} removing events")
    return result


def _ledger(events: list[_Event], ledger: list[Ack]) -> Check:
    """A write answered with version N must have left the event of version N (a repeated
    complete or reopen answers the version of the change that did it); a delete answered 204
    must have left a ``task.deleted``."""
    result = Check("every acknowledged change has its event")
    versions = set()
    deleted = set()
    for event in events:
        if event.event_type == "task.deleted":
            deleted.add(event.task_id)
        elif event.event_type in TASK_EVENTS:
            versions.add((event.task_id, int(event.task["version"])))
    for ack in ledger:
        result.checked += 1
        found = (
            ack.task_id in deleted
            if ack.kind == "deleted"
            else ((ack.task_id, ack.version) in versions)
        )
        if not found:
            result.fail(f"acknowledged {ack.kind} of task {ack.task_id} v{ack.version}: no event")
    return result


def _published(events: list[_Event]) -> Check:
    result = Check("every event went through the relay", checked=len(events))
    for event in events:
        if not event.published:
            result.fail(f"{event.event_type} {event.event_id} still in the relay's queue")
    return result


# --- each consumer applied each event once ----------------------------------------------------


def _consumed(cursor, events: list[_Event], consumers: list[ConsumerSpec]) -> Check:
    result = Check("every consumer recorded every event it wants")
    if not consumers or not events:
        return result
    cursor.execute(
        "SELECT consumer, event_id::text FROM events_processedevent "
        "WHERE consumer = ANY(%s) AND event_id = ANY(%s::uuid[])",
        [[spec.name for spec in consumers], [event.event_id for event in events]],
    )
    done: dict[str, set[str]] = defaultdict(set)
    for consumer, event_id in cursor.fetchall():
        done[consumer].add(event_id)
    for spec in consumers:
        for event in events:
            if not spec.wants(event.topics, event.event_type):
                continue
            result.checked += 1
            if event.event_id not in done[spec.name]:
                result.fail(f"{spec.name} never applied {event.event_type} {event.event_id}")
    return result


def _audit(cursor, like: str, events: list[_Event]) -> Check:
    result = Check("one audit history row per task event")
    cursor.execute(
        "SELECT event_id::text, count(*) FROM events_taskhistory WHERE user_id LIKE %s GROUP BY 1",
        [like],
    )
    rows = dict(cursor.fetchall())
    wanted = {
        event.event_id
        for event in events
        if event.event_type.startswith("task.") and "task-events" in event.topics
    }
    result.checked = len(wanted)
    for event_id in wanted:
        if rows.get(event_id, 0) != 1:
            result.fail(f"event {event_id}: {rows.get(event_id, 0)} history rows")
    for event_id in set(rows) - wanted:
        result.fail(f"history row for {event_id}, which is no task event of these users")
    return result


def _recurrence(events: list[_Event]) -> Check:
    result = Check("one next instance per completed recurring task")
    roots: set[str] = set()
    completed: set[str] = set()
    later: Counter[str] = Counter()
    for event in events:
        series = event.task.get("series_id")
        if not series:
            continue
        index = event.task.get("series_index") or 0
        if event.event_type == "task.created":
            if index == 0:
                roots.add(series)
            else:
                later[series] += 1
        elif event.event_type == "task.completed" and index == 0:
            completed.add(series)
    for series in sorted(roots):
        result.checked += 1
        expected = 1 if series in completed else 0
        if later[series] != expected:
            result.fail(
                f"series {series}: {later[series]} next instances, expected {expected} "
                f"({'completed' if expected else 'never completed'})"
            )
    return result


def _reminders(cursor, like: str, events: list[_Event], grace: float) -> Check:
    result = Check("one firing and one notification per reminder time, none overdue")
    fired: Counter[tuple[int, datetime]] = Counter()
    for event in events:
        if event.event_type == "reminder.triggered":
            fired[(event.task_id, _when(event.payload["remind_at"]))] += 1
    cursor.execute(
        "SELECT task_id, remind_at, count(*) FROM reminders_notification "
        "WHERE user_id LIKE %s GROUP BY 1, 2",
        [like],
    )
    notes = {(task_id, _when(at)): number for task_id, at, number in cursor.fetchall()}
    for key in sorted(set(fired) | set(notes)):
        result.checked += 1
        if fired.get(key, 0) != 1:
            result.fail(f"task {key[0]} reminder {key[1]:%H:%M:%S}: fired {fired.get(key, 0)}x")
        if notes.get(key, 0) != 1:
            result.fail(f"task {key[0]} reminder {key[1]:%H:%M:%S}: {notes.get(key, 0)} notes")
    cursor.execute(
        "SELECT task_id, fire_at FROM reminders_reminder WHERE user_id LIKE %s "
        "AND state = 'scheduled' AND fire_at < now() - make_interval(secs => %s)",
        [like, grace],
    )
    for task_id, fire_at in cursor.fetchall():
        result.fail(f"task {task_id}: reminder due {fire_at:%H:%M:%S} never fired")
    return result


def _dead_letters(cursor, like: str, names: set[str]) -> Check:
    result = Check("no dead letters")
    cursor.execute(
        "SELECT consumer, event_type, error FROM events_deadletter "
        "WHERE user_id LIKE %s OR (user_id = '' AND consumer = ANY(%s))",
        [like, sorted(names)],
    )
    rows = cursor.fetchall()
    result.checked = len(rows)
    for consumer, event_type, error in rows:
        result.fail(f"{consumer}: {event_type or 'invalid message'}: {error[:120]}")
    return result


def backlog(cursor, consumers: Iterable[ConsumerSpec], *, reminders: bool = True) -> int:
    """Work the pipeline still has: unpublished events, events of each consumer's topic past
    its cursor and (``reminders``) reminders already due. Zero means idle."""
    cursor.execute("SELECT count(*) FROM events_outboxpending")
    waiting = cursor.fetchone()[0]
    for spec in consumers:
        waiting += log.unread_count(cursor, consumer=spec.name, topic=spec.topic)
    if reminders:
        cursor.execute(
            "SELECT count(*) FROM reminders_reminder WHERE state = 'scheduled' AND fire_at < now()"
        )
        waiting += cursor.fetchone()[0]
    return waiting
