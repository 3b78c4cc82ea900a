"""``make run``: migrate, print how to get in, and serve the whole ASGI app with uvicorn."""

from __future__ import annotations

import os

import uvicorn
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from core import http_limits
from core.auth import issue_token

DEMO_USER = "demo"


class Command(BaseCommand):
    help = "Serve the application (REST, MCP, WebSocket, admin) with uvicorn."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--no-migrate", action="store_true")

    def handle(self, *args, host: str, port: int, no_migrate: bool, **options):
        if not no_migrate:
            call_command("migrate", interactive=False, verbosity=0)
        base = f"http://{host}:{port}"
        lines = [
            "",
            f"  Live board      {base}/",
            f"  REST API        {base}/api/tasks/   (docs: {base}/api/docs/)",
            f"  MCP endpoint    {base}/mcp",
            f"  WebSocket       ws://{host}:{port}/ws/tasks/",
            f"  Admin           {base}/admin/   (python manage.py createsuperuser)",
            f"  Health          {base}/healthz  {base}/readyz  {base}/metrics",
            f"  Database        {'embedded PostgreSQL in .data/postgres' if settings.EMBEDDED_DATABASE else 'DATABASE_URL'}",
            f"  Events          {settings.EVENTS_BROKER} broker; workers in this process: "
            f"{'yes' if settings.RUN_WORKERS_IN_PROCESS else 'no'}",
        ]
        if settings.LOCAL_SECRETS_FILE and settings.LOCAL_SECRETS_FILE.exists():
            lines.append(f"  Secrets         generated once, kept in {settings.LOCAL_SECRETS_FILE}")
        if settings.JWT_SECRET:
            token = issue_token(DEMO_USER, ttl_seconds=7 * 86400)
            lines += [
                "",
                f"  Demo user '{DEMO_USER}' token (7 days):",
                f"  {token}",
                "",
                f"  Sign the board in as the demo user: {base}/#token={token}",
                f'  Try it: curl -H "Authorization: Bearer $TOKEN" {base}/api/tasks/',
            ]
        lines.append("")
        self.stdout.write("\n".join(lines))
        uvicorn.run(
            "todo_project.asgi:application",
            host=host,
            port=port,
            lifespan="on",
            log_level="info",
            access_log=False,
            ws_ping_interval=20,
            ws_max_size=64 * 1024,  # clients send small control frames; refuse big ones early
            ws_ping_timeout=20,
            proxy_headers=True,
            http=http_limits.PROTOCOL,  # httptools with a bound on request headers
        )
