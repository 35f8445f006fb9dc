"""Writes for studios and personal API tokens."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from audit.actions import Action
from audit.models import AuditChainHead
from audit.services import audit_record, chain_for, snapshot
from studio.errors import Conflict, save_or_conflict
from studio.models import ApiToken, Studio, hash_token
from studio.tenancy import studio_scope

STUDIO_EDITABLE_FIELDS = ["name", "timezone", "contact_email"]


@transaction.atomic
def studio_create(
    *, owner: Any, name: str, slug: str = "", timezone_name: str = "UTC", contact_email: str = ""
) -> Studio:
    """Create a studio with ``owner`` as its first owner."""
    from teams.roles import Role
    from teams.services import membership_add

    slug = slug or slugify(name)[:50]
    studio = Studio(name=name, slug=slug, timezone=timezone_name, contact_email=contact_email)
    studio.full_clean(validate_unique=False)  # the unique index decides, race-free
    save_or_conflict(
        studio, Conflict(f"The slug '{slug}' is taken.", code="SLUG_TAKEN", fields={"slug": ["Already in use."]})
    )
    AuditChainHead.objects.create(chain=chain_for(studio))
    with studio_scope(studio):
        audit_record(
            action=Action.STUDIO_CREATED, target=studio, after=snapshot(studio, ["slug", *STUDIO_EDITABLE_FIELDS])
        )
        membership_add(user=owner, role=Role.OWNER)
    return studio


@transaction.atomic
def studio_update(*, studio: Studio, **changes: Any) -> Studio:
    unknown = set(changes) - set(STUDIO_EDITABLE_FIELDS)
    if unknown:
        raise ValueError(f"Not editable: {sorted(unknown)}")
    before = snapshot(studio, STUDIO_EDITABLE_FIELDS)
    for name, value in changes.items():
        setattr(studio, name, value)
    studio.full_clean()
    studio.save()
    after = snapshot(studio, STUDIO_EDITABLE_FIELDS)
    if after != before:
        with studio_scope(studio):
            audit_record(action=Action.STUDIO_UPDATED, target=studio, before=before, after=after)
    return studio


@transaction.atomic
def api_token_create(*, user: Any, name: str, expires_at: datetime | None = None) -> tuple[ApiToken, str]:
    """Returns the token and its raw value; the raw value is never stored."""
    raw = settings.API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name, prefix=raw[:10], token_hash=hash_token(raw), expires_at=expires_at
    )
    audit_record(
        action=Action.API_TOKEN_CREATED,
        target=token,
        platform=True,
        after=snapshot(token, ["name", "prefix", "expires_at"]),
    )
    return token, raw


@transaction.atomic
def api_token_revoke(*, token: ApiToken) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at", "updated_at"])
        audit_record(action=Action.API_TOKEN_REVOKED, target=token, platform=True)
    return token
