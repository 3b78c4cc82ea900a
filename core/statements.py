"""SQL that the ORM compiles once per shape of a query, not once per request.

For a list page, building the queryset and compiling it cost more of the server's time than
running the prepared statement: 0.6 ms of Python against 0.1 ms. What the SQL says depends only
on the query's shape (which filters it has, how many values each takes, its order, the page's
bounds); the request's values are parameters. ``StatementCache`` compiles a shape once with
placeholders in place of the values, notes where each placeholder lands among the parameters,
and binds the next request's values there.

A shape is kept only when that is exact: on its first use the statement is compiled with the
request's own values as well, and the placeholders bound to those values must give the same SQL
and the same parameters. A shape for which they differ (a value the ORM wrote into the SQL
text, or changed on the way) is compiled for every request, as without the cache.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb

# build(shape, values): a shape is any hashable value its build function understands.
Build = Callable[[Any, tuple], tuple[str, Sequence[Any]]]

# Placeholders no request sends: strings from Unicode's private use area, integers at the top
# of smallint's range, instants in the first seconds of the year 2000.
_STRING_MARK = "\ue000"
_INTEGER_BASE = 30_000
_INSTANT_BASE = datetime(2000, 1, 1, tzinfo=UTC)


def _placeholder(value: Any, index: int) -> Any:
    """A value no request sends, of ``value``'s kind; None for a kind that has too few values
    to hold one (bool) or that is not foreseen."""
    if isinstance(value, str):
        return f"{_STRING_MARK}{index}{_STRING_MARK}"
    if isinstance(value, int) and not isinstance(value, bool):
        return _INTEGER_BASE + index
    if isinstance(value, datetime):
        return _INSTANT_BASE + timedelta(seconds=index + 1)
    return None


def _key(param: Any) -> tuple[str, Any]:
    """A parameter as a placeholder is looked up and as two parameter lists are compared: an
    integer never equals a string, and a JSON value compares by what it holds."""
    if isinstance(param, Jsonb):
        return ("jsonb", repr(param.obj))
    if isinstance(param, str):
        return ("str", param)
    if isinstance(param, datetime):
        return ("datetime", param)
    if isinstance(param, int) and not isinstance(param, bool):
        return ("int", int(param))
    return (type(param).__qualname__, repr(param))


@dataclass(frozen=True)
class _Slot:
    """A parameter that is one of the values (``index``), or a JSON list of some of them."""

    index: int | None = None  # the value at this index, in the template parameter's own type
    members: tuple[int | None, ...] | None = None  # a Jsonb list: each element's value index
    template: Any = None  # the template's parameter: kept as is when it is no value at all


@dataclass(frozen=True)
class CompiledStatement:
    sql: str
    slots: tuple[_Slot, ...]

    def params(self, values: tuple) -> tuple:
        bound = []
        for slot in self.slots:
            if slot.members is not None:
                items = slot.template.obj
                bound.append(
                    Jsonb(
                        [
                            values[index] if index is not None else item
                            for index, item in zip(slot.members, items, strict=True)
                        ]
                    )
                )
            elif slot.index is not None:
                value = values[slot.index]
                kind = type(slot.template)
                # psycopg's wrappers of int (Int2, Int8, ...) say which type PostgreSQL gets.
                bound.append(kind(value) if kind not in (int, str, datetime) else value)
            else:
                bound.append(slot.template)
        return tuple(bound)


def _compiled(sql: str, params: Sequence[Any], placeholders: tuple) -> CompiledStatement:
    """The statement compiled with ``placeholders``, each parameter a slot of the value whose
    placeholder it is (or a constant)."""
    marks = {_key(placeholder): index for index, placeholder in enumerate(placeholders)}
    slots = []
    for param in params:
        if isinstance(param, Jsonb) and isinstance(param.obj, list):
            members = tuple(marks.get(_key(item)) for item in param.obj)
            slots.append(_Slot(members=members, template=param))
        else:
            slots.append(_Slot(index=marks.get(_key(param)), template=param))
    return CompiledStatement(sql=sql, slots=tuple(slots))


class StatementCache:
    """The SQL of ``build(shape, values)`` kept per ``shape`` (at most ``maxsize``, the least
    recently used dropped first). ``build`` must give SQL that depends on ``shape`` alone, with
    each of ``values`` as a parameter; the cache checks it (module docstring), and compiles
    every time where it does not hold or a value is not a str, an int or a datetime."""

    def __init__(self, build: Build, *, maxsize: int = 512):
        self._build = build
        self._maxsize = maxsize
        self._entries: OrderedDict[Hashable, CompiledStatement | None] = OrderedDict()
        self._lock = threading.Lock()

    def statement(self, shape: Hashable, values: tuple) -> tuple[str, tuple]:
        """The SQL and parameters of ``build(shape, values)``."""
        with self._lock:
            known = shape in self._entries
            compiled = self._entries.get(shape)
            if known:
                self._entries.move_to_end(shape)
        if compiled is not None:
            return compiled.sql, compiled.params(values)
        sql, params = self._build(shape, values)
        if not known:
            self._remember(shape, values, sql, tuple(params))
        return sql, tuple(params)

    def _remember(self, shape: Hashable, values: tuple, sql: str, params: tuple) -> None:
        placeholders = tuple(_placeholder(value, index) for index, value in enumerate(values))
        compiled: CompiledStatement | None = None
        if None not in placeholders:
            template_sql, template_params = self._build(shape, placeholders)
            compiled = _compiled(template_sql, template_params, placeholders)
            if compiled.sql != sql or [_key(p) for p in compiled.params(values)] != [
                _key(p) for p in params
            ]:
                compiled = None  # not exact for this shape: compiled for every request
        with self._lock:
            self._entries[shape] = compiled
            while len(self._entries) > self._maxsize:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every shape (a test that changes how statements are built)."""
        with self._lock:
            self._entries.clear()

    def shapes(self) -> dict[Hashable, bool]:
        """Each shape seen, and whether its statement is kept (for tests and operators)."""
        with self._lock:
            return {shape: compiled is not None for shape, compiled in self._entries.items()}
