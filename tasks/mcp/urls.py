"""``/mcp`` for WSGI servers (``manage.py runserver``); under ASGI the router answers first."""

from django.urls import path

from tasks.mcp import views

urlpatterns = [
    path("mcp", views.mcp_endpoint, name="mcp"),
    path("mcp/", views.mcp_endpoint),
    path(".well-known/oauth-protected-resource", views.protected_resource_metadata),
    path(".well-known/oauth-protected-resource/mcp", views.protected_resource_metadata),
]
