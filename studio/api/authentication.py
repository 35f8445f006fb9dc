"""Personal API tokens: ``Authorization: Bearer stp_...``.

Tokens are stored hashed (SHA-256 of 256 random bits), can be revoked, and
optionally expire. Session authentication (with CSRF) is the other way in.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from studio.models import ApiToken, hash_token

# Writing last_used_at on every request would turn every read into a write;
# once a minute is enough to tell stale tokens from used ones.
_LAST_USED_GRANULARITY_SECONDS = 60


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keywords = ("bearer", "token")

    def authenticate(self, request: Any) -> tuple[Any, ApiToken] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].decode(errors="replace").lower() not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header: expected 'Bearer <token>'.")
        raw = header[1].decode(errors="replace")
        token = ApiToken.objects.live().select_related("user").filter(token_hash=hash_token(raw)).first()
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked API token.")
        now = timezone.now()
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > _LAST_USED_GRANULARITY_SECONDS:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        # Lets the audit context label the actor "alice@… (token ci)".
        request._request.api_token = token
        return token.user, token

    def authenticate_header(self, request: Any) -> str:
        return 'Bearer realm="api"'


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "studio.api.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "Personal API token (stp_...)."}
