"""The base of every REST API view (DRF's ``DEFAULT_THROTTLE_CLASSES`` imports the throttles
module, so this view cannot live there)."""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.views import APIView

from tasks.api.throttles import READ


class ThrottledView(APIView):
    """DRF refuses a request without a usable token (401) or permission (403) before it runs the
    throttles, so such refusals are counted here: against the client's address, or the user."""

    # Lists set ``read_budget = LIST``; every other read draws on ``READ``.
    read_budget = READ

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
