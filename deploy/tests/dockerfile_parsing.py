"""Run deploy/Dockerfile's steps as written, without a Docker engine.

What it does, in a temporary directory:

1. Parses the Dockerfile with the BuildKit parser (the `dockerfile` package) and copies
   the build context as Docker would send it (the repository filtered by .dockerignore).
2. Replays the builder stage: ENV, WORKDIR, COPY and RUN in order. RUN commands run
   verbatim through /bin/sh with the stage's environment; the image paths /opt/venv and
   /app are mapped to temporary directories (the only rewriting). System-level steps
   (apt-get, user creation, ownership) are skipped and listed: they need the image's
   root filesystem. So `python -m venv`, `pip install -c requirements.lock .` and
   `collectstatic` really run, into a fresh venv from PyPI.
3. Replays the runtime stage: its ENV, then starts its CMD (uvicorn) on a free loopback
   port (the only rewrites: `--port 8000` becomes that port and `--host 0.0.0.0`
   becomes 127.0.0.1), waits for GET /healthz == 200,
   runs the HEALTHCHECK command as written, and fetches one collected static file
   through the app (DEBUG=0) to prove collectstatic's output is served.

It needs network access to PyPI and takes one to two minutes.

    python deploy/check_dockerfile.py [--context DIR] [--dockerfile FILE] [--keep]

Exit status 0 when every step passed. Used by deploy/tests (marker slow_deploy).
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DOCKERFILE = REPO_ROOT / "deploy" / "Dockerfile"

# RUN commands that change the image's system (packages, users, ownership). They
# cannot run on a developer machine or in CI without changing that machine.
SYSTEM_COMMANDS = ("apt-get", "apt", "groupadd", "useradd", "addgroup", "adduser", "chown")
INSTALL_WITH_OWNER = re.compile(r"^install\s+.*-o\s")

# What the started web process gets in its environment: random secrets, no DEBUG and a
# database URL that points nowhere (/healthz must not need the database).
RUNTIME_ENV = {
    "SECRET_KEY": secrets.token_urlsafe(48),
    "JWT_SECRET": secrets.token_urlsafe(48),
    "DEBUG": "0",
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "DATABASE_URL": "postgresql://check:check@127.0.0.1:9/check",
    "EVENTS_BROKER": "embedded",
    "RUN_WORKERS_IN_PROCESS": "0",
    "LOG_FORMAT": "json",
    "LOG_LEVEL": "WARNING",
}


class CheckError(Exception):
    """A step of the Dockerfile did not do what it should."""


@dataclass
class Instruction:
    cmd: str
    value: tuple[str, ...]
    flags: tuple[str, ...]
    json: bool
    original: str
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)


def parse(dockerfile: Path = DEFAULT_DOCKERFILE) -> list[Stage]:
    """The Dockerfile's stages, with ARG defaults substituted in FROM lines."""
    import dockerfile as bk  # BuildKit's parser

    args: dict[str, str] = {}
    stages: list[Stage] = []
    for command in bk.parse_file(str(dockerfile)):
        ins = Instruction(
            cmd=command.cmd.upper(),
            value=tuple(command.value),
            flags=tuple(command.flags),
            json=command.json,
            original=command.original,
            line=command.start_line,
        )
        if ins.cmd == "ARG" and not stages:
            name, _, default = ins.value[0].partition("=")
            args[name] = default
            continue
        if ins.cmd == "FROM":
            base = _expand(ins.value[0], args)
            name = ins.value[2] if len(ins.value) >= 3 and ins.value[1].upper() == "AS" else None
            stages.append(Stage(base=base, name=name))
            continue
        if not stages:
            raise CheckError(f"line {ins.line}: {ins.cmd} before the first FROM")
        stages[-1].instructions.append(ins)
    return stages


def _expand(text: str, env: dict[str, str]) -> str:
    """Docker's $VAR / ${VAR} substitution (no modifiers are used in our Dockerfile)."""

    def repl(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return env.get(name, "")

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", repl, text)


def env_pairs(ins: Instruction) -> list[tuple[str, str]]:
    """ENV instruction values as (name, raw value) pairs."""
    values = list(ins.value)
    return [(values[i], values[i + 1]) for i in range(0, len(values), 2)]


def env_value(raw: str, env: dict[str, str]) -> str:
    """An ENV value as Docker sees it: quotes removed, variables expanded outside '...'."""
    if len(raw) >= 2 and raw[0] == raw[-1] == "'":
        return raw[1:-1]
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        raw = raw[1:-1]
    return _expand(raw, env)


def run_text(ins: Instruction) -> str:
    """The shell text of a RUN instruction (shell form) or its argv joined (exec form)."""
    return " ".join(shlex.quote(v) for v in ins.value) if ins.json else ins.value[0]


def is_system_step(command: str) -> bool:
    first = command.strip().split()[0] if command.strip() else ""
    return first in SYSTEM_COMMANDS or bool(INSTALL_WITH_OWNER.match(command.strip()))


# ------------------------------------------------------------------------------------
# .dockerignore
# ------------------------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax: filepath.Match plus `**` for any number of directories."""
    out = ""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
                out += "(?:.*/)?"
            else:
                out += ".*"
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            end = pattern.find("]", i)
            out += fnmatch.translate(pattern[i : end + 1])[4:-3] if end > 0 else re.escape(c)
            i = end if end > 0 else i
        else:
            out += re.escape(c)
        i += 1
    return re.compile(f"^{out}$")


Rules = list[tuple[bool, re.Pattern[str], str]]  # (is an exception, regex, pattern)


def load_dockerignore(context: Path) -> Rules:
    rules: Rules = []
    path = context / ".dockerignore"
    if not path.exists():
        return rules
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        pattern = os.path.normpath(line[1:] if exception else line).lstrip("/")
        rules.append((exception, _pattern_regex(pattern), pattern))
    return rules


def is_ignored(relpath: str, rules: Rules) -> bool:
    """Last matching rule wins; a pattern matching a parent directory matches the file."""
    parts = relpath.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for exception, regex, _ in rules:
        if any(regex.match(candidate) for candidate in candidates):
            ignored = not exception
    return ignored


def _prunable(reldir: str, rules: Rules) -> bool:
    """An ignored directory that no exception pattern can reach into."""
    reachable = any(
        exception and (pattern.startswith(reldir + "/") or pattern.startswith("*"))
        for exception, _, pattern in rules
    )
    return not reachable and is_ignored(reldir, rules)


def context_files(context: Path) -> list[str]:
    """Relative paths of the files Docker would send as the build context."""
    rules = load_dockerignore(context)
    files: list[str] = []
    for root, dirs, names in os.walk(context):
        rel_root = os.path.relpath(root, context)
        prefix = "" if rel_root == "." else f"{rel_root}/"
        dirs[:] = sorted(d for d in dirs if not _prunable(prefix + d, rules))
        for name in sorted(names):
            rel = name if rel_root == "." else f"{rel_root}/{name}"
            if not is_ignored(rel, rules):
                files.append(rel)
    return files


# ------------------------------------------------------------------------------------
# Replaying the stages
# ------------------------------------------------------------------------------------


@dataclass
class Replay:
    context: Path
    work: Path
    log: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.paths = {"/opt/venv": str(self.work / "venv"), "/app": str(self.work / "app")}
        shim = self.work / "bin"
        shim.mkdir(parents=True, exist_ok=True)
        # The base image's `python`: this interpreter (checked to be the same minor).
        (shim / "python").symlink_to(sys.executable)
        (shim / "python3").symlink_to(sys.executable)
        self.base_env = {
            "PATH": f"{shim}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.work / "home"),
            "LANG": "C.UTF-8",
        }
        (self.work / "home").mkdir(exist_ok=True)

    def map_paths(self, text: str) -> str:
        for image_path, local_path in self.paths.items():
            text = re.sub(rf"(?<![\w/.-]){re.escape(image_path)}(?=/|\b|$)", local_path, text)
        return text

    def stage(self, stage: Stage, env: dict[str, str]) -> tuple[dict[str, str], Path]:
        workdir = self.work / "root"
        workdir.mkdir(exist_ok=True)
        for ins in stage.instructions:
            if ins.cmd == "ENV":
                for name, raw in env_pairs(ins):
                    env[name] = self.map_paths(env_value(raw, env))
            elif ins.cmd == "WORKDIR":
                workdir = Path(self.map_paths(ins.value[0]))
                workdir.mkdir(parents=True, exist_ok=True)
            elif ins.cmd == "COPY":
                self.copy(ins, workdir)
            elif ins.cmd == "RUN":
                self.run(ins, env, workdir)
            elif ins.cmd in {"ARG", "EXPOSE", "USER", "HEALTHCHECK", "CMD", "LABEL", "ENTRYPOINT"}:
                continue
            else:
                raise CheckError(f"line {ins.line}: {ins.cmd} is not handled by this check")
        return env, workdir

    def copy(self, ins: Instruction, workdir: Path) -> None:
        if any(flag.startswith("--from=") for flag in ins.flags):
            # The runtime stage copies the builder's venv and /app to the same paths:
            # they are the same mapped directories here.
            sources = [self.map_paths(v) for v in ins.value[:-1]]
            dest = self.map_paths(ins.value[-1])
            if any(os.path.normpath(src) != os.path.normpath(dest) for src in sources):
                raise CheckError(f"line {ins.line}: COPY --from to another path is not replayed")
            self.log.append(f"line {ins.line}: {ins.original} (same directories here)")
            return
        *sources, dest = ins.value
        target = Path(self.map_paths(dest))
        if not target.is_absolute():
            target = workdir / target
        files = context_files(self.context)
        for src in sources:
            src = os.path.normpath(src)
            matched = [f for f in files if src == "." or f == src or f.startswith(src + "/")]
            if not matched:
                raise CheckError(
                    f"line {ins.line}: COPY source {src!r} is not in the build context"
                )
            for rel in matched:
                inner = rel if src == "." else os.path.relpath(rel, os.path.dirname(src) or ".")
                out = target / inner
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(self.context / rel, out, follow_symlinks=False)
        self.log.append(f"line {ins.line}: {ins.original}")

    def run(self, ins: Instruction, env: dict[str, str], workdir: Path) -> None:
        command = run_text(ins)
        if is_system_step(command):
            self.skipped.append(f"line {ins.line}: {command.splitlines()[0]}")
            return
        mapped = self.map_paths(command)
        started = time.monotonic()
        result = subprocess.run(
            ["/bin/sh", "-c", mapped],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        took = time.monotonic() - started
        if result.returncode != 0:
            raise CheckError(
                f"line {ins.line}: RUN {command!r} exited {result.returncode}\n"
                f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-4000:]}"
            )
        self.log.append(f"line {ins.line}: RUN {command.splitlines()[0]} ({took:.0f}s)")


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, timeout: float = 3) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback http only
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _instruction(stage: Stage, cmd: str) -> Instruction:
    found = [ins for ins in stage.instructions if ins.cmd == cmd]
    if not found:
        raise CheckError(f"the final stage has no {cmd}")
    return found[-1]


def start_cmd(replay: Replay, stage: Stage, env: dict[str, str], workdir: Path) -> list[str]:
    cmd = _instruction(stage, "CMD")
    if not cmd.json:
        raise CheckError("CMD must be in exec form")
    argv = [replay.map_paths(v) for v in cmd.value]
    if "--port" not in argv:
        raise CheckError("CMD does not name --port")
    port = _free_port()
    argv[argv.index("--port") + 1] = str(port)
    if "--host" in argv:
        # Listen on loopback only: nothing outside this machine should reach the check.
        argv[argv.index("--host") + 1] = "127.0.0.1"
    env.update(RUNTIME_ENV)
    env["PORT"] = str(port)
    env["METRICS_PORT"] = str(_free_port())
    log = replay.work / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise CheckError(
                    f"{' '.join(argv)} exited {process.returncode}:\n{log.read_text()[-4000:]}"
                )
            with contextlib.suppress(OSError):
                status, _ = _get(f"http://127.0.0.1:{port}/healthz")
                if status == 200:
                    break
            time.sleep(0.5)
        if status != 200:
            raise CheckError(
                f"GET /healthz never answered 200 (last: {status}):\n{log.read_text()[-4000:]}"
            )
        replay.log.append(f"CMD {' '.join(cmd.value)}: GET /healthz -> 200 (port {port})")

        health = _instruction(stage, "HEALTHCHECK")
        health_argv = (
            [replay.map_paths(v) for v in health.value[1:]] if health.value[0] == "CMD" else None
        )
        if not health_argv:
            raise CheckError("HEALTHCHECK must be `CMD [...]` in exec form")
        result = subprocess.run(
            health_argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=30
        )
        if result.returncode != 0:
            raise CheckError(
                f"HEALTHCHECK {health_argv} exited {result.returncode}: {result.stderr}"
            )
        replay.log.append(f"HEALTHCHECK {' '.join(health.value[1:])}: exit 0")

        static_url = subprocess.run(
            [
                "python",
                "-c",
                "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'todo_project.settings');"
                "from django.conf import settings; print(settings.STATIC_URL)",
            ],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if static_url.returncode != 0:
            raise CheckError(f"reading STATIC_URL failed: {static_url.stderr[-2000:]}")
        prefix = "/" + static_url.stdout.strip().strip("/") + "/"
        asset = "admin/css/base.css"
        if not (workdir / "staticfiles" / asset).exists():
            raise CheckError(f"collectstatic did not produce staticfiles/{asset}")
        status, _ = _get(f"http://127.0.0.1:{port}{prefix}{asset}")
        if status != 200:
            raise CheckError(
                f"GET {prefix}{asset} answered {status}: collected files are not served"
            )
        replay.log.append(f"GET {prefix}{asset} -> 200 (collected static file served with DEBUG=0)")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return argv


def check(
    context: Path = REPO_ROOT, dockerfile: Path = DEFAULT_DOCKERFILE, keep: bool = False
) -> Replay:
    stages = parse(dockerfile)
    if len(stages) != 2:
        raise CheckError(f"expected a builder and a runtime stage, found {len(stages)}")
    builder, runtime = stages
    image_python = re.search(r"python:(\d+\.\d+)", runtime.base)
    if not image_python:
        raise CheckError(f"the runtime base {runtime.base!r} is not a python image")
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if image_python.group(1) != here:
        raise CheckError(f"the image uses Python {image_python.group(1)}, this check runs {here}")

    work = Path(tempfile.mkdtemp(prefix="check-dockerfile-"))
    replay = Replay(context=context, work=work)
    try:
        env, _ = replay.stage(builder, dict(replay.base_env))
        env, workdir = replay.stage(runtime, dict(replay.base_env))
        start_cmd(replay, runtime, env, workdir)
    finally:
        if keep:
            replay.log.append(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return replay


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--context", type=Path, default=REPO_ROOT)
    parser.add_argument("--dockerfile", type=Path, default=DEFAULT_DOCKERFILE)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    options = parser.parse_args(argv)
    try:
        replay = check(options.context.resolve(), options.dockerfile.resolve(), options.keep)
    except CheckError as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 1
    print(json.dumps({"ran": replay.log, "skipped (system steps)": replay.skipped}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
