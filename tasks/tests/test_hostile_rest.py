"""Hostile input on the REST API: each probe gets a 4xx (or a JSON 500) in the API's error shape,
and nothing is written: no task row, no change to an existing one, no outbox event.

Probes: bodies nested past the parser's depth limit, text that is not Unicode (lone surrogates,
keys included), a validly signed token whose subject is not a user id, paths without their
trailing slash and unknown paths, DRF's own refusals (method, media type, parse), a view of a
different kind (``require_POST``) and an uncaught exception in a view, with ``DEBUG`` on and off.
"""

from __future__ import annotations

import logging

import pytest
from django.http import JsonResponse
from django.urls import include, path
from django.views.decorators.http import require_POST
from rest_framework.views import APIView

from events.models import OutboxEvent
from tasks.models import Task
from todo_project.testing import client_for

pytestmark = pytest.mark.django_db

LIST = "/api/tasks/"
DEEP_BODIES = {
    "arrays_5000": "[" * 5000 + "]" * 5000,
    "objects_5000": '{"a":' * 5000 + "1" + "}" * 5000,
    "arrays_65": "[" * 65 + "]" * 65,
    "tags_100": '{"title": "t", "tags": ' + "[" * 100 + "]" * 100 + "}",
}


def detail(task_id: int) -> str:
    return f"/api/tasks/{task_id}/"


def written(user_id: str) -> tuple:
    """Everything a request could have written for ``user_id``."""
    tasks = list(
        Task.objects.filter(user_id=user_id)
        .order_by("id")
        .values_list("id", "title", "version", "updated_at", "completed")
    )
    return tasks, OutboxEvent.objects.filter(user_id=user_id).count()


def raw(client, method: str, url: str, body: bytes | str, content_type="application/json"):
    return client.generic(method, url, body, content_type=content_type)


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    error = response.json()["error"]
    assert error["code"] == code, error
    return error


@pytest.fixture
def task(make_task):
    return make_task(title="kept", tags=["home"])


@pytest.fixture(params=[False, True], ids=["debug_off", "debug_on"])
def debug(request, settings):
    settings.DEBUG = request.param
    return request.param


# --- bodies nested past the depth limit -----------------------------------------------------


@pytest.mark.parametrize("body", DEEP_BODIES.values(), ids=DEEP_BODIES.keys())
@pytest.mark.parametrize("method", ["POST", "PATCH", "PUT"])
def test_a_deeply_nested_body_is_invalid_json_and_writes_nothing(api, user_id, task, method, body):
    # given a user with a task
    url = LIST if method == "POST" else detail(task.id)
    before = written(user_id)

    # when a body nested past the limit is sent to create or change a task
    response = raw(api, method, url, body)

    # then it is invalid JSON, and nothing is written
    error = assert_error(response, 400, "invalid_json")
    assert error["message"] == "The JSON body is nested too deeply (more than 64 levels)."
    assert "fields" not in error
    assert written(user_id) == before


def test_a_body_nested_to_the_limit_reaches_validation(api, user_id):
    body = '{"title": "t", "tags": ' + "[" * 63 + "]" * 63 + "}"

    response = raw(api, "POST", LIST, body)

    error = assert_error(response, 400, "invalid")
    assert error["fields"][0]["field"] == "tags[0]"
    assert written(user_id) == ([], 0)


# --- text that is not Unicode ---------------------------------------------------------------


def test_a_lone_surrogate_as_a_key_on_patch_is_a_400_and_changes_nothing(api, user_id, task):
    # given a user with a task
    before = written(user_id)

    # when a PATCH has a lone surrogate as a key
    response = raw(api, "PATCH", detail(task.id), b'{"\\ud800": 1}')

    # then it is refused as text that is not Unicode, and the task is unchanged
    error = assert_error(response, 400, "invalid")
    assert error["fields"] == [
        {
            "field": None,
            "code": "surrogate_characters_not_allowed",
            "message": "A key is not valid Unicode: it holds a lone surrogate (U+D800).",
        }
    ]
    assert written(user_id) == before


@pytest.mark.parametrize(
    ("body", "field", "codepoint"),
    [
        (b'{"title": "a\\udfffb"}', "title", "DFFF"),
        (b'{"title": "ok", "tags": ["fine", "\\ud83d"]}', "tags[1]", "D83D"),
        (b'{"title": "ok", "tags": {"\\udc00x": 1}}', "tags", "DC00"),
    ],
)
@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_a_lone_surrogate_anywhere_is_a_400_naming_where(
    api, user_id, task, method, body, field, codepoint
):
    url = LIST if method == "POST" else detail(task.id)
    before = written(user_id)

    response = raw(api, method, url, body)

    error = assert_error(response, 400, "invalid")
    assert error["fields"][0]["field"] == field
    assert error["fields"][0]["code"] == "surrogate_characters_not_allowed"
    assert "not valid Unicode" in error["fields"][0]["message"]
    assert f"U+{codepoint}" in error["fields"][0]["message"]
    assert written(user_id) == before


@pytest.mark.parametrize(
    "body",
    [b'{"title": "\xed\xa0\x80"}', b'{"title": "caf\xe9"}', b'{"\xff": 1}'],
    ids=["utf8_encoded_surrogate", "latin1_byte", "invalid_byte_in_key"],
)
def test_bytes_that_are_not_utf8_are_invalid_json(api, user_id, task, body):
    before = written(user_id)

    response = raw(api, "PATCH", detail(task.id), body)

    error = assert_error(response, 400, "invalid_json")
    assert error["message"].startswith("The body is not valid UTF-8")
    assert written(user_id) == before


def test_an_astral_character_written_as_a_surrogate_pair_is_text(api, user_id):
    response = raw(api, "POST", LIST, b'{"title": "\\ud83d\\ude00 party"}')

    assert response.status_code == 201, response.content
    assert response.json()["title"] == "\U0001f600 party"


# --- a token whose subject is not a user id -------------------------------------------------

BAD_SUBJECTS = {
    "nul": "\x00",
    "nul_inside": "user\x00x",
    "c0": "a\x1fb",
    "newline": "user\n",
    "del": "a\x7f",
    "c1": "a\x85b",
    "c1_last": "\x9f",
    "high_surrogate": "\ud800",
    "low_surrogate_inside": "a\udfffb",
}


@pytest.mark.parametrize("subject", BAD_SUBJECTS.values(), ids=BAD_SUBJECTS.keys())
def test_a_signed_token_whose_subject_is_not_a_user_id_is_a_401(subject):
    # given a token signed with the deployment's secret, for a subject that is no user id
    client = client_for(subject)
    tasks_before, events_before = Task.objects.count(), OutboxEvent.objects.count()

    # when it is used to read and to write
    listed = client.get(LIST)
    created = client.post(LIST, {"title": "from a strange subject"}, format="json")

    # then both are 401 with the bearer challenge, and nothing is written
    for response in (listed, created):
        error = assert_error(response, 401, "invalid_token")
        assert error["message"] == "Token subject must be a user id."
        assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert (Task.objects.count(), OutboxEvent.objects.count()) == (tasks_before, events_before)


@pytest.mark.parametrize("subject", ["müller", "用户-7", "user-\U0001f600", "a\u00a0b"])
def test_printable_unicode_subjects_are_still_users(subject):
    response = client_for(subject).post(LIST, {"title": "mine"}, format="json")

    assert response.status_code == 201, response.content
    assert Task.objects.get(pk=response.json()["id"]).user_id == subject


# --- paths: the trailing slash, unknown paths -----------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_a_write_without_the_trailing_slash_is_a_json_404_naming_the_path(
    api, user_id, task, debug, method
):
    # given a user with a task
    before = written(user_id)
    # when a write goes to a path without its trailing slash, then a JSON 404 names the right one
    for url, right in [
        ("/api/tasks", "/api/tasks/"),
        (f"/api/tasks/{task.id}", f"/api/tasks/{task.id}/"),
        (f"/api/tasks/{task.id}/complete", f"/api/tasks/{task.id}/complete/"),
    ]:
        response = raw(api, method, url, '{"title": "lost"}')

        error = assert_error(response, 404, "not_found")
        assert error["message"] == f"No endpoint at {url}; use {right} (with the trailing slash)."
    assert written(user_id) == before


def test_a_read_without_the_trailing_slash_is_redirected_without_a_page(api, debug):
    response = api.get("/api/tasks?status=pending")

    assert response.status_code == 301
    assert response["Location"] == "/api/tasks/?status=pending"
    assert response.content == b""


@pytest.mark.parametrize("url", ["/api/tasks/abc/", "/api/nowhere", "/api/", "/api/tasks/1/x/"])
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_an_unknown_api_path_is_a_json_404(api, user_id, debug, url, method):
    response = raw(api, method, url, "{}")

    error = assert_error(response, 404, "not_found")
    assert error["message"] == "Not found."
    assert written(user_id) == ([], 0)


def test_a_host_that_is_not_allowed_is_a_json_400(api, user_id, debug):
    response = api.post(LIST, {"title": "x"}, format="json", HTTP_HOST="evil.example")

    error = assert_error(response, 400, "bad_request")
    assert error["message"] == "The request is malformed."
    assert written(user_id) == ([], 0)


def test_pages_outside_the_api_keep_django_s_html_404(client):
    response = client.get("/nowhere/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


# --- DRF's own refusals ---------------------------------------------------------------------


def test_drf_refusals_use_the_error_shape_with_stable_codes(api, user_id, task):
    before = written(user_id)

    method = api.put(LIST, {"title": "x"}, format="json")
    accept = api.get(LIST, HTTP_ACCEPT="text/html")
    media = raw(api, "POST", LIST, "title=x", content_type="application/x-www-form-urlencoded")
    parse = raw(api, "PATCH", detail(task.id), "{not json")
    empty = raw(api, "POST", LIST, " ")

    assert_error(method, 405, "method_not_allowed")
    assert method["Allow"] == "GET, POST, HEAD, OPTIONS"
    assert_error(accept, 406, "not_acceptable")
    assert_error(media, 415, "unsupported_media_type")
    assert assert_error(parse, 400, "invalid_json")["message"].startswith("The body is not JSON")
    assert_error(empty, 400, "invalid_json")
    assert written(user_id) == before


# --- views that are not DRF's, and uncaught exceptions -------------------------------------


def _failing_view(request):
    raise RuntimeError("secret detail of the failure")


class _FailingApiView(APIView):
    authentication_classes: list = []
    permission_classes: list = []

    def get(self, request):
        raise RuntimeError("secret detail of the failure")


@require_POST
def _post_only(request):
    return JsonResponse({"ok": True})


urlpatterns = [
    path("api/test/fails/", _failing_view),
    path("api/test/fails-drf/", _FailingApiView.as_view()),
    path("api/test/post-only/", _post_only),
    path("test/fails/", _failing_view),
    path("", include("todo_project.urls")),
]


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("url", ["/api/test/fails/", "/api/test/fails-drf/"])
def test_an_uncaught_exception_under_the_api_is_a_json_500_and_is_logged(
    client, debug, url, caplog
):
    # given a view under the API that raises
    client.raise_request_exception = False

    # when it is called
    with caplog.at_level(logging.ERROR, logger="django.request"):
        response = client.get(url, HTTP_X_REQUEST_ID="req-500-probe")

    # then the answer is a JSON 500 with the request id, no page, and the traceback is logged
    error = assert_error(response, 500, "server_error")
    assert error == {
        "code": "server_error",
        "message": "Something went wrong on our side; the request id is req-500-probe.",
        "request_id": "req-500-probe",
    }
    assert response["X-Request-ID"] == "req-500-probe"
    assert b"secret detail" not in response.content
    logged = [r for r in caplog.records if r.name == "django.request" and r.exc_info]
    assert len(logged) == 1
    assert str(logged[0].exc_info[1]) == "secret detail of the failure"


@pytest.mark.urls(__name__)
def test_an_uncaught_exception_outside_the_api_keeps_django_s_page(client, settings):
    settings.DEBUG = False
    client.raise_request_exception = False

    response = client.get("/test/fails/")

    assert response.status_code == 500
    assert response["Content-Type"].startswith("text/html")
    assert b"secret detail" not in response.content


@pytest.mark.urls(__name__)
def test_a_405_from_a_plain_django_view_under_the_api_is_json(client, debug):
    response = client.get("/api/test/post-only/")

    error = assert_error(response, 405, "method_not_allowed")
    assert error["message"] == "Method GET is not allowed here."
    assert response["Allow"] == "POST"


# --- fields and filters


WRONG_TYPES = [
    pytest.param({"tags": [0]}, "tags[0]", "invalid", id="a-number-as-a-tag"),
    pytest.param({"tags": ["ok", True]}, "tags[1]", "invalid", id="a-boolean-as-a-tag"),
    pytest.param({"tags": "home"}, "tags", "not_a_list", id="a-string-as-the-tags"),
    pytest.param({"title": 5}, "title", "invalid", id="a-number-as-the-title"),
    pytest.param({"title": ["t"]}, "title", "invalid", id="a-list-as-the-title"),
    pytest.param({"description": 1.5}, "description", "invalid", id="a-float-as-text"),
    pytest.param({"due_date": 20311201}, "due_date", "invalid", id="a-number-as-a-date"),
    pytest.param({"reminder_time": 60}, "reminder_time", "invalid", id="a-number-as-a-reminder"),
    pytest.param({"timezone": 0}, "timezone", "invalid", id="a-number-as-a-time-zone"),
    pytest.param({"priority": 4}, "priority", "invalid_choice", id="a-number-as-a-priority"),
    pytest.param({"version": "3"}, "version", "invalid", id="a-string-as-the-version"),
    pytest.param({"version": True}, "version", "invalid", id="a-boolean-as-the-version"),
    pytest.param({"version": 1.0}, "version", "invalid", id="a-float-as-the-version"),
    pytest.param({"completed": "true"}, "completed", "invalid", id="a-string-as-completed"),
]


@pytest.mark.parametrize(("body", "field", "code"), WRONG_TYPES)
def test_a_value_of_the_wrong_type_is_a_400_naming_the_field_not_coerced(
    api, user_id, task, body, field, code
):
    """Regression: DRF's fields turned 0 into "0", 5 into "5" and "3" into 3."""
    before = written(user_id)

    created = api.post(LIST, {"title": "t", **body}, format="json")
    patched = api.patch(detail(task.id), body, format="json")

    for response in (created, patched):
        error = assert_error(response, 400, "invalid")
        assert [(item["field"], item["code"]) for item in error["fields"]] == [(field, code)]
    assert written(user_id) == before


def test_a_value_of_the_right_type_still_passes(api, user_id):
    response = api.post(
        LIST,
        {"title": "t", "tags": ["0"], "description": "1.5", "version": 1, "completed": True},
        format="json",
    )

    assert response.status_code == 201, response.content
    assert (response.json()["tags"], response.json()["completed"]) == (["0"], True)


FILTERS = [
    "due_before",
    "due_after",
    "due",
    "priority",
    "status",
    "ordering",
    "tags",
    "tags_mode",
    "timezone",
    "limit",
    "offset",
]


@pytest.mark.parametrize("name", FILTERS)
def test_an_empty_list_parameter_is_a_400_naming_it_not_no_filter(api, task, name):
    """Regression: ``due_before=`` (and most of these) read as "no filter" and listed all."""
    response = api.get(LIST, {name: ""})

    error = assert_error(response, 400, "blank")
    assert error["fields"] == [
        {
            "field": name,
            "code": "blank",
            "message": f"{name} may not be empty; leave it out instead.",
        }
    ]


def test_an_empty_search_is_no_search(api, task):
    response = api.get(LIST, {"q": ""})

    assert response.status_code == 200
    assert [item["id"] for item in response.json()["results"]] == [task.id]


@pytest.mark.parametrize(
    ("params", "field", "code"),
    [
        ({"tags": "home,,work"}, "tags", "invalid"),
        ({"tags": "home,"}, "tags", "invalid"),
        ({"priority": "low, "}, "priority", "invalid_choice"),
        ({"ordering": ",title"}, "ordering", "invalid_choice"),
        ({"due_before": "2031-1-5"}, "due_before", "invalid_datetime"),
        ({"due_before": "2031-02-30"}, "due_before", "invalid_datetime"),
        ({"due_after": "2031-W01-1"}, "due_after", "invalid_datetime"),
        ({"limit": "5.0"}, "limit", "invalid"),
        ({"offset": "1_000"}, "offset", "invalid"),
        ({"timezone": " UTC"}, "timezone", "invalid_timezone"),
    ],
)
def test_a_filter_outside_its_published_pattern_is_a_400(api, task, params, field, code):
    """Each of these was read as something else (an empty tag dropped, ``1_000`` as 1000)."""
    response = api.get(LIST, params)

    error = assert_error(response, 400, code)
    assert [(item["field"], item["code"]) for item in error["fields"]] == [(field, code)]


def test_filters_in_their_published_forms_still_work(api, make_task):
    kept = make_task(title="kept", tags=["home", "work"], due_date="2031-01-05T10:00:00Z")

    response = api.get(
        LIST,
        {
            "tags": " home , work ",
            "priority": "medium,low",
            "due_after": "2031-01-05",
            "due_before": "2031-01-05 11:00:00+00:00",
            "limit": "010",
        },
    )

    assert response.status_code == 200, response.content
    assert [item["id"] for item in response.json()["results"]] == [kept.id]


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/api/notifications/?offset=", "offset"),
        ("/api/notifications/?unread=yes", "unread"),
        ("/api/notifications/?unread=true&unread=false", "unread"),
        ("/api/notifications/?limit=5.0", "limit"),
        ("{history}?limit=", "limit"),
        ("{history}?offset=+1", "offset"),
    ],
)
def test_the_other_lists_hold_their_parameters_to_the_same_rules(api, task, url, field):
    """Regression: DRF read ``offset=`` as "not given", kept the last of repeated values and
    took ``yes`` for true and ``5.0`` for 5."""
    response = api.get(url.format(history=f"/api/tasks/{task.id}/history/"))

    error = assert_error(response, 400, response.json()["error"]["code"])
    assert [item["field"] for item in error["fields"]] == [field]


# --- recurrence: UNTIL before the first due date


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=DAILY;UNTIL=00010101",
        "FREQ=WEEKLY;BYDAY=MO;UNTIL=20310531",
        {"freq": "daily", "until": "2031-05-31"},
    ],
)
def test_a_rule_that_ends_before_its_first_due_date_is_refused_on_create(api, user_id, rule):
    """Regression: ``UNTIL=00010101`` was stored (as ``UNTIL=10101``), and the series could
    neither be edited nor completed."""
    before = written(user_id)

    response = api.post(
        LIST,
        {"title": "t", "due_date": "2031-06-01T09:00:00Z", "recurrence_pattern": rule},
        format="json",
    )

    error = assert_error(response, 400, "until_before_start")
    assert error["fields"][0]["field"] == "recurrence_pattern"
    assert "before the series' first due date, 2031-06-01" in error["message"]
    assert written(user_id) == before


def test_until_is_a_date_in_the_task_s_time_zone_and_may_be_the_first_due_date(api):
    # 01:00 UTC on June 1 is still May 31 in New York: a series of one.
    response = api.post(
        LIST,
        {
            "title": "t",
            "due_date": "2031-06-01T01:00:00Z",
            "timezone": "America/New_York",
            "recurrence_pattern": "FREQ=DAILY;UNTIL=20310531",
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    assert response.json()["recurrence_pattern"] == "FREQ=DAILY;UNTIL=20310531"


@pytest.mark.parametrize(
    "change",
    [
        {"recurrence_pattern": "FREQ=DAILY;UNTIL=20310531"},
        {"due_date": "2031-06-11T09:00:00Z", "apply_to": "series"},
    ],
    ids=["a-new-rule", "the-series-moved-past-until"],
)
def test_an_update_that_puts_until_before_the_first_due_date_is_refused(
    api, user_id, make_task, change
):
    series = make_task(
        due_date="2031-06-01T09:00:00Z", recurrence_pattern="FREQ=DAILY;UNTIL=20310610"
    )
    before = written(user_id)

    response = api.patch(detail(series.id), change, format="json")

    error = assert_error(response, 400, "until_before_start")
    assert error["fields"][0]["field"] == "recurrence_pattern"
    assert written(user_id) == before
    assert Task.objects.get(pk=series.id).recurrence_rule == "FREQ=DAILY;UNTIL=20310610"
