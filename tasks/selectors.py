"""Reads of tasks and their history, always scoped to one user: search, filter, sort, paginate."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.contrib.postgres.search import SearchRank
from django.db.models import Count, F, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from tasks.errors import TaskNotFound, TaskValidationError
from tasks.models import DEFAULT_LIMIT, DEFAULT_TIMEZONE, Priority, Status, Task, TaskHistory
from tasks.representation import REPRESENTATION_FIELDS, row_to_dict
from tasks.search import build_search_query

ORDERINGS = {
    "due_date": "due_at",
    "priority": "priority",
    "created_at": "created_at",
    "updated_at": "updated_at",
    "title": "title",
    "status": "completed",  # pending (false) first when ascending
    "relevance": "relevance",
}
NULLABLE_ORDERINGS = {"due_at"}


@dataclass(frozen=True)
class TaskFilters:
    q: str = ""
    status: str = "all"
    priorities: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    tags_mode: str = "all"
    due_before: datetime | None = None
    due_after: datetime | None = None
    due: str | None = None
    timezone: str = DEFAULT_TIMEZONE
    ordering: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class TaskPage:
    """One page of a user's tasks, already in their JSON representation."""

    items: list[dict]
    total: int
    limit: int
    offset: int


def task_get_for_user(*, user_id: str, task_id: int) -> Task:
    try:
        return Task.objects.only(*REPRESENTATION_FIELDS).get(pk=task_id, user_id=user_id)
    except (Task.DoesNotExist, ValueError, TypeError, OverflowError):
        raise TaskNotFound(task_id) from None


def _due_window(name: str, tz_name: str, now: datetime) -> Q:
    if name == "none":
        return Q(due_at__isnull=True)
    if name == "overdue":
        return Q(due_at__lt=now, completed=False)
    local = now.astimezone(ZoneInfo(tz_name))
    start_of_day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if name == "today":
        start, end = start_of_day, start_of_day + timedelta(days=1)
    elif name == "this_week":
        start = start_of_day - timedelta(days=local.weekday())
        end = start + timedelta(days=7)
    else:  # this_month
        start = start_of_day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    # Re-attach the zone after date arithmetic so DST shifts land on local midnight.
    zone = ZoneInfo(tz_name)
    start = start.replace(tzinfo=None).replace(tzinfo=zone)
    end = end.replace(tzinfo=None).replace(tzinfo=zone)
    return Q(due_at__gte=start, due_at__lt=end)


def _order_by(ordering: tuple[str, ...], searching: bool) -> list:
    terms = ordering or (("relevance",) if searching else ("-created_at",))
    order: list = []
    last_descending = True
    for term in terms:
        descending = term.startswith("-")
        name = term.lstrip("-")
        column = ORDERINGS[name]
        if column == "relevance":
            # Most relevant first; "-relevance" reads the same (it is a score).
            order.append(F("relevance").desc())
            descending = True
        else:
            expr = F(column)
            # NULLS LAST only where nulls exist: on a NOT NULL column it would stop the
            # planner from reading the (ascending) index backwards for a descending order.
            nulls_last = True if column in NULLABLE_ORDERINGS else None
            order.append(
                expr.desc(nulls_last=nulls_last) if descending else expr.asc(nulls_last=nulls_last)
            )
        last_descending = descending
    order.append(F("id").desc() if last_descending else F("id").asc())
    return order


def _matching(*, user_id: str, filters: TaskFilters):
    """The user's tasks that pass ``filters`` (no ordering), and the search query if any."""
    qs = Task.objects.filter(user_id=user_id)
    search = build_search_query(filters.q, user_id=user_id) if filters.q else None
    if search is not None:
        qs = qs.filter(search_vector=search)
    elif "relevance" in {term.lstrip("-") for term in filters.ordering}:
        raise TaskValidationError(
            "Ordering by relevance needs a search (q).", field="ordering", code="invalid_choice"
        )
    if filters.status == Status.PENDING:
        qs = qs.filter(completed=False)
    elif filters.status == Status.COMPLETED:
        qs = qs.filter(completed=True)
    if filters.priorities:
        values = [Priority.from_label(label).value for label in filters.priorities]
        qs = qs.filter(priority=values[0]) if len(values) == 1 else qs.filter(priority__in=values)
    if filters.tags:
        if filters.tags_mode == "any":
            any_tag = Q()
            for tag in filters.tags:
                any_tag |= Q(tags_folded__contains=[tag.lower()])
            qs = qs.filter(any_tag)
        else:
            qs = qs.filter(tags_folded__contains=[tag.lower() for tag in filters.tags])
    if filters.due_before is not None:
        qs = qs.filter(due_at__lt=filters.due_before)
    if filters.due_after is not None:
        qs = qs.filter(due_at__gte=filters.due_after)
    if filters.due:
        qs = qs.filter(_due_window(filters.due, filters.timezone, timezone.now()))
    return qs, search


def _ordered(qs: QuerySet[Task], search, filters: TaskFilters) -> QuerySet[Task]:
    if search is not None:
        qs = qs.annotate(relevance=SearchRank(F("search_vector"), search, cover_density=True))
    return qs.only(*REPRESENTATION_FIELDS).order_by(
        *_order_by(filters.ordering, search is not None)
    )


def task_queryset_for_user(*, user_id: str, filters: TaskFilters) -> QuerySet[Task]:
    """The user's tasks that pass ``filters``, in the order asked for."""
    qs, search = _matching(user_id=user_id, filters=filters)
    return _ordered(qs, search, filters)


def _count_of(matching: QuerySet[Task]) -> Coalesce:
    # Every row is the one user's, so grouping by user gives the single count row (none when
    # nothing matches, hence the 0).
    counted = matching.order_by().values("user_id").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted), 0)


def task_list_for_user(
    *, user_id: str, filters: TaskFilters, limit: int = DEFAULT_LIMIT, offset: int = 0
) -> TaskPage:
    matching, search = _matching(user_id=user_id, filters=filters)
    # The page and the total in one statement: the count is an uncorrelated subquery, which
    # PostgreSQL runs once, so a list costs one round trip instead of two.
    page = _ordered(matching, search, filters).annotate(total_count=_count_of(matching))
    # Rows, not model instances: building 100 models costs more than the query itself.
    rows = list(page.values(*REPRESENTATION_FIELDS, "total_count")[offset : offset + limit])
    if not rows:  # nothing matches, or past the end: no row carries the total
        total = matching.count() if offset else 0
        return TaskPage(items=[], total=total, limit=limit, offset=offset)
    return TaskPage(
        items=[row_to_dict(row) for row in rows],
        total=rows[0]["total_count"],
        limit=limit,
        offset=offset,
    )


@dataclass(frozen=True)
class HistoryPage:
    entries: list[TaskHistory]
    total: int
    limit: int
    offset: int


def task_history_for_user(*, user_id: str, task_id: int, limit: int, offset: int) -> HistoryPage:
    qs = TaskHistory.objects.filter(user_id=user_id, task_id=task_id).order_by("sequence")
    entries = list(qs[offset : offset + limit])
    if len(entries) < limit and (entries or offset == 0):
        total = offset + len(entries)
    else:
        total = qs.count()
    return HistoryPage(entries=entries, total=total, limit=limit, offset=offset)
