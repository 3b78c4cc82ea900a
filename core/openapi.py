"""How the OpenAPI schema describes our bearer tokens (drf-spectacular extension).

Without it the schema declares no security at all, so client generators and schema fuzzers do
not know that every ``/api/`` operation needs ``Authorization: Bearer <jwt>``."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerJWTScheme(OpenApiAuthenticationExtension):
    target_class = "core.auth.JWTAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A JWT whose `sub` is the user id (HS256 shared secret, or keys "
            "from the configured JWKS URL).",
        }
