"""The embedded server: its settings, written after initdb and brought up to date later, and
where it listens, known without starting it."""

import json
import os
import subprocess
import sys

from django.conf import settings

from core import embedded_postgres


def test_settings_are_written_below_the_marker_after_initdb(tmp_path):
    conf = tmp_path / "postgresql.conf"
    conf.write_text("max_connections = 100\nshared_buffers = 128MB\n")

    embedded_postgres._tune(tmp_path)

    ours = conf.read_text().split("# todo-backend settings\n", 1)[1]
    assert ours.splitlines() == [
        f"{name} = {value}" for name, value in embedded_postgres._SETTINGS.items()
    ]


def test_a_server_tuned_before_gets_the_settings_it_lacks_or_holds_otherwise_once(
    tmp_path, monkeypatch
):
    # given a server tuned before autovacuum_naptime was one of the settings, with shared
    # buffers sized for another machine
    monkeypatch.setitem(embedded_postgres._SETTINGS, "shared_buffers", "2048MB")
    conf = tmp_path / "postgresql.conf"
    conf.write_text(
        "#autovacuum_naptime = 1min\n# todo-backend settings\nmax_connections = 200\n"
        "shared_buffers = 256MB\nwork_mem = 16MB\nmaintenance_work_mem = 256MB\n"
        "max_wal_size = 2GB\ntimezone = 'UTC'\n"
    )

    # when it starts twice
    embedded_postgres._tune(tmp_path)
    embedded_postgres._tune(tmp_path)

    # then the new setting and the new size were appended once (the last line wins), and
    # nothing else
    text = conf.read_text()
    assert text.count("\nautovacuum_naptime = 10s\n") == 1
    assert text.endswith("shared_buffers = 2048MB\nautovacuum_naptime = 10s\n")
    assert text.count("max_connections") == 1


def test_shared_buffers_are_a_quarter_of_memory_within_bounds(monkeypatch):
    import psutil

    for total_mb, expected in ((256, "128MB"), (4096, "1024MB"), (24 * 1024, "2048MB")):
        memory = psutil.virtual_memory()._replace(total=total_mb * 1024 * 1024)
        monkeypatch.setattr(psutil, "virtual_memory", lambda memory=memory: memory)
        assert embedded_postgres._shared_buffers() == expected


def _postgres_processes_on(data_dir) -> list:
    import psutil

    return [
        process
        for process in psutil.process_iter(attrs=["name", "cmdline"])
        if process.info["name"] == "postgres" and str(data_dir) in (process.info["cmdline"] or [])
    ]


def test_importing_the_settings_starts_no_server_and_creates_no_cluster(tmp_path):
    # given the embedded mode on a data directory that does not exist yet
    data_dir = tmp_path / "pg"
    clean = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    env = {**clean, "DJANGO_SETTINGS_MODULE": "todo_project.settings"}
    env["EMBEDDED_PG_DIR"] = str(data_dir)
    code = (
        "import json, django\n"
        "django.setup()\n"
        "from django.conf import settings\n"
        "print(json.dumps(settings.DATABASES['default']['HOST']))\n"
    )

    # when a fresh process imports the settings and sets Django up, and a command that needs
    # no database runs
    loaded = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=settings.BASE_DIR, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    issued = subprocess.run(
        [sys.executable, "manage.py", "issue_token", "demo"], env=env, cwd=settings.BASE_DIR,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    # then the settings name where the server would listen, but no cluster exists and no
    # PostgreSQL runs on it
    assert loaded.returncode == 0, loaded.stderr
    assert json.loads(loaded.stdout.strip().splitlines()[-1]) == str(data_dir)
    assert issued.returncode == 0, issued.stderr
    assert not data_dir.exists()
    assert _postgres_processes_on(data_dir) == []


def test_the_settings_name_the_socket_directory_the_server_chooses_on_a_long_path(tmp_path):
    from embedded_postgres.postgres_server import PostgresServer
    from embedded_postgres.utils import find_suitable_socket_dir

    # given a data directory whose path is too long for a Unix socket
    data_dir = (tmp_path / ("d" * 60) / ("e" * 60)).resolve()
    data_dir.mkdir(parents=True)

    # when the settings compute where the socket is, and the library chooses it
    predicted = embedded_postgres.socket_dir(data_dir)
    chosen = find_suitable_socket_dir(data_dir, PostgresServer.runtime_path)
    try:
        # then both name the same directory, outside the data directory
        assert predicted == chosen
        assert predicted != data_dir
    finally:
        chosen.rmdir()


def test_a_short_path_keeps_the_socket_in_the_data_directory(tmp_path):
    assert embedded_postgres.socket_dir(tmp_path / "pg") == (tmp_path / "pg").resolve()
    assert not (tmp_path / "pg").exists()
