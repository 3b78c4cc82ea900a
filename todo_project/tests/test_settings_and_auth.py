import os
import subprocess
import sys

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings

from todo_project.auth import AuthError, verify_token
from todo_project.env import database_from_url
from todo_project.testing import jwks_endpoint


def _run_settings(env_overrides: dict) -> subprocess.CompletedProcess:
    env = {
        k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "JWT_SECRET", "JWT_JWKS_URL"}
    }
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={**env, "DJANGO_SETTINGS_MODULE": "todo_project.settings"},
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_without_secret_key_stops_with_a_clear_message():
    result = _run_settings({"DEBUG": "0", "JWT_SECRET": "s" * 40})
    assert result.returncode != 0
    assert "SECRET_KEY is not set. It is required when DEBUG=0" in result.stderr


def test_production_without_jwt_secret_or_jwks_stops():
    result = _run_settings({"DEBUG": "0", "SECRET_KEY": "k" * 50})
    assert result.returncode != 0
    assert "JWT_SECRET is not set" in result.stderr


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


@pytest.fixture
def jwks_server():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with jwks_endpoint(key) as url:
        yield key, url


def test_rs256_tokens_from_a_jwks_url_are_accepted_and_hs256_confusion_refused(jwks_server):
    import time

    key, url = jwks_server
    now = int(time.time())
    claims = {"sub": "bob", "iat": now, "exp": now + 60}
    with override_settings(JWT_JWKS_URL=url, JWT_ALGORITHMS=["RS256"], JWT_SECRET=""):
        good = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})
        assert verify_token(good).id == "bob"
        # HS256 is refused outright once keys come from a JWKS URL (test_hostile.py signs
        # with the public key itself: the classic confusion attack).
        with pytest.raises(AuthError):
            verify_token(
                jwt.encode(
                    claims,
                    "public-key-text-as-secret-000000000",
                    algorithm="HS256",
                    headers={"kid": "k1"},
                )
            )
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        with pytest.raises(AuthError):
            verify_token(jwt.encode(claims, other, algorithm="RS256", headers={"kid": "k1"}))
