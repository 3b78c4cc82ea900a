from django.core.management.base import BaseCommand, CommandError

from core.auth import READ_SCOPE, WRITE_SCOPE, issue_token
from core.users import USER_ID_MAX_LENGTH, is_user_id

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(text: str) -> int:
    text = text.strip().lower()
    unit = text[-1] if text and text[-1] in _UNITS else "s"
    number = text[:-1] if text and text[-1] in _UNITS else text
    if not number.isdigit() or int(number) <= 0:
        raise CommandError(f"--ttl must look like 3600, 30m, 12h or 7d; got {text!r}")
    return int(number) * _UNITS[unit]


def _scope_claim(scope: str | None) -> dict:
    if scope is None:
        return {}
    scopes = scope.split()
    unknown = sorted(set(scopes) - {READ_SCOPE, WRITE_SCOPE})
    if not scopes or unknown:
        raise CommandError(
            f"--scope takes {READ_SCOPE} and/or {WRITE_SCOPE}, space-separated; got {scope!r}"
        )
    return {"scope": " ".join(dict.fromkeys(scopes))}


class Command(BaseCommand):
    help = "Print a JWT for a user id that this deployment accepts (development and tests)."

    def add_arguments(self, parser):
        parser.add_argument("user_id")
        parser.add_argument(
            "--ttl", default="1h", help="Lifetime: seconds, or 30m / 12h / 7d (default 1h)."
        )
        parser.add_argument(
            "--scope",
            help=f"Limit the token, space-separated: {READ_SCOPE} (read only) or {WRITE_SCOPE}. "
            "Without it the token may do everything.",
        )

    def handle(self, *args, user_id: str, ttl: str, scope: str | None = None, **options):
        if not user_id.strip() or not is_user_id(user_id):
            raise CommandError(
                f"user_id must be 1-{USER_ID_MAX_LENGTH} characters, without control characters."
            )
        try:
            token = issue_token(user_id, ttl_seconds=parse_ttl(ttl), extra=_scope_claim(scope))
        except RuntimeError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(token)
