"""The product's settings with ``PauseAfterCommit`` around the idempotency middleware."""

from todo_project.settings import *  # noqa: F403

_KEYS = "idempotency.middleware.IdempotencyMiddleware"
MIDDLEWARE = [
    *(name for name in MIDDLEWARE if name != _KEYS),  # noqa: F405
    "idempotency.tests.faults.PauseAfterCommit",
    _KEYS,
]
