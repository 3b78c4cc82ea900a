"""The board page and its static files, as Django serves them."""

from __future__ import annotations

import pytest
from django.test import Client


@pytest.fixture
def client() -> Client:
    return Client()


def test_the_board_is_served_at_the_root_with_a_strict_policy(client):
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<script type="module" src="/static/realtime/board.js"></script>' in html
    assert 'href="/static/realtime/board.css"' in html
    assert 'name="viewport"' in html
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert response["Referrer-Policy"] == "no-referrer"
    assert response["Cache-Control"] == "no-store"


def test_the_board_only_answers_get(client):
    # The test client skips the CSRF check, so this is the view's own answer.
    assert client.post("/").status_code == 405


@pytest.mark.parametrize(
    ("path", "needle"),
    [
        ("/static/realtime/client.js", "export class TaskSocket"),
        ("/static/realtime/board.js", 'import { TaskSocket } from "./client.js"'),
        ("/static/realtime/board.css", "@media (max-width: 640px)"),
    ],
)
def test_static_files_are_served(client, path, needle):
    response = client.get(path)
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert needle in body.decode()


def test_the_board_offers_password_and_token_sign_in_with_labels(client):
    html = client.get("/").content.decode()

    assert 'id="password-form"' in html
    assert '<label for="username">Username</label>' in html
    assert '<label for="password">Password</label>' in html
    assert 'autocomplete="current-password"' in html
    assert '<label for="token-input">Token</label>' in html
    assert 'class="skip-link"' in html
    # Nothing is loaded from another origin.
    assert "http://" not in html and "https://" not in html


def test_the_board_modules_are_preloaded_and_served(client):
    html = client.get("/").content.decode()
    for name in ("client.js", "rules.js"):
        assert f'<link rel="modulepreload" href="/static/realtime/{name}">' in html
    response = client.get("/static/realtime/rules.js")
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert "export function describeRule" in body.decode()
