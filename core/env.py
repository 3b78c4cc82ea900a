"""Reading the environment: the one place settings come from.

Defaults give the embedded mode (a laptop, one command), which generates its own secrets once
per install. Production (``DATABASE_URL`` set, ``DEBUG`` off) refuses to start without the
secrets it needs.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_secret(name: str, default: str = "") -> str:
    """A secret from ``NAME``, or from the file that ``NAME_FILE`` names (a mounted Secret: the
    value never sits in the process's environment). The file's content is the value, less one
    trailing newline. Both set is an error: which one wins would be a guess."""
    path = os.environ.get(f"{name}_FILE", "").strip()
    if not path:
        return env_str(name, default)
    if os.environ.get(name, "").strip():
        raise ImproperlyConfigured(
            f"Both {name} and {name}_FILE are set; set only one (the file is the safer)."
        )
    try:
        value = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ImproperlyConfigured(f"{name}_FILE={path} cannot be read: {exc}") from None
    value = value.removesuffix("\n").removesuffix("\r")
    if not value.strip():
        raise ImproperlyConfigured(f"{name}_FILE={path} is empty.")
    return value


def mandatory_secret(name: str, *, local: LocalSecrets | None) -> str:
    """A secret from the environment (``env_secret``); without one, from the install's
    ``local`` secrets file when the mode allows it (``local`` is None in production, where a
    missing secret is fatal)."""
    value = env_secret(name)
    if value:
        return value
    if local is not None:
        return local.get(name)
    raise ImproperlyConfigured(
        f"{name} is not set. It is required when DEBUG=0 and DATABASE_URL is set (as {name}, "
        f"or as {name}_FILE, a file that holds it); see .env.example for every setting."
    )


class LocalSecrets:
    """Secrets generated once per install and kept in a JSON file readable by its owner only.

    The file is written complete under a temporary name and linked into place, so a process
    never reads half of it, and of two processes that start at once the first link wins and
    both use its secrets.
    """

    NAMES = ("SECRET_KEY", "JWT_SECRET")

    def __init__(self, path: Path):
        self.path = path
        self._values: dict[str, str] | None = None

    def get(self, name: str) -> str:
        if self._values is None:
            self._values = self._read() if self.path.exists() else self._create()
        value = self._values.get(name)
        if not isinstance(value, str) or not value:
            raise ImproperlyConfigured(
                f"{self.path} has no {name}; delete the file to generate new secrets "
                f"(tokens signed with the old ones stop working), or set {name}."
            )
        return value

    def _read(self) -> dict[str, str]:
        mode = self.path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ImproperlyConfigured(
                f"{self.path} is readable by other users (mode {stat.S_IMODE(mode):o}); "
                f"run: chmod 600 {self.path}"
            )
        try:
            values = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise ImproperlyConfigured(f"{self.path} cannot be read: {exc}") from None
        if not isinstance(values, dict):
            raise ImproperlyConfigured(f"{self.path} must hold a JSON object.")
        return values

    def _create(self) -> dict[str, str]:
        values = {name: secrets.token_urlsafe(48) for name in self.NAMES}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w") as handle:
                json.dump(values, handle)
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(temporary, self.path)
            except FileExistsError:
                return self._read()
        finally:
            temporary.unlink(missing_ok=True)
        return values


def database_from_url(url: str) -> dict:
    """A Django DATABASES entry from a postgres:// URL (Neon style, query options kept)."""
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql", "postgresql+psycopg"}:
        raise ImproperlyConfigured(
            f"DATABASE_URL must be a postgres:// URL, got scheme {parts.scheme!r}"
        )
    options = dict(parse_qsl(parts.query))
    host = parts.hostname or options.pop("host", "")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")) or "postgres",
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": host,
        "PORT": str(parts.port or ""),
        "OPTIONS": options,
    }
