"""The base of every REST API view (DRF's ``DEFAULT_THROTTLE_CLASSES`` imports the throttles
module, so this view cannot live there)."""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from core.auth import TokenScopePermission, TokenUser, bearer_from_header
from events.actors import acting_as, actor_for, replace_actor
from tasks.api.throttles import READ


class ThrottledView(APIView):
    """DRF refuses a request without a usable token (401) or permission (403) before it runs the
    throttles, so such refusals are counted here: against the client's address, or the user."""

    # Lists set ``read_budget = LIST``; every other read draws on ``READ``.
    read_budget = READ
    # A token's scope (tasks:read / tasks:write) limits what it may do on every view.
    permission_classes = [*api_settings.DEFAULT_PERMISSION_CLASSES, TokenScopePermission]

    def dispatch(self, request, *args, **kwargs):
        # Changes made by this request are recorded as the REST surface's (``initial`` adds
        # the token once it is verified); the actor ends with the request.
        with acting_as(actor_for("rest")):
            return super().dispatch(request, *args, **kwargs)

    def initial(self, request, *args, **kwargs):
        try:
            super().initial(request, *args, **kwargs)
        except (
            exceptions.NotAuthenticated,
            exceptions.AuthenticationFailed,
            exceptions.PermissionDenied,
        ):
            self.check_throttles(request)
            raise
        if isinstance(request.user, TokenUser):
            # Inside dispatch's ``acting_as``, which puts the previous actor back at the end.
            replace_actor(
                actor_for(
                    "rest",
                    token=bearer_from_header(request.META.get("HTTP_AUTHORIZATION")),
                    claims=request.user.claims,
                    user_agent=request.META.get("HTTP_USER_AGENT"),
                )
            )
