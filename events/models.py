"""Tables of the event pipeline.

- ``UserEventSequence``: the last sequence number of each user's events (gapless, transactional).
- ``OutboxEvent``: every recorded event, written in the transaction of the change it describes.
  In the embedded mode it is the log that consumers read (``events.log``) from the moment it
  commits; with Dapr the relay publishes it and sets ``sent_at``.
- ``OutboxPending``: the ids of outbox rows the relay has yet to publish to a broker, its queue.
- ``ConsumerCursor``: how far each embedded consumer has read the log, as a snapshot.
- ``ProcessedEvent``: ``(consumer, event_id)`` written with the consumer's effect (idempotency).
- ``DeadLetter``: messages a consumer could not handle, with the error, until replayed.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now

from core.users import USER_ID_MAX_LENGTH
from events import log, topics

NAME_MAX_LENGTH = 64


class UserEventSequence(models.Model):
    user_id = models.CharField(max_length=USER_ID_MAX_LENGTH, primary_key=True)
    last_sequence = models.BigIntegerField()
    last_log_key = models.BigIntegerField(
        db_default=0, help_text="The log key of the user's last event (see OutboxEvent)."
    )

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(last_sequence__gte=1), name="event_seq_positive")
        ]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.last_sequence}"


class OutboxEvent(models.Model):
    """One recorded event.

    ``transaction_id`` is the id of the transaction that wrote it: the row is visible exactly
    when that transaction has committed, which a snapshot answers (``events.log``).
    ``log_key`` orders one user's events: the larger of that id and the user's previous
    event's key. (A transaction can get its id before it waits for the user's counter, so the
    user's next event may come from a transaction with a smaller id.) Within a user, ids grow
    too: they are taken after the counter's lock.
    """

    id = models.BigAutoField(primary_key=True)
    event_id = models.UUIDField(unique=True)
    event_type = models.CharField(max_length=NAME_MAX_LENGTH)
    user_id = models.CharField(max_length=USER_ID_MAX_LENGTH)
    sequence = models.BigIntegerField()
    topics = ArrayField(models.CharField(max_length=NAME_MAX_LENGTH))
    envelope = models.JSONField()
    created_at = models.DateTimeField(db_default=Now())
    sent_at = models.DateTimeField(null=True, blank=True)
    transaction_id = models.BigIntegerField()
    log_key = models.BigIntegerField()
    publish_attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user_id", "sequence"], name="outbox_user_sequence"),
            models.CheckConstraint(condition=Q(sequence__gte=1), name="outbox_sequence_positive"),
        ]
        indexes = [
            models.Index(fields=["log_key", "id"], name="outbox_log_idx"),
            # a sparse topic gets its own index, so its consumers don't scan every task event
            models.Index(
                fields=["log_key", "id"],
                name="outbox_reminders_log_idx",
                condition=Q(topics__contains=[topics.REMINDERS]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id} ({self.user_id} #{self.sequence})"


class OutboxPending(models.Model):
    """An outbox row the relay has not published, by id: written with the row when the relay
    publishes to a broker (``events.conf.relay_publishes``), deleted when the relay has
    published it (a refused row stays). The embedded mode queues nothing: there, the row is in
    the log when it commits. A small table vacuumed often, so that a claim does not walk the
    entries of sent rows (``docs/decisions/relay-queue-table.md``).
    """

    id = models.BigIntegerField(primary_key=True, help_text="The OutboxEvent id.")

    class Meta:
        verbose_name = "unsent outbox row"

    def __str__(self) -> str:
        return f"unsent outbox row {self.id}"


class ConsumerCursor(models.Model):
    """Where an embedded consumer is in the log (``events.log``).

    ``snapshot`` (a ``pg_snapshot`` as text): every event whose transaction this snapshot sees
    as committed has been read. While a span of the log is read in batches, ``span_snapshot``
    is its end and ``span_after_key``/``span_after_id`` the last event read from it.
    """

    consumer = models.CharField(max_length=NAME_MAX_LENGTH, primary_key=True)
    snapshot = models.TextField(default=log.EVERYTHING_UNREAD)
    span_snapshot = models.TextField(null=True, blank=True)  # noqa: DJ001 (NULL: no span)
    span_after_key = models.BigIntegerField(null=True, blank=True)
    span_after_id = models.BigIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(db_default=Now())

    def __str__(self) -> str:
        return f"{self.consumer} at {self.snapshot}"


class ProcessedEvent(models.Model):
    pk = models.CompositePrimaryKey("consumer", "event_id")
    consumer = models.CharField(max_length=NAME_MAX_LENGTH)
    event_id = models.UUIDField()
    processed_at = models.DateTimeField(db_default=Now())

    class Meta:
        indexes = [models.Index(fields=["processed_at"], name="processed_event_age_idx")]

    def __str__(self) -> str:
        return f"{self.consumer}: {self.event_id}"


class DeadLetter(models.Model):
    consumer = models.CharField(max_length=NAME_MAX_LENGTH)
    topic = models.CharField(max_length=NAME_MAX_LENGTH, blank=True, default="")
    event_id = models.UUIDField(null=True, blank=True)
    event_type = models.CharField(max_length=NAME_MAX_LENGTH, blank=True, default="")
    user_id = models.CharField(max_length=USER_ID_MAX_LENGTH, blank=True, default="")
    envelope = models.JSONField(null=True, blank=True, help_text="The message, if it was JSON.")
    raw = models.TextField(blank=True, default="", help_text="The message, if it was not JSON.")
    error = models.TextField()
    attempts = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(db_default=Now())
    last_failed_at = models.DateTimeField(db_default=Now())
    replayed_at = models.DateTimeField(null=True, blank=True)
    replay_count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["consumer", "event_id"],
                name="dead_letter_one_per_event",
                condition=Q(event_id__isnull=False),
            )
        ]
        indexes = [
            models.Index(
                fields=["created_at"],
                name="dead_letter_pending_idx",
                condition=Q(replayed_at__isnull=True),
            )
        ]

    def __str__(self) -> str:
        return f"{self.consumer}: {self.event_type or 'invalid message'} {self.event_id or ''}"
