"""Helpers for the project's tests (importable from any test package)."""

from __future__ import annotations

from rest_framework.test import APIClient

from todo_project.auth import issue_token


def client_for(user: str) -> APIClient:
    """A DRF test client that sends a valid bearer token for ``user``."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(user)}")
    return client
