"""Per-user rate limits: one budget for writes, one for lists. 429 carries ``Retry-After``."""

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle


class _PerUserThrottle(SimpleRateThrottle):
    def get_rate(self):
        # Read at request time, so a changed setting applies without a restart of the class.
        return settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][self.scope]

    def get_cache_key(self, request, view):
        user = getattr(request, "user", None)
        if not user or not getattr(user, "is_authenticated", False):
            return None
        return self.cache_format % {"scope": self.scope, "ident": user.pk}


class TaskWriteThrottle(_PerUserThrottle):
    scope = "task_write"

    def allow_request(self, request, view):
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return True
        return super().allow_request(request, view)


class TaskListThrottle(_PerUserThrottle):
    scope = "task_list"

    def allow_request(self, request, view):
        if request.method != "GET":
            return True
        return super().allow_request(request, view)
