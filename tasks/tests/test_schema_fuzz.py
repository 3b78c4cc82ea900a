"""schemathesis against ``/api/schema/`` with every check it has, ``positive_data_acceptance`` and
``negative_data_rejection`` included: requests the schema allows are accepted, requests it
refuses are refused, and every answer is what the schema says.

The one allowance: a request the schema allows may get a 400 only for a business rule that the
operation's 400 response lists under ``x-refusals-of-valid-input`` (a field and a code each: a
relative reminder needs a due date, a reminder time that has passed, ...), and
``refusals_are_documented`` below checks every such 400 against that list.

``HOSTILE_SCHEMA_EXAMPLES`` examples per operation (25 in ``make test``; ``make bench-schema``
runs 150). A uvicorn server runs the project's ASGI app in a thread of the test process, so it
uses the test database.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.config import SchemathesisConfig
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation import GenerationMode

from core.auth import issue_token
from tasks import services
from tasks.api.schema import REFUSALS_KEY

pytestmark = pytest.mark.django_db(transaction=True)

SCHEMA_EXAMPLES = int(os.environ.get("HOSTILE_SCHEMA_EXAMPLES", "25"))
OWNER = "schema-fuzz-owner"
# schemathesis' default for valid data (2xx, 3xx, 401, 403, 404, 409, 429, 5xx) plus 400, which
# ``refusals_are_documented`` narrows to the business rules the schema lists.
# 410: a change-feed `since` that was never handed out, or whose events expired.
ACCEPTED_STATUSES = ["2xx", "3xx", "400", "401", "403", "404", "409", "410", "429", "5xx"]
# A bound for a hung request, not a latency goal (this machine is shared).
MAX_RESPONSE_SECONDS = 10.0


def _operations() -> list[tuple[str, str]]:
    from drf_spectacular.generators import SchemaGenerator

    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    return [(method.upper(), path) for path, methods in paths.items() for method in methods]


OPERATIONS = _operations()


@pytest.fixture(scope="module")
def api_schema(server, django_db_blocker):
    config = SchemathesisConfig.from_dict(
        {
            "checks": {
                "positive_data_acceptance": {"expected-statuses": ACCEPTED_STATUSES},
                "max_response_time": MAX_RESPONSE_SECONDS,
            }
        }
    )
    # The server's threads keep database connections between requests; pytest-django blocks
    # the database outside tests, and module fixtures are set up outside them.
    with django_db_blocker.unblock():
        return schemathesis.openapi.from_url(f"{server.url}/api/schema/?format=json", config=config)


@pytest.fixture
def owner_tasks(server):
    """A few tasks of the token's user, so that generated ids sometimes name a real task."""
    return [
        services.task_create(
            user_id=OWNER,
            title=f"owned {n}",
            due_date="2031-05-01T09:00:00Z",
            reminder_time="1h",
            recurrence_pattern="weekly" if n % 2 else None,
        ).pk
        for n in range(3)
    ]


def _headers_for(case, token: str) -> dict[str, str]:
    """The bearer token, unless the generated case left the header out or spoilt it on
    purpose: then what it generated goes out (a negative case that mutates several places at
    once still expects that)."""
    data = case.meta.phase.data if case.meta is not None else None
    for mutation in getattr(data, "mutations", ()):
        names = {mutation.parameter, *mutation.path}
        if mutation.parameter_location == ParameterLocation.HEADER and "Authorization" in names:
            return {}
    return {"Authorization": f"Bearer {token}"}


def refusals_are_documented(ctx, response, case) -> None:
    """A 400 for a request the schema allows names only (field, code) pairs that the
    operation's 400 response lists as business rules."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return
    if response.status_code != 400:
        return
    documented = case.operation.definition.raw["responses"]["400"].get(REFUSALS_KEY, [])
    allowed = {(rule["field"], rule["code"]) for rule in documented}
    error = response.json()["error"]
    # A field in a list is documented once for every index ("operations[]"); "*" documents
    # every code another endpoint may give.
    named = {
        (field, code)
        for item in error.get("fields", [])
        for field in [re.sub(r"\[\d+\]", "[]", item["field"] or "")]
        for code in [item["code"] if (field, "*") not in allowed else "*"]
    }
    assert named and named <= allowed, (
        f"valid input refused by {sorted(named - allowed) or error['code']!r}, which the schema "
        f"does not list: {error['message']}"
    )


def test_every_operation_of_the_schema_is_fuzzed():
    assert len(OPERATIONS) >= 12
    assert ("POST", "/api/tasks/") in OPERATIONS
    assert ("GET", "/api/tasks/{task_id}/history/") in OPERATIONS
    assert ("POST", "/api/notifications/{notification_id}/read/") in OPERATIONS


def test_every_check_schemathesis_has_is_on(api_schema):
    checks = api_schema.config.checks
    names = [field.name for field in dataclasses.fields(checks) if not field.name.startswith("_")]

    assert {name: getattr(checks, name).enabled for name in names} == dict.fromkeys(names, True)
    assert {"positive_data_acceptance", "negative_data_rejection"} <= set(names)
    assert checks.positive_data_acceptance.expected_statuses == ACCEPTED_STATUSES
    assert checks.max_response_time.limit == MAX_RESPONSE_SECONDS


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_the_rest_api_answers_generated_requests_as_its_schema_says(
    method, path, server, api_schema, owner_tasks
):
    from django.core.cache import cache

    operation = api_schema[path][method]
    token = issue_token(OWNER)
    strategy = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )
    statuses: list[int] = []

    @given(case=strategy, existing=st.sampled_from([None, *owner_tasks]))
    @settings(
        max_examples=SCHEMA_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case, existing):
        cache.clear()  # rate limits are not what this test is about
        positive = case.meta is not None and case.meta.generation.mode.is_positive
        # Only valid requests aim at a real task: a replaced id could make invalid data valid.
        if positive and existing is not None and "task_id" in (case.path_parameters or {}):
            case.path_parameters["task_id"] = existing
        response = case.call_and_validate(
            base_url=server.url,
            headers=_headers_for(case, token),
            additional_checks=[refusals_are_documented],
            timeout=30,
        )
        statuses.append(response.status_code)

    started = time.monotonic()
    run()
    assert len(statuses) >= min(SCHEMA_EXAMPLES, 5), statuses
    print(f"{method} {path}: {len(statuses)} requests in {time.monotonic() - started:.1f} s")


def test_the_schema_declares_bearer_auth_on_every_api_operation(server):
    """Regression: the schema declared no security at all, so generators and fuzzers could not
    know that every operation needs ``Authorization: Bearer <jwt>``."""
    schema = httpx.get(f"{server.url}/api/schema/?format=json", timeout=30).json()
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": schema["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            if path == "/api/auth/token/":  # password sign-in: how a token is obtained
                assert operation.get("security") == [{}], (method, path)
                continue
            assert operation.get("security") == [{"bearerAuth": []}], (method, path)
