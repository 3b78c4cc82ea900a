"""JSON shapes of the events app's records."""

from __future__ import annotations

from events.models import TaskHistory
from tasks.representation import iso


def history_entry_to_dict(entry: TaskHistory) -> dict:
    return {
        "event_id": str(entry.event_id),
        "event_type": entry.event_type,
        "sequence": entry.sequence,
        "timestamp": iso(entry.occurred_at),
        "changed_fields": list(entry.changed_fields),
        "previous": entry.previous,
        "task": entry.task_data,
    }
