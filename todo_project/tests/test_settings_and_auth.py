import json
import os
import secrets
import stat
import subprocess
import sys
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command

from core.auth import AuthError, verify_token
from core.env import LocalSecrets, database_from_url, mandatory_secret
from realtime import handshake
from todo_project.testing import hs256_with_public_key, jwks_keys

# Never connected to: importing the settings opens no connection.
UNREACHABLE_DATABASE = "postgresql://nobody@127.0.0.1:9/nowhere"
# The development secrets earlier versions fell back to; nothing may accept them.
OLD_CONSTANT_SECRETS = (
    "dev-only-jwt-secret-change-me-0000000000",
    "dev-only-secret-key-not-for-production-use-000000",
)
# Prints what a process started with these settings sees, as JSON; argv holds secrets to try.
_REPORT = """
import json, sys, time, django, jwt
django.setup()
from django.conf import settings as s
from core.auth import AuthError, verify_token

def accepted(secret):
    token = jwt.encode({"sub": "root", "exp": int(time.time()) + 60}, secret, algorithm="HS256")
    try:
        verify_token(token)
    except AuthError:
        return False
    return True

print(json.dumps({
    "DEBUG": s.DEBUG,
    "SECRET_KEY": s.SECRET_KEY,
    "JWT_SECRET": s.JWT_SECRET,
    "LOCAL_SECRETS_FILE": str(s.LOCAL_SECRETS_FILE) if s.LOCAL_SECRETS_FILE else None,
    "LOG_FORMAT": s.LOG_FORMAT,
    "SECURE_HSTS_SECONDS": getattr(s, "SECURE_HSTS_SECONDS", 0),
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": getattr(s, "SECURE_HSTS_INCLUDE_SUBDOMAINS", False),
    "SECURE_HSTS_PRELOAD": getattr(s, "SECURE_HSTS_PRELOAD", False),
    "SESSION_COOKIE_SECURE": s.SESSION_COOKIE_SECURE,
    "CSRF_COOKIE_SECURE": s.CSRF_COOKIE_SECURE,
    "CORS_ALLOWED_ORIGINS": s.CORS_ALLOWED_ORIGINS,
    "AXES_FAILURE_LIMIT": s.AXES_FAILURE_LIMIT,
    "AXES_COOLOFF_SECONDS": s.AXES_COOLOFF_TIME.total_seconds(),
    "old_constants_accepted": [accepted(secret) for secret in sys.argv[1:]],
}))
"""


def _run(args: list[str], env: dict) -> subprocess.CompletedProcess:
    """A fresh process with only ``env`` besides what Python needs to run (no DEBUG, no
    secrets, no broker unless given)."""
    clean = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    return subprocess.run(
        args,
        env={**clean, "DJANGO_SETTINGS_MODULE": "todo_project.settings", **env},
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _run_settings(env: dict) -> subprocess.CompletedProcess:
    return _run([sys.executable, "-c", _REPORT, *OLD_CONSTANT_SECRETS], env)


def _report(env: dict) -> dict:
    result = _run_settings(env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def _production(**env: str) -> dict:
    return {
        "DATABASE_URL": UNREACHABLE_DATABASE,
        "SECRET_KEY": secrets.token_urlsafe(48),
        "JWT_SECRET": secrets.token_urlsafe(48),
        **env,
    }


def test_production_without_secret_key_stops_with_a_clear_message():
    env = _production()
    del env["SECRET_KEY"]
    result = _run_settings(env)
    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY is not set. It is required when DEBUG=0" in (
        result.stderr
    )


def test_production_without_jwt_secret_or_jwks_stops():
    env = _production()
    del env["JWT_SECRET"]
    result = _run_settings(env)
    assert result.returncode != 0
    assert "ImproperlyConfigured: JWT_SECRET is not set" in result.stderr


def test_a_debug_unset_container_start_is_production_and_accepts_no_constant():
    # given the container's environment: a database URL and secrets, DEBUG not mentioned
    env = _production()

    # when the settings load
    seen = _report(env)

    # then DEBUG is off, nothing is generated, logs are JSON, and a token signed with any
    # constant the code once had is refused
    assert seen["DEBUG"] is False
    assert seen["LOCAL_SECRETS_FILE"] is None
    assert (seen["SECRET_KEY"], seen["JWT_SECRET"]) == (env["SECRET_KEY"], env["JWT_SECRET"])
    assert seen["LOG_FORMAT"] == "json"
    assert seen["old_constants_accepted"] == [False, False]


@pytest.mark.parametrize("secret", ["s" * 31, "é" * 15])
def test_a_short_jwt_secret_stops_a_production_start(secret):
    result = _run_settings(_production(JWT_SECRET=secret))
    assert result.returncode != 0
    assert (
        f"ImproperlyConfigured: JWT_SECRET is {len(secret.encode())} bytes; it must be at "
        "least 32 bytes when DEBUG=0"
    ) in result.stderr


def test_a_jwt_secret_of_32_bytes_is_enough_and_debug_may_use_a_shorter_one():
    assert _report(_production(JWT_SECRET="s" * 32))["JWT_SECRET"] == "s" * 32
    assert _report(_production(JWT_SECRET="short", DEBUG="1"))["JWT_SECRET"] == "short"


def test_the_dapr_web_process_without_an_app_token_stops():
    # given the Dapr broker, DEBUG off and no APP_API_TOKEN
    result = _run_settings(_production(EVENTS_BROKER="dapr"))

    # then the process that would answer /job/<name> refuses to start
    assert result.returncode != 0
    assert "ImproperlyConfigured: APP_API_TOKEN is not set" in result.stderr


@pytest.mark.parametrize(
    "extra",
    [{"APP_API_TOKEN": "t" * 40}, {"REMINDER_JOBS_OWNER": "0"}, {"DEBUG": "1"}],
    ids=["with-token", "relay-or-consumer", "debug"],
)
def test_dapr_processes_start_with_a_token_or_without_job_callbacks(extra):
    assert _run_settings(_production(EVENTS_BROKER="dapr", **extra)).returncode == 0


def test_production_headers_and_limits_come_from_the_environment():
    seen = _report(
        _production(
            SECURE_HSTS_SECONDS="600",
            SECURE_HSTS_INCLUDE_SUBDOMAINS="1",
            SECURE_HSTS_PRELOAD="1",
            CORS_ALLOWED_ORIGINS="https://app.example.com, https://staging.example.com",
            ADMIN_LOGIN_FAILURE_LIMIT="3",
            ADMIN_LOGIN_COOLOFF_MINUTES="60",
        )
    )
    assert (
        seen["SECURE_HSTS_SECONDS"],
        seen["SECURE_HSTS_INCLUDE_SUBDOMAINS"],
        seen["SECURE_HSTS_PRELOAD"],
    ) == (600, True, True)
    assert seen["SESSION_COOKIE_SECURE"] is True and seen["CSRF_COOKIE_SECURE"] is True
    assert seen["CORS_ALLOWED_ORIGINS"] == [
        "https://app.example.com",
        "https://staging.example.com",
    ]
    assert (seen["AXES_FAILURE_LIMIT"], seen["AXES_COOLOFF_SECONDS"]) == (3, 3600)


def test_production_defaults_hsts_for_a_year_and_no_cors_origin():
    seen = _report(_production())
    assert (
        seen["SECURE_HSTS_SECONDS"],
        seen["SECURE_HSTS_INCLUDE_SUBDOMAINS"],
        seen["SECURE_HSTS_PRELOAD"],
    ) == (31536000, False, False)
    assert seen["CORS_ALLOWED_ORIGINS"] == []
    assert (seen["AXES_FAILURE_LIMIT"], seen["AXES_COOLOFF_SECONDS"]) == (5, 900)


def test_make_run_generates_its_secrets_once_in_a_file_only_its_owner_reads(tmp_path):
    # given a laptop: nothing set at all, the embedded database in a fresh directory
    env = {"EMBEDDED_PG_DIR": str(tmp_path / "pg")}
    secrets_file = tmp_path / "secrets.json"

    # when the settings load
    first = _report(env)

    # then DEBUG is off, text logs, and both secrets were generated beside the data, 0600
    assert first["DEBUG"] is False
    assert first["LOG_FORMAT"] == "text"
    assert first["LOCAL_SECRETS_FILE"] == str(secrets_file)
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    stored = json.loads(secrets_file.read_text())
    assert stored == {"SECRET_KEY": first["SECRET_KEY"], "JWT_SECRET": first["JWT_SECRET"]}
    assert len(first["SECRET_KEY"]) >= 50 and len(first["JWT_SECRET"].encode()) >= 32
    assert first["old_constants_accepted"] == [False, False]

    # and `manage.py issue_token` in another shell signs with the same secret
    issued = _run([sys.executable, "manage.py", "issue_token", "demo"], env)
    assert issued.returncode == 0, issued.stderr
    claims = jwt.decode(issued.stdout.strip(), first["JWT_SECRET"], algorithms=["HS256"])
    assert claims["sub"] == "demo"
    assert json.loads(secrets_file.read_text()) == stored


def test_debug_with_a_database_url_uses_the_same_generated_file(tmp_path):
    env = {"DEBUG": "1", "DATABASE_URL": UNREACHABLE_DATABASE}
    env["EMBEDDED_PG_DIR"] = str(tmp_path / "pg")
    first, second = _report(env), _report(env)
    assert first["DEBUG"] is True
    assert (first["SECRET_KEY"], first["JWT_SECRET"]) == (
        second["SECRET_KEY"],
        second["JWT_SECRET"],
    )
    assert stat.S_IMODE((tmp_path / "secrets.json").stat().st_mode) == 0o600
    assert not (tmp_path / "pg").exists(), "no embedded database was started"


def test_processes_that_start_together_share_one_generated_secrets_file(tmp_path):
    # given four processes that all find no secrets file and generate one at the same moment
    path = tmp_path / "data" / "secrets.json"
    start_at = time.time() + 1.5
    code = (
        "import json, sys, time\n"
        "from pathlib import Path\n"
        "from core.env import LocalSecrets\n"
        f"time.sleep(max(0, {start_at} - time.time()))\n"
        f"local = LocalSecrets(Path({str(path)!r}))\n"
        "print(json.dumps([local.get('SECRET_KEY'), local.get('JWT_SECRET')]))\n"
    )
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=settings.BASE_DIR
        )
        for _ in range(4)
    ]
    outputs = [json.loads(racer.communicate(timeout=60)[0]) for racer in racers]

    # then they all use the same secrets, the ones in the one file left behind
    stored = json.loads(path.read_text())
    assert outputs == [[stored["SECRET_KEY"], stored["JWT_SECRET"]]] * 4
    assert [p.name for p in path.parent.iterdir()] == ["secrets.json"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_secrets_file_other_users_can_read_is_refused(tmp_path):
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps({"SECRET_KEY": "k" * 64, "JWT_SECRET": "j" * 64}))
    path.chmod(0o644)
    with pytest.raises(ImproperlyConfigured, match=r"readable by other users \(mode 644\)"):
        LocalSecrets(path).get("JWT_SECRET")


def test_a_secret_missing_from_the_environment_is_never_a_constant(monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY is not set"):
        mandatory_secret("SECRET_KEY", local=None)


@pytest.mark.django_db
def test_hsts_is_sent_on_https_responses_only(client):
    secure = client.get("/healthz", secure=True)
    assert secure.status_code == 200
    assert secure["Strict-Transport-Security"] == "max-age=31536000"
    assert "Strict-Transport-Security" not in client.get("/healthz")
    behind_proxy = client.get("/healthz", HTTP_X_FORWARDED_PROTO="https")
    assert behind_proxy["Strict-Transport-Security"] == "max-age=31536000"


APP = "https://app.example.com"


@pytest.fixture
def cors(settings):
    settings.CORS_ALLOWED_ORIGINS = [APP]


def preflight(client, path: str, origin: str = APP, method: str = "POST"):
    return client.options(
        path,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD=method,
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type, if-match, idempotency-key",
    )


@pytest.mark.django_db
@pytest.mark.parametrize(("path", "method"), [("/api/tasks/", "POST"), ("/api/tasks/7/", "PATCH")])
def test_a_cors_preflight_from_an_allowed_origin_is_answered_without_a_token(
    client, cors, path, method
):
    # when a browser on the frontend's origin asks before a credentialed write (no token yet)
    response = preflight(client, path, method=method)

    # then the answer is 200 with the CORS grant, before any authentication runs
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == APP
    allowed_headers = {h.strip() for h in response["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "if-match", "idempotency-key"} <= allowed_headers
    assert method in response["Access-Control-Allow-Methods"]
    assert response["Access-Control-Max-Age"] == "3600"


@pytest.mark.django_db
def test_a_cors_preflight_from_another_origin_gets_no_grant(client, cors):
    response = preflight(client, "/api/tasks/", origin="https://evil.example")
    assert "Access-Control-Allow-Origin" not in response
    assert "Access-Control-Allow-Headers" not in response


@pytest.mark.django_db
def test_cors_covers_the_api_only(client, cors):
    assert "Access-Control-Allow-Origin" not in preflight(client, "/admin/login/")
    assert "Access-Control-Allow-Origin" not in client.get("/healthz", HTTP_ORIGIN=APP)


@pytest.mark.django_db
def test_an_api_answer_to_an_allowed_origin_exposes_the_etag(api, cors, make_task):
    task = make_task()
    response = api.get(f"/api/tasks/{task.id}/", HTTP_ORIGIN=APP)
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == APP
    exposed = {h.strip().lower() for h in response["Access-Control-Expose-Headers"].split(",")}
    assert {"etag", "retry-after"} <= exposed
    assert "ETag" in response


def test_a_cors_origin_may_open_the_websocket(settings):
    settings.CORS_ALLOWED_ORIGINS = [APP]
    settings.REALTIME_ALLOWED_ORIGINS = []
    settings.CSRF_TRUSTED_ORIGINS = []

    def scope(origin: str) -> dict:
        return {"type": "websocket", "headers": [(b"origin", origin.encode())]}

    assert handshake.origin_allowed(scope(APP))
    assert not handshake.origin_allowed(scope("https://evil.example"))


def test_readyz_logs_the_database_error_and_answers_a_generic_one():
    # given a server whose database socket directory does not exist
    env = {
        **os.environ,
        "DATABASE_URL": "postgresql://postgres@/todo?host=/nonexistent/todo-sockets",
        "LOG_FORMAT": "text",
        "DJANGO_SETTINGS_MODULE": "todo_project.settings",
    }
    code = (
        "import django; django.setup()\n"
        "from django.test import Client\n"
        "response = Client().get('/readyz')\n"
        "print(response.status_code, response.content.decode())\n"
    )

    # when the readiness probe asks
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )

    # then the answer names no host or path; the log has the detail
    assert result.returncode == 0, result.stderr
    status, body = result.stdout.strip().splitlines()[-1].split(" ", 1)
    assert (int(status), json.loads(body)) == (
        503,
        {"status": "unavailable", "database": "unavailable"},
    )
    assert "readiness check: the database is unavailable" in result.stderr
    assert "/nonexistent/todo-sockets" in result.stderr


def test_neon_style_database_url_is_understood():
    cfg = database_from_url(
        "postgresql://alice:p%40ss@ep-cool-1.eu.aws.neon.tech:5433/todo?sslmode=require"
    )
    assert cfg["HOST"] == "ep-cool-1.eu.aws.neon.tech"
    assert cfg["PORT"] == "5433"
    assert cfg["USER"] == "alice" and cfg["PASSWORD"] == "p@ss"
    assert cfg["NAME"] == "todo"
    assert cfg["OPTIONS"] == {"sslmode": "require"}


def test_issue_token_prints_a_token_the_api_accepts(capsys):
    call_command("issue_token", "alice", "--ttl", "2h")
    token = capsys.readouterr().out.strip()
    user = verify_token(token)
    assert user.id == "alice"
    assert 7100 < user.claims["exp"] - user.claims["iat"] <= 7200


@pytest.mark.parametrize("user_id", ["a\x00b", "line\nbreak", "x" * 129, "   "])
def test_issue_token_refuses_a_user_id_no_token_check_would_accept(user_id, capsys):
    with pytest.raises(CommandError, match="user_id must be"):
        call_command("issue_token", user_id)
    assert capsys.readouterr().out == ""


def test_rs256_tokens_from_a_jwks_url_are_accepted_and_hs256_confusion_refused(settings):
    now = int(time.time())
    claims = {"sub": "bob", "iat": now, "exp": now + 60}
    settings.JWT_SECRET = ""
    with jwks_keys(settings) as key:
        good = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})
        assert verify_token(good).id == "bob"
        # HS256 is refused outright once keys come from a JWKS URL, also when signed with the
        # public key itself: the classic confusion attack.
        with pytest.raises(AuthError):
            verify_token(
                jwt.encode(
                    claims,
                    "public-key-text-as-secret-000000000",
                    algorithm="HS256",
                    headers={"kid": "k1"},
                )
            )
        with pytest.raises(AuthError):
            verify_token(hs256_with_public_key(claims, key))
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        with pytest.raises(AuthError):
            verify_token(jwt.encode(claims, other, algorithm="RS256", headers={"kid": "k1"}))


def test_a_token_is_verified_once_until_it_expires(settings, monkeypatch, user_id):
    # given a token that was verified, and a count of the signatures checked from then on
    from core import auth

    settings.JWT_LEEWAY_SECONDS = 0
    secret = settings.JWT_SECRET
    token = auth.issue_token(user_id, ttl_seconds=30)
    assert verify_token(token).id == user_id
    decoded = []
    real_decode = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda *a, **k: decoded.append(1) or real_decode(*a, **k))

    # when it is sent again, then it is not verified again
    assert verify_token(token).id == user_id
    assert decoded == []

    # when the secret changes, then it is verified again, and refused
    settings.JWT_SECRET = secrets.token_urlsafe(48)
    with pytest.raises(AuthError) as refused:
        verify_token(token)
    assert refused.value.code == "invalid_token" and decoded == [1]

    # when its expiry has passed, then it is verified again (and refused by PyJWT's own
    # check, as any expired token is)
    settings.JWT_SECRET = secret
    later = time.time() + 31
    monkeypatch.setattr(auth.time, "time", lambda: later)
    verify_token(token)
    assert decoded == [1, 1]
