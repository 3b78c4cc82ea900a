"""The MCP endpoint at ``/mcp``: the AI agent's tools over the task services and selectors.

``asgi`` is what the project mounts (bearer auth, the session manager's lifespan) and imports
nothing heavy; ``server`` defines the tools and is loaded when the ASGI lifespan starts.
"""
