"""``manage.py doctor``: what this deployment depends on, checked one by one, each with the fix
an operator would apply. The container's readiness (``/readyz``) does not use it: a probe must
stay cheap and must not fail a pod for a dependency another process owns."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.db import DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor

from events import conf
from events.health import event_health

# The alerting rules' thresholds (deploy/prometheus/alerts.yaml), so doctor and the alerts agree.
CONSUMER_LAG_LIMIT = 1000
RELAY_AGE_LIMIT_SECONDS = 300
DEAD_LETTERS_PENDING_LIMIT = 10
HTTP_TIMEOUT_SECONDS = 3.0
MANAGE = ".venv/bin/python manage.py"

OK, FAIL, SKIP = "OK", "FAIL", "SKIP"


@dataclass(frozen=True)
class Finding:
    status: str  # OK, FAIL, or SKIP (not checked: what it needs failed or is not configured)
    check: str
    detail: str
    fix: str = ""


def run_checks() -> list[Finding]:
    """Every check, in the order an operator fixes things: the database first, since the
    migrations and the consumers' positions are read from it."""
    findings = [check_database()]
    database_up = findings[0].status == OK
    findings.append(check_migrations() if database_up else _needs_database("migrations"))
    findings.append(check_redis())
    findings.extend(check_dapr())
    findings.extend(check_secrets())
    findings.extend(check_events() if database_up else [_needs_database("events")])
    return findings


def _needs_database(check: str) -> Finding:
    return Finding(SKIP, check, "not checked: the database is unreachable")


def _database_place() -> str:
    """Where the database is, without its password."""
    params = connections["default"].settings_dict
    host = params.get("HOST") or "local socket"
    port = f":{params['PORT']}" if params.get("PORT") else ""
    return f"{host}{port}/{params.get('NAME')}"


def check_database() -> Finding:
    place = _database_place()
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SHOW server_version")
            (version,) = cursor.fetchone()
    except DatabaseError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        fix = (
            "start PostgreSQL or correct DATABASE_URL (host, port, user, password, database)"
            if settings.DATABASE_URL
            else "start the server with `make run` (it starts the embedded PostgreSQL)"
        )
        return Finding(FAIL, "database", f"cannot connect to {place}: {reason}", fix)
    return Finding(OK, "database", f"PostgreSQL {version} at {place}")


def check_migrations() -> Finding:
    connection = connections["default"]
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        names = ", ".join(f"{m.app_label}.{m.name}" for m, _ in plan[:5])
        more = f" and {len(plan) - 5} more" if len(plan) > 5 else ""
        return Finding(
            FAIL,
            "migrations",
            f"{len(plan)} not applied: {names}{more}",
            f"run `{MANAGE} migrate` (the chart's migrate Job does it on upgrade)",
        )
    return Finding(OK, "migrations", "all applied")


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")).geturl()


def check_redis() -> Finding:
    if not settings.REDIS_URL:
        return Finding(SKIP, "redis", "REDIS_URL is not set (in-memory channel layer and cache)")
    import redis

    shown = _without_password(settings.REDIS_URL)
    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL,
            socket_connect_timeout=HTTP_TIMEOUT_SECONDS,
            socket_timeout=HTTP_TIMEOUT_SECONDS,
        )
        client.ping()
        client.close()
    except redis.RedisError as exc:
        return Finding(
            FAIL,
            "redis",
            f"cannot reach {shown}: {exc}",
            "start Redis or correct REDIS_URL (redis://[:password@]host:6379/0)",
        )
    return Finding(OK, "redis", f"answers at {shown}")


def dapr_http_endpoint() -> str:
    """The sidecar's HTTP API as the Dapr SDK finds it (``DAPR_HTTP_ENDPOINT``, or
    ``DAPR_RUNTIME_HOST`` and ``DAPR_HTTP_PORT``), without the API version."""
    from dapr.clients.http.helpers import get_api_url
    from dapr.conf import settings as dapr_settings

    return get_api_url().removesuffix(f"/{dapr_settings.DAPR_API_VERSION}")


def check_dapr() -> list[Finding]:
    if conf.get("EVENTS_BROKER") != "dapr":
        return [Finding(SKIP, "dapr", "the embedded broker is in use (no sidecar needed)")]
    base = dapr_http_endpoint()
    token = settings.DAPR_API_TOKEN
    headers = {"dapr-api-token": token} if token else {}
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=HTTP_TIMEOUT_SECONDS) as http:
            health = http.get("/v1.0/healthz")
            metadata = http.get("/v1.0/metadata") if health.is_success else None
    except httpx.HTTPError as exc:
        return [
            Finding(
                FAIL,
                "dapr sidecar",
                f"no answer at {base}/v1.0/healthz: {exc}",
                "check that the sidecar runs (dapr.io/enabled on the pod, or `dapr run`) and "
                "that DAPR_HTTP_ENDPOINT or DAPR_HTTP_PORT point at it",
            )
        ]
    if not health.is_success:
        return [
            Finding(
                FAIL,
                "dapr sidecar",
                f"{base}/v1.0/healthz answered {health.status_code}",
                "look at the sidecar's log (kubectl logs <pod> -c daprd): a component that "
                "fails to load keeps it unhealthy",
            )
        ]
    sidecar = Finding(OK, "dapr sidecar", f"healthy at {base}")
    if metadata is None or not metadata.is_success:
        status = metadata.status_code if metadata is not None else "nothing"
        return [
            sidecar,
            Finding(
                FAIL,
                "dapr components",
                f"{base}/v1.0/metadata answered {status}",
                "check DAPR_API_TOKEN: the sidecar refuses calls without its token",
            ),
        ]
    return [sidecar, *_check_components(metadata.json())]


def _check_components(metadata: dict) -> list[Finding]:
    """The pub/sub component the relay and the consumers publish and subscribe through, and
    the scheduler the Jobs API (reminders) needs."""
    findings = []
    name = conf.get("DAPR_PUBSUB_NAME")
    components = {c.get("name"): c.get("type", "") for c in metadata.get("components") or []}
    kind = components.get(name, "")
    if kind.startswith("pubsub."):
        findings.append(Finding(OK, "dapr pubsub", f"component {name!r} ({kind})"))
    else:
        loaded = ", ".join(f"{n} ({t})" for n, t in sorted(components.items())) or "none"
        findings.append(
            Finding(
                FAIL,
                "dapr pubsub",
                f"no pub/sub component named {name!r}; loaded: {loaded}",
                "apply deploy/dapr/pubsub-kafka/pubsub.yaml (or the chart's components), or set "
                "DAPR_PUBSUB_NAME to the component's name",
            )
        )
    scheduler = (metadata.get("scheduler") or {}).get("connected_addresses") or []
    if scheduler:
        findings.append(Finding(OK, "dapr jobs", f"scheduler connected ({', '.join(scheduler)})"))
    else:
        findings.append(
            Finding(
                FAIL,
                "dapr jobs",
                "the sidecar reports no scheduler connection; reminders are scheduled with the "
                "Jobs API, which needs it",
                "install Dapr 1.15 or later with its scheduler (`dapr init`, or the dapr Helm "
                "chart's dapr-scheduler-server) and restart the pod",
            )
        )
    return findings


def check_secrets() -> list[Finding]:
    findings = []
    generated = bool(settings.LOCAL_SECRETS_FILE)
    where = f" (generated, in {settings.LOCAL_SECRETS_FILE})" if generated else ""
    if settings.SECRET_KEY:
        findings.append(Finding(OK, "SECRET_KEY", f"set{where}"))
    else:
        findings.append(
            Finding(FAIL, "SECRET_KEY", "not set", "set SECRET_KEY (50 random characters)")
        )
    if settings.JWT_JWKS_URL:
        findings.append(Finding(OK, "JWT keys", f"from the JWKS URL {settings.JWT_JWKS_URL}"))
    elif settings.JWT_SECRET:
        findings.append(Finding(OK, "JWT keys", f"JWT_SECRET set{where}"))
    else:
        findings.append(
            Finding(
                FAIL,
                "JWT keys",
                "neither JWT_SECRET nor JWT_JWKS_URL is set: no token can be checked",
                "set JWT_SECRET to the frontend's Better Auth secret (32 bytes or more), or "
                "JWT_JWKS_URL to its JWKS endpoint",
            )
        )
    if conf.get("EVENTS_BROKER") == "dapr" and settings.REMINDER_JOBS_OWNER:
        if settings.APP_API_TOKEN:
            findings.append(Finding(OK, "APP_API_TOKEN", "set (Dapr's job callbacks)"))
        else:
            findings.append(
                Finding(
                    FAIL,
                    "APP_API_TOKEN",
                    "not set: every job callback (/job/<name>) is refused, reminders never fire",
                    "set it to the sidecar's app token (dapr.io/app-token-secret)",
                )
            )
    return findings


def check_events() -> list[Finding]:
    health = event_health()
    findings = [_relay_finding(health.relay_backlog, health.relay_oldest_age_seconds)]
    for position in health.consumers:
        findings.append(_consumer_finding(position.consumer, position.lag_events))
    pending = health.dead_letters_pending
    if pending > DEAD_LETTERS_PENDING_LIMIT:
        findings.append(
            Finding(
                FAIL,
                "dead letters",
                f"{pending} wait for an operator",
                "read their errors in /admin/events/deadletter/, fix the cause, then replay "
                "them (docs/operations.md)",
            )
        )
    else:
        findings.append(Finding(OK, "dead letters", f"{pending} pending"))
    return findings


def _relay_finding(backlog: int, oldest: float | None) -> Finding:
    if oldest is not None and oldest > RELAY_AGE_LIMIT_SECONDS:
        return Finding(
            FAIL,
            "relay",
            f"{backlog} events unsent, the oldest {oldest:.0f} s old",
            f"start the relay (`{MANAGE} relay_events`, the chart's relay Deployment) and "
            "check its log for publish errors",
        )
    return Finding(OK, "relay", f"{backlog} events unsent")


def _consumer_finding(name: str, lag: int | None) -> Finding:
    check = f"consumer {name}"
    if lag is None:
        return Finding(OK, check, "position kept by the broker (see the Kafka consumer group)")
    if lag > CONSUMER_LAG_LIMIT:
        return Finding(
            FAIL,
            check,
            f"{lag} events behind",
            f"make sure it runs (`{MANAGE} run_consumer {name}`, or `make run` in the "
            "embedded mode) and look for retries and dead letters in its log",
        )
    return Finding(OK, check, f"{lag} events behind")


def render(findings: list[Finding]) -> Iterator[str]:
    width = max(len(finding.check) for finding in findings)
    for finding in findings:
        yield f"{finding.status:<4}  {finding.check:<{width}}  {finding.detail}"
        if finding.fix:
            yield f"{'':<4}  {'':<{width}}  fix: {finding.fix}"
