"""A pytest plugin (``-p todo_project.pytest_secrets`` in pyproject.toml) that gives a test run
its own random secrets before pytest-django imports the settings.

Tests run with ``DEBUG`` off, as production does, so with ``DATABASE_URL`` set the settings
would refuse to start without secrets; the embedded mode would use the developer's own
generated ones. Processes the tests start inherit these through the environment.
"""

from __future__ import annotations

import os
import secrets

from core.env import LocalSecrets

for _name in LocalSecrets.NAMES:
    os.environ.setdefault(_name, secrets.token_urlsafe(48))
