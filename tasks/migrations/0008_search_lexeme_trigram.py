"""A trigram index on each user's words, so that typo correction measures the edit distance
to the few words that look like the typed one rather than to all of them. Built concurrently:
the lexicon table is written by every task insert and update."""

import django.contrib.postgres.indexes
from django.contrib.postgres.operations import AddIndexConcurrently, TrigramExtension
from django.db import migrations


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("tasks", "0007_taskhistory_actor"),
    ]

    operations = [
        TrigramExtension(),
        AddIndexConcurrently(
            model_name="searchlexeme",
            index=django.contrib.postgres.indexes.GinIndex(
                "user_id",
                django.contrib.postgres.indexes.OpClass("lexeme", name="gin_trgm_ops"),
                name="search_lexeme_user_trgm",
            ),
        ),
    ]
