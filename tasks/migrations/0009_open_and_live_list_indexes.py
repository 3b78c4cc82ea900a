"""List indexes whose conditions are the lists' own filters: ``status=pending`` (not done, not
skipped, not in the trash) and every list's "not in the trash". A page then reads no row it
does not show, and its total is counted from the index alone (an index-only scan) instead of
from every one of the user's rows.

Built concurrently, the new ones before the old ones go, so that lists keep an index all
along and the table stays writable while a large one is built."""

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations, models
from django.db.models import Q

OPEN = Q(completed=False, deleted_at__isnull=True, skipped_at__isnull=True)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("tasks", "0008_search_lexeme_trigram"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="task",
            index=models.Index(
                condition=Q(deleted_at__isnull=True),
                fields=["user_id", "created_at", "id"],
                name="task_user_live_created_idx",
            ),
        ),
        AddIndexConcurrently(
            model_name="task",
            index=models.Index(
                condition=OPEN, fields=["user_id", "due_at", "id"], name="task_user_open_due_idx"
            ),
        ),
        AddIndexConcurrently(
            model_name="task",
            index=models.Index(
                condition=OPEN,
                fields=["user_id", "priority", "id"],
                name="task_user_open_prio_idx",
            ),
        ),
        AddIndexConcurrently(
            model_name="task",
            index=models.Index(
                condition=OPEN,
                fields=["user_id", "created_at", "id"],
                name="task_user_open_created_idx",
            ),
        ),
        RemoveIndexConcurrently(model_name="task", name="task_user_created_idx"),
        RemoveIndexConcurrently(model_name="task", name="task_user_pending_due_idx"),
        RemoveIndexConcurrently(model_name="task", name="task_user_pending_prio_idx"),
        RemoveIndexConcurrently(model_name="task", name="task_user_pending_created_idx"),
    ]
