"""Tools that apps built on the task domain add to the MCP server.

``tasks`` may not import the apps above it (reminders, ...), yet the agent should reach every
REST capability. Such an app names, in its ``ready()``, a module whose ``TOOLS`` list holds its
tools; the server imports it when it is built (the ASGI lifespan), so Django's start does not
load the MCP SDK. The apps' own layer contracts still hold: they import ``tasks.mcp``, never
the reverse.
"""

from __future__ import annotations

from importlib import import_module

_modules: list[str] = []


def contribute_tools(module: str) -> None:
    """Offer the tools in ``module.TOOLS`` (``mcp.server.mcpserver.tools.Tool`` objects)."""
    if module not in _modules:
        _modules.append(module)


def contributed_tools() -> list:
    return [tool for module in _modules for tool in import_module(module).TOOLS]
