"""``make bench-queries``: search, filter and sort at 1M tasks, raw SQL and through HTTP,
next to the plan's targets, our goals and a naive ILIKE baseline."""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from urllib.parse import urlencode

import psycopg
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import connections
from django.utils import timezone

from bench.benchmarks import (
    bench_server,
    conninfo,
    cpu_seconds,
    database_on_default_server,
    database_url,
    embedded_postgres_pids,
    fmt,
    machine_line,
    p50_p95,
    plan_scans,
    server_env,
    write_section,
)
from bench.corpus import copy_layout, task_rows
from core.auth import issue_token
from tasks.models import Task
from tasks.search import Search, parse
from tasks.selectors import TaskFilters, search_page_statement, task_queryset_for_user

BENCH_DB = "todo_bench"
ALIAS = "bench"

# name: (API query parameters, plan target ms, our goal ms)
CASES = {
    "search, common word": ({"q": "{common}"}, 500, 20),
    "search, rare word": ({"q": "{rare}"}, 500, 20),
    "search, two words": ({"q": "{common} {second}"}, 500, 20),
    "search, prefix": ({"q": "{prefix}"}, 500, 20),
    "filter (pending, priority, tag, due in 7 days)": (
        {
            "status": "pending",
            "priority": "high",
            "tags": "work",
            "due_before": "{week}",
            "due_after": "{now}",
        },
        200,
        10,
    ),
    "sort by due date, page 1": ({"ordering": "due_date", "status": "pending"}, 100, 10),
    "sort by due date, page 20": (
        {"ordering": "due_date", "status": "pending", "offset": "950"},
        100,
        10,
    ),
    "sort by priority, page 1": ({"ordering": "-priority"}, 100, 10),
    "combined (search + filter + sort)": (
        {"q": "{common}", "status": "pending", "priority": "high,urgent", "ordering": "due_date"},
        1000,
        20,
    ),
    "accent-free (`malaga` finds Málaga)": ({"q": "malaga"}, 500, 20),
    "stemmed, Spanish (`canciones`)": ({"q": "canciones"}, 500, 20),
    "stemmed, German (`steuererklarungen`)": ({"q": "steuererklarungen"}, 500, 20),
    "typo corrected (`meetnig`)": ({"q": "meetnig"}, 500, 20),
    'phrase (`"canción fiesta"`)': ({"q": '"canción fiesta"'}, 500, 20),
    "Chinese (`会议`)": ({"q": "会议"}, 500, 20),
    "accented + filter + sort": (
        {"q": "reunion", "status": "pending", "priority": "high,urgent", "ordering": "due_date"},
        1000,
        20,
    ),
}
# The pages whose throughput is compared with /healthz's: the issue's list page and a search.
THROUGHPUT_PAGES = {
    "list": {"status": "pending", "ordering": "due_date", "limit": "50"},
    "search": {"q": "{common}", "limit": "50"},
}
THROUGHPUT_GOALS = {"list": 0.35, "search": 0.30}
THROUGHPUT_SECONDS = 4
THROUGHPUT_ROUNDS = 3
THROUGHPUT_CONNECTIONS = 8
_TEXT_MATCH = "title ILIKE %({name})s OR description ILIKE %({name})s"
NAIVE_SQL = {
    "search, common word": (
        "title ILIKE %(like)s OR description ILIKE %(like)s",
        "created_at DESC",
    ),
    "search, rare word": (
        "title ILIKE %(like_rare)s OR description ILIKE %(like_rare)s",
        "created_at DESC",
    ),
    "search, two words": (
        "(title ILIKE %(like)s OR description ILIKE %(like)s) AND (title ILIKE %(like2)s OR description ILIKE %(like2)s)",
        "created_at DESC",
    ),
    "search, prefix": (
        "title ILIKE %(like_prefix)s OR description ILIKE %(like_prefix)s",
        "created_at DESC",
    ),
    "filter (pending, priority, tag, due in 7 days)": (
        "NOT completed AND priority = 3 AND tags @> '[\"work\"]' AND due_at >= %(now)s AND due_at < %(week)s",
        "created_at DESC",
    ),
    "sort by due date, page 1": ("NOT completed", "due_at ASC NULLS LAST, id"),
    "sort by due date, page 20": ("NOT completed", "due_at ASC NULLS LAST, id OFFSET 950"),
    "sort by priority, page 1": ("TRUE", "priority DESC, id DESC"),
    "combined (search + filter + sort)": (
        "(title ILIKE %(like)s OR description ILIKE %(like)s) AND NOT completed AND priority IN (3, 4)",
        "due_at ASC NULLS LAST, id",
    ),
    "accent-free (`malaga` finds Málaga)": (_TEXT_MATCH.format(name="malaga"), "created_at DESC"),
    "stemmed, Spanish (`canciones`)": (_TEXT_MATCH.format(name="cancion"), "created_at DESC"),
    "stemmed, German (`steuererklarungen`)": (
        _TEXT_MATCH.format(name="steuer"),
        "created_at DESC",
    ),
    "typo corrected (`meetnig`)": (_TEXT_MATCH.format(name="meeting"), "created_at DESC"),
    'phrase (`"canción fiesta"`)': (_TEXT_MATCH.format(name="phrase"), "created_at DESC"),
    "Chinese (`会议`)": (_TEXT_MATCH.format(name="huiyi"), "created_at DESC"),
    "accented + filter + sort": (
        f"({_TEXT_MATCH.format(name='reunion')}) AND NOT completed AND priority IN (3, 4)",
        "due_at ASC NULLS LAST, id",
    ),
}


THROUGHPUT_CLIENT = (
    "`wrk -t2 -c8` (the issue's client)"
    if shutil.which("wrk")
    else "8 kept connections from threads of one Python process (install `wrk` for the issue's client)"
)


def _load_with_wrk(port: int, path: str, headers: dict[str, str]) -> tuple[int, float]:
    """``wrk`` on ``path`` for ``THROUGHPUT_SECONDS``: (requests answered 200, seconds)."""
    command = ["wrk", "-t2", f"-c{THROUGHPUT_CONNECTIONS}", f"-d{THROUGHPUT_SECONDS}s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    out = subprocess.run(
        [*command, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, check=True
    ).stdout
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if failed:
        raise RuntimeError(f"{path}: {failed.group(1)} answers were not 200")
    done = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
    if done is None:
        raise RuntimeError(f"{path}: wrk said {out!r}")
    seconds = float(done.group(2)) / (1000 if done.group(3) == "ms" else 1)
    return int(done.group(1)), seconds


def _load_with_threads(port: int, path: str, headers: dict[str, str]) -> tuple[int, float]:
    """``THROUGHPUT_CONNECTIONS`` kept connections from threads of this process on ``path``
    for ``THROUGHPUT_SECONDS``: (requests answered 200, seconds)."""
    deadline = time.perf_counter() + THROUGHPUT_SECONDS
    counts = [0] * THROUGHPUT_CONNECTIONS

    def run(slot: int) -> None:
        client = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            while time.perf_counter() < deadline:
                client.request("GET", path, headers=headers)
                response = client.getresponse()
                response.read()
                if response.status != 200:
                    raise RuntimeError(f"{path}: HTTP {response.status}")
                counts[slot] += 1
        finally:
            client.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=run, args=(slot,)) for slot in range(THROUGHPUT_CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts), time.perf_counter() - started


class Command(BaseCommand):
    help = "Load users x tasks into a bench database and time search/filter/sort (raw SQL, HTTP, naive)."

    def add_arguments(self, parser):
        parser.add_argument("--users", type=int, default=100)
        parser.add_argument("--per-user", type=int, default=10_000)
        parser.add_argument("--samples", type=int, default=200)
        parser.add_argument("--reload", action="store_true", help="Drop and reload the bench data.")
        parser.add_argument(
            "--no-report", action="store_true", help="Do not write docs/performance.md."
        )

    def handle(
        self,
        *args,
        users: int,
        per_user: int,
        samples: int,
        reload: bool,
        no_report: bool,
        **options,
    ):
        self._ensure_database()
        user_ids = [f"bench-user-{i:03d}" for i in range(users)]
        self._load(user_ids, per_user, reload)
        words = self._pick_words()
        self.stdout.write(f"query words: {words}")
        plans = self._plans(user_ids[0], words)
        raw = self._time_raw(user_ids, words, samples)
        naive = self._time_naive(user_ids, words, samples)
        http, throughput = self._time_http(user_ids, words, samples)
        table = self._table(raw, http, naive, plans, users, per_user, samples, words)
        table += self._throughput_table(throughput, words)
        self.stdout.write(table)
        if not no_report:
            path = write_section("queries", table)
            self.stdout.write(f"written to {path}")

    # --- data -------------------------------------------------------------------------------
    def _ensure_database(self) -> None:
        database_on_default_server(BENCH_DB)
        connections.settings[ALIAS] = {**connections["default"].settings_dict, "NAME": BENCH_DB}
        call_command("migrate", database=ALIAS, verbosity=0, interactive=False)

    def _load(self, user_ids: list[str], per_user: int, reload: bool) -> None:
        wanted = len(user_ids) * per_user
        with psycopg.connect(conninfo(BENCH_DB), autocommit=True) as conn:
            have = conn.execute("SELECT count(*) FROM tasks_task").fetchone()[0]
            if have == wanted and not reload:
                self.stdout.write(f"bench data present: {have:,} tasks")
                return
            self.stdout.write(
                f"loading {wanted:,} tasks ({len(user_ids)} users x {per_user:,}) ..."
            )
            started = time.perf_counter()
            conn.execute("TRUNCATE tasks_task, tasks_searchlexeme RESTART IDENTITY CASCADE")
            index_sql = self._drop_indexes(conn)
            # Row triggers (search vector, lexicon) cost more than the load itself; both are
            # built in one statement each afterwards.
            conn.execute("ALTER TABLE tasks_task DISABLE TRIGGER USER")
            now = timezone.now()
            columns, defaults = copy_layout()
            with (
                conn.cursor() as cur,
                cur.copy(f"COPY tasks_task ({columns}) FROM STDIN") as copy,
            ):
                for row in task_rows(user_ids, per_user, now):
                    copy.write_row((*row, *defaults))
            copied = time.perf_counter()
            self._compute_search_vectors(user_ids)
            conn.execute("ALTER TABLE tasks_task ENABLE TRIGGER USER")
            loaded = time.perf_counter()
            self.stdout.write(
                f"copied in {copied - started:.1f} s, search vectors in {loaded - copied:.1f} s"
            )
            for sql in index_sql:
                conn.execute(sql)
            conn.execute(
                "INSERT INTO tasks_searchlexeme (user_id, lexeme) SELECT DISTINCT user_id, word "
                "FROM tasks_task, unnest(tsvector_to_array(search_vector)) AS word"
            )
            conn.execute("VACUUM ANALYZE tasks_task")
            conn.execute("DROP TABLE IF EXISTS naive_task")
            conn.execute(
                "CREATE TABLE naive_task AS SELECT id, user_id, title, description, completed, priority, "
                "tags, due_at, created_at FROM tasks_task"
            )
            conn.execute("CREATE INDEX naive_task_user ON naive_task (user_id)")
            conn.execute("VACUUM ANALYZE naive_task")
            self.stdout.write(
                f"loaded in {loaded - started:.1f} s, indexes and analyze {time.perf_counter() - loaded:.1f} s"
            )

    def _compute_search_vectors(self, user_ids: list[str]) -> None:
        """Every task's search vector, one connection per core over its share of the users
        (the vector costs about a millisecond a row: a million rows on one core took 15 min)."""
        workers = max(1, os.cpu_count() or 1)
        shares = [user_ids[i::workers] for i in range(workers)]

        def compute(share: list[str]) -> None:
            with psycopg.connect(conninfo(BENCH_DB), autocommit=True) as conn:
                conn.execute(
                    "UPDATE tasks_task "
                    "SET search_vector = tasks_search_document(title, description, tags) "
                    "WHERE user_id = ANY(%s)",
                    [share],
                )

        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(compute, [share for share in shares if share]))

    def _drop_indexes(self, conn) -> list[str]:
        names = [index.name for index in Task._meta.indexes]
        rows = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'tasks_task' AND indexname = ANY(%s)",
            [names],
        ).fetchall()
        for name, _ in rows:
            conn.execute(f'DROP INDEX "{name}"')
        return [definition for _, definition in rows]

    def _pick_words(self) -> dict[str, str]:
        """A word in ~10% of a user's tasks, a second one in ~5%, a rare one in ~0.1%."""
        with psycopg.connect(conninfo(BENCH_DB)) as conn:
            total = conn.execute(
                "SELECT count(*) FROM tasks_task WHERE user_id = 'bench-user-000'"
            ).fetchone()[0]
            stats = conn.execute(
                "SELECT word, ndoc FROM ts_stat($$SELECT to_tsvector('simple', title || ' ' || description) "
                "FROM tasks_task WHERE user_id = 'bench-user-000'$$) WHERE length(word) >= 4"
            ).fetchall()
        by_share = sorted(((ndoc / max(total, 1), word) for word, ndoc in stats), reverse=True)

        def nearest(share: float, exclude: set[str]) -> str:
            return min(
                (abs(s - share), w) for s, w in by_share if w not in exclude and w.isalpha()
            )[1]

        common = nearest(0.10, set())
        second = nearest(0.05, {common})
        rare = nearest(0.001, {common, second})
        prefix = nearest(0.08, {common, second, rare})[:4]
        return {"common": common, "second": second, "rare": rare, "prefix": prefix}

    # --- timing -----------------------------------------------------------------------------
    def _params(self, case: str, words: dict[str, str]) -> dict[str, str]:
        now = timezone.now()
        values = {**words, "now": now.isoformat(), "week": (now + timedelta(days=7)).isoformat()}
        return {key: value.format(**values) for key, value in CASES[case][0].items()}

    def _filters(self, params: dict[str, str]) -> tuple[TaskFilters, int]:
        from dateutil.parser import isoparse

        return (
            TaskFilters(
                q=params.get("q", ""),
                status=params.get("status", "all"),
                priorities=tuple(p for p in params.get("priority", "").split(",") if p),
                tags=tuple(t for t in params.get("tags", "").split(",") if t),
                due_before=isoparse(params["due_before"]) if "due_before" in params else None,
                due_after=isoparse(params["due_after"]) if "due_after" in params else None,
                ordering=tuple(o for o in params.get("ordering", "").split(",") if o),
            ),
            int(params.get("offset", 0)),
        )

    @staticmethod
    def _search(user_id: str, filters: TaskFilters) -> Search | None:
        """The search of ``filters``, its words' forms read from the bench database."""
        return parse(filters.q, user_id=user_id, using=ALIAS) if filters.q else None

    def _page_sql(self, user_id: str, filters: TaskFilters, offset: int) -> tuple[str, tuple]:
        """The statement a case's page is read with: a search's whole page statement (its
        total and sequence too, ``search_page_statement``), a list's page query alone."""
        search = self._search(user_id, filters)
        if search is not None:
            statement = search_page_statement(
                user_id=user_id, filters=filters, search=search, limit=50, offset=offset
            )
            return statement.sql, statement.params
        qs = task_queryset_for_user(user_id=user_id, filters=filters).using(ALIAS)
        return qs[offset : offset + 50].query.sql_with_params()

    def _plans(self, user_id: str, words) -> dict[str, str]:
        """The indexes each case's page query uses, from EXPLAIN at this size."""
        plans: dict[str, str] = {}
        # Literal values, planned on every run: raw is a statement's whole cost. The server
        # binds parameters and prepares a statement it runs again (``prepare_threshold``), so
        # PostgreSQL may reuse a plan there.
        with psycopg.connect(conninfo(BENCH_DB), cursor_factory=psycopg.ClientCursor) as conn:
            for case in CASES:
                filters, offset = self._filters(self._params(case, words))
                sql, params = self._page_sql(user_id, filters, offset)
                plan = conn.execute(f"EXPLAIN (FORMAT JSON) {sql}", params).fetchone()[0][0]["Plan"]
                plans[case] = ", ".join(dict.fromkeys(plan_scans(plan))) or "-"
        return plans

    def _time_raw(self, user_ids, words, samples) -> dict[str, list[float]]:
        results: dict[str, list[float]] = {}
        rng = random.Random(5)
        # Literal values, planned on every run: raw is a statement's whole cost. The server
        # binds parameters and prepares a statement it runs again (``prepare_threshold``), so
        # PostgreSQL may reuse a plan there.
        with psycopg.connect(conninfo(BENCH_DB), cursor_factory=psycopg.ClientCursor) as conn:
            for case in CASES:
                filters, offset = self._filters(self._params(case, words))
                timings = []
                for i in range(samples + 20):
                    sql, params = self._page_sql(rng.choice(user_ids), filters, offset)
                    started = time.perf_counter()
                    conn.execute(sql, params).fetchall()
                    if i >= 20:
                        timings.append((time.perf_counter() - started) * 1000)
                results[case] = timings
        return results

    def _time_naive(self, user_ids, words, samples) -> dict[str, list[float]]:
        results: dict[str, list[float]] = {}
        rng = random.Random(6)
        now = timezone.now()
        args = {
            "like": f"%{words['common']}%",
            "like2": f"%{words['second']}%",
            "like_rare": f"%{words['rare']}%",
            "like_prefix": f"%{words['prefix']}%",
            "malaga": "%malaga%",
            "cancion": "%cancion%",
            "steuer": "%steuererklarung%",
            "meeting": "%meeting%",
            "phrase": "%canción fiesta%",
            "huiyi": "%会议%",
            "reunion": "%reunion%",
            "now": now,
            "week": now + timedelta(days=7),
        }
        with psycopg.connect(conninfo(BENCH_DB)) as conn:
            for case, (where, order) in NAIVE_SQL.items():
                timings = []
                for i in range(min(samples, 100) + 5):
                    started = time.perf_counter()
                    conn.execute(
                        f"SELECT * FROM naive_task WHERE user_id = %(user)s AND ({where}) ORDER BY {order} LIMIT 50",  # noqa: S608
                        {**args, "user": rng.choice(user_ids)},
                    ).fetchall()
                    if i >= 5:
                        timings.append((time.perf_counter() - started) * 1000)
                results[case] = timings
        return results

    def _time_http(self, user_ids, words, samples):
        env = server_env(database_url(BENCH_DB), RUN_WORKERS_IN_PROCESS="0", DB_CONN_MAX_AGE="600")
        tokens = {user: issue_token(user, ttl_seconds=3600) for user in user_ids}
        results: dict[str, list[float]] = {}
        rng = random.Random(7)
        with bench_server(env) as (port, server):
            # The client is the standard library's, on one kept-alive connection: what is
            # timed is the server's work and loopback, not a client library's (httpx adds about
            # 2 ms to reading a 30 kB page). The body is read whole; it is parsed after the
            # clock stops.
            client = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                for case in CASES:
                    params = self._params(case, words)
                    path = "/api/tasks/?" + urlencode({**params, "limit": 50})
                    timings = []
                    for i in range(samples + 20):
                        user = rng.choice(user_ids)
                        headers = {"Authorization": f"Bearer {tokens[user]}"}
                        started = time.perf_counter()
                        client.request("GET", path, headers=headers)
                        response = client.getresponse()
                        body = response.read()
                        elapsed = (time.perf_counter() - started) * 1000
                        if response.status != 200 or "results" not in json.loads(body):
                            raise RuntimeError(f"{case}: HTTP {response.status} {body[:300]!r}")
                        if i >= 20:
                            timings.append(elapsed)
                    results[case] = timings
            finally:
                client.close()
            throughput = self._throughput(port, server.pid, tokens[user_ids[0]], words, user_ids[0])
        return results, throughput

    def _throughput(
        self, port: int, server_pid: int, token: str, words, user_id: str
    ) -> dict[str, tuple[float, float, float, float | None]]:
        """Requests per second of /healthz, of each page, and of one task (the lightest read
        through authentication, rate limit and DRF, for reference), one after another in
        ``THROUGHPUT_ROUNDS`` rounds of the same run, from ``THROUGHPUT_CONNECTIONS`` kept
        connections (``THROUGHPUT_CLIENT``); with the CPU milliseconds each request cost the
        server process and PostgreSQL (None on an external server). Medians of the rounds:
        (requests/s, / healthz of the same round, server ms, PostgreSQL ms)."""
        with psycopg.connect(conninfo(BENCH_DB)) as conn:
            one = conn.execute(
                "SELECT id FROM tasks_task WHERE user_id = %s ORDER BY id LIMIT 1", [user_id]
            ).fetchone()[0]
        paths = (
            {"healthz": "/healthz"}
            | {
                name: "/api/tasks/?"
                + urlencode({key: value.format(**words) for key, value in params.items()})
                for name, params in THROUGHPUT_PAGES.items()
            }
            | {"one task": f"/api/tasks/{one}/"}
        )
        headers = {"Authorization": f"Bearer {token}"}
        load = _load_with_wrk if shutil.which("wrk") else _load_with_threads
        rounds: list[dict[str, tuple[float, float, float | None]]] = []
        for _ in range(THROUGHPUT_ROUNDS):
            measured = {}
            for name, path in paths.items():
                postgres = embedded_postgres_pids()
                server_cpu, postgres_cpu = cpu_seconds([server_pid]), cpu_seconds(postgres)
                done, elapsed = load(port, path, headers)
                # The processes read again: a backend the server connected during the run (a
                # thread's first query) used all its CPU in it.
                measured[name] = (
                    done / elapsed,
                    (cpu_seconds([server_pid]) - server_cpu) * 1000 / done,
                    (cpu_seconds(embedded_postgres_pids()) - postgres_cpu) * 1000 / done
                    if postgres
                    else None,
                )
            rounds.append(measured)
        # Each page against /healthz of its own round, and the median of the rounds: the
        # machine's speed drifts over a minute, and a ratio of one round is a ratio of two
        # moments.
        rates = {}
        for name in paths:
            postgres_ms = [r[name][2] for r in rounds if r[name][2] is not None]
            rates[name] = (
                statistics.median(r[name][0] for r in rounds),
                statistics.median(r[name][0] / r["healthz"][0] for r in rounds),
                statistics.median(r[name][1] for r in rounds),
                statistics.median(postgres_ms) if postgres_ms else None,
            )
        return rates

    def _throughput_table(self, rates: dict[str, tuple], words) -> str:
        healthz = rates["healthz"][0]

        def cpu(name: str) -> str:
            _, _, server, postgres = rates[name]
            return f"{server:.2f} | {'-' if postgres is None else f'{postgres:.2f}'}"

        lines = [
            "",
            f"Throughput, one server process, {THROUGHPUT_CLIENT}, "
            f"{THROUGHPUT_SECONDS} s each, one after another in {THROUGHPUT_ROUNDS} rounds of "
            f"the same run: `/healthz` {healthz:,.0f} requests/s. Each page's ratio is to "
            "`/healthz` of its own round; figures are the rounds' medians. CPU per request: the "
            "server process's (one core at most: Python's lock) and the embedded PostgreSQL's "
            "(every backend), in ms.",
            "",
            "| page | requests/s | / healthz | goal | | server CPU | PostgreSQL CPU |",
            "|---|---:|---:|---:|---|---:|---:|",
            f"| `/healthz` | {healthz:,.0f} | 1.00 | | | {cpu('healthz')} |",
        ]
        for name, params in THROUGHPUT_PAGES.items():
            ratio = rates[name][1]
            goal = THROUGHPUT_GOALS[name]
            lines.append(
                f"| {name} `{urlencode({k: v.format(**words) for k, v in params.items()})}` "
                f"| {rates[name][0]:,.0f} | {ratio:.2f} | >= {goal} "
                f"| {'met' if ratio >= goal else 'missed'} | {cpu(name)} |"
            )
        lines.append(
            f"| one task `/api/tasks/<id>/` (reference: the lightest authenticated read) "
            f"| {rates['one task'][0]:,.0f} | {rates['one task'][1]:.2f} | | "
            f"| {cpu('one task')} |"
        )
        return "\n".join(lines) + "\n"

    def _table(self, raw, http, naive, plans, users, per_user, samples, words) -> str:
        lines = [
            "## Search, filter and sort (`python manage.py bench_queries`)",
            "",
            f"{users} users x {per_user:,} tasks ({users * per_user:,}), {samples} random users per case, "
            f"limit 50, warm cache. Words: common `{words['common']}`, second `{words['second']}`, "
            f"rare `{words['rare']}`, prefix `{words['prefix']}`. Machine: {machine_line()}.",
            "HTTP is the full stack (uvicorn, middleware, JWT, DRF, ORM, total count) over loopback, "
            "timed from request to last byte by a standard-library client on a kept connection; "
            "raw is the page query alone on one connection (a search's: its whole statement, total included); naive is `ILIKE '%word%'` with only a "
            "user index, as most implementations of the plan do it.",
            "",
            "| case | HTTP p50 / p95 | raw SQL p50 / p95 | naive p50 / p95 | plan target | our goal (HTTP p95) | naive / raw p50 | plan (EXPLAIN) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for case, (_, target, goal) in CASES.items():
            h50, h95 = p50_p95(http[case])
            r50, r95 = p50_p95(raw[case])
            n50, n95 = p50_p95(naive[case])
            verdict = "met" if h95 <= goal else "missed"
            lines.append(
                f"| {case} | {fmt(h50)} / {fmt(h95)} | {fmt(r50)} / {fmt(r95)} | {fmt(n50)} / {fmt(n95)} "
                f"| < {target} | <= {goal} ({verdict}) | {n50 / r50:.1f}x | {plans[case]} |"
            )
        return "\n".join(lines) + "\n"
