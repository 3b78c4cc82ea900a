"""A pytest plugin (``-p todo_project.pytest_database`` in pyproject.toml) that starts the
embedded PostgreSQL before pytest-django creates the test database; with ``DATABASE_URL`` set
it does nothing."""

from __future__ import annotations

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    from core.embedded_postgres import ensure_running

    ensure_running()
