"""Touches to the generated OpenAPI document that the serializers cannot express."""

from __future__ import annotations

import re

from tasks.api.serializers import MAX_ORDERING_TERMS, MAX_PRIORITY_VALUES
from tasks.models import MAX_TAGS

STRICT_REQUEST_COMPONENTS = (
    "TaskWriteRequest",
    "TaskReplaceRequest",
    "PatchedTaskPatchRequest",
    "TaskPatchRequest",
    "BulkRequest",
    "OperationRequest",
)
ERROR_COMPONENT = "Error"
# The one key under which an operation's 400 response lists the refusals of schema-valid input.
REFUSALS_KEY = "x-refusals-of-valid-input"

_TASK_WRITE_REFUSALS = [
    ("due_date", "due_date_required", "a recurring task needs a due date"),
    ("reminder_time", "due_date_required", "a reminder before the due date needs a due date"),
    (
        "reminder_time",
        "in_past",
        "the reminder time has passed and the task is not overdue",
    ),
    (
        "recurrence_pattern",
        "invalid_recurrence",
        "the rule contradicts itself (see `recurrence_pattern`)",
    ),
    (
        "recurrence_pattern",
        "until_before_start",
        "`until` or `UNTIL` is before the series' first due date",
    ),
]
_VERSION_REFUSAL = ("version", "invalid", "`If-Match` and `version` name different versions")
# Business rules JSON Schema cannot state (they depend on other fields, on the stored task or
# on the clock), by operation id.
REFUSALS = {
    "tasks_create": _TASK_WRITE_REFUSALS,
    "tasks_update": [*_TASK_WRITE_REFUSALS, _VERSION_REFUSAL],
    "tasks_partial_update": [*_TASK_WRITE_REFUSALS, _VERSION_REFUSAL],
    "tasks_occurrences": [("recurrence_pattern", "not_recurring", "the task does not repeat")],
    # Bulk refusals name the operation by index (``operations[3].task_id``); ``[]`` stands for
    # any index, and ``*`` for whatever code the operation's own endpoint refused it with.
    "tasks_bulk": [
        ("operations[].task_id", "invalid", "`create` with a `task_id`, or another op without"),
        (
            "operations[].data",
            "invalid",
            "`create` without `data`, or `complete`, `reopen` or `skip` with it",
        ),
        ("operations[]", "*", "with `atomic`, an operation its single endpoint refuses"),
    ],
    "tasks_list": [
        (
            "priority",
            "max_length",
            f"more than {MAX_PRIORITY_VALUES} priorities in all the `priority` values",
        ),
        ("tags", "max_length", f"more than {MAX_TAGS} tags in all the `tags` values"),
        (
            "ordering",
            "max_length",
            f"more than {MAX_ORDERING_TERMS} terms in all the `ordering` values",
        ),
        ("ordering", "invalid_choice", "`relevance` without a search (`q`) that has words"),
    ],
}

ERROR_SCHEMA = {
    "type": "object",
    "description": "Every error under `/api/`: a stable lowercase `code`, a message for people "
    "and, for invalid input, one entry per offending field.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "pattern": "^[a-z0-9_]+$"},
                "message": {"type": "string"},
                "fields": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "field": {"type": "string", "nullable": True},
                            "code": {"type": "string"},
                            "message": {"type": "string"},
                        },
                        "required": ["field", "code", "message"],
                    },
                },
            },
            "required": ["code", "message"],
        }
    },
    "required": ["error"],
}


def strict_request_bodies(result, generator, request, public):
    """The task endpoints refuse unknown fields; say so, so that generated clients and schema
    fuzzers know it."""
    schemas = result.get("components", {}).get("schemas", {})
    for name in STRICT_REQUEST_COMPONENTS:
        if name in schemas:
            schemas[name]["additionalProperties"] = False
    return result


def exact_text_fields(result, generator, request, public):
    """drf-spectacular offers "" beside a patterned text field that may be blank; where the
    pattern takes "" already, that makes "" match both branches of a ``oneOf`` (so the schema
    would refuse it). Keep the pattern alone there."""
    _walk(result, _collapse_blank_alternative)
    return result


def documented_errors(result, generator, request, public):
    """Every 4xx response of the API has the error shape, and the 400 of an operation lists
    the business rules that refuse input the schema allows."""
    result.setdefault("components", {}).setdefault("schemas", {})[ERROR_COMPONENT] = ERROR_SCHEMA
    reference = {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}
    for methods in result.get("paths", {}).values():
        for operation in methods.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for status, response in operation["responses"].items():
                if str(status).startswith("4"):
                    response["content"] = {"application/json": {"schema": dict(reference)}}
            refusals = REFUSALS.get(operation.get("operationId"))
            if refusals and "400" in operation["responses"]:
                bad_request = operation["responses"]["400"]
                bad_request[REFUSALS_KEY] = [
                    {"field": field, "code": code, "when": when} for field, code, when in refusals
                ]
                bad_request["description"] = (
                    bad_request.get("description", "").rstrip()
                    + " Input the schema allows is still refused when: "
                    + "; ".join(f"{when} (`{field}`: `{code}`)" for field, code, when in refusals)
                )
    return result


def _walk(node, visit) -> None:
    if isinstance(node, dict):
        visit(node)
        for value in node.values():
            _walk(value, visit)
    elif isinstance(node, list):
        for value in node:
            _walk(value, visit)


def _collapse_blank_alternative(node: dict) -> None:
    alternatives = node.get("oneOf")
    if not (isinstance(alternatives, list) and len(alternatives) == 2):
        return
    inner, blank = alternatives
    if blank != {"type": "string", "maxLength": 0} or "pattern" not in inner:
        return
    if re.search(inner["pattern"], "") is None:
        return
    del node["oneOf"]
    node.update(inner)
