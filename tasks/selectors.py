"""Reads of tasks and their history, always scoped to one user: search, filter, sort, paginate.

A task in the trash is in no read but the trash's (``task_trash_for_user``)."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cache
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from django.db import connection, transaction
from django.db.models import (
    BigIntegerField,
    BooleanField,
    F,
    Func,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.expressions import RawSQL
from django.utils import timezone

from core.statements import StatementCache
from events.selectors import latest_sequence_expression, latest_sequence_for_user
from tasks.errors import TaskNotFound, TaskValidationError
from tasks.models import (
    DEFAULT_LIMIT,
    DEFAULT_TIMEZONE,
    MAX_OCCURRENCES,
    OPEN,
    TRASH_RETENTION,
    Priority,
    Status,
    Task,
    TaskCount,
    TaskHistory,
)
from tasks.recurrence_rules import (
    RecurrenceError,
    SeriesPosition,
    following_instances,
    parse_rule,
)
from tasks.representation import (
    REPRESENTATION_FIELDS,
    RepresentationJson,
    iso,
)
from tasks.search import Search, SearchSQL, corrections, marked, parse

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
    highlight: bool = False


@dataclass(frozen=True)
class TaskPage:
    """One page of a user's tasks, each already written as its JSON representation (``rows``,
    by ``RepresentationJson``): the REST API sends them as they are (``fragments``), the MCP
    tools read them (``items``)."""

    rows: list[str]
    total: int
    limit: int
    offset: int
    # Words of the search replaced by the closest word of the user's own ({typed: used}).
    corrected: dict[str, str] = field(default_factory=dict)
    # The sequence of the user's newest event the page reflects (lists only).
    sequence: int | None = None

    @property
    def items(self) -> list[dict]:
        return [orjson.loads(row) for row in self.rows]

    def fragments(self) -> list[orjson.Fragment]:
        """The tasks for a response body that orjson writes (``core.renderers``)."""
        return [orjson.Fragment(row) for row in self.rows]


def _with_key(row: str, key: str, value) -> str:
    """A task's JSON text with one more key at its end, as adding it to the dict would give."""
    return f"{row[:-1]},{orjson.dumps(key).decode()}:{orjson.dumps(value).decode()}}}"


def _live_tasks(user_id: str) -> QuerySet[Task]:
    """The user's tasks that are not in the trash."""
    return Task.objects.filter(user_id=user_id, deleted_at__isnull=True)


def task_get_for_user(*, user_id: str, task_id: int) -> Task:
    try:
        return _live_tasks(user_id).only(*REPRESENTATION_FIELDS).get(pk=task_id)
    except (Task.DoesNotExist, ValueError, TypeError, OverflowError):
        raise TaskNotFound(task_id) from None


def task_representation_for_user(*, user_id: str, task_id: int) -> tuple[str, int]:
    """A task as PostgreSQL writes its JSON (``RepresentationJson``) and its version, for a
    read that sends it as it is: no model is built, and the statement is compiled once."""
    if not isinstance(task_id, int) or not 0 < task_id < 2**63:
        raise TaskNotFound(task_id)
    sql, params = _ONE_TASK.statement((), (user_id, task_id))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        raise TaskNotFound(task_id)
    return row[0], row[1]


def _one_task_sql(shape: tuple, values: tuple) -> tuple[str, Sequence[Any]]:
    user_id, task_id = values
    one = _live_tasks(user_id).filter(pk=task_id).values_list(RepresentationJson(), "version")
    return one.query.sql_with_params()


_ONE_TASK = StatementCache(_one_task_sql, maxsize=1)


def _due_bounds(name: str, tz_name: str, now: datetime) -> tuple[datetime, ...]:
    """The instants a ``due`` window compares with: none, now (overdue), or its local start
    and end."""
    if name == "none":
        return ()
    if name == "overdue":
        return (now,)
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
    return start.replace(tzinfo=None).replace(tzinfo=zone), end.replace(tzinfo=None).replace(
        tzinfo=zone
    )


def _due_in(name: str, bounds: tuple[datetime, ...]) -> Q:
    if name == "none":
        return Q(due_at__isnull=True)
    if name == "overdue":
        return Q(due_at__lt=bounds[0]) & OPEN
    start, end = bounds
    return Q(due_at__gte=start, due_at__lt=end)


@dataclass(frozen=True)
class _Criteria:
    """A list's filters as the values its SQL compares with: priority numbers, folded tags, a
    due window's bounds. ``shape`` is what the SQL depends on and ``values`` what it takes as
    parameters, so that a list page's statement is compiled once per shape
    (``core.statements``)."""

    user_id: str
    status: str = "all"
    priorities: tuple[int, ...] = ()
    tags: tuple[str, ...] = ()
    tags_mode: str = "all"
    due_before: datetime | None = None
    due_after: datetime | None = None
    due: str | None = None
    due_bounds: tuple[datetime, ...] = ()

    @classmethod
    def of(cls, user_id: str, filters: TaskFilters) -> _Criteria:
        return cls(
            user_id=user_id,
            status=filters.status,
            priorities=tuple(Priority.from_label(label).value for label in filters.priorities),
            tags=tuple(tag.lower() for tag in filters.tags),
            tags_mode=filters.tags_mode,
            due_before=filters.due_before,
            due_after=filters.due_after,
            due=filters.due,
            due_bounds=(
                _due_bounds(filters.due, filters.timezone, timezone.now()) if filters.due else ()
            ),
        )

    @property
    def shape(self) -> tuple:
        return (
            self.status,
            len(self.priorities),
            len(self.tags),
            self.tags_mode if self.tags else None,
            self.due_before is not None,
            self.due_after is not None,
            self.due,
        )

    @property
    def status_only(self) -> bool:
        """Whether the status is the list's only filter."""
        return self.shape[1:] == (0, 0, None, False, False, None)

    @property
    def values(self) -> tuple:
        bounds = (self.due_before, self.due_after)
        return (
            self.user_id,
            *self.priorities,
            *self.tags,
            *(bound for bound in bounds if bound is not None),
            *self.due_bounds,
        )

    @classmethod
    def bound(cls, shape: tuple, values: tuple) -> _Criteria:
        """The criteria of ``shape`` with ``values`` (the inverse of ``shape`` and ``values``)."""
        status, priorities, tags, tags_mode, before, after, due = shape
        rest = iter(values)

        def take(count: int) -> tuple:
            return tuple(next(rest) for _ in range(count))

        return cls(
            user_id=next(rest),
            status=status,
            priorities=take(priorities),
            tags=take(tags),
            tags_mode=tags_mode or "all",
            due_before=next(rest) if before else None,
            due_after=next(rest) if after else None,
            due=due,
            due_bounds=tuple(rest),
        )

    def filter(self, qs: QuerySet[Task]) -> QuerySet[Task]:
        if self.status == Status.PENDING:
            qs = qs.filter(OPEN)
        elif self.status == Status.COMPLETED:
            qs = qs.filter(completed=True)
        elif self.status == Status.SKIPPED:
            qs = qs.filter(skipped_at__isnull=False)
        if self.priorities:
            values = self.priorities
            qs = (
                qs.filter(priority=values[0])
                if len(values) == 1
                else qs.filter(priority__in=values)
            )
        if self.tags:
            if self.tags_mode == "any":
                any_tag = Q()
                for tag in self.tags:
                    any_tag |= Q(tags_folded__contains=[tag])
                qs = qs.filter(any_tag)
            else:
                qs = qs.filter(tags_folded__contains=list(self.tags))
        if self.due_before is not None:
            qs = qs.filter(due_at__lt=self.due_before)
        if self.due_after is not None:
            qs = qs.filter(due_at__gte=self.due_after)
        if self.due:
            qs = qs.filter(_due_in(self.due, self.due_bounds))
        return qs


@dataclass(frozen=True)
class _SortKey:
    """One key of a list's order: a column of the task, or one of a search's rank keys."""

    name: str
    descending: bool
    nulls_last: bool | None = None

    def expression(self):
        expr = F(self.name)
        return (
            expr.desc(nulls_last=self.nulls_last)
            if self.descending
            else expr.asc(nulls_last=self.nulls_last)
        )

    def sql(self, table: str, prefix: str) -> str:
        """The key in an ORDER BY over ``table`` whose columns are named ``prefix`` + name."""
        nulls = " NULLS LAST" if self.nulls_last else ""
        column = connection.ops.quote_name(prefix + self.name)
        return f"{table}.{column} {'DESC' if self.descending else 'ASC'}{nulls}"


def _sort_keys(ordering: tuple[str, ...], rank_keys: tuple[str, ...]) -> list[_SortKey]:
    """The order of a list; ``rank_keys`` name the search's relevance keys (none without a
    search)."""
    terms = ordering or (("relevance", "-created_at") if rank_keys else ("-created_at",))
    keys: list[_SortKey] = []
    last_descending = True
    for term in terms:
        descending = term.startswith("-")
        name = term.lstrip("-")
        column = ORDERINGS[name]
        if column == "relevance":
            # Title matches first, then exact words, then the score (``SearchSQL.rank_keys``);
            # "-relevance" reads the same.
            keys += [_SortKey(key, descending=True) for key in rank_keys]
            descending = True
        else:
            # NULLS LAST only where nulls exist: on a NOT NULL column it would stop the
            # planner from reading the (ascending) index backwards for a descending order.
            nulls_last = True if column in NULLABLE_ORDERINGS else None
            keys.append(_SortKey(column, descending=descending, nulls_last=nulls_last))
        last_descending = descending
    keys.append(_SortKey("id", descending=last_descending))
    return keys


def _in_order(
    qs: QuerySet[Task], ordering: tuple[str, ...], rank_keys: tuple[str, ...] = ()
) -> QuerySet[Task]:
    """``qs`` with the columns a task's representation needs, in the list's order."""
    keys = _sort_keys(ordering, rank_keys)
    return qs.only(*REPRESENTATION_FIELDS).order_by(*(key.expression() for key in keys))


def _matching(*, user_id: str, filters: TaskFilters, search: Search | None = None):
    """The user's tasks that pass ``filters`` (no ordering), and the search query if any."""
    qs = _live_tasks(user_id)
    if search is None and filters.q:
        search = parse(filters.q, user_id=user_id)
    if search is not None:
        qs = qs.filter(search.matches())
    else:
        _refuse_relevance(filters)
    return _Criteria.of(user_id, filters).filter(qs), search


def _refuse_relevance(filters: TaskFilters) -> None:
    """Without a search there is no relevance to sort by."""
    if "relevance" in {term.lstrip("-") for term in filters.ordering}:
        raise TaskValidationError(
            "Ordering by relevance needs a search (q).", field="ordering", code="invalid_choice"
        )


def _ordered(qs: QuerySet[Task], search: Search | None, filters: TaskFilters) -> QuerySet[Task]:
    rank_keys = search.sql.rank_keys() if search is not None else {}
    if search is not None:
        qs = qs.alias(**rank_keys)
        if filters.highlight:
            qs = qs.annotate(
                title_marked=search.sql.headline("title"),
                description_marked=search.sql.headline("description"),
            )
    return _in_order(qs, filters.ordering, tuple(rank_keys))


def task_queryset_for_user(
    *, user_id: str, filters: TaskFilters, search: Search | None = None
) -> QuerySet[Task]:
    """The user's tasks that pass ``filters``, in the order asked for; ``search`` is
    ``filters.q`` already parsed, when the caller has it."""
    qs, search = _matching(user_id=user_id, filters=filters, search=search)
    return _ordered(qs, search, filters)


def _count_of(matching: QuerySet[Task]) -> RawSQL:
    """How many rows ``matching`` has, as an uncorrelated subquery (PostgreSQL runs it once):
    a plain ``count(*)``, which an index whose condition is the filter answers alone."""
    sql, params = matching.order_by().values("pk").query.sql_with_params()
    # The ORM's own SQL with its parameters kept apart: nothing of the request is in the text.
    return RawSQL(  # noqa: S611
        f"(SELECT count(*) FROM ({sql}) AS matching)",  # noqa: S608
        params,
        output_field=BigIntegerField(),
    )


def _kept_count(criteria: _Criteria) -> RawSQL | None:
    """The total of a list of all or of the open tasks, as the triggers keep it (``TaskCount``),
    instead of counting them; None for a list with other filters."""
    column = {"all": "live", Status.PENDING: "open"}.get(criteria.status)
    if column is None or not criteria.status_only:
        return None
    table = connection.ops.quote_name(TaskCount._meta.db_table)
    return RawSQL(  # noqa: S611
        f"COALESCE((SELECT {column} FROM {table} WHERE user_id = %s), 0)",  # noqa: S608
        [criteria.user_id],
        output_field=BigIntegerField(),
    )


def task_list_for_user(
    *, user_id: str, filters: TaskFilters, limit: int = DEFAULT_LIMIT, offset: int = 0
) -> TaskPage:
    """One page of the user's tasks, its total, and the sequence of the user's newest event it
    reflects (``sequence``): ``/api/changes/?since=<sequence>`` then gives every later change
    once. A search that finds nothing is tried again with the closest words the user has."""
    read = _read_page(user_id=user_id, filters=filters, limit=limit, offset=offset)
    if read.rows or read.search is None or offset:
        return read.page()
    # Nothing matched: try the closest words the user has for the words that match nothing.
    corrected = corrections(read.search)
    if not corrected:
        return read.page()
    fixed = _read_page(
        user_id=user_id,
        filters=filters,
        limit=limit,
        offset=offset,
        search=read.search.with_corrections(corrected),
    )
    return replace(fixed.page(), corrected=corrected)


@contextmanager
def _one_snapshot() -> Iterator[None]:
    """Run the block's reads in one REPEATABLE READ, read-only transaction, so that they see
    the same committed state. Inside a transaction already (a test's, or a write's), the block
    joins it: that transaction decides what is seen."""
    if connection.in_atomic_block:
        yield
        return
    with transaction.atomic():
        # The transaction's first statement, so that its snapshot is the one every read of the
        # block sees (said in SQL rather than through the driver's connection attributes, which
        # a pooled or reused connection may not carry into the next BEGIN).
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


@dataclass(frozen=True)
class _PageRead:
    """What one statement read for a page (``_read_page``); ``page()`` makes it the page."""

    user_id: str
    limit: int
    offset: int
    search: Search | None
    count: Callable[[], int]  # how many tasks match, for a page past the end
    read_again: Callable[[], list[Any]]  # the same statement, for the empty page's snapshot
    highlighted: bool
    rows: list[Any]  # named rows: representation, total_count, sequence[, marks]

    def page(self) -> TaskPage:
        rows = self.rows
        if not rows:
            # Nothing matches, or past the end: no row carries the total and the sequence.
            # They are read with the page again in one snapshot (``_one_snapshot``): a task
            # written since the first read would otherwise be in neither the page nor the
            # changes after it.
            with _one_snapshot():
                rows = self.read_again()
                if not rows:
                    return TaskPage(
                        rows=[],
                        total=self.count() if self.offset else 0,
                        limit=self.limit,
                        offset=self.offset,
                        sequence=latest_sequence_for_user(user_id=self.user_id),
                    )
        if self.highlighted:
            texts = [
                _with_key(
                    row.representation,
                    "highlight",
                    {
                        "title": marked(row.title_marked),
                        "description": marked(row.description_marked),
                    },
                )
                for row in rows
            ]
        else:
            texts = [row.representation for row in rows]
        first = rows[0]
        return TaskPage(
            rows=texts,
            total=first.total_count,
            limit=self.limit,
            offset=self.offset,
            sequence=first.sequence,
        )


@dataclass(frozen=True)
class PageStatement:
    """A page read as one SQL statement (``search_page_statement``, ``_LIST_PAGES``): named
    rows of representation, total_count, sequence[, title_marked, description_marked]."""

    sql: str
    params: tuple
    columns: tuple[str, ...]

    def rows(self) -> list[Any]:
        row_type = _row_type(self.columns)
        with connection.cursor() as cursor:
            cursor.execute(self.sql, self.params)
            return [row_type(*row) for row in cursor.fetchall()]


@cache
def _row_type(columns: tuple[str, ...]):
    return namedtuple("Row", columns)


_QUERY, _MATCHED, _PAGE, _KEY = "search_query", "matched", "page", "k_"
# What each row of a page's statement holds (a highlighted search's rows hold the marks too).
_LIST_COLUMNS = ("representation", "total_count", "sequence")


def search_page_statement(
    *, user_id: str, search: Search, filters: TaskFilters, limit: int, offset: int
) -> PageStatement:
    """A search's page, its total and the user's sequence in one statement
    (``_search_page_sql``), compiled once per shape of search and filters and bound to this
    one's words and values (``core.statements``)."""
    criteria = _Criteria.of(user_id, filters)
    query = search.sql
    shape = (query.shape, criteria.shape, filters.ordering, filters.highlight, limit, offset)
    sql, params = _SEARCH_PAGES.statement(shape, (*query.values, *criteria.values))
    marks = ("title_marked", "description_marked") if filters.highlight else ()
    return PageStatement(sql=sql, params=params, columns=(*_LIST_COLUMNS, *marks))


def _search_page_sql(shape: tuple, values: tuple) -> tuple[str, list]:
    """The SQL of a search's page (``search_page_statement``). Every match is read once, with
    only its id and the keys it is sorted by (``matched``); the total counts those, and only
    the page's rows are read whole and written as JSON. Sorted whole, and scanned a second time
    for the total, a search that matches 3,400 tasks took 9 ms in PostgreSQL instead of 5."""
    query_shape, criteria_shape, ordering, highlight, limit, offset = shape
    written = SearchSQL.bound(query_shape, values)
    criteria = _Criteria.bound(criteria_shape, values[len(written.values) :])
    query = written.read_from(_QUERY)
    matching = criteria.filter(_live_tasks(criteria.user_id).filter(query.matches()))
    rank_keys = query.rank_keys()
    keys = _sort_keys(ordering, tuple(rank_keys))
    selected: dict[str, Any] = {_KEY + name: expr for name, expr in rank_keys.items()}
    selected |= {_KEY + key.name: F(key.name) for key in keys if key.name not in rank_keys}
    matched_sql, matched_params = (
        matching.order_by().annotate(**selected).values(*selected).query.sql_with_params()
    )
    sequence = latest_sequence_expression(user_id=criteria.user_id)
    table = connection.ops.quote_name(Task._meta.db_table)
    # The text is constants, the ORM's own SQL and placeholders: nothing of the request.
    columns = [
        f"{RepresentationJson().as_sql(None, connection)[0]} AS representation",
        f"(SELECT count(*) FROM {_MATCHED}) AS total_count",  # noqa: S608
        f"{sequence.sql} AS sequence",
    ]
    params = [*written.params, *matched_params, *sequence.params]
    if highlight:
        for mark, column in (("title_marked", "title"), ("description_marked", "description")):
            headline = query.headline(column)
            columns.append(f"{headline.sql} AS {mark}")
            params += headline.params
    order_matched = ", ".join(key.sql(_MATCHED, _KEY) for key in keys)
    order_page = ", ".join(key.sql(_PAGE, _KEY) for key in keys)
    sql = (
        f"WITH {_QUERY} AS MATERIALIZED (SELECT {written.query} AS query), "  # noqa: S608
        f"{_MATCHED} AS MATERIALIZED ({matched_sql}), "
        f"{_PAGE} AS (SELECT * FROM {_MATCHED} ORDER BY {order_matched} "
        f"LIMIT {int(limit)} OFFSET {int(offset)}) "
        f"SELECT {', '.join(columns)} FROM {_PAGE} "
        f"JOIN {table} ON {table}.id = {_PAGE}.{_KEY}id ORDER BY {order_page}"
    )
    return sql, params


_SEARCH_PAGES = StatementCache(_search_page_sql)


def _read_page(
    *, user_id: str, filters: TaskFilters, limit: int, offset: int, search: Search | None = None
) -> _PageRead:
    """The page, its total and the user's sequence in one statement, which sees one snapshot:
    no transaction is needed for them to agree, and a list costs one round trip."""
    if search is None and filters.q:
        search = parse(filters.q, user_id=user_id)
    if search is not None:
        statement = search_page_statement(
            user_id=user_id, search=search, filters=filters, limit=limit, offset=offset
        )
    else:
        # Its statement is compiled once per shape of its filters.
        _refuse_relevance(filters)
        criteria = _Criteria.of(user_id, filters)
        sql, params = _LIST_PAGES.statement(
            (criteria.shape, filters.ordering, limit, offset), criteria.values
        )
        statement = PageStatement(sql=sql, params=params, columns=_LIST_COLUMNS)
    return _PageRead(
        user_id=user_id,
        limit=limit,
        offset=offset,
        search=search,
        count=lambda: _matching(user_id=user_id, filters=filters, search=search)[0].count(),
        read_again=statement.rows,
        highlighted=search is not None and filters.highlight,
        rows=statement.rows(),
    )


def _list_page_sql(shape: tuple, values: tuple) -> tuple[str, Sequence[Any]]:
    """The SQL of a list page without a search (``_LIST_PAGES``): the page's tasks written as
    JSON, how many match, and the user's sequence."""
    criteria_shape, ordering, limit, offset = shape
    criteria = _Criteria.bound(criteria_shape, values)
    user_id = criteria.user_id
    matching = criteria.filter(_live_tasks(user_id))
    page = _in_order(matching, ordering)
    start = offset
    if offset:
        # Read in index order, PostgreSQL writes the JSON of every row up to the page's end,
        # the ones the offset skips too: past the first page, the page's ids are found first,
        # then written.
        ids = page.values("pk")[offset : offset + limit]
        page = _in_order(_live_tasks(user_id).filter(pk__in=Subquery(ids)), ordering)
        start = 0
    selected = page.annotate(
        representation=RepresentationJson(),
        total_count=_kept_count(criteria) or _count_of(matching),
        sequence=latest_sequence_expression(user_id=user_id),
    ).values_list(*_LIST_COLUMNS)[start : start + limit]
    return selected.query.sql_with_params()


_LIST_PAGES = StatementCache(_list_page_sql)


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


def task_trash_for_user(*, user_id: str, limit: int, offset: int) -> TaskPage:
    """The user's tasks in the trash, most recently deleted first; each is purged
    ``TRASH_RETENTION`` after its ``deleted_at``."""
    trashed = Task.objects.filter(user_id=user_id, deleted_at__isnull=False)
    rows = list(
        trashed.order_by("-deleted_at", "-id").values_list(RepresentationJson(), "deleted_at")[
            offset : offset + limit
        ]
    )
    complete = len(rows) < limit and (rows or offset == 0)
    total = offset + len(rows) if complete else trashed.count()
    texts = [
        _with_key(text, "purge_after", iso(deleted_at + TRASH_RETENTION))
        for text, deleted_at in rows
    ]
    return TaskPage(rows=texts, total=total, limit=limit, offset=offset)


@dataclass(frozen=True)
class Occurrence:
    """One due time of a series: of an instance that exists (``task_id``), or of one still to
    be created."""

    index: int
    due_at: datetime
    timezone: str
    task_id: int | None = None

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "due": self.due_at.astimezone(ZoneInfo(self.timezone)).isoformat(),
            "due_utc": iso(self.due_at),
            "task_id": self.task_id,
        }


@dataclass(frozen=True)
class Occurrences:
    """A task and the next due times of its series from it on (``task_occurrences``)."""

    task: Task
    items: list[Occurrence]


def task_occurrences(*, user_id: str, task_id: int, count: int) -> Occurrences:
    """The task, and the next ``count`` due times of the task's series from this task on: the instances that
    are still open from it on (done and skipped ones left out, one moved on its own where it was
    moved to), then the ones the
    recurrence consumer will create, worked out by the same ``following_instances`` (each
    assumed closed on its due time; the first after an open instance as if closed now). Ends
    with the series (COUNT, UNTIL, or a later instance in the trash). A task that does not
    repeat is a 400 ``not_recurring``."""
    if not 1 <= count <= MAX_OCCURRENCES:
        raise TaskValidationError(
            f"count must be between 1 and {MAX_OCCURRENCES}.", field="count", code="out_of_range"
        )
    task = task_get_for_user(user_id=user_id, task_id=task_id)
    if task.recurrence_rule == "none" or task.series_id is None or task.due_at is None:
        raise TaskValidationError(
            "This task does not repeat: it has no occurrences.",
            field="recurrence_pattern",
            code="not_recurring",
        )
    # Instances are created one after another: this one and those created after it.
    chain = list(
        Task.objects.filter(user_id=user_id, series_id=task.series_id, pk__gte=task.pk)
        .only(*REPRESENTATION_FIELDS)
        .order_by("pk")
    )
    live = [instance for instance in chain if instance.deleted_at is None]
    found = [
        Occurrence(instance.series_index, instance.due_at, instance.timezone, instance.pk)
        for instance in live
        if not instance.completed and instance.skipped_at is None and instance.due_at is not None
    ]
    last = live[-1]
    if len(found) >= count or chain[-1].deleted_at is not None:
        return Occurrences(task, found[:count])
    return Occurrences(task, found + _projected(last, count - len(found)))


def _projected(last: Task, wanted: int) -> list[Occurrence]:
    """What follows the series' latest instance, as the recurrence consumer will create it."""
    try:
        rule = parse_rule(last.recurrence_rule)
    except RecurrenceError:
        return []  # stored before a fix: the consumer ends such a series
    if rule is None or last.due_at is None or last.series_anchor is None:
        return []
    now = timezone.now()
    position = SeriesPosition(
        rule=rule,
        tz=last.timezone,
        anchor=last.series_anchor,
        anchor_index=last.series_anchor_index,
        due_at=last.due_at,
        index=last.series_index,
        repeat_from=last.repeat_from,
    )
    closed_at = last.completed_at or last.skipped_at or now
    try:
        upcoming = list(islice(following_instances(position, closed_at=closed_at, now=now), wanted))
    except (RecurrenceError, ValueError, OverflowError):
        return []
    return [Occurrence(item.index, item.due_at, last.timezone) for item in upcoming]


class _IsAnyOf(Func):
    """``column = ANY(array)``, the array as one literal: psycopg adapts a list of a thousand
    ints one by one in Python."""

    arg_joiner = " = ANY("
    template = "%(expressions)s::bigint[])"
    output_field = BooleanField()


def task_representations_in_bulk(*, user_id: str, task_ids) -> dict[int, dict]:
    """The user's tasks among ``task_ids`` as they are now, by id (a task that is gone or in
    the trash is not there), written by PostgreSQL (``RepresentationJson``): for pages of up
    to a thousand tasks (the change feed)."""
    if not task_ids:
        return {}
    ids = "{" + ",".join(map(str, map(int, task_ids))) + "}"
    rows = _live_tasks(user_id).filter(_IsAnyOf(F("id"), Value(ids)))
    tasks = (orjson.loads(text) for text in rows.values_list(RepresentationJson(), flat=True))
    return {task["id"]: task for task in tasks}
