"""Each field rule has one source, ``tasks.models``: the model, the REST serializers, the OpenAPI
schema, the MCP tool schemas and the published event schema all carry the same limit and choices.

A limit written as a literal anywhere else drifts the day the constant changes; this test then
names the place that did not follow."""

from __future__ import annotations

import ast
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from drf_spectacular.generators import SchemaGenerator

from core.users import USER_ID_MAX_LENGTH
from tasks import models
from tasks.api.serializers import TaskListQuerySerializer, TaskWriteSerializer
from tasks.mcp.server import TOOLS
from tasks.models import Task

ROOT = Path(__file__).resolve().parents[2]
EVENT_SCHEMA = ROOT / "docs/events/task.created.v1.schema.json"


@pytest.fixture(scope="module")
def places() -> dict[str, Any]:
    """Every place a field rule shows, keyed by where it is."""
    openapi = SchemaGenerator().get_schema(request=None, public=True)
    event = json.loads(EVENT_SCHEMA.read_text())
    return {
        "openapi": openapi,
        "write": TaskWriteSerializer().fields,
        "query": TaskListQuerySerializer().fields,
        "event": event,
    }


def _branch(schema: dict) -> dict:
    """The non-null branch of an optional MCP argument."""
    for option in schema.get("anyOf", [schema]):
        if option.get("type") != "null":
            return option
    raise AssertionError(schema)


def _openapi_body(places, name: str) -> dict:
    return places["openapi"]["components"]["schemas"]["TaskWriteRequest"]["properties"][name]


def _openapi_query(places, name: str) -> dict:
    parameters = places["openapi"]["paths"]["/api/tasks/"]["get"]["parameters"]
    return next(p["schema"] for p in parameters if p["name"] == name)


def _openapi_enum(places, ref_holder: dict) -> list:
    name = ref_holder["$ref"].rsplit("/", 1)[-1]
    return places["openapi"]["components"]["schemas"][name]["enum"]


def _mcp(tool: str, name: str) -> dict:
    return _branch(TOOLS[tool].parameters["properties"][name])


def _snapshot(places, name: str) -> dict:
    return places["event"]["$defs"]["TaskSnapshot"]["properties"][name]


Getter = Callable[[dict], object]

# For each rule: the constant, and where each place keeps it.
RULES: dict[str, tuple[object, dict[str, Getter]]] = {
    "title length": (
        models.TITLE_MAX_LENGTH,
        {
            "model": lambda p: Task._meta.get_field("title").max_length,
            "serializer": lambda p: p["write"]["title"].max_length,
            "openapi": lambda p: _openapi_body(p, "title")["maxLength"],
            "mcp add_task": lambda p: _mcp("add_task", "title")["maxLength"],
            "mcp update_task": lambda p: _mcp("update_task", "title")["maxLength"],
            "event": lambda p: _snapshot(p, "title")["maxLength"],
        },
    ),
    "description length": (
        models.DESCRIPTION_MAX_LENGTH,
        {
            "serializer": lambda p: p["write"]["description"].max_length,
            "openapi": lambda p: _openapi_body(p, "description")["maxLength"],
            "mcp add_task": lambda p: _mcp("add_task", "description")["maxLength"],
            "mcp update_task": lambda p: _mcp("update_task", "description")["maxLength"],
            "event": lambda p: _snapshot(p, "description")["maxLength"],
        },
    ),
    "number of tags": (
        models.MAX_TAGS,
        {
            "serializer": lambda p: p["write"]["tags"].max_length,
            "openapi": lambda p: _openapi_body(p, "tags")["maxItems"],
            "openapi filter": lambda p: _openapi_query(p, "tags")["maxItems"],
            "mcp add_task": lambda p: _mcp("add_task", "tags")["maxItems"],
            "mcp list_tasks": lambda p: _mcp("list_tasks", "tags")["maxItems"],
            "event": lambda p: _snapshot(p, "tags")["maxItems"],
        },
    ),
    "tag length": (
        models.TAG_MAX_LENGTH,
        {
            "serializer": lambda p: p["write"]["tags"].child.max_length,
            "openapi": lambda p: _openapi_body(p, "tags")["items"]["maxLength"],
            "mcp add_task": lambda p: _mcp("add_task", "tags")["items"]["maxLength"],
            "mcp list_tasks": lambda p: _mcp("list_tasks", "tags")["items"]["maxLength"],
            "event": lambda p: _snapshot(p, "tags")["items"]["maxLength"],
        },
    ),
    "recurrence length": (
        models.RECURRENCE_MAX_LENGTH,
        {
            "model": lambda p: Task._meta.get_field("recurrence_rule").max_length,
            "openapi": lambda p: _openapi_body(p, "recurrence_pattern")["oneOf"][0]["maxLength"],
            "openapi rrule": lambda p: _openapi_body(p, "recurrence_pattern")["oneOf"][1][
                "properties"
            ]["rrule"]["maxLength"],
            "mcp add_task": lambda p: _mcp("add_task", "recurrence_pattern")["maxLength"],
            "event": lambda p: _snapshot(p, "recurrence_pattern")["maxLength"],
        },
    ),
    "time zone length": (
        models.TIMEZONE_MAX_LENGTH,
        {
            "model": lambda p: Task._meta.get_field("timezone").max_length,
            "serializer": lambda p: p["write"]["timezone"].max_length,
            "openapi": lambda p: _openapi_body(p, "timezone")["maxLength"],
            "mcp add_task": lambda p: _mcp("add_task", "timezone")["maxLength"],
            "mcp list_tasks": lambda p: _mcp("list_tasks", "timezone")["maxLength"],
            "event": lambda p: _snapshot(p, "timezone")["maxLength"],
        },
    ),
    "default time zone": (
        models.DEFAULT_TIMEZONE,
        {
            "model": lambda p: Task._meta.get_field("timezone").default,
            "serializer filter": lambda p: p["query"]["timezone"].default,
        },
    ),
    "due date and reminder text length": (
        models.WHEN_TEXT_MAX_LENGTH,
        {
            "serializer due_date": lambda p: p["write"]["due_date"].max_length,
            "serializer reminder_time": lambda p: p["write"]["reminder_time"].max_length,
            "openapi due_date": lambda p: _openapi_body(p, "due_date")["maxLength"],
            "openapi reminder_time": lambda p: _openapi_body(p, "reminder_time")["maxLength"],
            "mcp due_date": lambda p: _mcp("add_task", "due_date")["maxLength"],
            "mcp reminder_time": lambda p: _mcp("add_task", "reminder_time")["maxLength"],
        },
    ),
    "user id length": (
        USER_ID_MAX_LENGTH,
        {
            "model": lambda p: Task._meta.get_field("user_id").max_length,
            "mcp": lambda p: _mcp("add_task", "user_id")["maxLength"],
            "event envelope": lambda p: p["event"]["properties"]["user_id"]["maxLength"],
        },
    ),
    "priorities": (
        list(models.PRIORITY_LABELS),
        {
            "model": lambda p: [label for _, label in Task._meta.get_field("priority").choices],
            "serializer": lambda p: list(p["write"]["priority"].choices),
            "openapi": lambda p: _openapi_enum(p, _openapi_body(p, "priority")),
            "mcp add_task": lambda p: _mcp("add_task", "priority")["enum"],
            "mcp list_tasks": lambda p: _mcp("list_tasks", "priority")["enum"],
            "event": lambda p: _snapshot(p, "priority")["enum"],
        },
    ),
    "status filters": (
        list(models.STATUS_FILTERS),
        {
            "openapi": lambda p: _openapi_query(p, "status")["enum"],
            # Phase III's synonyms follow the statuses.
            "mcp": lambda p: _mcp("list_tasks", "status")["enum"][: len(models.STATUS_FILTERS)],
        },
    ),
    "due windows": (
        list(models.DUE_WINDOWS),
        {
            "openapi": lambda p: _openapi_query(p, "due")["enum"],
            # Phase III has no "none" window.
            "mcp": lambda p: [*_mcp("list_tasks", "due_date_filter")["enum"], "none"],
        },
    ),
    "tag match modes": (
        list(models.TAG_MATCH_MODES),
        {"openapi": lambda p: _openapi_query(p, "tags_mode")["enum"]},
    ),
    "page size": (
        models.MAX_LIMIT,
        {
            "openapi": lambda p: _openapi_query(p, "limit")["maximum"],
            "mcp": lambda p: _mcp("list_tasks", "limit")["maximum"],
        },
    ),
    "default page size": (
        models.DEFAULT_LIMIT,
        {
            "openapi": lambda p: _openapi_query(p, "limit")["default"],
            "mcp": lambda p: _mcp("list_tasks", "limit")["default"],
        },
    ),
    "largest offset": (
        models.MAX_OFFSET,
        {
            "openapi": lambda p: _openapi_query(p, "offset")["maximum"],
            "mcp": lambda p: _mcp("list_tasks", "offset")["maximum"],
        },
    ),
    "search text length": (
        models.SEARCH_MAX_LENGTH,
        {
            "openapi": lambda p: _openapi_query(p, "q")["maxLength"],
            "mcp": lambda p: _mcp("list_tasks", "search")["maxLength"],
        },
    ),
}


@pytest.mark.parametrize("rule", RULES)
def test_every_place_takes_the_rule_from_the_model(places, rule):
    # given the rule's one definition in tasks.models
    expected, getters = RULES[rule]
    # when each surface is asked for it
    found = {place: get(places) for place, get in getters.items()}
    # then every one of them says the same
    assert found == dict.fromkeys(getters, expected)


# Modules that describe task fields to a client or a consumer.
DESCRIBING_MODULES = (
    "tasks/api/serializers.py",
    "tasks/api/params.py",
    "tasks/api/history.py",
    "tasks/api/schema.py",
    "tasks/validation.py",
    "tasks/recurrence_rules.py",
    "tasks/mcp/schemas.py",
    "tasks/event_types.py",
    "events/schemas.py",
)
# The rules tasks.models itself defines (not the names it imports).
_DEFINED = {
    target.id
    for node in ast.parse(Path(models.__file__).read_text()).body
    if isinstance(node, ast.Assign | ast.AnnAssign)
    for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
    if isinstance(target, ast.Name) and target.id.isupper()
}
NUMBERS = {
    name: value
    for name in _DEFINED
    if isinstance(value := getattr(models, name), int) and not isinstance(value, bool)
}
CHOICES = {
    name: frozenset(value)
    for name in _DEFINED
    if isinstance(value := getattr(models, name), tuple) and all(isinstance(v, str) for v in value)
}


def _is_bound(name: object) -> bool:
    return isinstance(name, str) and (name in {"le", "lt"} or "max" in name.lower())


def _bound_literals(tree: ast.AST):
    """Integer literals given as an upper bound: ``max_length=200``, ``"maxLength": 200``,
    ``setdefault("max_length", 200)``, ``len(title) > 200``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and _is_bound(node.arg):
            yield node.value
        elif isinstance(node, ast.Dict):
            yield from (
                value
                for key, value in zip(node.keys, node.values, strict=True)
                if isinstance(key, ast.Constant) and _is_bound(key.value)
            )
        elif isinstance(node, ast.Compare):
            yield from [node.left, *node.comparators]
        elif (
            isinstance(node, ast.Call) and len(node.args) == 2
        ):  # kwargs.setdefault("max_length", 64)
            key, value = node.args
            if isinstance(key, ast.Constant) and _is_bound(key.value):
                yield value


def _written_again(source: str) -> list[str]:
    """Upper bounds written as a number equal to a model limit, and lists of two or more words
    of one model choice, in ``source``."""
    tree = ast.parse(source)
    found = [
        f"{node.value} (line {node.lineno}) is {name}"
        for node in _bound_literals(tree)
        if isinstance(node, ast.Constant) and type(node.value) is int
        for name, value in NUMBERS.items()
        if value == node.value
    ]
    for node in ast.walk(tree):
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            words = [
                e.value
                for e in node.elts
                if isinstance(e, ast.Constant) and isinstance(e.value, str)
            ]
            if len(words) >= 2 and len(words) == len(node.elts):
                found += [
                    f"{words} (line {node.lineno}) is {name}"
                    for name, choice in CHOICES.items()
                    if set(words) <= choice
                ]
    return found


@pytest.mark.parametrize("module", DESCRIBING_MODULES)
def test_no_limit_or_choice_is_written_again(module):
    # given a module that describes task fields
    path = ROOT / module
    assert path.exists(), f"{module} moved: update DESCRIBING_MODULES"
    # when its literals are read
    # then none of them repeats a rule of tasks.models
    assert _written_again(path.read_text()) == []
