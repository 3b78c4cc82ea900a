"""Password sign-in (``POST /api/auth/token/``) for operator-created Django users."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from core.auth import verify_token

pytestmark = pytest.mark.django_db

URL = "/api/auth/token/"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def client() -> APIClient:
    return APIClient()


@pytest.fixture
def operator_user():
    return get_user_model().objects.create_user(username="ada", password=PASSWORD)


def sign_in(client: APIClient, username: str, password: str, address: str = "10.0.0.1"):
    return client.post(
        URL, {"username": username, "password": password}, format="json", REMOTE_ADDR=address
    )


def test_a_user_signs_in_and_gets_a_short_lived_token_the_api_accepts(client, operator_user):
    # Given an operator-created user; when they sign in with their password
    response = sign_in(client, "ada", PASSWORD)

    # then they get a bearer token whose subject is the username, valid for the default TTL
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["user_id"] == "ada"
    assert body["expires_in"] == 3600
    assert response["Cache-Control"] == "no-store"
    claims = verify_token(body["token"]).claims
    assert claims["sub"] == "ada"
    assert 3590 <= claims["exp"] - time.time() <= 3600
    tasks = client.get("/api/tasks/", HTTP_AUTHORIZATION=f"Bearer {body['token']}")
    assert tasks.status_code == 200


@pytest.mark.parametrize(
    ("username", "password"),
    [("ada", "wrong password"), ("nobody", PASSWORD), ("ADA ", PASSWORD)],
)
def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(
    client, operator_user, username, password
):
    response = sign_in(client, username, password)

    assert response.status_code == 401
    assert response.json() == {
        "error": {"code": "invalid_credentials", "message": "Wrong username or password."}
    }
    assert "token" not in response.json()


def test_an_inactive_user_cannot_sign_in(client, operator_user):
    operator_user.is_active = False
    operator_user.save(update_fields=["is_active"])

    response = sign_in(client, "ada", PASSWORD)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_credentials"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"password": PASSWORD}, "username"),
        ({"username": "ada"}, "password"),
        ({"username": 5, "password": PASSWORD}, "username"),
        ({"username": "", "password": PASSWORD}, "username"),
        ({"username": "a\x00b", "password": PASSWORD}, "username"),
        ({"username": "ada", "password": "x" * 1025}, "password"),
    ],
)
def test_bad_input_is_a_json_400_naming_the_field(client, body, field):
    response = client.post(URL, body, format="json", REMOTE_ADDR="10.0.0.2")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert [item["field"] for item in error["fields"]] == [field]


def test_only_post_is_answered_in_json(client):
    response = client.get(URL)

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_attempts_per_username_are_limited_across_addresses(client, operator_user, rates):
    rates(signin_username="3/min", signin_address="100/min")
    answers = [sign_in(client, "ada", "guess", address=f"10.1.0.{n}").status_code for n in range(3)]

    # The fourth attempt, even with the right password and from a new address, is refused.
    refused = sign_in(client, "Ada", PASSWORD, address="10.1.0.9")

    assert answers == [401, 401, 401]
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "throttled"
    assert int(refused["Retry-After"]) >= 1
    # Another user is not held back by it.
    get_user_model().objects.create_user(username="grace", password=PASSWORD)
    assert sign_in(client, "grace", PASSWORD, address="10.1.0.9").status_code == 200


def test_attempts_per_address_are_limited_across_usernames(client, operator_user, rates):
    rates(signin_address="3/min", signin_username="100/min")
    answers = [sign_in(client, f"user{n}", "guess").status_code for n in range(3)]

    refused = sign_in(client, "ada", PASSWORD)

    assert answers == [401, 401, 401]
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "throttled"
    # The same user from another address still gets in.
    assert sign_in(client, "ada", PASSWORD, address="10.9.9.9").status_code == 200


def test_repeated_failures_lock_the_username_at_this_address_like_the_admin(
    client, operator_user, rates, settings
):
    # Given the budgets out of the way, django-axes' failure limit decides.
    rates(signin_address="100/min", signin_username="100/min")
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(2):
        assert sign_in(client, "ada", "guess").status_code == 401

    locked = sign_in(client, "ada", "guess")
    still_locked = sign_in(client, "ada", PASSWORD)

    assert locked.status_code == still_locked.status_code == 429
    assert still_locked.json()["error"]["code"] == "throttled"
    assert "token" not in still_locked.json()
    # Elsewhere the user is not locked out.
    assert sign_in(client, "ada", PASSWORD, address="10.7.7.7").status_code == 200


def test_with_keys_from_an_identity_provider_password_sign_in_is_off(
    client, operator_user, settings
):
    settings.JWT_JWKS_URL = "https://idp.example.com/jwks.json"

    response = sign_in(client, "ada", PASSWORD)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "signin_unavailable"
