"""``make run``: check the port, migrate, print how to get in, and serve the whole ASGI app with
uvicorn."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import uvicorn
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from core import embedded_postgres, http_limits
from core.auth import issue_token

DEMO_USER = "demo"


def port_in_use(host: str, port: int) -> OSError | None:
    """Why ``host:port`` cannot be listened on, or None. Checked by binding it the way uvicorn
    will (``SO_REUSEADDR``), so a port only in TIME_WAIT counts as free."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        return exc
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            return exc
    return None


def manage_command() -> str:
    """How to run ``manage.py`` from a fresh shell in this directory: with this interpreter, so
    that it works without activating the virtual environment."""
    python, here = Path(sys.executable), Path.cwd()
    shown = python.relative_to(here) if python.is_relative_to(here) else python
    return f"{shown} manage.py"


class Command(BaseCommand):
    help = "Serve the application (REST, MCP, WebSocket, admin) with uvicorn."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--no-migrate", action="store_true")

    def handle(self, *args, host: str, port: int, no_migrate: bool, **options):
        # Before anything starts (database, banner, token, workers): a second `make run` on the
        # same port stops here with one line.
        problem = port_in_use(host, port)
        if problem is not None:
            raise CommandError(
                f"cannot listen on {host}:{port} ({problem.strerror or problem}): "
                f"stop what runs there or pick another port, e.g. PORT={port + 1} make run"
            )
        embedded_postgres.ensure_running()
        if not no_migrate:
            call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write(self.banner(host, port))
        uvicorn.run(
            "todo_project.asgi:application",
            host=host,
            port=port,
            lifespan="on",
            log_config=None,  # the project's LOGGING: each record once, in its format
            log_level="info",
            access_log=False,
            ws_ping_interval=20,
            ws_max_size=64 * 1024,  # clients send small control frames; refuse big ones early
            ws_ping_timeout=20,
            proxy_headers=True,
            http=http_limits.PROTOCOL,  # httptools with a bound on request headers
        )

    def banner(self, host: str, port: int) -> str:
        base = f"http://{host}:{port}"
        manage = manage_command()
        database = (
            "embedded PostgreSQL in .data/postgres"
            if settings.EMBEDDED_DATABASE
            else "DATABASE_URL"
        )
        lines = [
            "",
            f"  Live board      {base}/",
            f"  REST API        {base}/api/tasks/   (docs: {base}/api/docs/)",
            f"  MCP endpoint    {base}/mcp",
            f"  WebSocket       ws://{host}:{port}/ws/tasks/",
            f"  Admin           {base}/admin/   (a login: {manage} createsuperuser)",
            f"  Operators       {base}/admin/overview/   {manage} doctor",
            f"  Health          {base}/healthz  {base}/readyz  {base}/metrics",
            f"  Database        {database}",
            f"  Events          {settings.EVENTS_BROKER} broker; workers in this process: "
            f"{'yes' if settings.RUN_WORKERS_IN_PROCESS else 'no'}",
        ]
        if settings.LOCAL_SECRETS_FILE and settings.LOCAL_SECRETS_FILE.exists():
            lines.append(f"  Secrets         generated once, kept in {settings.LOCAL_SECRETS_FILE}")
        if settings.JWT_SECRET:
            token = issue_token(DEMO_USER, ttl_seconds=7 * 86400)
            lines += [
                "",
                f"  Demo user '{DEMO_USER}', a token for 7 days (another: "
                f"{manage} issue_token {DEMO_USER}):",
                "",
                f"  export TOKEN={token}",
                f'  curl -H "Authorization: Bearer $TOKEN" {base}/api/tasks/',
                "",
                f"  Sign the board in as the demo user: {base}/#token={token}",
            ]
        lines.append("")
        return "\n".join(lines)
