"""The task list of the admin in headless Chromium at 1,400 px: long titles, tags, user ids and
rules do not push the page wider than the window.

Needs Debian's chromium (``realtime/tests/ensure_browser.sh``); it fails, never skips, when the
browser is missing. The screenshot is kept in the test's temporary directory."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from realtime.tests.test_browser import launch
from tasks import services

WIDTH = 1400
WAIT_MS = 15_000

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def crowded_tasks() -> None:
    """Tasks with every cell at its longest: the list must still fit."""
    for n in range(30):
        services.task_create(
            user_id=f"user-with-a-long-identifier-{n:04d}-" + "x" * 40,
            title=(f"Task {n} " + "supercalifragilistic" * 10)[:200],
            description="d" * 2000,
            priority="urgent",
            tags=[f"tag-{n}-" + "t" * 40, "familia"],
            due_date="2031-01-31T09:00:00Z",
            reminder_time="1w",
            recurrence_pattern="FREQ=MONTHLY;INTERVAL=2;BYDAY=-1FR;BYMONTH=1,3,5,7,9,11",
            timezone_name="America/Argentina/ComodRivadavia",
        )


def staff_session() -> str:
    user = User.objects.create_superuser("ops", "ops@example.com", "a-long-password-1")
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def test_the_task_list_fits_a_1400_px_window(server, tmp_path):
    from playwright.sync_api import sync_playwright

    crowded_tasks()
    session = staff_session()
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            context = browser.new_context(viewport={"width": WIDTH, "height": 900})
            context.add_cookies([{"name": "sessionid", "value": session, "url": server.url}])
            page = context.new_page()
            page.goto(f"{server.url}/admin/tasks/task/")
            page.wait_for_selector("#result_list", timeout=WAIT_MS)
            page.screenshot(path=str(tmp_path / "admin-task-list-1400.png"), full_page=True)
            widths = page.evaluate(
                "() => ({document: document.documentElement.scrollWidth,"
                " table: document.querySelector('#result_list').getBoundingClientRect().right,"
                " results: [document.querySelector('.results').scrollWidth,"
                "           document.querySelector('.results').clientWidth],"
                " rows: document.querySelectorAll('#result_list tbody tr').length,"
                " columns: [...document.querySelectorAll('#result_list thead th')]"
                "   .map(th => [th.className, Math.round(th.getBoundingClientRect().width)])})"
            )
        finally:
            browser.close()
    assert widths["rows"] == 30
    assert widths["document"] <= WIDTH, widths
    assert widths["table"] <= WIDTH, widths
    # every column is in view: the list does not scroll sideways inside the page either
    scroll_width, visible_width = widths["results"]
    assert scroll_width <= visible_width, widths["columns"]
    assert (tmp_path / "admin-task-list-1400.png").stat().st_size > 10_000
