"""Hostile input against the admin: password guessing, forged posts, pages without a staff login.

The admin signs in with Django's own users; django-axes counts failed logins per username and
client address together and answers a locked pair with a 429 page until the cool-off ends.
"""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"
PASSWORD = "correct horse battery staple"
ATTACKER = "203.0.113.7"
COLLEAGUE = "198.51.100.20"


@pytest.fixture(autouse=True)
def _fast_hashes(settings):
    # Every attempt checks a password; the default hasher is slow on purpose.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def staff():
    return User.objects.create_user("ops", password=PASSWORD, is_staff=True, is_superuser=True)


def log_in(client: Client, username: str, password: str, address: str = ATTACKER, **headers):
    return client.post(
        LOGIN,
        {"username": username, "password": password, "next": "/admin/"},
        REMOTE_ADDR=address,
        **headers,
    )


def signed_in(client: Client) -> bool:
    return client.get("/admin/", REMOTE_ADDR=COLLEAGUE).status_code == 200


def fail_five_times(client: Client, username: str = "ops", **headers) -> list[int]:
    return [log_in(client, username, f"guess-{n}", **headers).status_code for n in range(5)]


def test_five_wrong_passwords_lock_the_username_from_that_address(client, staff):
    # given a staff user
    # when an address tries five wrong passwords for it
    statuses = fail_five_times(client)

    # then the first four get the login form back and the fifth is locked out with a page
    assert statuses == [200, 200, 200, 200, 429]
    locked = log_in(client, "ops", "guess-6")
    assert locked.status_code == 429
    assert locked["Content-Type"].startswith("text/html")
    assert b"too many login attempts" in locked.content
    attempt = AccessAttempt.objects.get()
    assert (attempt.username, attempt.ip_address) == ("ops", ATTACKER)
    assert attempt.failures_since_start == 6
    assert not Session.objects.exists()


def test_the_right_password_is_refused_during_the_cool_off(client, staff):
    # given a username locked out from an address
    fail_five_times(client)

    # when the right password comes from that address before the cool-off ends
    response = log_in(client, "ops", PASSWORD)

    # then it is refused as well, and nobody is signed in
    assert response.status_code == 429
    assert not Session.objects.exists()
    assert not signed_in(client)


def test_the_lock_ends_after_fifteen_minutes(client, staff):
    # given a lockout whose last failure was just over fifteen minutes ago
    fail_five_times(client)
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=15, seconds=5))

    # when the right password comes from the same address
    response = log_in(client, "ops", PASSWORD)

    # then the user is signed in and the failures are forgotten
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert signed_in(client)
    assert not AccessAttempt.objects.exists()


def test_another_address_is_not_locked(client, staff):
    # given a username locked out from the attacker's address
    fail_five_times(client)

    # when a colleague signs in with it from another address
    colleague = Client()
    response = log_in(colleague, "ops", PASSWORD, address=COLLEAGUE)

    # then the colleague gets in, and the attacker's lock stays
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert signed_in(colleague)
    assert log_in(client, "ops", PASSWORD).status_code == 429


def test_another_username_from_the_same_address_is_not_locked(client, staff):
    # given "ops" locked out from an address, and a second staff user
    fail_five_times(client)
    User.objects.create_user("ops2", password=PASSWORD, is_staff=True)

    # when the second user signs in from that address
    response = log_in(client, "ops2", PASSWORD)

    # then that works
    assert response.status_code == 302


def test_a_forged_forwarded_for_header_does_not_escape_the_lock(client, staff):
    # given guesses that each claim another client address in X-Forwarded-For
    statuses = [
        log_in(client, "ops", f"guess-{n}", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}").status_code
        for n in range(6)
    ]

    # then they all count against the real peer address (the server resolves trusted
    # proxies itself, before Django), so the pair is locked after five
    assert statuses == [200, 200, 200, 200, 429, 429]
    assert list(AccessAttempt.objects.values_list("ip_address", flat=True)) == [ATTACKER]
    assert log_in(client, "ops", PASSWORD, HTTP_X_FORWARDED_FOR="192.0.2.99").status_code == 429


def test_a_login_post_without_the_csrf_token_is_refused(staff):
    # given a browser-like client that enforces CSRF, as the real middleware does
    client = Client(enforce_csrf_checks=True)

    # when the right credentials are posted without the form's CSRF token
    response = log_in(client, "ops", PASSWORD)

    # then Django refuses the post before any password is checked
    assert response.status_code == 403
    assert not Session.objects.exists()
    assert not AccessAttempt.objects.exists()


def test_the_login_form_sets_a_secure_csrf_cookie(client):
    # when the login page is fetched with DEBUG off
    response = client.get(LOGIN)

    # then its CSRF cookie is for HTTPS only and hidden from scripts' cross-site use
    cookie = response.cookies["csrftoken"]
    assert response.status_code == 200
    assert cookie["secure"] is True
    assert cookie["samesite"] == "Lax"


@pytest.mark.parametrize(
    "path", ["/admin/", "/admin/tasks/task/", "/admin/auth/user/", "/admin/axes/accessattempt/"]
)
def test_admin_pages_need_a_login(client, path):
    # when an anonymous client opens an admin page
    response = client.get(path)

    # then it is sent to the login form
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=")


def test_a_user_who_is_not_staff_cannot_sign_in_to_the_admin(client):
    # given an active user without the staff flag
    User.objects.create_user("visitor", password=PASSWORD)

    # when they post the right password to the admin login
    response = log_in(client, "visitor", PASSWORD)

    # then the form answers as for a wrong password, and the admin stays closed
    assert response.status_code == 200
    assert b"Please enter the correct username and password for a staff account" in (
        response.content
    )
    assert not Session.objects.exists()
    assert client.get("/admin/").status_code == 302


def test_a_signed_in_user_who_is_not_staff_is_sent_to_the_login(client):
    # given a session for a user without the staff flag
    client.force_login(User.objects.create_user("visitor", password=PASSWORD))

    # when they open the admin
    response = client.get("/admin/tasks/task/")

    # then they get the login form's redirect, not the page
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=")


def test_a_locked_address_can_still_use_the_api_with_a_token(client, staff, api):
    # given an address locked out of the admin login
    fail_five_times(client)

    # when the same address calls the REST API with a bearer token
    response = api.get("/api/tasks/", REMOTE_ADDR=ATTACKER)

    # then the admin's lock has nothing to do with it
    assert response.status_code == 200
