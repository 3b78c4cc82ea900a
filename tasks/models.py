"""The task: one row per task, owned by one user for its whole life.

Writes happen only in ``tasks.services`` (see ``tasks.write_guard``); the database itself keeps
what must hold even against raw SQL: the owner never changes, enums and lengths are checked, and
the search vector is kept by a trigger.
"""

from __future__ import annotations

from datetime import timedelta

import pgtrigger
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.db.models import Q
from django.db.models.functions import Cast, Length, Lower, Now
from django.db.models.lookups import GreaterThanOrEqual, LessThanOrEqual

from core.users import USER_ID_MAX_LENGTH
from events.models import NAME_MAX_LENGTH
from tasks.write_guard import GuardedTaskManager, assert_writes_allowed

# The accent-free, unstemmed words of every task (a text search configuration made by
# migration 0006): highlighting and typo correction compare words in it.
SEARCH_CONFIG = "tasks_simple"


class Priority(models.IntegerChoices):
    """Stored as a number so that ordering by priority is ordering by urgency."""

    LOW = 1, "low"
    MEDIUM = 2, "medium"
    HIGH = 3, "high"
    URGENT = 4, "urgent"

    @classmethod
    def from_label(cls, label: str) -> Priority:
        return _PRIORITY_BY_LABEL[label]

    @classmethod
    def labels_list(cls) -> list[str]:
        return [member.label for member in cls]


_PRIORITY_BY_LABEL = {member.label: member for member in Priority}

# The rules of each field, written once: the serializers, the MCP schemas, the event schemas
# and the validation take them from here.
PRIORITY_LABELS: tuple[str, ...] = tuple(Priority.labels_list())
TITLE_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 2000
MAX_TAGS = 20
TAG_MAX_LENGTH = 50
RECURRENCE_MAX_LENGTH = 500
TIMEZONE_MAX_LENGTH = 64
DEFAULT_TIMEZONE = "UTC"
# Due dates and reminders as clients write them ("2026-12-01T09:00:00+02:00", "1h").
WHEN_TEXT_MAX_LENGTH = 64


class Status(models.TextChoices):
    """A task's state as the API names it (stored as ``completed`` and ``skipped_at``): a
    skipped occurrence of a series is closed without being done."""

    PENDING = "pending"
    COMPLETED = "completed"
    SKIPPED = "skipped"


class RepeatFrom(models.TextChoices):
    """Where a series counts its next due time from: the due time of the instance just closed
    (the rule's own calendar), or the moment it was completed or skipped (Todoist's ``every!``),
    keeping the time of day of the due date."""

    DUE = "due"
    COMPLETION = "completion"


# How a change of a recurring instance's due date applies: to that occurrence alone, or to the
# series (its anchor moves, and so every later occurrence).
APPLY_TO_CHOICES: tuple[str, ...] = ("instance", "series")
REPEAT_FROM_CHOICES: tuple[str, ...] = tuple(RepeatFrom.values)
REPEAT_FROM_MAX_LENGTH = 16
# A deleted task stays in the trash this long, then the retention sweep purges it.
TRASH_RETENTION = timedelta(days=30)
# A task still to do: not done, not skipped, not in the trash (``status=pending`` of a list).
OPEN = Q(completed=False, skipped_at__isnull=True, deleted_at__isnull=True)
# How long after a change its author (the same token) may undo it.
UNDO_WINDOW = timedelta(minutes=10)
# How many next due times ``/occurrences/`` lists at most, and by default.
MAX_OCCURRENCES = 100
DEFAULT_OCCURRENCES = 10


# What a list of tasks can ask for.
STATUS_FILTERS: tuple[str, ...] = ("all", *Status.values)
TAG_MATCH_MODES = ("all", "any")
DUE_WINDOWS = ("overdue", "today", "this_week", "this_month", "none")
MAX_LIMIT = 100
DEFAULT_LIMIT = 50
MAX_OFFSET = 1_000_000
SEARCH_MAX_LENGTH = 200


_SEARCH_VECTOR_FUNC = """
    IF TG_OP = 'INSERT' OR NEW.title IS DISTINCT FROM OLD.title
        OR NEW.description IS DISTINCT FROM OLD.description OR NEW.tags IS DISTINCT FROM OLD.tags
        OR NEW.search_vector IS DISTINCT FROM OLD.search_vector THEN
        NEW.search_vector := tasks_search_document(NEW.title, NEW.description, NEW.tags);
    END IF;
    RETURN NEW;
"""

_LEXICON_FUNC = """
    INSERT INTO tasks_searchlexeme (user_id, lexeme)
    SELECT NEW.user_id, word FROM unnest(tsvector_to_array(NEW.search_vector)) AS word
    ON CONFLICT DO NOTHING;
    RETURN NULL;
"""


# What the kept counts count (``TaskCount``), in SQL over a task's columns: a task outside the
# trash, and of those one still open (``OPEN`` says both as a filter).
TASK_LIVE_SQL = "deleted_at IS NULL"
TASK_OPEN_SQL = "NOT completed AND skipped_at IS NULL"


def _count_change(*, new: bool, old: bool) -> str:
    """The statement trigger that adds what one statement changed to its users' counts
    (``TaskCount``): each task in the trash counts for nothing, each other task once in ``live``
    and, while it is open, once in ``open``; a row's new version counts up and its old one
    down. Users whose counts did not change are not written (a title edit, a purge of the
    trash), and the rest in user order, so two statements never wait for each other's rows in
    opposite orders."""
    # Constants only: the trigger's own SQL.
    row_change = (
        "SELECT user_id, {sign} AS live, {sign} * ({open})::int AS open FROM {rows} WHERE {live}"
    )
    changes = " UNION ALL ".join(
        row_change.format(sign=sign, open=TASK_OPEN_SQL, rows=rows, live=TASK_LIVE_SQL)
        for sign, rows, counted in ((1, "new_rows", new), (-1, "old_rows", old))
        if counted
    )
    return f"""
    INSERT INTO tasks_taskcount AS counted (user_id, live, open)
    SELECT user_id, sum(live), sum(open) FROM ({changes}) AS change
    GROUP BY user_id HAVING sum(live) <> 0 OR sum(open) <> 0 ORDER BY user_id
    ON CONFLICT (user_id) DO UPDATE
    SET live = counted.live + EXCLUDED.live, open = counted.open + EXCLUDED.open;
    RETURN NULL;
"""  # noqa: S608


def _count_trigger(name: str, operation, *, new: bool, old: bool) -> pgtrigger.Trigger:
    """A statement trigger keeping the counts through ``operation``, reading the rows it wrote
    (``new``) and the ones it replaced or removed (``old``)."""
    return pgtrigger.Trigger(
        name=name,
        level=pgtrigger.Statement,
        when=pgtrigger.After,
        operation=operation,
        referencing=pgtrigger.Referencing(
            old="old_rows" if old else None, new="new_rows" if new else None
        ),
        func=_count_change(new=new, old=old),
    )


class Task(models.Model):
    user_id = models.CharField(max_length=USER_ID_MAX_LENGTH)
    title = models.CharField(max_length=TITLE_MAX_LENGTH)
    description = models.TextField(blank=True, default="")
    completed = models.BooleanField(default=False)
    completed_at = models.DateTimeField(null=True, blank=True)
    priority = models.SmallIntegerField(choices=Priority.choices, default=Priority.MEDIUM)
    tags = models.JSONField(default=list, blank=True)
    due_at = models.DateTimeField(null=True, blank=True)
    # A reminder is either an offset before the due time (``reminder_offset``) or an absolute
    # time; ``remind_at`` is always the resolved instant.
    reminder_offset = models.DurationField(null=True, blank=True)
    remind_at = models.DateTimeField(null=True, blank=True)
    # Recurrence: the canonical rule text ("none", "daily", "FREQ=WEEKLY;BYDAY=MO,TH", ...), the
    # series every instance shares, the series' first due time and this instance's index in it.
    recurrence_rule = models.CharField(max_length=RECURRENCE_MAX_LENGTH, default="none")
    series_id = models.UUIDField(null=True, blank=True)
    series_anchor = models.DateTimeField(null=True, blank=True)
    series_index = models.PositiveIntegerField(default=0)
    # The index of the occurrence at ``series_anchor``: a series moved at instance n, or
    # repeating from completion, restarts its calendar there and keeps counting toward COUNT.
    series_anchor_index = models.PositiveIntegerField(default=0)
    repeat_from = models.CharField(
        max_length=REPEAT_FROM_MAX_LENGTH, choices=RepeatFrom.choices, default=RepeatFrom.DUE
    )
    # A skipped occurrence: closed, not done; the series went on to its next instance.
    skipped_at = models.DateTimeField(null=True, blank=True)
    # In the trash since then: hidden from every read but the trash, purged after
    # ``TRASH_RETENTION``.
    deleted_at = models.DateTimeField(null=True, blank=True)
    timezone = models.CharField(max_length=TIMEZONE_MAX_LENGTH, default=DEFAULT_TIMEZONE)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    version = models.PositiveIntegerField(default=1)
    # Kept by the ``task_search_vector`` trigger with ``tasks_search_document`` (migration
    # 0006): every word accent-free, stemmed in the languages the task is written in, and
    # Chinese or Japanese text as character pairs. Never written by Django.
    search_vector = SearchVectorField(null=True, editable=False)

    # Tags in lower case, for filters that ignore case as uniqueness does.
    tags_folded = models.GeneratedField(
        expression=Cast(Lower(Cast("tags", models.TextField())), models.JSONField()),
        output_field=models.JSONField(),
        db_persist=True,
    )

    objects = GuardedTaskManager()

    class Meta:
        indexes = [
            # user and words together (btree_gin): the planner answers a user's search from one index
            GinIndex(fields=["user_id", "search_vector"], name="task_user_search_gin"),
            models.Index(fields=["user_id", "updated_at", "id"], name="task_user_updated_idx"),
            models.Index(fields=["user_id", "due_at", "id"], name="task_user_due_idx"),
            models.Index(fields=["user_id", "priority", "id"], name="task_user_priority_idx"),
            # The default list (newest first) and its count: every list leaves out the trash,
            # so the count of a user's live tasks is read from this index alone.
            models.Index(
                fields=["user_id", "created_at", "id"],
                name="task_user_live_created_idx",
                condition=Q(deleted_at__isnull=True),
            ),
            # What is left to do (``status=pending``, ``due=overdue``): each index's condition is
            # the filter's whole, so a page reads no row it does not show and its count reads
            # the index alone.
            *(
                models.Index(
                    fields=["user_id", column, "id"],
                    name=f"task_user_open_{short}_idx",
                    condition=OPEN,
                )
                for column, short in (
                    ("due_at", "due"),
                    ("priority", "prio"),
                    ("created_at", "created"),
                )
            ),
            models.Index(
                fields=["user_id", "deleted_at", "id"],
                name="task_user_trash_idx",
                condition=Q(deleted_at__isnull=False),
            ),
            models.Index(
                fields=["deleted_at"],
                name="task_trash_age_idx",
                condition=Q(deleted_at__isnull=False),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(priority__gte=1, priority__lte=4), name="task_priority_valid"
            ),
            models.CheckConstraint(
                condition=Q(GreaterThanOrEqual(Length("title"), 1))
                & Q(LessThanOrEqual(Length("title"), TITLE_MAX_LENGTH)),
                name="task_title_length",
            ),
            models.CheckConstraint(
                condition=Q(LessThanOrEqual(Length("description"), DESCRIPTION_MAX_LENGTH)),
                name="task_description_length",
            ),
            models.CheckConstraint(
                condition=Q(completed=False, completed_at__isnull=True)
                | Q(completed=True, completed_at__isnull=False),
                name="task_completed_at_consistent",
            ),
            models.CheckConstraint(
                condition=Q(completed=False) | Q(skipped_at__isnull=True),
                name="task_done_or_skipped",
            ),
            models.CheckConstraint(
                condition=Q(repeat_from__in=REPEAT_FROM_CHOICES), name="task_repeat_from_valid"
            ),
            models.CheckConstraint(condition=~Q(user_id=""), name="task_user_id_not_empty"),
            models.CheckConstraint(condition=Q(version__gte=1), name="task_version_positive"),
            # One instance per series and due time: a redelivered or concurrent "create the
            # next instance" cannot make two.
            models.UniqueConstraint(
                fields=["series_id", "due_at"], name="task_one_instance_per_series_due"
            ),
        ]
        triggers = [
            pgtrigger.ReadOnly(name="task_user_id_read_only", fields=["user_id"]),
            # Keep the owner's lexicon (see SearchLexeme) holding every word of their tasks.
            pgtrigger.Trigger(
                name="task_search_vector",
                when=pgtrigger.Before,
                operation=pgtrigger.Insert | pgtrigger.Update,
                func=_SEARCH_VECTOR_FUNC,
            ),
            pgtrigger.Trigger(
                name="task_lexicon_on_insert",
                when=pgtrigger.After,
                operation=pgtrigger.Insert,
                func=_LEXICON_FUNC,
            ),
            pgtrigger.Trigger(
                name="task_lexicon_on_update",
                when=pgtrigger.After,
                operation=pgtrigger.Update,
                condition=pgtrigger.Condition(
                    "OLD.search_vector IS DISTINCT FROM NEW.search_vector"
                ),
                func=_LEXICON_FUNC,
            ),
            _count_trigger("task_count_on_insert", pgtrigger.Insert, new=True, old=False),
            _count_trigger("task_count_on_update", pgtrigger.Update, new=True, old=True),
            _count_trigger("task_count_on_delete", pgtrigger.Delete, new=False, old=True),
            pgtrigger.Trigger(
                name="task_tags_shape",
                when=pgtrigger.Before,
                operation=pgtrigger.Insert | pgtrigger.Update,
                func=f"""
                    IF jsonb_typeof(NEW.tags) <> 'array' THEN
                        RAISE EXCEPTION 'tags must be a JSON array' USING ERRCODE = 'check_violation';
                    END IF;
                    IF jsonb_array_length(NEW.tags) > {MAX_TAGS} THEN
                        RAISE EXCEPTION 'at most {MAX_TAGS} tags' USING ERRCODE = 'check_violation';
                    END IF;
                    RETURN NEW;
                """,
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} (#{self.pk})"

    def save(self, *args, **kwargs):
        assert_writes_allowed()
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        assert_writes_allowed()
        return super().delete(*args, **kwargs)

    @property
    def priority_label(self) -> str:
        return Priority(self.priority).label


class SearchLexeme(models.Model):
    """The words (stemmed lexemes) of one user's tasks, kept by a trigger on ``Task``.

    A prefix search first expands the typed prefix to the user's whole words here, then asks the
    GIN index for those exact words: a prefix straight on the GIN index would walk every user's
    words. Words are never removed (a stale one only expands to nothing). The trigram index
    hands typo correction (``tasks.search.corrections``) the few words that look like the
    typed one, instead of measuring the edit distance to every word the user has.
    """

    user_id = models.CharField(max_length=USER_ID_MAX_LENGTH)
    lexeme = models.TextField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user_id", "lexeme"],
                name="search_lexeme_user_word",
                opclasses=["varchar_pattern_ops", "text_pattern_ops"],
            )
        ]
        indexes = [
            GinIndex(
                "user_id",
                OpClass("lexeme", name="gin_trgm_ops"),
                name="search_lexeme_user_trgm",
            )
        ]

    def __str__(self) -> str:
        return self.lexeme


class TaskCount(models.Model):
    """How many tasks a user has outside the trash (``live``) and how many of those are open
    (``open``: neither done nor skipped), kept by statement triggers on ``Task`` in the
    transaction of each change. A list of all or of the open tasks reads its total here: a
    count of a user's 6,700 open tasks cost PostgreSQL 0.6 ms of the 1 ms a list page took."""

    user_id = models.CharField(primary_key=True, max_length=USER_ID_MAX_LENGTH)
    live = models.BigIntegerField(default=0)
    open = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.user_id}: {self.open} open of {self.live}"


class TaskHistory(models.Model):
    """One event of one task, as the audit consumer (``tasks.consumers``) recorded it. Kept
    after the task is deleted; its owner reads it at ``GET /api/tasks/<id>/history/``."""

    user_id = models.CharField(max_length=USER_ID_MAX_LENGTH)
    task_id = models.BigIntegerField()
    event_id = models.UUIDField(unique=True)
    event_type = models.CharField(max_length=NAME_MAX_LENGTH)
    sequence = models.BigIntegerField()
    occurred_at = models.DateTimeField()
    changed_fields = ArrayField(models.CharField(max_length=NAME_MAX_LENGTH), default=list)
    previous = models.JSONField(default=dict)
    task_data = models.JSONField()
    # Who made the change (the envelope's ``actor``); null for events recorded before it.
    actor = models.JSONField(null=True, blank=True)
    recorded_at = models.DateTimeField(db_default=Now())

    class Meta:
        # The table the events app created: the model moved, its rows stayed.
        db_table = "events_taskhistory"
        verbose_name_plural = "task history"
        indexes = [
            models.Index(fields=["user_id", "task_id", "sequence"], name="task_history_task_idx")
        ]

    def __str__(self) -> str:
        return f"task {self.task_id}: {self.event_type} #{self.sequence}"
