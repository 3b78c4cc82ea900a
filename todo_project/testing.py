"""Helpers for the project's tests (importable from any test package)."""

from __future__ import annotations

from rest_framework.test import APIClient

from todo_project.auth import issue_token


def client_for(user: str) -> APIClient:
    """A DRF test client that sends a valid bearer token for ``user``."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(user)}")
    return client


def asgi_app_with_mcp_lifespan_only():
    """The project's ASGI app for a live test server: its lifespan starts only the MCP session
    manager (the in-process workers of the other apps stay out of the test)."""
    from tasks.mcp.asgi import lifespan as mcp_lifespan
    from todo_project.asgi import application

    async def app(scope, receive, send):
        if scope["type"] != "lifespan":
            await application(scope, receive, send)
            return
        context = mcp_lifespan()
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await context.__aenter__()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await context.__aexit__(None, None, None)
                await send({"type": "lifespan.shutdown.complete"})
                return

    return app
