"""Deployment checks: the `slow_deploy` marker.

Tests marked slow_deploy replay the Dockerfile in a fresh venv (PyPI downloads, one to
two minutes). They are deselected unless asked for:

    pytest deploy/tests -m slow_deploy -p no:django      # only the slow check
    DEPLOY_SLOW_CHECKS=1 pytest deploy/tests -p no:django # everything
"""

from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "slow_deploy: replays deploy/Dockerfile in a fresh venv (network, 1-2 min); "
        "run with -m slow_deploy or DEPLOY_SLOW_CHECKS=1",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    asked = (
        "slow_deploy" in (config.getoption("markexpr") or "")
        or os.environ.get("DEPLOY_SLOW_CHECKS") == "1"
    )
    if asked:
        return
    slow = [item for item in items if item.get_closest_marker("slow_deploy")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow_deploy")]
