"""The MCP server: the task tools (``tools``), the tools other apps contribute (``registry``),
the resources and prompts, and the ``subscriptions/listen`` fan-out (``live``).

Before any tool runs, ``TaskToolServer.call_tool`` refuses what REST would refuse the same
token: an unknown argument, a ``user_id`` that is not the token's subject, a write with a
read-only token; malformed arguments become a tool error naming each field. Every refusal is a
tool error without structured content (``tasks.mcp.results``); anything unexpected is logged by
the SDK and answered as a generic tool error, never a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import metadata
from typing import Any

from django.conf import settings
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import CLIENT_INFO_META_KEY
from pydantic import ValidationError

from core.auth import INSUFFICIENT_SCOPE, READ_SCOPE, WRITE_SCOPE, TokenUser
from events.actors import acting_as, actor_for, client_from
from events.schemas import Actor
from tasks.mcp import bulk, changes, prompts, request_keys, resources, series, undo
from tasks.mcp.auth import RESOURCE_PATH, current_token_and_agent, current_user
from tasks.mcp.calls import database_threads
from tasks.mcp.listen import bus
from tasks.mcp.registry import contributed_tools
from tasks.mcp.results import tool_error, validation_error
from tasks.mcp.tools import TASK_TOOLS

__all__ = ["TOOLS", "build_session_manager", "bus", "database_threads", "server", "tool_error"]

INSTRUCTIONS = (
    "Manage the signed-in user's tasks. add_task creates one; list_tasks finds them (search, "
    "filters, sort, paging) and gives each task's task_id; get_task, update_task, "
    "complete_task, reopen_task, delete_task and task_history take that task_id. "
    "skip_occurrence, reschedule_occurrence and preview_occurrences work on recurring series; "
    "restore_task brings back what list_trash shows; add_tasks, update_tasks and "
    "complete_tasks take up to 50 items (dry_run checks without writing); changes_since "
    "follows what changed; undo_last_change takes back your own latest change to a task. "
    "list_notifications shows fired reminders. The bearer token decides "
    "whose tasks these "
    "are: user_id may be left out. Times are ISO 8601. Resources tasks://today, "
    "tasks://overdue, tasks://upcoming and task://{id} hold the same data as JSON."
)

TOOLS = {
    tool.name: tool
    for tool in [
        *TASK_TOOLS,
        *series.TOOLS,
        *bulk.TOOLS,
        *changes.TOOLS,
        *undo.TOOLS,
        *contributed_tools(),
    ]
}


def _refusal(tool, arguments: dict[str, Any], user: TokenUser):
    """What makes the call one this token may not make, before its arguments are checked."""
    properties = tool.parameters["properties"]
    unknown = sorted(set(arguments) - set(properties))
    if unknown:
        return tool_error(
            f"Unknown argument {unknown[0]}; {tool.name} takes " + ", ".join(properties) + ".",
            code="unknown_argument",
            field=unknown[0],
        )
    if arguments.get("user_id") not in (None, "", user.id):
        return tool_error(
            "user_id does not match the signed-in user; leave it out or send your own.",
            code="forbidden",
            field="user_id",
        )
    writes = not tool.annotations.read_only_hint
    if (writes and not user.can_write) or not user.can_read:
        needed = WRITE_SCOPE if writes else READ_SCOPE
        return tool_error(
            f"This token's scope does not allow {tool.name}; it needs {needed}.",
            code=INSUFFICIENT_SCOPE,
        )
    return None


def _client_info(context) -> object:
    """The client's ``clientInfo``: from its handshake (a stateful session) or, on 2026-07-28,
    from the request's metadata. A stateless server does not keep a 2025 handshake."""
    if context is None:
        return None
    try:
        request = context.request_context
    except ValueError:
        return None
    params = getattr(request.session, "client_params", None)
    if params is not None and params.client_info is not None:
        return params.client_info
    meta = request.meta if isinstance(request.meta, Mapping) else {}
    return meta.get(CLIENT_INFO_META_KEY)


def _actor(user: TokenUser, context) -> Actor:
    token, agent = current_token_and_agent()
    return actor_for(
        "mcp",
        token=token or None,
        claims=user.claims,
        client=client_from(_client_info(context)),
        user_agent=agent,
    )


class TaskToolServer(MCPServer):
    """``MCPServer`` whose refusals read like the services' errors."""

    async def call_tool(self, name: str, arguments: dict[str, Any], context=None):
        tool = TOOLS.get(name)
        if tool is None:
            return tool_error(
                f"Unknown tool {name}; this server has " + ", ".join(TOOLS) + ".",
                code="unknown_tool",
                field="name",
            )
        user = current_user()
        refusal = _refusal(tool, arguments, user)
        if refusal is not None:
            return refusal
        arguments = dict(arguments)
        key = arguments.pop(request_keys.ARGUMENT, None)
        if key is not None:
            try:
                key = request_keys.CLIENT_REQUEST_ID.validate_python(key)
            except ValidationError as exc:
                return validation_error(exc, field=request_keys.ARGUMENT)
        try:
            with acting_as(_actor(user, context)), request_keys.keyed(name, key, arguments):
                return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError) and not isinstance(
                exc, UnexpectedToolError
            ):
                return validation_error(exc.__cause__)
            raise


def _version() -> str:
    try:
        return metadata.version("todo-backend")
    except metadata.PackageNotFoundError:
        return "0"


server = TaskToolServer(
    name="tasks",
    title="Tasks",
    instructions=INSTRUCTIONS,
    version=_version(),
    tools=list(TOOLS.values()),
    subscriptions=bus,
)
resources.register(server)
prompts.register(server)


def transport_security() -> TransportSecuritySettings:
    """DNS-rebinding protection with the hosts and origins from settings; ``*`` turns it off
    (for a deployment whose proxy already pins the host)."""
    hosts = list(settings.MCP_ALLOWED_HOSTS)
    origins = list(settings.MCP_ALLOWED_ORIGINS)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection="*" not in hosts,
        allowed_hosts=hosts,
        allowed_origins=origins,
    )


def build_session_manager() -> StreamableHTTPSessionManager:
    """A fresh session manager (one per ASGI lifespan): stateless, JSON responses, so any
    server process can answer any request (a ``subscriptions/listen`` stream is the one answer
    sent as a stream)."""
    server.streamable_http_app(
        streamable_http_path=RESOURCE_PATH,
        stateless_http=True,
        json_response=True,
        transport_security=transport_security(),
        max_request_body_size=settings.DATA_UPLOAD_MAX_MEMORY_SIZE,
    )
    return server.session_manager
