"""``StatementCache``: a shape's SQL is compiled once and the next request's values are bound
where its placeholders landed; a shape for which that would not be exact is compiled for every
request."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from psycopg.types.json import Jsonb
from psycopg.types.numeric import Int2

from core.statements import StatementCache


class Recorder:
    """A ``build`` that writes its values as parameters, as the ORM does, and counts calls."""

    def __init__(self, write=None):
        self.calls = 0
        self.write = write or self._parameters

    def __call__(self, shape, values):
        self.calls += 1
        return self.write(shape, values)

    @staticmethod
    def _parameters(shape, values):
        user, *priorities, tag, due = values
        placeholders = ", ".join(["%s"] * len(priorities))
        sql = (
            f"SELECT * FROM t WHERE user_id = %s AND priority IN ({placeholders}) "
            f"AND tags @> %s AND due < %s AND kind = %s ORDER BY {shape[0]} LIMIT {shape[1]}"
        )
        return sql, [user, *(Int2(p) for p in priorities), Jsonb([tag, "fixed"]), due, "task"]


DUE = datetime(2031, 3, 14, 9, 26, tzinfo=UTC)


def test_a_shape_is_compiled_once_and_later_values_are_bound():
    # given a cache whose first statement of a shape has been read
    build = Recorder()
    cache = StatementCache(build)
    cache.statement(("title", 50), ("ann", 3, 1, "work", DUE))
    compiled = build.calls

    # when the same shape is read with other values
    sql, params = cache.statement(("title", 50), ("bob", 4, 2, "home", DUE.replace(year=2040)))

    # then it is not compiled again, and the statement is the one compiling would give
    assert build.calls == compiled == 2  # the request's own values, then the placeholders
    expected_sql, expected = Recorder._parameters(
        ("title", 50), ("bob", 4, 2, "home", DUE.replace(year=2040))
    )
    assert sql == expected_sql
    assert [type(p) for p in params] == [type(p) for p in expected]
    assert params[:3] == ("bob", 4, 2) and params[4:] == (DUE.replace(year=2040), "task")
    assert params[3].obj == ["home", "fixed"]
    assert cache.shapes() == {("title", 50): True}


def test_each_shape_has_its_own_statement():
    build = Recorder()
    cache = StatementCache(build)

    first = cache.statement(("title", 50), ("ann", 3, "work", DUE))
    other = cache.statement(("due", 10), ("ann", 3, 1, 2, "work", DUE))

    assert "ORDER BY title LIMIT 50" in first[0] and "IN (%s)" in first[0]
    assert "ORDER BY due LIMIT 10" in other[0] and "IN (%s, %s, %s)" in other[0]
    assert other[1][:4] == ("ann", 3, 1, 2)


@pytest.mark.parametrize(
    "write",
    [
        # a value written into the SQL text
        lambda shape, values: (f"SELECT * FROM t WHERE user_id = '{values[0]}'", []),
        # a value changed on its way to the parameters
        lambda shape, values: ("SELECT * FROM t WHERE user_id = %s", [values[0].upper()]),
    ],
    ids=["inlined", "changed"],
)
def test_a_shape_that_cannot_be_bound_exactly_is_compiled_for_every_request(write):
    # given a build whose statement does not carry the value as it came
    build = Recorder(write)
    cache = StatementCache(build)

    # when two users read that shape
    first = cache.statement(("s",), ("ann",))
    second = cache.statement(("s",), ("bob",))

    # then each got its own statement, compiled for it
    for statement, user in ((first, "ann"), (second, "bob")):
        sql, params = write(("s",), (user,))
        assert statement == (sql, tuple(params))
    assert cache.shapes() == {("s",): False}
    assert build.calls == 3  # ann, the placeholders, then bob


def test_the_least_recently_used_shape_is_dropped():
    cache = StatementCache(Recorder(), maxsize=2)
    for order in ("a", "b", "a", "c"):
        cache.statement((order, 1), ("ann", 3, "work", DUE))

    assert set(cache.shapes()) == {("a", 1), ("c", 1)}


@pytest.mark.parametrize("value", [True, 1.5, None])
def test_a_shape_with_values_of_other_kinds_is_compiled_for_every_request(value):
    # a bool has too few values to hold a placeholder; others are not foreseen
    build = Recorder(lambda shape, values: ("SELECT %s, %s", list(values)))
    cache = StatementCache(build)

    assert cache.statement(("s",), ("ann", value)) == ("SELECT %s, %s", ("ann", value))
    assert cache.statement(("s",), ("bob", value)) == ("SELECT %s, %s", ("bob", value))

    assert cache.shapes() == {("s",): False}
    assert build.calls == 2
