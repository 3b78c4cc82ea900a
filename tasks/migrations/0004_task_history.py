"""``TaskHistory`` moves here from the events app, on the table it already has: the state gains
the model, the database is left as it is (``events_taskhistory``, its rows and indexes)."""

import django.contrib.postgres.fields
import django.db.models.functions.datetime
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('tasks', '0003_repair_recurrence_until'),
        ('events', '0004_task_history_moves_to_tasks'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='TaskHistory',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('user_id', models.CharField(max_length=128)),
                        ('task_id', models.BigIntegerField()),
                        ('event_id', models.UUIDField(unique=True)),
                        ('event_type', models.CharField(max_length=64)),
                        ('sequence', models.BigIntegerField()),
                        ('occurred_at', models.DateTimeField()),
                        ('changed_fields', django.contrib.postgres.fields.ArrayField(base_field=models.CharField(max_length=64), default=list, size=None)),
                        ('previous', models.JSONField(default=dict)),
                        ('task_data', models.JSONField()),
                        ('recorded_at', models.DateTimeField(db_default=django.db.models.functions.datetime.Now())),
                    ],
                    options={
                        'verbose_name_plural': 'task history',
                        'db_table': 'events_taskhistory',
                        'indexes': [models.Index(fields=['user_id', 'task_id', 'sequence'], name='task_history_task_idx')],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
