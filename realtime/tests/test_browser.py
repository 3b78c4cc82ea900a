"""The live board in headless Chromium against the real server: two pages of one user see tasks
created through REST and through MCP appear without a reload; a page of another user sees none.

Needs Debian's chromium at /usr/bin/chromium (``make test`` installs it; see
``realtime/tests/ensure_browser.sh``). It fails, never skips, when the browser is missing.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from core.auth import issue_token

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
WAIT_MS = 15_000

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def launch(playwright):
    assert Path(CHROMIUM).exists(), (
        f"{CHROMIUM} is missing: run `make test` (it installs Debian's chromium) or "
        "`apt-get install -y chromium`."
    )
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


async def _mcp_add_task(base_url: str, token: str, user_id: str, **arguments) -> dict:
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http,
        streamable_http_client(f"{base_url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        result = await session.call_tool("add_task", {"user_id": user_id, **arguments})
        assert not result.is_error, result.content[0].text
        return result.structured_content


def _off_the_page_loop(coroutine_function, *args, **kwargs):
    """Playwright's sync API runs an event loop on this thread; run async code on another."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(coroutine_function(*args, **kwargs))).result(60)


def _open_board(context, base_url: str, token: str):
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{base_url}/#token={token}")
    page.wait_for_selector('#live[data-state="open"]', timeout=WAIT_MS)
    # A marker that a reload would wipe out.
    page.evaluate("window.__sameDocument = true")
    return page, errors


def test_two_pages_of_a_user_see_rest_and_mcp_changes_live_and_another_user_sees_none(
    live_server_asgi, user_id, other_user_id, tmp_path
):
    from playwright.sync_api import expect, sync_playwright

    base = live_server_asgi.url
    token = issue_token(user_id)
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            mine = browser.new_context(viewport={"width": 1100, "height": 800})
            first, first_errors = _open_board(mine, base, token)
            second, second_errors = _open_board(mine, base, token)
            stranger_context = browser.new_context()
            stranger, stranger_errors = _open_board(
                stranger_context, base, issue_token(other_user_id)
            )
            # The token left the address bar once the page took it.
            assert "token" not in first.url

            response = httpx.post(
                f"{base}/api/tasks/",
                json={
                    "title": "Made through REST",
                    "priority": "urgent",
                    "tags": ["live", "rest"],
                    "due_date": "2031-05-04T09:30:00Z",
                },
                headers={"Authorization": f"Bearer {token}"},
            )
            assert response.status_code == 201, response.text
            created = _off_the_page_loop(
                _mcp_add_task,
                base,
                token,
                user_id,
                title="Made through MCP",
                priority="high",
                tags=["agent"],
            )
            assert created["title"] == "Made through MCP"

            for page in (first, second):
                rest_item = page.locator(".task", has_text="Made through REST")
                mcp_item = page.locator(".task", has_text="Made through MCP")
                expect(rest_item).to_be_visible(timeout=WAIT_MS)
                expect(mcp_item).to_be_visible(timeout=WAIT_MS)
                expect(rest_item.locator(".badge")).to_have_text("urgent")
                expect(rest_item.locator(".tag")).to_have_text(["#live", "#rest"])
                expect(mcp_item.locator(".badge")).to_have_text("high")
                assert page.evaluate("window.__sameDocument") is True  # no reload happened

            # Completing on one page removes it from both pages' open lists, live. A click,
            # not check(): the completed task leaves the pending list as soon as the API
            # answers, which can be before Playwright would read the box's checked state.
            first.locator(".task", has_text="Made through REST").locator(".done").click()
            for page in (first, second):
                expect(page.locator(".task", has_text="Made through REST")).to_have_count(
                    0, timeout=WAIT_MS
                )
            first.screenshot(path=str(tmp_path / "board.png"), full_page=True)

            # The other user's page never showed any of it.
            stranger.wait_for_timeout(500)
            expect(stranger.locator(".task")).to_have_count(0)
            assert stranger.evaluate("window.__sameDocument") is True
            assert first_errors == second_errors == stranger_errors == []
        finally:
            browser.close()


def test_the_board_creates_and_deletes_tasks_and_fits_a_phone(live_server_asgi, user_id):
    from playwright.sync_api import expect, sync_playwright

    base = live_server_asgi.url
    token = issue_token(user_id)
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            phone = browser.new_context(
                viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
            )
            page, errors = _open_board(phone, base, token)
            page.fill("#new-title", "Call the plumber")
            page.select_option("#new-priority", "high")
            page.fill("#new-tags", "home, urgent-ish")
            page.select_option("#new-recurrence", "weekly")
            page.fill("#new-due", "2031-01-02T10:00")
            page.click("#add")
            item = page.locator(".task", has_text="Call the plumber")
            expect(item).to_be_visible(timeout=WAIT_MS)
            expect(item.locator(".recurrence")).to_have_text("↻ weekly")
            expect(item.locator(".tag")).to_have_text(["#home", "#urgent-ish"])
            # Nothing sticks out sideways on a phone.
            assert page.evaluate("document.documentElement.scrollWidth") <= 390

            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as api:
                listed = api.get("/api/tasks/").json()
                assert [t["title"] for t in listed["results"]] == ["Call the plumber"]
                assert listed["results"][0]["recurrence_pattern"] == "weekly"

                item.locator(".delete").click()
                expect(page.locator(".task")).to_have_count(0, timeout=WAIT_MS)
                assert api.get("/api/tasks/").json()["count"] == 0
            assert errors == []
        finally:
            browser.close()


def test_a_page_misses_nothing_across_a_server_restart(live_server_asgi, user_id):
    from playwright.sync_api import expect, sync_playwright

    from realtime.tests.conftest import _closing
    from tasks import services

    base = live_server_asgi.url
    token = issue_token(user_id)
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page, errors = _open_board(browser.new_context(), base, token)
            httpx.post(
                f"{base}/api/tasks/",
                json={"title": "Before the restart"},
                headers={"Authorization": f"Bearer {token}"},
            ).raise_for_status()
            expect(page.locator(".task", has_text="Before the restart")).to_be_visible(
                timeout=WAIT_MS
            )

            # The server goes away; a change happens meanwhile (written straight to the store).
            with ThreadPoolExecutor(max_workers=1) as pool:
                pool.submit(live_server_asgi.stop).result(60)
                pool.submit(
                    _closing, services.task_create, user_id=user_id, title="While it was down"
                ).result(60)
                expect(page.locator("#live")).not_to_have_attribute("data-state", "open")
                pool.submit(live_server_asgi.start_again).result(60)

            # The page reconnects by itself, resumes from its last sequence, and shows it.
            expect(page.locator('#live[data-state="open"]')).to_be_visible(timeout=WAIT_MS)
            expect(page.locator(".task", has_text="While it was down")).to_be_visible(
                timeout=WAIT_MS
            )
            assert page.evaluate("window.__sameDocument") is True
            assert errors == []
        finally:
            browser.close()


def test_a_page_whose_token_expires_signs_out_instead_of_retrying(
    live_server_asgi, user_id, settings
):
    import time

    from playwright.sync_api import expect, sync_playwright

    settings.JWT_LEEWAY_SECONDS = 0
    lifetime = 10  # long enough to load the page and connect on a busy machine
    token = issue_token(user_id, extra={"exp": int(time.time()) + lifetime})
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page()
            hellos: list[str] = []
            page.on(
                "websocket",
                lambda ws: ws.on(
                    "framereceived",
                    lambda payload: hellos.append(payload) if '"hello"' in payload else None,
                ),
            )
            page.goto(f"{live_server_asgi.url}/#token={token}")
            # The server closes the socket with 4408 when the token expires; the page has no
            # fresher token, so it asks to sign in again rather than reconnecting forever.
            expect(page.locator("#signin-error")).to_have_text(
                "Your token has expired; sign in again.", timeout=lifetime * 1000 + WAIT_MS
            )
            expect(page.locator("#signin")).to_be_visible()
            assert len(hellos) == 1  # it was live once, and did not reconnect afterwards
            assert page.evaluate("localStorage.getItem('todo.board.token')") is None
        finally:
            browser.close()
