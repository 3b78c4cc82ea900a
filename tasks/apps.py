from django.apps import AppConfig


class TasksConfig(AppConfig):
    name = "tasks"
    verbose_name = "Tasks"

    def ready(self):
        from tasks import metrics  # noqa: F401  (every process exports every metric)

        # The MCP endpoint: /mcp and its OAuth protected-resource metadata on the project's
        # ASGI app, and the SDK's session manager in the ASGI lifespan.
        from tasks.mcp import asgi as mcp_asgi
        from todo_project import lifespan, routing

        routing.mount_http(mcp_asgi.RESOURCE_PATH, mcp_asgi.mcp_app)
        routing.mount_http(mcp_asgi.METADATA_PATH, mcp_asgi.protected_resource_metadata)
        lifespan.register("mcp", mcp_asgi.lifespan)
