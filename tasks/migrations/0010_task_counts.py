"""Each user's count of tasks outside the trash and of open tasks (``TaskCount``), kept by
statement triggers on ``tasks_task``, and filled from the tasks there are.

The triggers are created first and the counts filled in the same transaction. Creating a
trigger locks the table against writes until the migration commits, so no change falls between
the two: writes to tasks wait for the count (a second or so for a million tasks), reads do not.
"""

import pgtrigger.compiler
import pgtrigger.migrations
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('tasks', '0009_open_and_live_list_indexes'),
    ]

    operations = [
        migrations.CreateModel(
            name='TaskCount',
            fields=[
                ('user_id', models.CharField(max_length=128, primary_key=True, serialize=False)),
                ('live', models.BigIntegerField(default=0)),
                ('open', models.BigIntegerField(default=0)),
            ],
        ),
        pgtrigger.migrations.AddTrigger(
            model_name='task',
            trigger=pgtrigger.compiler.Trigger(name='task_count_on_insert', sql=pgtrigger.compiler.UpsertTriggerSql(func='\n    INSERT INTO tasks_taskcount AS counted (user_id, live, open)\n    SELECT user_id, sum(live), sum(open) FROM (SELECT user_id, 1 AS live, 1 * (NOT completed AND skipped_at IS NULL)::int AS open FROM new_rows WHERE deleted_at IS NULL) AS change\n    GROUP BY user_id HAVING sum(live) <> 0 OR sum(open) <> 0 ORDER BY user_id\n    ON CONFLICT (user_id) DO UPDATE\n    SET live = counted.live + EXCLUDED.live, open = counted.open + EXCLUDED.open;\n    RETURN NULL;\n', hash='261abbd38e06122f7111c2f24c6f5725b59aaa02', level='STATEMENT', operation='INSERT', pgid='pgtrigger_task_count_on_insert_71603', referencing='REFERENCING NEW TABLE AS new_rows ', table='tasks_task', when='AFTER')),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name='task',
            trigger=pgtrigger.compiler.Trigger(name='task_count_on_update', sql=pgtrigger.compiler.UpsertTriggerSql(func='\n    INSERT INTO tasks_taskcount AS counted (user_id, live, open)\n    SELECT user_id, sum(live), sum(open) FROM (SELECT user_id, 1 AS live, 1 * (NOT completed AND skipped_at IS NULL)::int AS open FROM new_rows WHERE deleted_at IS NULL UNION ALL SELECT user_id, -1 AS live, -1 * (NOT completed AND skipped_at IS NULL)::int AS open FROM old_rows WHERE deleted_at IS NULL) AS change\n    GROUP BY user_id HAVING sum(live) <> 0 OR sum(open) <> 0 ORDER BY user_id\n    ON CONFLICT (user_id) DO UPDATE\n    SET live = counted.live + EXCLUDED.live, open = counted.open + EXCLUDED.open;\n    RETURN NULL;\n', hash='2c3989b8f13022d211846e3cc02a92357a263246', level='STATEMENT', operation='UPDATE', pgid='pgtrigger_task_count_on_update_66c1f', referencing='REFERENCING OLD TABLE AS old_rows  NEW TABLE AS new_rows ', table='tasks_task', when='AFTER')),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name='task',
            trigger=pgtrigger.compiler.Trigger(name='task_count_on_delete', sql=pgtrigger.compiler.UpsertTriggerSql(func='\n    INSERT INTO tasks_taskcount AS counted (user_id, live, open)\n    SELECT user_id, sum(live), sum(open) FROM (SELECT user_id, -1 AS live, -1 * (NOT completed AND skipped_at IS NULL)::int AS open FROM old_rows WHERE deleted_at IS NULL) AS change\n    GROUP BY user_id HAVING sum(live) <> 0 OR sum(open) <> 0 ORDER BY user_id\n    ON CONFLICT (user_id) DO UPDATE\n    SET live = counted.live + EXCLUDED.live, open = counted.open + EXCLUDED.open;\n    RETURN NULL;\n', hash='36983c9282ba9575c80bda4d9e281b7d185624a1', level='STATEMENT', operation='DELETE', pgid='pgtrigger_task_count_on_delete_b6d93', referencing='REFERENCING OLD TABLE AS old_rows ', table='tasks_task', when='AFTER')),
        ),
        migrations.RunSQL(
            """
            INSERT INTO tasks_taskcount (user_id, live, open)
            SELECT user_id, count(*),
                   count(*) FILTER (WHERE NOT completed AND skipped_at IS NULL)
            FROM tasks_task WHERE deleted_at IS NULL
            GROUP BY user_id ORDER BY user_id
            """,
            reverse_sql=migrations.RunSQL.noop,
        ),
    ]
