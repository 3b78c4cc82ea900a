"""The idempotency settings, each with its default; read at call time, so a test's
``settings`` fixture changes them for the code under test."""

from __future__ import annotations

from django.conf import settings

_DEFAULTS = {
    # How long a key and its answer are kept (the IETF draft leaves it to the server).
    "IDEMPOTENCY_KEY_TTL_HOURS": 24,
    # How long a request waits for another request with the same key to finish before 409.
    "IDEMPOTENCY_WAIT_SECONDS": 5.0,
}


def get(name: str):
    return getattr(settings, name, _DEFAULTS[name])
