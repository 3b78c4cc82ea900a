"""GET /api/changes/ with awkward text: the bytes are what DRF's own JSON renderer writes."""

from __future__ import annotations

import pytest
from rest_framework.renderers import JSONRenderer

from tasks import services
from tasks.api import changes as changes_api

pytestmark = pytest.mark.django_db

# Line separators (DRF escapes them), other characters that start with 0xE2 in UTF-8, quotes,
# backslashes, accents and an emoji.
AWKWARD_TITLES = [
    "line\u2028separator",
    "paragraph\u2029separator",
    "both \u2029\u2028 twice \u2028 end",
    "curly \u2019quotes\u2019 \u2014 dash \u2026",
    'quote " and \\ backslash',
    "caf\u00e9 \U0001f600",
    "plain",
]


@pytest.fixture
def history(make_task, user_id):
    """Tasks with awkward titles, one updated, one in the trash, one deleted for good."""
    tasks = [make_task(title=title, tags=["t\u00e9"]) for title in AWKWARD_TITLES]
    services.task_update(user_id=user_id, task_id=tasks[0].pk, changes={"title": "a\u2029b"})
    trashed, deleted = make_task(title="trashed"), make_task(title="deleted")
    services.task_delete(user_id=user_id, task_id=trashed.pk)
    services.task_delete(user_id=user_id, task_id=deleted.pk, permanent=True)
    return tasks


def feed(api, **extra):
    return api.get("/api/changes/", {"since": 0, "limit": 1000}, **extra)


def test_the_feed_is_byte_for_byte_what_drf_writes(api, history):
    response = feed(api)

    assert response.status_code == 200
    assert response.content == JSONRenderer().render(response.json())
    # the separators are escaped, and nothing else is
    assert b"\xe2\x80\xa8" not in response.content and b"\xe2\x80\xa9" not in response.content
    assert b'"title":"a\\u2029b"' in response.content
    assert b'"title":"both \\u2029\\u2028 twice \\u2028 end"' in response.content
    assert "curly \u2019quotes\u2019 \u2014 dash \u2026".encode() in response.content
    changes = response.json()["changes"]
    assert [c.get("deleted", False) for c in changes].count(True) == 4


def test_events_about_no_task_carry_their_payload_the_same_way(api, history, monkeypatch):
    # given a feed whose subject key no event has, so every change carries its payload
    monkeypatch.setattr(changes_api, "SUBJECT_KEY", "no_such_key")

    response = feed(api)

    assert response.content == JSONRenderer().render(response.json())
    assert all("payload" in c for c in response.json()["changes"])


def test_an_empty_page_and_a_410(api, history):
    latest = feed(api).json()["next_since"]

    empty = api.get("/api/changes/", {"since": latest})
    assert empty.content == (b'{"changes":[],"next_since":%d,"has_more":false}' % latest)

    gone = api.get("/api/changes/", {"since": latest + 5})
    assert gone.status_code == 410
    assert gone.json()["error"]["code"] == "resync_required"


def test_a_client_that_asks_for_indented_json_gets_it(api, history):
    indented = feed(api, HTTP_ACCEPT="application/json; indent=2")

    assert indented.status_code == 200
    assert indented.content.startswith(b'{\n  "changes": [\n')
    assert indented.json() == feed(api).json()
