"""Repair stored recurrence rules whose ``UNTIL`` cannot be read back or ends before it starts.

Before the fix, the canonical text wrote ``UNTIL`` with ``strftime("%Y")``, which does not pad
years before 1000: ``FREQ=DAILY;UNTIL=00010101`` was stored as ``FREQ=DAILY;UNTIL=10101``. That
text no longer parses, so the next write that sends it back is refused and completing the task
made the recurrence consumer fail until the event was dead-lettered.

1. A short year is padded to four digits (``UNTIL=10101`` -> ``UNTIL=00010101``): the rule the
   user wrote, now readable.
2. A rule whose ``UNTIL`` falls before the series' first due date (its anchor, as a date in the
   task's time zone) is rewritten with ``COUNT=1`` in place of ``UNTIL``. The anchor is always the
   series' first instance and nothing after ``UNTIL`` is ever created, so such a rule already meant
   "this instance only"; ``COUNT=1`` says the same in a form the API accepts, and keeps the task,
   its series and its frequency. Dropping the bound instead would have made a series that never
   ends out of one that had ended: instances the user never asked for.

Only the rule text changes: its meaning is the same, so no event is recorded and the version is
kept. Rows are written with SQL, as every migration must (the model's write guard is for code).
"""

import re
from datetime import date
from zoneinfo import ZoneInfo

from django.db import migrations

_UNTIL = re.compile(r"UNTIL=([0-9]+)")


def _padded(rule: str) -> str:
    def pad(match: re.Match) -> str:
        digits = match.group(1)
        if 5 <= len(digits) <= 7:
            digits = f"{int(digits[:-4]):04d}{digits[-4:]}"
        return f"UNTIL={digits}"

    return _UNTIL.sub(pad, rule)


def _until(rule: str) -> date | None:
    match = _UNTIL.search(rule)
    if match is None or len(match.group(1)) != 8:
        return None
    digits = match.group(1)
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return None


def repair(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, recurrence_rule, COALESCE(series_anchor, due_at), timezone "
            "FROM tasks_task WHERE recurrence_rule LIKE %s",
            ["%UNTIL=%"],
        )
        rows = cursor.fetchall()
        for task_id, rule, anchor, tz_name in rows:
            repaired = _padded(rule)
            until = _until(repaired)
            if until is not None and anchor is not None:
                try:
                    first = anchor.astimezone(ZoneInfo(tz_name)).date()
                except (ValueError, KeyError):
                    first = anchor.date()
                if until < first:
                    repaired = _UNTIL.sub("COUNT=1", repaired)
            if repaired != rule:
                cursor.execute(
                    "UPDATE tasks_task SET recurrence_rule = %s WHERE id = %s",
                    [repaired, task_id],
                )


class Migration(migrations.Migration):
    dependencies = [
        ("tasks", "0002_search_lexicon"),
    ]

    operations = [
        migrations.RunPython(repair, migrations.RunPython.noop, elidable=True),
    ]
