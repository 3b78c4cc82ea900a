"""Rate limits for every surface, counted in the cache (shared by all processes with Redis).

Budgets (``settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]``), per user unless said otherwise:

- ``task_write``: every request that changes something (REST writes, MCP write tools; a bulk
  request counts each of its operations);
- ``task_list``: lists and searches (REST list views, MCP ``list_tasks``);
- ``task_read``: every other read (one task, MCP methods other than tool calls);
- ``anonymous``: per client address, for whatever arrives without a usable token (refused REST
  requests, the schema, the MCP 401 challenge and its metadata, refused WebSocket handshakes).

REST applies them through ``BudgetThrottle`` (the default throttle class) and
``tasks.api.base.ThrottledView`` (the base of every API view). A spent budget answers 429 with
``Retry-After``.
"""

from __future__ import annotations

import hashlib
import math
import re
import time

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from rest_framework.throttling import BaseThrottle

WRITE = "task_write"
LIST = "task_list"
READ = "task_read"
ANONYMOUS = "anonymous"
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_PERIOD_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PLAIN_IDENT = re.compile(r"[A-Za-z0-9._:@-]{1,100}", re.ASCII)


def _now() -> float:
    """The budgets' clock (tests hold it inside one window)."""
    return time.time()


class Budget(BaseThrottle):
    """One budget of one caller, counted in fixed windows by one atomic counter per window.

    DRF's ``SimpleRateThrottle`` keeps every request time of the window in one cached list
    (1,200 entries for ``task_read``), read and written whole on each request and lost to a
    concurrent writer; a counter is a few bytes and ``incr`` is atomic in Redis."""

    def __init__(self, scope: str, ident: str):
        self.scope = scope
        self.ident = ident
        self._wait: float | None = None

    def _rate(self) -> tuple[int, int]:
        # Read at request time, so a changed setting applies without a restart.
        rate = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][self.scope]
        count, period = rate.split("/")  # DRF's rate format: "120/min"
        return int(count), _PERIOD_SECONDS[period[0]]

    def _key(self, window: int) -> str:
        ident = self.ident
        if not _PLAIN_IDENT.fullmatch(ident):
            # User ids are any printable text; cache keys must be short and plain.
            ident = "h" + hashlib.blake2b(ident.encode(), digest_size=16).hexdigest()
        return f"throttle_{self.scope}_{ident}_{window}"

    def allow_request(self, request, view, cost: int = 1) -> bool:
        """Count ``cost`` calls (a bulk request counts each of its operations)."""
        allowed, duration = self._rate()
        now = _now()
        window = int(now // duration)
        key = self._key(window)
        cache = caches["default"]
        cache.add(key, 0, timeout=duration + 1)
        try:
            count = cache.incr(key, cost)
        except ValueError:  # expired between add and incr
            cache.set(key, cost, timeout=duration + 1)
            count = cost
        if count <= allowed:
            self._wait = None
            return True
        self._wait = (window + 1) * duration - now
        return False

    def wait(self) -> float | None:
        return self._wait

    def spend(self, cost: int = 1) -> int | None:
        """Count ``cost`` calls; ``None`` when allowed, else the seconds to wait (at least 1)."""
        if self.allow_request(None, None, cost):
            return None
        return max(1, math.ceil(self._wait or 1))


def spend(scope: str, ident: str) -> int | None:
    """Count one call of ``ident`` against ``scope``: ``None``, or the seconds to wait."""
    return Budget(scope, ident).spend()


async def spend_async(scope: str, ident: str) -> int | None:
    """``spend`` for the event loop: a shared cache (Redis) is asked from a thread."""
    if isinstance(caches["default"], LocMemCache):
        return spend(scope, ident)
    return await sync_to_async(spend, thread_sensitive=False)(scope, ident)


def client_address(scope_or_meta: dict) -> str:
    """The peer's address as the server saw it (uvicorn puts a trusted proxy's
    ``X-Forwarded-For`` there, see ``FORWARDED_ALLOW_IPS``); never a header a client sets."""
    if "REMOTE_ADDR" in scope_or_meta:
        return scope_or_meta["REMOTE_ADDR"] or "unknown"
    client = scope_or_meta.get("client")
    return client[0] if client else "unknown"


def budget_for(request, view) -> tuple[str, str]:
    """Which budget a REST request draws on, and whose."""
    user = getattr(request, "user", None)
    if not user or not getattr(user, "is_authenticated", False):
        return ANONYMOUS, client_address(request.META)
    if request.method not in _READ_METHODS:
        return WRITE, str(user.pk)
    return getattr(view, "read_budget", READ), str(user.pk)


class BudgetThrottle(BaseThrottle):
    """The one throttle of the REST API (``DEFAULT_THROTTLE_CLASSES``)."""

    def __init__(self):
        self._budget: Budget | None = None

    def allow_request(self, request, view) -> bool:
        self._budget = Budget(*budget_for(request, view))
        return self._budget.allow_request(request, view)

    def wait(self):
        return self._budget.wait() if self._budget is not None else None
