"""The embedded log: consumers read the outbox itself, with a snapshot as their cursor.

A row is in the log once the transaction that wrote it has committed. A consumer's cursor is a
transaction snapshot (``pg_current_snapshot()``): every row whose writing transaction it sees as
committed has been read. A read takes the rows whose transaction the cursor did not see and that
have committed now, in ``(log_key, id)`` order (each user's events in sequence order), and its
own snapshot, with the reading transaction counted as in progress, becomes the cursor. A read
of more rows than a batch holds is a span: its snapshot and the last ``(log_key, id)`` read stay
in the cursor until the span is read. Why a snapshot and not an id:
``docs/decisions/embedded-log-read-by-snapshot.md``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import NamedTuple

from events import topics as topic_names

# Every row is new to this snapshot: a consumer without a cursor reads the log from its start.
EVERYTHING_UNREAD = "1:1:"
_LARGEST_ID = 2**63 - 1

# Lock the cursor, take the read's snapshot and transaction id, and read the rows after the
# cursor the caller expects. ``log_key >= after_key`` repeats the row comparison so that the
# planner bounds the index scan by it (docs/decisions/embedded-log-read-by-snapshot.md).
_READ = """
WITH reader AS MATERIALIZED (
    SELECT xmin::text AS version, snapshot, span_snapshot, span_after_key, span_after_id
    FROM events_consumercursor WHERE consumer = %(consumer)s FOR UPDATE
),
taken AS MATERIALIZED (
    SELECT pg_current_snapshot()::text AS snapshot,
           pg_current_xact_id_if_assigned()::text::bigint AS own
    FROM reader
)
SELECT r.version, r.snapshot, r.span_snapshot, r.span_after_key, r.span_after_id,
       t.snapshot, t.own, log.log_key, log.id, log.envelope::text
FROM reader AS r CROSS JOIN taken AS t LEFT JOIN LATERAL (
    SELECT log_key, id, envelope FROM events_outboxevent
    WHERE log_key >= %(after_key)s AND (log_key, id) > (%(after_key)s, %(after_id)s)
      AND (transaction_id >= %(seen_xmax)s OR transaction_id = ANY(%(seen_xip)s::bigint[]))
      AND transaction_id IS DISTINCT FROM t.own
      AND (%(upto_xmax)s::bigint IS NULL OR transaction_id < %(upto_xmin)s
           OR (transaction_id < %(upto_xmax)s AND transaction_id <> ALL(%(upto_xip)s::bigint[])))
      AND {topic}
    ORDER BY log_key, id LIMIT %(limit)s
) AS log ON true
ORDER BY log.log_key, log.id
"""

# The cursor's snapshot comes in as a value, so the planner knows how little is unread.
_UNREAD = """
SELECT count(*) FROM (
    SELECT 1 FROM events_outboxevent
    WHERE log_key >= %(first_new_key)s
      AND NOT pg_visible_in_snapshot(transaction_id::text::xid8, %(seen)s::pg_snapshot)
      AND {topic}
    LIMIT %(cap)s
) AS unread
"""


class CursorMissing(Exception):
    """The consumer has no cursor (yet, or any more): create it, then read again."""


@dataclass(frozen=True)
class Snapshot:
    """A ``pg_snapshot``: transactions before ``xmin`` have ended, those from ``xmax`` on had
    not started, and those in ``xip`` were in progress."""

    xmin: int
    xmax: int
    xip: tuple[int, ...]

    @classmethod
    def parse(cls, text: str) -> Snapshot:
        xmin, xmax, xip = text.split(":")
        return cls(int(xmin), int(xmax), tuple(int(x) for x in xip.split(",") if x))

    def __str__(self) -> str:
        return f"{self.xmin}:{self.xmax}:{','.join(map(str, self.xip))}"

    @property
    def first_new_key(self) -> int:
        """The smallest log key a row new to this snapshot can have: its transaction is not
        before ``xmin``, and a row's key is at least its transaction's id."""
        return self.xmin

    def with_in_progress(self, xid: int | None) -> Snapshot:
        """This snapshot, with transaction ``xid`` counted as in progress."""
        if xid is None or xid >= self.xmax or xid in self.xip:
            return self
        return Snapshot(min(self.xmin, xid), self.xmax, tuple(sorted((*self.xip, xid))))


@dataclass(frozen=True)
class CursorState:
    """A consumer's cursor row, and its version (the row's ``xmin``)."""

    version: str
    snapshot: str
    span_snapshot: str | None = None
    span_after_key: int | None = None
    span_after_id: int | None = None


@dataclass(frozen=True)
class LogRow:
    log_key: int
    id: int
    envelope_json: str


class _ReadRow(NamedTuple):
    """A row of ``_READ``: the locked cursor, the read's snapshot and transaction id, and one
    log row (all None when nothing is new)."""

    version: str
    snapshot: str
    span_snapshot: str | None
    span_after_key: int | None
    span_after_id: int | None
    read_snapshot: str
    reader_xid: int | None
    log_key: int | None
    id: int | None
    envelope_json: str | None

    @property
    def cursor(self) -> CursorState:
        return CursorState(
            self.version,
            self.snapshot,
            self.span_snapshot,
            self.span_after_key,
            self.span_after_id,
        )


@dataclass(frozen=True)
class Batch:
    """One read: its rows, and what moving the cursor past them needs."""

    state: CursorState  # the cursor the read went on from
    end_snapshot: str  # where the cursor moves once the read is done
    rows: list[LogRow]

    @property
    def in_span(self) -> bool:
        return self.state.span_snapshot is not None


@functools.cache
def _for_topic(statement: str, topic: str) -> str:
    """``statement`` with the condition for rows of ``topic``, written as a literal so that the
    planner can use the topic's partial index (a checked name: ``events.topics.check_name``)."""
    predicate = f"topics @> ARRAY['{topic_names.check_name(topic)}']::varchar(64)[]"
    return statement.format(topic=predicate)


def read(
    cursor, *, consumer: str, topic: str, limit: int, expected: CursorState | None = None
) -> Batch:
    """Lock ``consumer``'s cursor until the transaction ends and read up to ``limit`` rows of
    ``topic`` after it. One process at a time reads a consumer's log; the others wait for the
    lock and then read from where it stopped.

    ``expected`` is the cursor as this process last left it: when the locked row is still that,
    one round trip does it all. Otherwise (another process moved it, or nothing is expected) a
    second statement reads from the row as it is: holding the lock, its snapshot sees the
    latest move. Raises ``CursorMissing``."""
    statement = _for_topic(_READ, topic)
    found = _execute_read(cursor, statement, consumer, expected, limit if expected else 0)
    if found[0].cursor != expected:
        found = _execute_read(cursor, statement, consumer, found[0].cursor, limit)
    first = found[0]
    state = first.cursor
    end_snapshot = state.span_snapshot or str(
        Snapshot.parse(first.read_snapshot).with_in_progress(first.reader_xid)
    )
    rows = [
        LogRow(log_key=row.log_key, id=row.id, envelope_json=row.envelope_json)
        for row in found
        if row.log_key is not None and row.id is not None and row.envelope_json is not None
    ]
    return Batch(state=state, end_snapshot=end_snapshot, rows=rows)


def _execute_read(
    cursor, statement: str, consumer: str, expected: CursorState | None, limit: int
) -> list[_ReadRow]:
    params = {"consumer": consumer, "limit": limit}
    seen = Snapshot.parse(expected.snapshot if expected else EVERYTHING_UNREAD)
    params.update(seen_xmax=seen.xmax, seen_xip=list(seen.xip))
    if expected and expected.span_snapshot is not None:
        span_end = Snapshot.parse(expected.span_snapshot)
        params.update(after_key=expected.span_after_key, after_id=expected.span_after_id)
        params.update(upto_xmin=span_end.xmin, upto_xmax=span_end.xmax, upto_xip=list(span_end.xip))
    else:
        params.update(after_key=seen.first_new_key - 1, after_id=_LARGEST_ID)
        params.update(upto_xmin=None, upto_xmax=None, upto_xip=[])
    cursor.execute(statement, params)
    found = [_ReadRow._make(row) for row in cursor.fetchall()]
    if not found:
        raise CursorMissing(f"{consumer} has no cursor")
    return found


def advance(
    cursor, *, consumer: str, batch: Batch, limit: int, check: bool = False
) -> CursorState | None:
    """Move ``consumer``'s cursor past ``batch`` (read with ``limit``). With ``check``, only if
    the cursor is still where ``batch`` found it. Returns the cursor as moved (None: ``check``
    found it moved by another process)."""
    if len(batch.rows) < limit:
        # The read reached the end of its snapshot, which is now read.
        if not batch.rows and not batch.in_span:
            return batch.state
        moved = CursorState(version="", snapshot=batch.end_snapshot)
    else:
        last = batch.rows[-1]
        moved = CursorState(
            version="",
            snapshot=batch.state.snapshot,
            span_snapshot=batch.end_snapshot,
            span_after_key=last.log_key,
            span_after_id=last.id,
        )
    cursor.execute(
        f"""
        UPDATE events_consumercursor
        SET snapshot = %s, span_snapshot = %s, span_after_key = %s, span_after_id = %s,
            updated_at = now()
        WHERE consumer = %s {"AND xmin::text = %s" if check else ""}
        RETURNING xmin::text
        """,  # noqa: S608
        [
            moved.snapshot,
            moved.span_snapshot,
            moved.span_after_key,
            moved.span_after_id,
            consumer,
            *([batch.state.version] if check else []),
        ],
    )
    moved_row = cursor.fetchone()
    return replace(moved, version=moved_row[0]) if moved_row else None


def cursor_create(cursor, *, consumer: str, at_now: bool = False) -> None:
    """Give ``consumer`` a cursor if it has none: at the log's start, or (``at_now``) after
    every row committed so far."""
    snapshot = "pg_current_snapshot()::text" if at_now else "%s"
    cursor.execute(
        f"INSERT INTO events_consumercursor (consumer, snapshot, updated_at) "  # noqa: S608
        f"VALUES (%s, {snapshot}, now()) ON CONFLICT (consumer) DO NOTHING",
        [consumer] if at_now else [consumer, EVERYTHING_UNREAD],
    )


def unread_count(cursor, *, consumer: str, topic: str, cap: int = 10_000) -> int:
    """How many rows of ``topic`` ``consumer`` has not read, counted up to ``cap`` (the lag
    metric's alert fires at a tenth of it)."""
    cursor.execute("SELECT snapshot FROM events_consumercursor WHERE consumer = %s", [consumer])
    cursor_row = cursor.fetchone()
    seen = Snapshot.parse(cursor_row[0] if cursor_row else EVERYTHING_UNREAD)
    cursor.execute(
        _for_topic(_UNREAD, topic),
        {"first_new_key": seen.first_new_key, "seen": str(seen), "cap": cap},
    )
    (unread,) = cursor.fetchone()
    return unread
