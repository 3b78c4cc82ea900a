"""What the task services announce, inside their transaction, once the task's own event is
recorded: other apps (reminders) react to each change and record theirs after it."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.dispatch import Signal

from tasks.models import Task


@dataclass(frozen=True)
class TaskChange:
    """One change to one task, as the services describe it.

    ``action`` is ``created``, ``updated``, ``completed``, ``reopened``, ``skipped``,
    ``deleted`` (to the trash, or at once), ``restored`` (from the trash) or ``purged`` (from
    the trash, for good). ``snapshot`` is the task's representation after the change (before
    it, for a deletion at once or a purge).
    ``previous`` holds the old values of the changed fields (representation names).
    ``options`` carries service flags other apps care about (``stop_series`` and ``trashed``
    on delete, ``reason`` on purge).
    """

    action: str
    task: Task
    user_id: str
    snapshot: dict
    changed_fields: tuple[str, ...] = ()
    previous: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)


# Sent inside the service's transaction, with ``change=TaskChange``; a receiver that raises
# rolls the change back, its event included.
task_changed = Signal()
