"""Series that were ended on purpose (a task deleted with ``stop_series``).

The series itself lives on its tasks (``series_id``, ``series_anchor``, ``series_index``); this
table only remembers that no further instance may be generated, so that completing an older
instance of a stopped series later creates nothing.
"""

from __future__ import annotations

from django.db import models

from tasks.models import USER_ID_MAX_LENGTH


class StoppedSeries(models.Model):
    series_id = models.UUIDField(primary_key=True)
    user_id = models.CharField(max_length=USER_ID_MAX_LENGTH)
    task_id = models.BigIntegerField(help_text="The deleted task that stopped the series.")
    stopped_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "stopped series"

    def __str__(self) -> str:
        return f"series {self.series_id} stopped at {self.stopped_at:%Y-%m-%d %H:%M}"
