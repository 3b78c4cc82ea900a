"""The Next.js example (``examples/nextjs``) against the real API, in Debian's Chromium.

Better Auth signs people in on the Next app's origin and issues EdDSA tokens whose keys it
publishes at its JWKS endpoint; the API verifies them there (``JWT_JWKS_URL``, no shared
secret). The app is on another origin than the API (``localhost`` vs ``127.0.0.1``, and the API
serves only ``127.0.0.1``), so REST works only through ``CORS_ALLOWED_ORIGINS`` and the socket
only through the same list. Two contexts of one user see each other's changes and the agent's
(MCP) within a second; a second user sees none of it.

Needs npm and /usr/bin/chromium; it fails, never skips, when either is missing. The screenshots
are kept in the test's temporary directory.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from todo_project.testing import LiveServer, McpClient, end_other_database_connections

APP = Path(__file__).resolve().parents[1]
CLIENT = APP.parents[1] / "clients" / "typescript"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
LIVE_MS = 1000  # a change made elsewhere shows within this
WAIT_MS = 20_000  # page loads and sign-in
AUDIENCE = "todo-api"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _run(command: list[str], cwd: Path, timeout: float = 900) -> None:
    assert shutil.which(command[0]), f"{command[0]} is missing: install Node.js 20+ and npm."
    env = {**os.environ, "NEXT_TELEMETRY_DISABLED": "1"}
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, (
        f"{' '.join(command)} failed in {cwd}:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
    )


@pytest.fixture(scope="module")
def built_app():
    """The typed client built, then the app installed from its lock file and built (``next
    build`` must succeed: it type-checks every page)."""
    _run(["npm", "ci", "--no-audit", "--no-fund"], CLIENT)
    _run(["npm", "run", "build"], CLIENT)
    _run(["npm", "ci", "--no-audit", "--no-fund"], APP)
    _run(["npm", "run", "build"], APP, timeout=1200)
    return APP


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(url: str, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, f"next start exited with {process.returncode}"
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {seconds} s")


@pytest.fixture
def stack(built_app, settings, django_db_blocker, tmp_path):
    """The API (uvicorn, whole app with its workers) on 127.0.0.1 and the Next app on
    localhost, each configured for the other only through settings and environment."""
    from core.auth import _jwks_client
    from todo_project.asgi import application

    next_port = _free_port()
    next_origin = f"http://localhost:{next_port}"
    api = LiveServer(application)
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    settings.CORS_ALLOWED_ORIGINS = [next_origin]
    settings.JWT_JWKS_URL = f"http://127.0.0.1:{next_port}/api/auth/jwks"
    settings.JWT_ALGORITHMS = ["RS256", "ES256", "EdDSA"]
    settings.JWT_ISSUER = next_origin
    settings.JWT_AUDIENCE = AUDIENCE
    _jwks_client.cache_clear()
    log = (tmp_path / "next.log").open("w")
    command = [str(APP / "node_modules/.bin/next"), "start", "--hostname", "127.0.0.1"]
    next_app = subprocess.Popen(
        [*command, "--port", str(next_port)],
        cwd=APP,
        env={
            **os.environ,
            "NEXT_TELEMETRY_DISABLED": "1",
            "BETTER_AUTH_URL": next_origin,
            "BETTER_AUTH_SECRET": secrets.token_urlsafe(32),
            "TODO_API_URL": api.url,
            "TODO_JWT_ISSUER": next_origin,
            "TODO_JWT_AUDIENCE": AUDIENCE,
        },
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_for(f"http://127.0.0.1:{next_port}/sign-in", next_app)
        with api:
            yield {"api": api.url, "app": next_origin}
    finally:
        os.killpg(next_app.pid, signal.SIGTERM)
        next_app.wait(timeout=30)
        log.close()
        _jwks_client.cache_clear()
        with django_db_blocker.unblock():
            end_other_database_connections()


def _launch(playwright):
    assert Path(CHROMIUM).exists(), (
        f"{CHROMIUM} is missing: run `make test` (it installs Debian's chromium) or "
        "`apt-get install -y chromium`."
    )
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def _open(browser, app: str, errors: list[str]):
    page = browser.new_context(viewport={"width": 1100, "height": 900}).new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_default_timeout(WAIT_MS)
    return page


def _sign_up(page, app: str, name: str, email: str, password: str) -> None:
    page.goto(f"{app}/sign-up")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign up").click()
    _wait_until_live(page, app)


def _sign_in(page, app: str, email: str, password: str) -> None:
    page.goto(f"{app}/sign-in")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    _wait_until_live(page, app)


def _wait_until_live(page, app: str) -> None:
    page.wait_for_url(f"{app}/")
    page.wait_for_selector('[data-testid="live"][data-state="open"]')
    page.evaluate("window.__sameDocument = true")  # a reload would wipe it out


def _task(page, title: str):
    return page.locator('[data-testid="task"]', has_text=title)


def _shows_within(pages, title: str, visible: bool = True) -> float:
    """Seconds until every page shows (or no longer shows) ``title``; fails past LIVE_MS."""
    from playwright.sync_api import expect

    started = time.monotonic()
    for page in pages:
        item = _task(page, title)
        if visible:
            expect(item).to_be_visible(timeout=LIVE_MS)
        else:
            expect(item).to_have_count(0, timeout=LIVE_MS)
    return time.monotonic() - started


def _claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_two_tabs_and_the_agent_stay_in_step_and_another_user_sees_nothing(stack, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    app, api = stack["app"], stack["api"]
    password = secrets.token_urlsafe(12)
    errors: list[str] = []
    timings: dict[str, float] = {}
    with sync_playwright() as playwright:
        browser = _launch(playwright)
        try:
            first = _open(browser, app, errors)
            _sign_up(first, app, "Ada", "ada@example.com", password)
            second = _open(browser, app, errors)
            _sign_in(second, app, "ada@example.com", password)
            stranger = _open(browser, app, errors)
            _sign_up(stranger, app, "Grace", "grace@example.com", password)

            # The token is Better Auth's, signed with a key from its JWKS; the API accepts it.
            token = first.evaluate(
                "fetch('/api/auth/token').then((r) => r.json()).then((b) => b.token)"
            )
            header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
            claims = _claims(token)
            assert header["alg"] == "EdDSA"
            assert claims["iss"] == app and claims["aud"] == AUDIENCE
            user_id = claims["sub"]

            # A change in one tab shows in the other.
            form = first.get_by_role("form", name="New task")
            form.get_by_label("Title").fill("Written in the first tab")
            form.get_by_label("Priority").select_option("high")
            form.get_by_label("Tags").fill("live, web")
            form.get_by_role("button", name="Add").click()
            timings["tab to tab"] = _shows_within([second, first], "Written in the first tab")
            expect(_task(second, "Written in the first tab").locator(".badge")).to_have_text("high")

            # A change by the agent over MCP, with the same user's token, shows in both.
            with McpClient(f"{api}/mcp", token) as mcp:
                result = mcp.call(
                    "add_task",
                    {"user_id": user_id, "title": "Added by the agent", "priority": "urgent"},
                )
                assert not result.is_error, result.content[0].text
                timings["agent to tabs"] = _shows_within([first, second], "Added by the agent")

            # Complete in the second tab: it leaves the first tab's pending list.
            _task(second, "Written in the first tab").locator(".done").click()
            timings["complete"] = _shows_within(
                [first, second], "Written in the first tab", visible=False
            )

            # Edit in the first tab, seen in the second.
            _task(first, "Added by the agent").get_by_role("button", name="Edit").click()
            editor = first.get_by_role("form", name="Edit Added by the agent")
            editor.get_by_label("Title").fill("Agent task, edited")
            editor.get_by_label("Description").fill("checked by hand")
            editor.get_by_role("button", name="Save").click()
            timings["edit"] = _shows_within([first, second], "Agent task, edited")

            # Delete with undo: gone from both, back in both.
            _task(first, "Agent task, edited").get_by_role("button", name="Delete").click()
            timings["delete"] = _shows_within([first, second], "Agent task, edited", False)
            first.get_by_role("button", name="Undo").click()
            timings["undo"] = _shows_within([first, second], "Agent task, edited")

            # Search, filters and sort are the API's.
            filters = first.get_by_role("region", name="Filters")
            filters.get_by_label("Status").select_option("all")
            expect(first.locator('[data-testid="task"]')).to_have_count(2)
            filters.get_by_label("Search").fill("edited")
            expect(first.locator('[data-testid="task"]')).to_have_count(1)
            expect(_task(first, "Agent task, edited")).to_be_visible()
            filters.get_by_label("Search").fill("")
            filters.get_by_label("Priority").select_option("high")
            expect(first.locator('[data-testid="task"]')).to_have_count(1)
            expect(_task(first, "Written in the first tab")).to_have_attribute(
                "data-completed", "true"
            )
            filters.get_by_label("Priority").select_option("")
            filters.get_by_label("Sort").select_option("title")
            expect(first.locator('[data-testid="task"] .title')).to_have_text(
                ["Agent task, edited", "Written in the first tab"]
            )
            first.screenshot(path=str(tmp_path / "nextjs-first-tab.png"), full_page=True)
            second.screenshot(path=str(tmp_path / "nextjs-second-tab.png"), full_page=True)

            # The other user saw none of it, and no page reloaded.
            stranger.get_by_role("region", name="Filters").get_by_label("Status").select_option(
                "all"
            )
            expect(stranger.get_by_test_id("count")).to_have_text("0 tasks")
            expect(stranger.locator('[data-testid="task"]')).to_have_count(0)
            stranger.screenshot(path=str(tmp_path / "nextjs-other-user.png"), full_page=True)
            for page in (first, second, stranger):
                assert page.evaluate("window.__sameDocument") is True

            # Signing out ends the session: the list is behind sign-in again.
            second.get_by_role("button", name="Sign out").click()
            second.wait_for_url(f"{app}/sign-in")
            second.goto(f"{app}/")
            second.wait_for_url(f"{app}/sign-in")
        finally:
            browser.close()
    print("live update latencies (s):", {name: round(value, 3) for name, value in timings.items()})
    assert errors == []
