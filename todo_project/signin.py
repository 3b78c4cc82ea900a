"""Password sign-in for a self-hosted install: an operator-created Django user trades a username
and password for a short-lived bearer token, minted as ``issue_token`` mints them (``sub`` is
the username). Frontends with their own identity provider (Better Auth, JWKS) never use it.

Attempts are counted before the password is checked, per client address and per username
(``signin_address``, ``signin_username``), and django-axes counts the failures it shares with
the admin login, so guessing is slow everywhere. The answer never says whether a user exists.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from django.conf import settings
from django.contrib.auth import authenticate
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.auth import issue_token
from core.errors import DomainError
from core.users import is_user_id
from tasks.api.serializers import StrictCharField
from tasks.api.throttles import Budget, client_address
from tasks.representation import iso

ADDRESS_BUDGET = "signin_address"
USERNAME_BUDGET = "signin_username"
USERNAME_MAX_LENGTH = 150  # django.contrib.auth's User.username
PASSWORD_MAX_LENGTH = 1024  # hashing a longer one is work an attacker would choose
_NO_NUL = r"^[^\x00]*$"


class SigninUnavailable(DomainError):
    status = 404
    code = "signin_unavailable"


class InvalidCredentials(DomainError):
    status = 401
    code = "invalid_credentials"


@extend_schema_field(
    {"type": "string", "minLength": 1, "maxLength": USERNAME_MAX_LENGTH, "pattern": _NO_NUL}
)
class UsernameField(StrictCharField):
    pass


@extend_schema_field(
    {"type": "string", "minLength": 1, "maxLength": PASSWORD_MAX_LENGTH, "pattern": _NO_NUL}
)
class PasswordField(StrictCharField):
    pass


class SigninSerializer(serializers.Serializer):
    username = UsernameField(max_length=USERNAME_MAX_LENGTH, trim_whitespace=False)
    password = PasswordField(
        max_length=PASSWORD_MAX_LENGTH, trim_whitespace=False, style={"input_type": "password"}
    )


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="A bearer JWT for `Authorization: Bearer`.")
    token_type = serializers.CharField(help_text="`Bearer`")
    user_id = serializers.CharField(help_text="The token's subject: the username.")
    expires_in = serializers.IntegerField(help_text="Seconds until the token expires.")
    expires_at = serializers.DateTimeField()


def _spend(scope: str, ident: str) -> None:
    wait = Budget(scope, ident).spend()
    if wait is not None:
        raise exceptions.Throttled(wait=wait)


def _locked_out(request: Request) -> bool:
    """django-axes marks a request whose username and address have failed too often; this view
    answers that itself, in the API's error shape, instead of axes' lockout page."""
    django_request = request._request
    locked = bool(getattr(django_request, "axes_locked_out", False))
    django_request.axes_locked_out = False
    return locked


class TokenView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    # The default throttle counts the address's anonymous budget; the sign-in budgets, stricter,
    # are counted in ``post``: per address first, then per username once the body is read.

    @extend_schema(
        operation_id="auth_token",
        request=SigninSerializer,
        responses={
            200: TokenSerializer,
            400: OpenApiResponse(description="Invalid input: `error.code`, `error.fields[]`."),
            401: OpenApiResponse(description="Wrong username or password (which, it never says)."),
            404: OpenApiResponse(description="Password sign-in is off: tokens come from an IdP."),
            429: OpenApiResponse(description="Too many attempts; see `Retry-After`."),
        },
        description=(
            "Sign in with the username and password of a Django user an operator created; "
            "answers a short-lived bearer token whose subject is the username."
        ),
    )
    def post(self, request: Request) -> Response:
        _spend(ADDRESS_BUDGET, client_address(request.META))
        if settings.JWT_JWKS_URL or not settings.JWT_SECRET:
            raise SigninUnavailable(
                "Password sign-in is off here: tokens come from the identity provider."
            )
        serializer = SigninSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        username = serializer.validated_data["username"]
        _spend(USERNAME_BUDGET, username.casefold())
        user = authenticate(
            request._request, username=username, password=serializer.validated_data["password"]
        )
        if _locked_out(request):
            raise exceptions.Throttled(wait=int(settings.AXES_COOLOFF_TIME.total_seconds()))
        if user is None or not user.is_active or not is_user_id(user.get_username()):
            raise InvalidCredentials("Wrong username or password.")
        return _token_response(user.get_username())


def _token_response(user_id: str) -> Response:
    lifetime = settings.JWT_DEFAULT_TTL_SECONDS
    expires = int(time.time()) + lifetime
    token = issue_token(user_id, ttl_seconds=lifetime, extra={"exp": expires})
    response = Response(
        {
            "token": token,
            "token_type": "Bearer",
            "user_id": user_id,
            "expires_in": lifetime,
            "expires_at": iso(datetime.fromtimestamp(expires, UTC)),
        },
        status=status.HTTP_200_OK,
    )
    response["Cache-Control"] = "no-store"
    return response
