"""deploy/Dockerfile and .dockerignore as data, for the contract checks in test_deploy.py.

The Dockerfile is read with BuildKit's own parser (the `dockerfile` package): its stages, with
ARG defaults substituted in FROM lines, and each instruction as written. `.dockerignore` is read
with Docker's pattern rules (filepath.Match plus `**`, `!` exceptions, the last match wins).
Building and running the image is CI's `image` job (docker build, then /healthz, a static file,
the non-root user and the HEALTHCHECK); hadolint lints the file.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DOCKERFILE = REPO_ROOT / "deploy" / "Dockerfile"


@dataclass
class Instruction:
    cmd: str
    value: tuple[str, ...]
    flags: tuple[str, ...]
    json: bool
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
            raise ValueError(f"line {ins.line}: {ins.cmd} before the first FROM")
        stages[-1].instructions.append(ins)
    return stages


def _expand(text: str, env: dict[str, str]) -> str:
    """Docker's $VAR / ${VAR} substitution (no modifiers are used in our Dockerfile)."""

    def repl(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return env.get(name, "")

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", repl, text)


def run_text(ins: Instruction) -> str:
    """The shell text of a RUN instruction (shell form) or its argv joined (exec form)."""
    return " ".join(shlex.quote(v) for v in ins.value) if ins.json else ins.value[0]


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


Rules = list[tuple[bool, re.Pattern[str]]]  # (is an exception, regex)


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
        rules.append((exception, _pattern_regex(pattern)))
    return rules


def is_ignored(relpath: str, rules: Rules) -> bool:
    """Last matching rule wins; a pattern matching a parent directory matches the file."""
    parts = relpath.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for exception, regex in rules:
        if any(regex.match(candidate) for candidate in candidates):
            ignored = not exception
    return ignored
