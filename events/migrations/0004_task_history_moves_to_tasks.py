"""Task history belongs to the tasks app now: the model leaves this app's state, and its table
(``events_taskhistory``) and rows stay where they are for ``tasks.TaskHistory``."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('events', '0003_log_by_snapshot'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name='TaskHistory')],
            database_operations=[],
        ),
    ]
