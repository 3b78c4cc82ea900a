"""The task: one row per task, owned by one user for its whole life.

Writes happen only in ``tasks.services`` (see ``tasks.write_guard``); the database itself keeps
what must hold even against raw SQL: the owner never changes, enums and lengths are checked, and
the search vector is a generated column.
"""

from __future__ import annotations

import pgtrigger
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from django.db.models import Q
from django.db.models.functions import Cast, Length, Lower, Now
from django.db.models.lookups import GreaterThanOrEqual, LessThanOrEqual

from core.users import USER_ID_MAX_LENGTH
from events.models import NAME_MAX_LENGTH
from tasks.write_guard import GuardedTaskManager, assert_writes_allowed

SEARCH_CONFIG = "english"


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
    """A task's state as the API names it (stored as ``completed``)."""

    PENDING = "pending"
    COMPLETED = "completed"


# What a list of tasks can ask for.
STATUS_FILTERS: tuple[str, ...] = ("all", *Status.values)
TAG_MATCH_MODES = ("all", "any")
DUE_WINDOWS = ("overdue", "today", "this_week", "this_month", "none")
MAX_LIMIT = 100
DEFAULT_LIMIT = 50
MAX_OFFSET = 1_000_000
SEARCH_MAX_LENGTH = 200


_LEXICON_FUNC = """
    INSERT INTO tasks_searchlexeme (user_id, lexeme)
    SELECT NEW.user_id, word FROM unnest(tsvector_to_array(NEW.search_vector)) AS word
    ON CONFLICT DO NOTHING;
    RETURN NULL;
"""


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
    timezone = models.CharField(max_length=TIMEZONE_MAX_LENGTH, default=DEFAULT_TIMEZONE)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    version = models.PositiveIntegerField(default=1)
    search_vector = models.GeneratedField(
        expression=(
            SearchVector("title", weight="A", config=SEARCH_CONFIG)
            + SearchVector("description", weight="B", config=SEARCH_CONFIG)
            + SearchVector(Cast("tags", models.TextField()), weight="C", config=SEARCH_CONFIG)
        ),
        output_field=SearchVectorField(),
        db_persist=True,
    )

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
            models.Index(fields=["user_id", "created_at", "id"], name="task_user_created_idx"),
            models.Index(fields=["user_id", "updated_at", "id"], name="task_user_updated_idx"),
            models.Index(fields=["user_id", "due_at", "id"], name="task_user_due_idx"),
            models.Index(fields=["user_id", "priority", "id"], name="task_user_priority_idx"),
            models.Index(
                fields=["user_id", "due_at", "id"],
                name="task_user_pending_due_idx",
                condition=Q(completed=False),
            ),
            models.Index(
                fields=["user_id", "priority", "id"],
                name="task_user_pending_prio_idx",
                condition=Q(completed=False),
            ),
            models.Index(
                fields=["user_id", "created_at", "id"],
                name="task_user_pending_created_idx",
                condition=Q(completed=False),
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
    words. Words are never removed (a stale one only expands to nothing).
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

    def __str__(self) -> str:
        return self.lexeme


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
