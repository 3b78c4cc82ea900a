"""The writes of the events app.

``event_record`` is the only way into the outbox: it runs inside the transaction of the change it
describes, takes the user's next sequence number and writes the validated envelope. Everything
else here belongs to consumers: idempotency keys, dead letters and their replay, and the
retention sweep.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

import orjson
from django.db import IntegrityError, connection, transaction
from django.dispatch import Signal
from django.utils import timezone
from pydantic import BaseModel

from core.users import USER_ID_MAX_LENGTH
from events import conf, metrics, wakeup
from events.actors import current_actor
from events.models import NAME_MAX_LENGTH, DeadLetter
from events.schemas import (
    Envelope,
    InvalidEnvelope,
    build_envelope,
    get_event_type,
    parse_envelope,
)
from idempotency.services import keys_expire

logger = logging.getLogger(__name__)

# Sent after each retention sweep: apps with rows of their own to expire (the tasks' trash)
# receive it, so one sweep serves all without this app knowing them.
retention_swept = Signal()


class EventRecordingError(RuntimeError):
    """An event could not be recorded; the change it belongs to must not commit."""


# One round trip for any number of events: take each user's next sequence numbers (counters
# locked in one sorted order), write the envelopes numbered in the order given, with this
# transaction's id and log key (``OutboxEvent``), and queue them when the relay publishes.
# The envelopes travel as one JSON array, which PostgreSQL parses in C; %(topics)s maps each
# event type to its topics.
_RECORD = """
WITH input AS (
    SELECT e.envelope, e.envelope->>'user_id' AS user_id, e.envelope->>'event_type' AS event_type,
           (e.envelope->>'event_id')::uuid AS event_id, e.ord
    FROM jsonb_array_elements(%(envelopes)s::jsonb) WITH ORDINALITY AS e(envelope, ord)
),
writer AS (
    SELECT pg_current_xact_id()::text::bigint AS transaction_id
),
counts AS (
    SELECT user_id, count(*) AS n FROM input GROUP BY user_id
),
next AS (
    INSERT INTO events_usereventsequence AS s (user_id, last_sequence, last_log_key)
    SELECT user_id, n, writer.transaction_id FROM counts, writer ORDER BY user_id
    ON CONFLICT (user_id) DO UPDATE
    SET last_sequence = s.last_sequence + EXCLUDED.last_sequence,
        last_log_key = greatest(s.last_log_key, EXCLUDED.last_log_key)
    RETURNING user_id, last_sequence, last_log_key
),
numbered AS (
    SELECT input.*, next.last_log_key AS log_key,
           next.last_sequence - counts.n
             + row_number() OVER (PARTITION BY input.user_id ORDER BY input.ord) AS sequence
    FROM input JOIN counts USING (user_id) JOIN next USING (user_id)
),
inserted AS (
    INSERT INTO events_outboxevent
        (event_id, event_type, user_id, sequence, topics, envelope, publish_attempts, last_error,
         transaction_id, log_key)
    SELECT event_id, event_type, user_id, sequence,
           ARRAY(SELECT jsonb_array_elements_text(%(topics)s::jsonb -> event_type))::varchar[],
           jsonb_set(envelope, '{{sequence}}', to_jsonb(sequence)), 0, '',
           writer.transaction_id, log_key
    FROM numbered, writer
    ORDER BY ord
    RETURNING id, event_id, sequence
){queue}
SELECT event_id, sequence FROM inserted
"""
_RECORD_ONLY = _RECORD.format(queue="")
_RECORD_AND_QUEUE = _RECORD.format(
    queue=""",
queued AS (
    INSERT INTO events_outboxpending (id) SELECT id FROM inserted
)"""
)


class NewEvent(NamedTuple):
    """One event to record with ``event_records``."""

    event_type: str
    user_id: str
    payload: dict | BaseModel
    event_id: uuid.UUID | None = None
    timestamp: datetime | None = None


def event_record(
    *,
    event_type: str,
    user_id: str,
    payload: dict | BaseModel,
    event_id: uuid.UUID | None = None,
    timestamp: datetime | None = None,
) -> Envelope:
    """Write one event to the outbox, in the caller's transaction (see ``event_records``)."""
    (envelope,) = event_records([NewEvent(event_type, user_id, payload, event_id, timestamp)])
    return envelope


def event_records(events: Sequence[NewEvent]) -> list[Envelope]:
    """Write events to the outbox in one statement, in the caller's transaction, each stamped
    with the current actor (``events.actors``).

    Every envelope is validated before anything is written (``InvalidEnvelope`` otherwise), so a
    caller that catches the error has not consumed a sequence number. Each user's events get
    that user's next sequence numbers in the order given. The readers of the outbox (embedded
    consumers, or the relay) are woken when the transaction commits; a rollback leaves no event
    and no used sequence number.
    """
    if not connection.in_atomic_block:
        raise EventRecordingError(
            "event_record must run inside the transaction of the change it records."
        )
    if not events:
        return []
    # Validate first, with a provisional sequence number; the database puts in the real one.
    actor = current_actor()
    drafts = [
        build_envelope(
            event_type=event.event_type,
            user_id=event.user_id,
            payload=event.payload,
            sequence=1,
            event_id=event.event_id,
            timestamp=event.timestamp,
            actor=actor,
        )
        for event in events
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            _RECORD_AND_QUEUE if conf.relay_publishes() else _RECORD_ONLY,
            {
                "envelopes": f"[{','.join(draft.model_dump_json() for draft in drafts)}]",
                "topics": orjson.dumps(
                    {name: get_event_type(name).topics for name in {d.event_type for d in drafts}}
                ).decode(),
            },
        )
        sequences = dict(cursor.fetchall())
    wakeup.wake_readers_after_commit()
    return [draft.model_copy(update={"sequence": sequences[draft.event_id]}) for draft in drafts]


# --- consumers -------------------------------------------------------------------------------


def processed_event_claim(*, consumer: str, event_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """Insert ``(consumer, event_id)`` rows in the current transaction; returns the ids that were
    new. An id another transaction is inserting right now waits for it: if that one commits, the
    id is not new here."""
    ids = list(dict.fromkeys(event_ids))
    if not ids:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO events_processedevent (consumer, event_id, processed_at)
            SELECT %s, id, now() FROM unnest(%s::uuid[]) AS id
            ON CONFLICT DO NOTHING
            RETURNING event_id
            """,
            # An array literal: psycopg would quote each UUID of a list in Python.
            [consumer, "{" + ",".join(map(str, ids)) + "}"],
        )
        return {row[0] for row in cursor.fetchall()}


def dead_letter_record(
    *,
    consumer: str,
    topic: str,
    error: str,
    attempts: int,
    envelope: Envelope | None = None,
    message: dict | None = None,
    raw: str = "",
) -> DeadLetter:
    """Keep a message a consumer gave up on. One row per consumer and event: a second failure
    of the same event (after a replay, or a redelivery) updates it."""
    data = envelope.model_dump(mode="json") if envelope is not None else message
    event_id = envelope.event_id if envelope is not None else _uuid_or_none(message)
    fields = {
        "topic": topic,
        "event_type": envelope.event_type
        if envelope
        else str((message or {}).get("event_type", ""))[:NAME_MAX_LENGTH],
        "user_id": envelope.user_id
        if envelope
        else str((message or {}).get("user_id", ""))[:USER_ID_MAX_LENGTH],
        "envelope": data,
        "raw": raw if data is None else "",
        "error": error[:10_000],
    }
    now = timezone.now()
    with transaction.atomic():
        letter = _existing_letter(consumer, event_id)
        created = False
        if letter is None:
            try:
                with transaction.atomic():
                    letter = DeadLetter.objects.create(
                        consumer=consumer,
                        event_id=event_id,
                        attempts=attempts,
                        created_at=now,
                        last_failed_at=now,
                        **fields,
                    )
                    created = True
            except IntegrityError:
                # Another process dead-lettered the same event a moment ago.
                letter = _existing_letter(consumer, event_id)
                if letter is None:
                    raise
        if not created:
            for name, value in fields.items():
                setattr(letter, name, value)
            letter.attempts += attempts
            letter.last_failed_at = now
            letter.replayed_at = None
            letter.save(update_fields=[*fields, "attempts", "last_failed_at", "replayed_at"])
    metrics.DEAD_LETTERS.labels(consumer=consumer).inc()
    logger.error(
        "dead-lettered %s for %s after %d attempt(s): %s",
        fields["event_type"] or "an invalid message",
        consumer,
        attempts,
        last_line(error),
        extra={"event_id": event_id, "consumer": consumer, "user_id": fields["user_id"] or None},
    )
    return letter


def _existing_letter(consumer: str, event_id: uuid.UUID | None) -> DeadLetter | None:
    if event_id is None:
        return None
    return (
        DeadLetter.objects.select_for_update().filter(consumer=consumer, event_id=event_id).first()
    )


def last_line(text: str) -> str:
    """The last non-blank line of an error (of a traceback: the exception itself)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _uuid_or_none(message: dict | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(str((message or {}).get("event_id")))
    except ValueError:
        return None


class ReplayFailed(Exception):
    pass


def dead_letter_replay(*, dead_letter_id: int) -> str:
    """Run a dead letter through its consumer again, now. Returns the outcome ("applied" or
    "duplicate"); raises ``ReplayFailed`` (and records the error) if it fails again."""
    from events.consumers import UnknownConsumer, get_consumer
    from events.processing import apply_in_transaction

    letter = DeadLetter.objects.get(pk=dead_letter_id)
    try:
        consumer = get_consumer(letter.consumer)
    except UnknownConsumer as exc:
        raise ReplayFailed(str(exc)) from None
    try:
        envelope = parse_envelope(letter.envelope if letter.envelope is not None else letter.raw)
    except InvalidEnvelope as exc:
        raise ReplayFailed(f"The message is not a valid envelope: {exc}") from None
    try:
        with transaction.atomic():
            outcome = apply_in_transaction(consumer, envelope)
            letter.replayed_at = timezone.now()
            letter.replay_count += 1
            letter.save(update_fields=["replayed_at", "replay_count"])
    except Exception as exc:
        DeadLetter.objects.filter(pk=letter.pk).update(
            error=f"replay failed: {exc!r}"[:10_000], last_failed_at=timezone.now()
        )
        raise ReplayFailed(f"{type(exc).__name__}: {exc}") from exc
    logger.info(
        "replayed dead letter %s: %s", letter.pk, outcome, extra={"event_id": letter.event_id}
    )
    return outcome


def events_expire(*, older_than: timedelta | None = None, chunk: int = 10_000) -> dict[str, int]:
    """Delete idempotency keys and outbox rows older than the retention (7 days by default).
    Rows still in the relay's queue are never deleted; an embedded consumer that has not read a
    row by then no longer gets it, as with a broker's retention. Returns how many rows of each
    went."""
    age = (
        older_than if older_than is not None else timedelta(days=conf.get("EVENTS_RETENTION_DAYS"))
    )
    cutoff = timezone.now() - age
    deleted = {"processed": 0, "outbox": 0}
    with connection.cursor() as cursor:
        while True:
            cursor.execute(
                """
                DELETE FROM events_processedevent WHERE ctid = ANY(ARRAY(
                    SELECT ctid FROM events_processedevent WHERE processed_at < %s LIMIT %s))
                """,
                [cutoff, chunk],
            )
            deleted["processed"] += cursor.rowcount
            if cursor.rowcount < chunk:
                break
        # Outbox ids grow with time: find the first row young enough to keep, then delete
        # below it by primary key.
        cursor.execute(
            "SELECT id FROM events_outboxevent WHERE created_at >= %s ORDER BY id LIMIT 1", [cutoff]
        )
        row = cursor.fetchone()
        if row is None:
            cursor.execute("SELECT coalesce(max(id), 0) + 1 FROM events_outboxevent")
            row = cursor.fetchone()
        (keep_from,) = row
        while True:
            cursor.execute(
                """
                DELETE FROM events_outboxevent WHERE id = ANY(ARRAY(
                    SELECT id FROM events_outboxevent AS o
                    WHERE id < %s AND created_at < %s
                      AND NOT EXISTS (SELECT 1 FROM events_outboxpending p WHERE p.id = o.id)
                    ORDER BY id LIMIT %s))
                """,
                [keep_from, cutoff, chunk],
            )
            deleted["outbox"] += cursor.rowcount
            if cursor.rowcount < chunk:
                break
    # The API's Idempotency-Key records go in the same sweep, on their own (shorter) lifetime.
    if request_keys := keys_expire():
        logger.info("expired %d Idempotency-Key records", request_keys)
    if deleted["processed"] or deleted["outbox"]:
        logger.info("expired %(processed)d idempotency keys and %(outbox)d outbox rows", deleted)
    retention_swept.send(sender=events_expire)
    return deleted
