"""Idempotency-Key on the API's writes, through Django's test client (one process)."""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from events.models import OutboxEvent
from events.services import events_expire
from idempotency.models import IdempotencyKey
from idempotency.services import keys_expire
from tasks.models import Task

pytestmark = pytest.mark.django_db


def post(api, body, key, path="/api/tasks/"):
    return api.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def events_of(user_id):
    return list(OutboxEvent.objects.filter(user_id=user_id).values_list("event_type", flat=True))


def test_same_key_and_request_answers_the_first_answer_and_changes_nothing(api, user_id):
    # given a create with a key
    first = post(api, {"title": "Buy milk"}, "k-1")
    assert first.status_code == 201

    # when the client sends it again
    again = post(api, {"title": "Buy milk"}, "k-1")

    # then the same answer comes back, marked as a replay, and there is still one task
    assert again.status_code == 201
    assert again.content == first.content
    assert again["ETag"] == first["ETag"]
    assert again["Location"] == first["Location"]
    assert again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert Task.objects.filter(user_id=user_id).count() == 1
    assert events_of(user_id) == ["task.created"]


def test_the_key_is_written_with_the_answer(api, user_id):
    response = post(api, {"title": "Kept"}, '"quoted-key"')  # a Structured Fields string

    row = IdempotencyKey.objects.get(user_id=user_id)
    assert row.key == "quoted-key"
    assert row.status == 201
    assert bytes(row.body) == response.content
    assert row.headers["Location"] == response["Location"]


def test_same_key_with_another_request_is_422(api, user_id):
    post(api, {"title": "One"}, "k-2")

    other_body = post(api, {"title": "Two"}, "k-2")
    task_id = Task.objects.get(user_id=user_id).pk
    other_path = api.patch(
        f"/api/tasks/{task_id}/", {"title": "One"}, format="json", HTTP_IDEMPOTENCY_KEY="k-2"
    )

    for response in (other_body, other_path):
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert list(Task.objects.filter(user_id=user_id).values_list("title", flat=True)) == ["One"]


def test_keys_are_per_user(api, other_api, user_id, other_user_id):
    post(api, {"title": "Mine"}, "shared")

    theirs = post(other_api, {"title": "Theirs"}, "shared")

    assert theirs.status_code == 201
    assert "Idempotent-Replayed" not in theirs
    assert Task.objects.get(user_id=other_user_id).title == "Theirs"


@pytest.mark.parametrize(
    ("key", "code"),
    [("x" * 256, "max_length"), ("", "blank"), ('""', "blank"), ("caf\u00e9", "invalid")],
)
def test_a_bad_key_is_400_naming_the_header(api, user_id, key, code):
    response = api.post(
        "/api/tasks/", {"title": "t"}, format="json", HTTP_IDEMPOTENCY_KEY=key.encode().decode()
    )

    assert response.status_code == 400
    field = response.json()["error"]["fields"][0]
    assert (field["field"], field["code"]) == ("Idempotency-Key", code)
    assert not Task.objects.filter(user_id=user_id).exists()


def test_the_longest_key_is_taken(api):
    assert post(api, {"title": "t"}, "k" * 255).status_code == 201


def test_an_error_is_not_kept_so_the_key_stays_free(api, user_id):
    # given a refused create (blank title) with a key
    refused = post(api, {"title": " "}, "k-3")
    assert refused.status_code == 400
    assert not IdempotencyKey.objects.filter(user_id=user_id).exists()

    # when the client corrects it and sends it with the same key
    accepted = post(api, {"title": "Fixed"}, "k-3")

    # then it is done
    assert accepted.status_code == 201
    assert Task.objects.get(user_id=user_id).title == "Fixed"


def test_a_replayed_delete_does_not_delete_again(api, make_task, user_id):
    task = make_task(title="Gone")
    first = api.delete(f"/api/tasks/{task.pk}/", HTTP_IDEMPOTENCY_KEY="del-1")
    again = api.delete(f"/api/tasks/{task.pk}/", HTTP_IDEMPOTENCY_KEY="del-1")

    assert first.status_code == again.status_code == 204
    assert again["Idempotent-Replayed"] == "true"
    assert events_of(user_id).count("task.deleted") == 1


def test_a_replayed_patch_is_not_applied_twice(api, make_task, user_id):
    task = make_task(title="v1")
    first = api.patch(
        f"/api/tasks/{task.pk}/",
        {"title": "v2"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="p-1",
        HTTP_IF_MATCH='"1"',
    )
    again = api.patch(
        f"/api/tasks/{task.pk}/",
        {"title": "v2"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="p-1",
        HTTP_IF_MATCH='"1"',
    )

    # the second would be a version conflict if it ran; it is the first answer instead
    assert first.status_code == again.status_code == 200
    assert again.json()["version"] == 2
    assert Task.objects.get(pk=task.pk).version == 2


def test_unauthenticated_writes_are_not_keyed(user_id):
    response = APIClient().post(
        "/api/tasks/", {"title": "t"}, format="json", HTTP_IDEMPOTENCY_KEY="anon"
    )

    assert response.status_code == 401
    assert not IdempotencyKey.objects.exists()


def _forged_client(user_id: str) -> APIClient:
    """A client whose token names ``user_id`` but is signed with the wrong secret."""
    token = jwt.encode(
        {"sub": user_id, "exp": timezone.now() + timedelta(hours=1)}, "x" * 32, algorithm="HS256"
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_a_forged_token_neither_claims_a_key_nor_reads_a_kept_answer(api, user_id):
    # given a forged token naming the user, with a key the user has not used yet
    forged = _forged_client(user_id)
    refused = post(forged, {"title": "Mine"}, "k-forged")

    # then it is refused and nothing is kept under the user's key
    assert refused.status_code == 401
    assert not IdempotencyKey.objects.filter(user_id=user_id).exists()

    # when the user then writes with that key, and the forged token repeats the request
    first = post(api, {"title": "Mine"}, "k-forged")
    again = post(forged, {"title": "Mine"}, "k-forged")
    other = post(forged, {"title": "Other"}, "k-forged")

    # then the forged token gets 401, not the user's answer (nor a hint that the key is used)
    assert first.status_code == 201
    assert again.status_code == 401 and "Idempotent-Replayed" not in again
    assert again.json()["error"]["code"] != "idempotency_key_reused"
    assert other.status_code == 401
    assert Task.objects.filter(user_id=user_id).count() == 1
    assert bytes(IdempotencyKey.objects.get(user_id=user_id).body) == first.content


def test_a_keyed_write_verifies_its_token_once(api, monkeypatch):
    from core import auth

    verified = []
    real = auth.verify_token

    def counted(token):
        verified.append(token)
        return real(token)

    monkeypatch.setattr(auth, "verify_token", counted)

    response = post(api, {"title": "Once"}, "k-once")

    assert response.status_code == 201
    assert len(verified) == 1


def test_reads_ignore_the_header(api):
    response = api.get("/api/tasks/", HTTP_IDEMPOTENCY_KEY="x" * 300)

    assert response.status_code == 200
    assert not IdempotencyKey.objects.exists()


def test_an_expired_key_is_a_new_key(api, user_id):
    post(api, {"title": "Yesterday"}, "k-4")
    IdempotencyKey.objects.filter(user_id=user_id).update(
        created_at=timezone.now() - timedelta(hours=25)
    )

    response = post(api, {"title": "Today"}, "k-4")

    assert response.status_code == 201
    assert sorted(Task.objects.filter(user_id=user_id).values_list("title", flat=True)) == [
        "Today",
        "Yesterday",
    ]


def test_the_retention_sweep_deletes_keys_after_a_day(api, user_id):
    post(api, {"title": "old"}, "old")
    post(api, {"title": "new"}, "new")
    IdempotencyKey.objects.filter(key="old").update(created_at=timezone.now() - timedelta(hours=25))

    events_expire()

    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["new"]
    assert keys_expire(older_than=timedelta(0)) == 1


def test_notification_writes_take_keys_too(api, user_id):
    response = api.post("/api/notifications/1/read/", HTTP_IDEMPOTENCY_KEY="n-1")

    # not found: nothing is kept, and it is still the API's JSON error
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert not IdempotencyKey.objects.exists()
