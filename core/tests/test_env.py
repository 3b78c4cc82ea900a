"""Secrets from the environment or from a mounted file (``<NAME>_FILE``)."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from core.env import env_secret, mandatory_secret


def test_a_secret_comes_from_its_variable(monkeypatch):
    monkeypatch.setenv("APP_API_TOKEN", "from-the-environment")
    monkeypatch.delenv("APP_API_TOKEN_FILE", raising=False)

    assert env_secret("APP_API_TOKEN") == "from-the-environment"


@pytest.mark.parametrize(
    ("content", "value"),
    [
        ("s3cret\n", "s3cret"),  # as `kubectl create secret --from-file` or an editor writes it
        ("s3cret", "s3cret"),
        ("s3cret\r\n", "s3cret"),
        ("two\nlines\n", "two\nlines"),  # only the one trailing newline goes
        ("  spaced  \n", "  spaced  "),
    ],
)
def test_a_secret_comes_from_the_file_its_file_variable_names(
    tmp_path, monkeypatch, content, value
):
    path = tmp_path / "token"
    path.write_text(content)
    monkeypatch.delenv("APP_API_TOKEN", raising=False)
    monkeypatch.setenv("APP_API_TOKEN_FILE", str(path))

    assert env_secret("APP_API_TOKEN") == value


def test_both_the_variable_and_the_file_is_a_startup_error(tmp_path, monkeypatch):
    path = tmp_path / "url"
    path.write_text("postgres://file\n")
    monkeypatch.setenv("DATABASE_URL", "postgres://variable")
    monkeypatch.setenv("DATABASE_URL_FILE", str(path))

    with pytest.raises(ImproperlyConfigured, match="Both DATABASE_URL and DATABASE_URL_FILE"):
        env_secret("DATABASE_URL")


@pytest.mark.parametrize("content", [None, "", "\n"], ids=["missing", "empty", "newline"])
def test_a_file_that_holds_nothing_is_a_startup_error(tmp_path, monkeypatch, content):
    path = tmp_path / "secret"
    if content is not None:
        path.write_text(content)
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("SECRET_KEY_FILE", str(path))

    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY_FILE="):
        env_secret("SECRET_KEY")


def test_a_mandatory_secret_takes_the_file_too(tmp_path, monkeypatch):
    path = tmp_path / "jwt"
    path.write_text("x" * 48 + "\n")
    monkeypatch.delenv("JWT_SECRET", raising=False)
    monkeypatch.setenv("JWT_SECRET_FILE", str(path))

    assert mandatory_secret("JWT_SECRET", local=None) == "x" * 48


def test_a_missing_mandatory_secret_names_both_ways_to_give_it(monkeypatch):
    monkeypatch.delenv("JWT_SECRET", raising=False)
    monkeypatch.delenv("JWT_SECRET_FILE", raising=False)

    with pytest.raises(ImproperlyConfigured, match="JWT_SECRET_FILE"):
        mandatory_secret("JWT_SECRET", local=None)
