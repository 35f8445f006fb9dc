"""Writes of the core: studios, memberships, personal API tokens and user
accounts. Each records its audit event in the same transaction."""

from __future__ import annotations

import secrets
from datetime import datetime
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from studio.auditing import Action, audit_record, snapshot
from studio.errors import Conflict, DomainError, Forbidden, save_or_conflict
from studio.models import ApiToken, Membership, Studio, User, hash_token
from studio.roles import Role, can_grant, rank
from studio.tenancy import current_studio, studio_scope


@transaction.atomic
def studio_create(
    *, owner: Any, name: str, slug: str = "", timezone_name: str = "UTC", contact_email: str = ""
) -> Studio:
    """Create a studio with ``owner`` as its first owner. ``owner=None`` is
    for a platform operator creating a studio for someone who has no account
    yet (``manage.py create_studio``): they are invited as its owner."""
    slug = slug or slugify(name)[:50]
    studio = Studio(name=name, slug=slug, timezone=timezone_name, contact_email=contact_email)
    studio.full_clean(validate_unique=False)  # the unique index decides, race-free
    save_or_conflict(
        studio, Conflict(f"The slug '{slug}' is taken.", code="SLUG_TAKEN", fields={"slug": ["Already in use."]})
    )
    with studio_scope(studio):
        audit_record(
            action=Action.STUDIO_CREATED, target=studio, after=snapshot(studio, ["slug", *Studio.EDITABLE_FIELDS])
        )
        if owner is not None:
            membership_add(user=owner, role=Role.OWNER)
    return studio


@transaction.atomic
def studio_update(*, studio: Studio, **changes: Any) -> Studio:
    unknown = set(changes) - set(Studio.EDITABLE_FIELDS)
    if unknown:
        raise ValueError(f"Not editable: {sorted(unknown)}")
    before = snapshot(studio, Studio.EDITABLE_FIELDS)
    for name, value in changes.items():
        setattr(studio, name, value)
    studio.full_clean()
    studio.save()
    after = snapshot(studio, Studio.EDITABLE_FIELDS)
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


# --- user accounts -------------------------------------------------------------------


@transaction.atomic
def user_deactivate(*, user: Any) -> User:
    """End every way in of a person who leaves: the account is deactivated,
    their API tokens revoked and their sessions ended, and each studio's
    feeds stop serving on their next fetch (bookings checks the owner's
    account). Revoking and ending, not only refusing inactive accounts,
    means a later reactivation brings none of them back: the person signs
    in again and makes new tokens. The account is kept (the audit log
    refers to it). Safe to repeat."""
    user = User.objects.select_for_update().get(pk=user.pk)
    was_active = user.is_active
    if was_active:
        user.is_active = False
        user.save(update_fields=["is_active"])
    revoked = [api_token_revoke(token=token).prefix for token in ApiToken.objects.live().filter(user=user)]
    sessions = _end_sessions(user)
    if was_active or revoked or sessions:
        audit_record(
            action=Action.USER_DEACTIVATED,
            target=user,
            platform=True,
            before={"is_active": was_active},
            after={"is_active": False, "api_tokens_revoked": revoked, "sessions_ended": sessions},
        )
    return user


def _end_sessions(user: Any) -> int:
    """Delete the user's sessions. Django's sessions cannot be looked up by
    user, so the live ones are read and decoded: fine for something done as
    rarely as deactivating a person. Session stores that cannot be listed
    (cache, signed cookies) are left to the authentication backend, which
    refuses an inactive user on every request anyway."""
    store = import_module(settings.SESSION_ENGINE).SessionStore
    if not hasattr(store, "get_model_class"):
        return 0
    ended = 0
    rows = store.get_model_class().objects.filter(expire_date__gt=timezone.now())
    for key, data in rows.values_list("session_key", "session_data").iterator():
        if store().decode(data).get(SESSION_KEY) == str(user.pk):
            store(key).delete()  # the cached copy too, for cached_db
            ended += 1
    return ended


# --- memberships -------------------------------------------------------------------


# ``actor`` is the acting member; None means a platform operator (superuser in
# the admin), who is above every studio role but still keeps the last owner.


def _check_can_manage(actor: Membership | None, target: Membership) -> None:
    if actor is not None and actor.pk != target.pk and rank(target.role) > rank(actor.role):
        raise Forbidden("You cannot change a member whose role is above yours.", code="ROLE_ABOVE_YOURS")


def _check_not_last_owner(membership: Membership) -> None:
    """Lock the owners so two owners demoting each other cannot both succeed."""
    if membership.role != Role.OWNER:
        return
    owners = list(Membership.objects.select_for_update().filter(role=Role.OWNER).values_list("pk", flat=True))
    if owners == [membership.pk]:
        raise Conflict("A studio must keep at least one owner.", code="LAST_OWNER")


@transaction.atomic
def membership_add(*, user: Any, role: str) -> Membership:
    studio = current_studio()
    membership = Membership(studio=studio, user=user, role=role)
    save_or_conflict(membership, Conflict(f"{user.email} is already a member of this studio.", code="ALREADY_MEMBER"))
    audit_record(action=Action.MEMBER_ADDED, target=membership, after=snapshot(membership, ["user", "role"]))
    return membership


@transaction.atomic
def membership_change_role(*, actor: Membership | None, membership: Membership, role: str) -> Membership:
    if role not in Role.values:
        raise DomainError(f"Unknown role '{role}'.", code="UNKNOWN_ROLE", fields={"role": ["Unknown role."]})
    if role == membership.role:
        return membership
    _check_can_manage(actor, membership)
    if actor is not None and not can_grant(actor.role, role):
        raise Forbidden("You cannot grant a role above your own.", code="ROLE_ABOVE_YOURS")
    if role != Role.OWNER:
        _check_not_last_owner(membership)
    before = snapshot(membership, ["role"])
    membership.role = role
    membership.save(update_fields=["role", "updated_at"])
    audit_record(
        action=Action.MEMBER_ROLE_CHANGED, target=membership, before=before, after=snapshot(membership, ["role"])
    )
    return membership


@transaction.atomic
def membership_remove(*, actor: Membership | None, membership: Membership) -> None:
    _check_can_manage(actor, membership)
    _check_not_last_owner(membership)
    before = snapshot(membership, ["user", "role"])
    audit_record(action=Action.MEMBER_REMOVED, target=membership, before=before)
    membership.delete()
