"""The embedded log is read by transaction snapshot instead of by positions the relay gave.

Existing rows every cursor has read get the smallest key (every snapshot sees them); the others
get this migration's transaction id, and every cursor gets a snapshot that has not seen it, so
nothing unread is skipped (a cursor that was further on sees some events again, which its
idempotency keys drop).
"""

from django.db import migrations, models

_MARK_ROWS = """
UPDATE events_outboxevent SET transaction_id = CASE
    WHEN position <= (SELECT coalesce(min(position), 0) FROM events_consumercursor) THEN 1
    ELSE pg_current_xact_id()::text::bigint END;
UPDATE events_outboxevent SET log_key = transaction_id;
"""

_MOVE_CURSORS = """
UPDATE events_consumercursor SET snapshot = (
    SELECT least(pg_snapshot_xmin(s)::text::bigint, own.x)::text || ':' || own.x::text || ':'
        || coalesce((SELECT string_agg(i::text, ',' ORDER BY i) FROM pg_snapshot_xip(s) AS i
                     WHERE i::text::bigint < own.x), '')
    FROM pg_current_snapshot() AS s, (SELECT pg_current_xact_id()::text::bigint) AS own(x)
);
"""


class Migration(migrations.Migration):

    dependencies = [
        ('events', '0002_outbox_pending_queue'),
    ]

    operations = [
        migrations.AddField(
            model_name='usereventsequence',
            name='last_log_key',
            field=models.BigIntegerField(db_default=0, help_text="The log key of the user's last event (see OutboxEvent)."),
        ),
        migrations.AddField(
            model_name='outboxevent',
            name='transaction_id',
            field=models.BigIntegerField(null=True),
        ),
        migrations.AddField(
            model_name='outboxevent',
            name='log_key',
            field=models.BigIntegerField(null=True),
        ),
        migrations.AddField(
            model_name='consumercursor',
            name='snapshot',
            field=models.TextField(default='1:1:'),
        ),
        migrations.AddField(
            model_name='consumercursor',
            name='span_snapshot',
            field=models.TextField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='consumercursor',
            name='span_after_key',
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='consumercursor',
            name='span_after_id',
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.RunSQL(_MARK_ROWS, reverse_sql=migrations.RunSQL.noop),
        migrations.RunSQL(_MOVE_CURSORS, reverse_sql=migrations.RunSQL.noop),
        migrations.AlterField(
            model_name='outboxevent',
            name='transaction_id',
            field=models.BigIntegerField(),
        ),
        migrations.AlterField(
            model_name='outboxevent',
            name='log_key',
            field=models.BigIntegerField(),
        ),
        migrations.RemoveConstraint(
            model_name='outboxevent',
            name='outbox_position_unique',
        ),
        migrations.RemoveConstraint(
            model_name='outboxevent',
            name='outbox_position_only_when_sent',
        ),
        migrations.RemoveIndex(
            model_name='outboxevent',
            name='outbox_reminders_pos_idx',
        ),
        migrations.RemoveField(
            model_name='outboxevent',
            name='position',
        ),
        migrations.RemoveField(
            model_name='consumercursor',
            name='position',
        ),
        migrations.DeleteModel(
            name='EventLogHead',
        ),
        migrations.AddIndex(
            model_name='outboxevent',
            index=models.Index(fields=['log_key', 'id'], name='outbox_log_idx'),
        ),
        migrations.AddIndex(
            model_name='outboxevent',
            index=models.Index(condition=models.Q(('topics__contains', ['reminders'])), fields=['log_key', 'id'], name='outbox_reminders_log_idx'),
        ),
    ]
