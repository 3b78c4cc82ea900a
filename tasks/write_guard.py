"""Tasks are written only by ``tasks.services``.

Every other path (a view, the admin, a consumer, a shell) that calls ``save()``, ``delete()``,
``QuerySet.update()`` or a bulk method on tasks gets ``TaskWriteOutsideServices`` instead of a
silent change with no event. The services open ``allow_task_writes()`` around their own writes.
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager

from django.db import models

_writes_allowed: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "task_writes_allowed", default=False
)


class TaskWriteOutsideServices(RuntimeError):
    pass


@contextmanager
def allow_task_writes():
    token = _writes_allowed.set(True)
    try:
        yield
    finally:
        _writes_allowed.reset(token)


def assert_writes_allowed() -> None:
    if not _writes_allowed.get():
        raise TaskWriteOutsideServices(
            "Tasks change only through tasks.services (task_create, task_update, ...), "
            "which record the change's event in the same transaction."
        )


class GuardedTaskQuerySet(models.QuerySet):
    def update(self, **kwargs):
        assert_writes_allowed()
        return super().update(**kwargs)

    def delete(self):
        assert_writes_allowed()
        return super().delete()

    def bulk_create(self, *args, **kwargs):
        assert_writes_allowed()
        return super().bulk_create(*args, **kwargs)

    def bulk_update(self, *args, **kwargs):
        assert_writes_allowed()
        return super().bulk_update(*args, **kwargs)

    def update_or_create(self, *args, **kwargs):
        assert_writes_allowed()
        return super().update_or_create(*args, **kwargs)


GuardedTaskManager = models.Manager.from_queryset(GuardedTaskQuerySet)
