import jwt
import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from tasks.models import Task
from todo_project.testing import client_for

pytestmark = pytest.mark.django_db

LIST = "/api/tasks/"


def detail(task_id):
    return f"/api/tasks/{task_id}/"


def test_create_returns_the_task_with_mcp_field_names(api, user_id):
    response = api.post(
        LIST,
        {
            "title": "Write report",
            "priority": "high",
            "tags": ["work"],
            "due_date": "2031-03-01T10:00:00Z",
            "reminder_time": "1d",
            "recurrence_pattern": "weekly",
            "timezone": "Europe/Paris",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["title"] == "Write report"
    assert body["priority"] == "high"
    assert body["due_date"] == "2031-03-01T10:00:00Z"
    assert body["reminder_time"] == "1d"
    assert body["remind_at"] == "2031-02-28T10:00:00Z"
    assert body["recurrence_pattern"] == "weekly"
    assert body["version"] == 1
    assert response["ETag"] == '"1"'
    assert Task.objects.get(pk=body["id"]).user_id == user_id


@pytest.mark.parametrize(
    ("payload", "field", "code"),
    [
        ({}, "title", "required"),
        ({"title": ""}, "title", "blank"),
        ({"title": "x" * 201}, "title", "max_length"),
        ({"title": "t", "priority": "critical"}, "priority", "invalid_choice"),
        ({"title": "t", "tags": [f"t{i}" for i in range(21)]}, "tags", "max_length"),
        ({"title": "t", "tags": "work"}, "tags", "not_a_list"),
        ({"title": "t", "due_date": "tomorrow-ish"}, "due_date", "invalid_datetime"),
        ({"title": "t", "recurrence_pattern": "FREQ=HOURLY"}, "recurrence_pattern", None),
        ({"title": "t", "timezone": "Nowhere/Land"}, "timezone", "invalid_timezone"),
        ({"title": "t", "colour": "red"}, "colour", "unknown_field"),
    ],
)
def test_create_rejects_bad_input_with_field_and_code(api, user_id, payload, field, code):
    response = api.post(LIST, payload, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["fields"][0]["field"] == field
    if code:
        assert error["fields"][0]["code"] == code
    assert not Task.objects.filter(user_id=user_id).exists()


def test_body_that_is_not_an_object_is_a_400(api):
    response = api.post(LIST, [1, 2], format="json")
    assert response.status_code == 400
    response = api.generic("POST", LIST, "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def test_read_update_complete_reopen_delete(api, make_task):
    task = make_task(title="first")
    assert api.get(detail(task.pk)).json()["title"] == "first"
    response = api.patch(detail(task.pk), {"title": "second", "version": 1}, format="json")
    assert response.status_code == 200
    assert response.json()["version"] == 2
    response = api.post(f"{detail(task.pk)}complete/")
    assert response.json()["completed"] is True
    assert response.json()["completed_at"] is not None
    response = api.post(f"{detail(task.pk)}reopen/")
    assert response.json()["completed"] is False
    assert api.delete(detail(task.pk)).status_code == 204
    assert api.get(detail(task.pk)).status_code == 404


def test_put_replaces_editable_fields(api, make_task):
    task = make_task(title="t", tags=["a"], priority="urgent")
    response = api.put(detail(task.pk), {"title": "only title"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["tags"] == [] and body["priority"] == "medium" and body["title"] == "only title"


def test_stale_version_or_if_match_answers_409(api, make_task):
    task = make_task()
    api.patch(detail(task.pk), {"title": "v2"}, format="json")
    assert (
        api.patch(detail(task.pk), {"title": "x", "version": 1}, format="json").status_code == 409
    )
    response = api.patch(detail(task.pk), {"title": "x"}, format="json", HTTP_IF_MATCH='"1"')
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "version_conflict"
    assert (
        api.patch(detail(task.pk), {"title": "x"}, format="json", HTTP_IF_MATCH='"2"').status_code
        == 200
    )
    assert api.delete(detail(task.pk), HTTP_IF_MATCH='"2"').status_code == 409


def test_every_route_hides_other_users_tasks(other_api, make_task):
    task = make_task(title="mine")
    url = detail(task.pk)
    responses = [
        other_api.get(url),
        other_api.patch(url, {"title": "x"}, format="json"),
        other_api.put(url, {"title": "x"}, format="json"),
        other_api.delete(url),
        other_api.post(f"{url}complete/"),
        other_api.post(f"{url}reopen/"),
    ]
    assert [r.status_code for r in responses] == [404] * 6
    assert all(r.json()["error"]["code"] == "not_found" for r in responses)
    assert other_api.get(LIST).json()["count"] == 0
    task.refresh_from_db()
    assert task.title == "mine" and not task.completed


def test_missing_task_and_huge_ids_answer_404(api):
    assert api.get(detail(999999999)).status_code == 404
    assert api.get(detail(10**30)).status_code == 404


def _token(**claims):
    now = int(timezone.now().timestamp())
    base = {"sub": "u1", "iat": now, "exp": now + 60}
    base.update(claims)
    return base


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "not_authenticated"),
        ("Basic abc", "invalid_token"),
        ("Bearer not-a-jwt", "invalid_token"),
        (
            "Bearer " + jwt.encode(_token(exp=1), settings.JWT_SECRET, algorithm="HS256"),
            "token_expired",
        ),
        (
            "Bearer "
            + jwt.encode(_token(), "wrong-secret-wrong-secret-wrong-secret", algorithm="HS256"),
            "invalid_token",
        ),
        ("Bearer " + jwt.encode(_token(), None, algorithm="none"), "invalid_token"),
        (
            "Bearer " + jwt.encode(_token(sub=None), settings.JWT_SECRET, algorithm="HS256"),
            "invalid_token",
        ),
        (
            "Bearer " + jwt.encode(_token(nbf=4102444800), settings.JWT_SECRET, algorithm="HS256"),
            "invalid_token",
        ),
    ],
)
def test_bad_tokens_answer_401(client, header, code):
    kwargs = {"HTTP_AUTHORIZATION": header} if header else {}
    response = client.get(LIST, **kwargs)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == code
    assert response["WWW-Authenticate"].startswith("Bearer")


@override_settings(JWT_AUDIENCE="todo-api", JWT_ISSUER="https://auth.example")
def test_audience_and_issuer_are_checked_when_configured(client):
    good = jwt.encode(
        _token(aud="todo-api", iss="https://auth.example"), settings.JWT_SECRET, algorithm="HS256"
    )
    wrong_aud = jwt.encode(
        _token(aud="other", iss="https://auth.example"), settings.JWT_SECRET, algorithm="HS256"
    )
    wrong_iss = jwt.encode(
        _token(aud="todo-api", iss="https://evil"), settings.JWT_SECRET, algorithm="HS256"
    )
    assert client.get(LIST, HTTP_AUTHORIZATION=f"Bearer {good}").status_code == 200
    assert client.get(LIST, HTTP_AUTHORIZATION=f"Bearer {wrong_aud}").status_code == 401
    assert client.get(LIST, HTTP_AUTHORIZATION=f"Bearer {wrong_iss}").status_code == 401


def test_rs256_token_is_refused_when_only_hs256_is_configured(client):
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(_token(), key, algorithm="RS256")
    assert client.get(LIST, HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401


@override_settings(
    REST_FRAMEWORK={
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"task_write": "3/min", "task_list": "2/min"},
    }
)
def test_rate_limits_answer_429_with_retry_after(user_id):
    api = client_for(user_id)
    codes = [api.post(LIST, {"title": f"t{i}"}, format="json").status_code for i in range(4)]
    assert codes == [201, 201, 201, 429]
    assert Task.objects.filter(user_id=user_id).count() == 3
    lists = [api.get(LIST).status_code for _ in range(3)]
    assert lists == [200, 200, 429]
    limited = api.get(LIST)
    assert int(limited["Retry-After"]) > 0
    assert limited.json()["error"]["code"] == "throttled"
    # Another user has a budget of their own.
    assert client_for(user_id + "-b").get(LIST).status_code == 200


def test_health_endpoints_need_no_auth(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["database"] == "ok"
    assert b"todo_http_request_duration_seconds" in client.get("/metrics").content


def test_openapi_schema_documents_the_task_api(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json()
    assert "/api/tasks/" in schema["paths"]
    params = {p["name"] for p in schema["paths"]["/api/tasks/"]["get"]["parameters"]}
    assert {
        "q",
        "status",
        "priority",
        "tags",
        "tags_mode",
        "due",
        "ordering",
        "limit",
        "offset",
    } <= params
    assert client.get("/api/docs/").status_code == 200


def test_requests_are_held_to_the_published_schema(api, make_task):
    # Found by schemathesis: each of these was accepted although the schema forbids it.
    task = make_task()
    assert api.post(LIST, {"title": "t", "completed": 0}, format="json").status_code == 400
    assert api.post(LIST, {"title": "t", "id": 5}, format="json").status_code == 400
    assert api.get(LIST, {"tags_mode": ""}).status_code == 400
    assert api.get(LIST, {"timezone": ""}).status_code == 400
    # An empty If-Match is no precondition.
    assert (
        api.patch(detail(task.pk), {"title": "x"}, format="json", HTTP_IF_MATCH="").status_code
        == 200
    )


def test_schema_marks_request_bodies_closed(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert schema["components"]["schemas"]["TaskWriteRequest"]["additionalProperties"] is False


def test_the_schema_publishes_the_patterns_the_server_checks(client):
    from tasks import validation as v
    from tasks.api import serializers as s
    from tasks.recurrence_rules import TIME_ZONES

    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    write = schema["components"]["schemas"]["TaskWriteRequest"]["properties"]
    query = {p["name"]: p["schema"] for p in schema["paths"][LIST]["get"]["parameters"]}

    assert write["title"]["pattern"] == s.CONTENT_PATTERN
    assert write["tags"]["items"]["pattern"] == s.CONTENT_PATTERN
    assert write["due_date"]["pattern"] == v.DUE_PATTERN
    assert write["reminder_time"]["pattern"] == v.REMINDER_PATTERN
    assert write["recurrence_pattern"]["oneOf"][0]["pattern"] == v.RECURRENCE_TEXT_PATTERN
    assert write["recurrence_pattern"]["oneOf"][1]["properties"]["rrule"]["pattern"] == (
        v.RRULE_PATTERN
    )
    # "" is one of the pattern's strings: no second branch that "" would also match
    assert write["description"] == {
        "type": "string",
        "nullable": True,
        "maxLength": 2000,
        "pattern": s.STORABLE_PATTERN,
    }
    assert query["due_before"]["pattern"] == query["due_after"]["pattern"] == s.WHEN_PATTERN
    assert query["tags"]["items"]["pattern"] == s.TAG_LIST_PATTERN
    assert query["priority"]["items"]["pattern"] == s.PRIORITY_LIST_PATTERN
    assert query["ordering"]["items"]["pattern"] == s.ORDERING_LIST_PATTERN
    assert query["timezone"]["enum"] == list(TIME_ZONES)


def test_every_4xx_has_the_error_shape_and_each_400_lists_the_business_rules(client):
    from tasks.api.schema import REFUSALS_KEY

    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    operations = {
        operation["operationId"]: operation
        for methods in schema["paths"].values()
        for operation in methods.values()
    }

    for name, operation in operations.items():
        for status, response in operation["responses"].items():
            if status.startswith("4"):
                assert response["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/Error"
                }, (name, status)
    refusals = {
        name: {
            (rule["field"], rule["code"]) for rule in operation["responses"]["400"][REFUSALS_KEY]
        }
        for name, operation in operations.items()
        if REFUSALS_KEY in operation["responses"].get("400", {})
    }
    assert set(refusals) == {
        "tasks_create",
        "tasks_update",
        "tasks_partial_update",
        "tasks_list",
        "tasks_occurrences",
        "tasks_bulk",
    }
    assert refusals["tasks_occurrences"] == {("recurrence_pattern", "not_recurring")}
    assert refusals["tasks_create"] == {
        ("due_date", "due_date_required"),
        ("reminder_time", "due_date_required"),
        ("reminder_time", "in_past"),
        ("recurrence_pattern", "invalid_recurrence"),
        ("recurrence_pattern", "until_before_start"),
    }
    assert refusals["tasks_partial_update"] == refusals["tasks_create"] | {("version", "invalid")}
    assert schema["components"]["schemas"]["Error"]["required"] == ["error"]
