"""Search in every language: accent-free words, stems in the languages a task is written in,
and character pairs of Chinese and Japanese text (``docs/tasks.md``, Search).

The search vector stops being a generated column: changing a generated column's expression
rewrites the table under an exclusive lock. Instead a new column is filled in batches while the
old one keeps serving, indexed concurrently, then swapped in by renaming it, in one short
transaction. A trigger keeps it from then on.
"""

from __future__ import annotations

import time

import django.contrib.postgres.search
import pgtrigger.compiler
import pgtrigger.migrations
from django.db import migrations, transaction

BATCH_ROWS = 5_000
SWAP_LOCK_TIMEOUT = "2s"
SWAP_ATTEMPTS = 30

CJK = "\\u3040-\\u30ff\\u3400-\\u4dbf\\u4e00-\\u9fff\\uf900-\\ufaff\\uac00-\\ud7af\\u0e00-\\u0e7f"

# Stemmed on every task; the others only when their letters or common words appear in the task.
ALWAYS_STEMMED = "english"
STEMMED_WHEN = {
    "german": "[äöüß]|\\m(der|die|das|und|für|mit|nicht|ein|eine|ist|zu|von|den|dem|auf|im|bei)\\M",
    "spanish": "[ñ¿¡áéíóú]|\\m(el|la|los|las|del|y|en|por|para|con|una|que|al|mi)\\M",
    "french": "[àâçéèêëîïôûœ]|\\m(le|la|les|des|du|et|pour|avec|une|au|aux|est)\\M",
    "portuguese": "[ãõçáâêôéíóú]|\\m(os|do|da|dos|das|em|para|com|uma|não|que)\\M",
    "italian": "[àèéìòù]|\\m(il|gli|della|di|per|con|che|non|una|alla)\\M",
    "dutch": "\\m(de|het|een|en|van|voor|met|niet|op|zijn|te)\\M",
    "danish": "[æøå]",
    "norwegian": "[æøå]",
    "swedish": "[åäö]",
    "finnish": "[äö]",
    "hungarian": "[őű]",
    "turkish": "[şğı]",
    "romanian": "[șşțţăâî]",
    "lithuanian": "[ąčęėįšųūž]",
    "catalan": "l·l|[òàèç]",
    "russian": "[\\u0400-\\u04ff]",
    "greek": "[\\u0370-\\u03ff]",
    "arabic": "[\\u0600-\\u06ff]",
    "hindi": "[\\u0900-\\u097f]",
    "tamil": "[\\u0b80-\\u0bff]",
    "armenian": "[\\u0530-\\u058f]",
    "yiddish": "[\\u0590-\\u05ff]",
}

LEXICON_FUNC = """
    INSERT INTO tasks_searchlexeme (user_id, lexeme)
    SELECT NEW.user_id, word FROM unnest(tsvector_to_array(NEW.search_vector)) AS word
    ON CONFLICT DO NOTHING;
    RETURN NULL;
"""
LEXICON_ON_UPDATE = pgtrigger.compiler.Trigger(
    name="task_lexicon_on_update",
    sql=pgtrigger.compiler.UpsertTriggerSql(
        condition="WHEN (OLD.search_vector IS DISTINCT FROM NEW.search_vector)",
        func=LEXICON_FUNC,
        hash="5794eb18e9c64f8b8efd314b7f930613ec857c6f",
        operation="UPDATE",
        pgid="pgtrigger_task_lexicon_on_update_5e2be",
        table="tasks_task",
        when="AFTER",
    ),
)
SEARCH_VECTOR_FUNC = """
    IF TG_OP = 'INSERT' OR NEW.title IS DISTINCT FROM OLD.title
        OR NEW.description IS DISTINCT FROM OLD.description OR NEW.tags IS DISTINCT FROM OLD.tags
        OR NEW.search_vector IS DISTINCT FROM OLD.search_vector THEN
        NEW.search_vector := tasks_search_document(NEW.title, NEW.description, NEW.tags);
    END IF;
    RETURN NEW;
"""
SEARCH_VECTOR_TRIGGER = pgtrigger.compiler.Trigger(
    name="task_search_vector",
    sql=pgtrigger.compiler.UpsertTriggerSql(
        func=SEARCH_VECTOR_FUNC,
        hash="5db9ac37bbdffd0960efc8b3e62a1d8a6e66acc4",
        operation="INSERT OR UPDATE",
        pgid="pgtrigger_task_search_vector_8b3c8",
        table="tasks_task",
        when="BEFORE",
    ),
)


def _available(cursor, names) -> list[str]:
    cursor.execute("SELECT cfgname FROM pg_ts_config WHERE cfgname = ANY(%s)", [list(names)])
    found = {row[0] for row in cursor.fetchall()}
    return [name for name in names if name in found]


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _search_functions_sql(cursor) -> list[str]:
    cursor.execute("SELECT current_schema()")
    schema = cursor.fetchone()[0]
    languages = _available(cursor, [ALWAYS_STEMMED, *STEMMED_WHEN])
    sql = [
        "CREATE EXTENSION IF NOT EXISTS unaccent",
        "CREATE EXTENSION IF NOT EXISTS fuzzystrmatch",
        "CREATE TEXT SEARCH CONFIGURATION tasks_simple (COPY = simple)",
        "ALTER TEXT SEARCH CONFIGURATION tasks_simple "
        "ALTER MAPPING FOR word, hword, hword_part WITH unaccent, simple",
    ]
    for language in languages:
        sql += [
            f"CREATE TEXT SEARCH CONFIGURATION tasks_{language} (COPY = {language})",
            f"ALTER TEXT SEARCH CONFIGURATION tasks_{language} "
            f"ALTER MAPPING FOR word, hword, hword_part WITH unaccent, {language}_stem",
        ]

    def config(name: str) -> str:
        return f"'{schema}.tasks_{name}'::regconfig"

    sql.append(
        f"""
        CREATE FUNCTION tasks_search_fold(word text) RETURNS text
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
        AS $$ SELECT lower({schema}.unaccent('{schema}.unaccent'::regdictionary, word)) $$
        """
    )
    # Each run of Chinese, Japanese, Korean or Thai characters as its character pairs ("会议
    # 议记 记录"), a lone character as itself.
    sql.append(
        f"""
        CREATE FUNCTION tasks_cjk_grams(body text) RETURNS text[]
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
        AS $$
            SELECT coalesce(array_agg(
                CASE WHEN length(r.run) = 1 THEN r.run ELSE (
                    SELECT string_agg(substr(r.run, i, 2), ' ' ORDER BY i)
                    FROM generate_series(1, length(r.run) - 1) AS i)
                END), '{{}}')
            FROM (SELECT m[1] AS run FROM regexp_matches(body, '([{CJK}]+)', 'g') AS m) AS r
        $$
        """  # noqa: S608 (built from this module's constants)
    )
    stemmed = [f"to_tsvector({config(ALWAYS_STEMMED)}, body)"] + [
        f"CASE WHEN cues ~ {_literal(cue)} THEN to_tsvector({config(language)}, body) "
        "ELSE ''::tsvector END"
        for language, cue in STEMMED_WHEN.items()
        if language in languages
    ]
    sql.append(
        f"""
        CREATE FUNCTION tasks_search_text(body text, cues text) RETURNS tsvector
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
        AS $$
            SELECT CASE WHEN body = '' THEN ''::tsvector ELSE
                to_tsvector({config("simple")}, body)
                || {" || ".join(stemmed)}
                || CASE WHEN body ~ '[{CJK}]' THEN
                    to_tsvector('pg_catalog.simple', array_to_string(tasks_cjk_grams(body), ' '))
                    || to_tsvector('pg_catalog.simple',
                        regexp_replace(regexp_replace(body, '[^{CJK}]+', '', 'g'),
                                       '(.)', '\\1 ', 'g'))
                   ELSE ''::tsvector END
            END
        $$
        """
    )
    sql.append(
        f"""
        CREATE FUNCTION tasks_search_document(title text, description text, tags jsonb)
        RETURNS tsvector LANGUAGE sql IMMUTABLE PARALLEL SAFE
        AS $$
            SELECT setweight(tasks_search_text(coalesce(title, ''), cues), 'A')
                || setweight(tasks_search_text(coalesce(description, ''), cues), 'B')
                || setweight(to_tsvector({config("simple")}, coalesce(tags::text, ''))
                             || to_tsvector({config(ALWAYS_STEMMED)}, coalesce(tags::text, '')), 'C')
            FROM (SELECT lower(coalesce(title, '') || ' ' || coalesce(description, '')) AS cues) AS c
        $$
        """  # noqa: S608 (built from this module's constants)
    )
    # One word of a query as every form it is indexed under (each once): accent-free, each
    # language's stem, its character pairs. A word that some language drops as a stop word is left out unless
    # ``keep_stopwords`` (inside a phrase, or when the query has nothing else).
    forms = [f"plainto_tsquery({config('simple')}, word)"] + [
        f"plainto_tsquery({config(language)}, word)" for language in languages
    ]
    stopword = " OR ".join(
        f"numnode(plainto_tsquery({config(language)}, word)) = 0" for language in languages
    )
    sql.append(
        f"""
        CREATE FUNCTION tasks_search_term(word text, keep_stopwords boolean) RETURNS tsquery
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
        AS $$
            SELECT CASE
                WHEN NOT keep_stopwords AND word !~ '[{CJK}]' AND ({stopword}) THEN ''::tsquery
                ELSE coalesce((
                    SELECT string_agg(DISTINCT '(' || q::text || ')', ' | ')::tsquery
                    FROM unnest(ARRAY[{", ".join(forms)}]) AS q
                    WHERE numnode(q) > 0), ''::tsquery) || coalesce((
                    SELECT string_agg('(' || q::text || ')', ' & ')::tsquery
                    FROM unnest(tasks_cjk_grams(word)) AS g,
                        LATERAL phraseto_tsquery('pg_catalog.simple', g) AS q
                    WHERE numnode(q) > 0), ''::tsquery)
            END
        $$
        """  # noqa: S608 (built from this module's constants)
    )
    return sql


def drop_search_functions(apps, schema_editor):
    schema_editor.execute(DROP_SEARCH_FUNCTIONS, params=None)


def create_search_functions(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        statements = _search_functions_sql(cursor)
    with transaction.atomic(using=schema_editor.connection.alias):
        for statement in statements:
            schema_editor.execute(statement)


DROP_SEARCH_FUNCTIONS = """
    DROP FUNCTION IF EXISTS tasks_search_term(text, boolean);
    DROP FUNCTION IF EXISTS tasks_search_document(text, text, jsonb);
    DROP FUNCTION IF EXISTS tasks_search_text(text, text);
    DROP FUNCTION IF EXISTS tasks_cjk_grams(text);
    DROP FUNCTION IF EXISTS tasks_search_fold(text);
    DO $$ DECLARE name text; BEGIN
        FOR name IN SELECT cfgname FROM pg_ts_config WHERE cfgname LIKE 'tasks\\_%' LOOP
            EXECUTE format('DROP TEXT SEARCH CONFIGURATION %I', name);
        END LOOP;
    END $$;
"""

FILL_TRIGGER = """
    CREATE FUNCTION tasks_fill_search_document() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' OR NEW.title IS DISTINCT FROM OLD.title
            OR NEW.description IS DISTINCT FROM OLD.description
            OR NEW.tags IS DISTINCT FROM OLD.tags
            OR NEW.search_document IS DISTINCT FROM OLD.search_document THEN
            NEW.search_document := tasks_search_document(NEW.title, NEW.description, NEW.tags);
        END IF;
        RETURN NEW;
    END $$;
    CREATE TRIGGER tasks_fill_search_document BEFORE INSERT OR UPDATE ON tasks_task
        FOR EACH ROW EXECUTE FUNCTION tasks_fill_search_document();
"""
ADD_NEW_COLUMN = "ALTER TABLE tasks_task ADD COLUMN search_document tsvector;" + FILL_TRIGGER
DROP_NEW_COLUMN = """
    DROP TRIGGER IF EXISTS tasks_fill_search_document ON tasks_task;
    DROP FUNCTION IF EXISTS tasks_fill_search_document();
    ALTER TABLE tasks_task DROP COLUMN IF EXISTS search_document;
"""


def backfill(apps, schema_editor):
    """Every existing row, a batch of ids per short transaction: writers wait for at most one
    batch's row locks. The new words go to their owners' lexicons as they are made."""
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(min(id), 0), coalesce(max(id), 0) FROM tasks_task")
        low, high = cursor.fetchone()
    started = time.monotonic()
    for start in range(low, high + 1, BATCH_ROWS):
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            # Setting the column to anything makes the fill trigger compute it.
            cursor.execute(
                "UPDATE tasks_task SET search_document = ''::tsvector "
                "WHERE id >= %s AND id < %s AND search_document IS NULL",
                [start, start + BATCH_ROWS],
            )
            cursor.execute(
                "INSERT INTO tasks_searchlexeme (user_id, lexeme) "
                "SELECT DISTINCT user_id, word FROM tasks_task, "
                "unnest(tsvector_to_array(search_document)) AS word "
                "WHERE id >= %s AND id < %s ON CONFLICT DO NOTHING",
                [start, start + BATCH_ROWS],
            )
    if high:
        print(f"\n    search vectors of ids {low}-{high} in {time.monotonic() - started:.1f} s")


SWAP = [
    "DROP TRIGGER tasks_fill_search_document ON tasks_task",
    "DROP FUNCTION tasks_fill_search_document()",
    LEXICON_ON_UPDATE.uninstall_sql,
    "ALTER TABLE tasks_task DROP COLUMN search_vector",
    "ALTER TABLE tasks_task RENAME COLUMN search_document TO search_vector",
    "ALTER INDEX task_user_search_document_gin RENAME TO task_user_search_gin",
    SEARCH_VECTOR_TRIGGER.install_sql,
    LEXICON_ON_UPDATE.install_sql,
]
UNSWAP = [
    SEARCH_VECTOR_TRIGGER.uninstall_sql,
    LEXICON_ON_UPDATE.uninstall_sql,
    "ALTER INDEX task_user_search_gin RENAME TO task_user_search_document_gin",
    "ALTER TABLE tasks_task RENAME COLUMN search_vector TO search_document",
    "ALTER TABLE tasks_task ADD COLUMN search_vector tsvector GENERATED ALWAYS AS ("
    "setweight(to_tsvector('english'::regconfig, coalesce(title, '')), 'A') || "
    "setweight(to_tsvector('english'::regconfig, coalesce(description, '')), 'B') || "
    "setweight(to_tsvector('english'::regconfig, coalesce((tags)::text, '')), 'C')) STORED",
    "CREATE INDEX task_user_search_gin ON tasks_task USING gin (user_id, search_vector)",
    FILL_TRIGGER,
    LEXICON_ON_UPDATE.install_sql,
]


def _in_one_short_transaction(schema_editor, statements) -> None:
    """Run ``statements`` together, waiting at most ``SWAP_LOCK_TIMEOUT`` for the table's lock
    each try, so that queued queries are never held behind the migration for long."""
    connection = schema_editor.connection
    for attempt in range(SWAP_ATTEMPTS):
        try:
            with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL lock_timeout = '{SWAP_LOCK_TIMEOUT}'")
                started = time.monotonic()
                for statement in statements:
                    cursor.execute(statement)
            print(f"\n    swapped in {1000 * (time.monotonic() - started):.0f} ms")
            return
        except Exception as error:  # lock_not_available: try again
            if getattr(getattr(error, "__cause__", None), "sqlstate", None) != "55P03":
                raise
            time.sleep(min(2**attempt, 10) / 10)
    raise RuntimeError("could not lock tasks_task for the search vector swap")


def swap(apps, schema_editor):
    _in_one_short_transaction(schema_editor, SWAP)


def unswap(apps, schema_editor):
    _in_one_short_transaction(schema_editor, UNSWAP)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("tasks", "0005_task_series_skip_trash"),
    ]

    operations = [
        migrations.RunPython(create_search_functions, drop_search_functions, atomic=False),
        migrations.RunSQL(ADD_NEW_COLUMN, DROP_NEW_COLUMN),
        migrations.RunPython(backfill, migrations.RunPython.noop, atomic=False),
        migrations.RunSQL(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS task_user_search_document_gin "
            "ON tasks_task USING gin (user_id, search_document)",
            "DROP INDEX CONCURRENTLY IF EXISTS task_user_search_document_gin",
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="task",
                    name="search_vector",
                    field=django.contrib.postgres.search.SearchVectorField(
                        editable=False, null=True
                    ),
                ),
                pgtrigger.migrations.AddTrigger(model_name="task", trigger=SEARCH_VECTOR_TRIGGER),
            ],
            database_operations=[migrations.RunPython(swap, unswap, atomic=False)],
        ),
    ]
