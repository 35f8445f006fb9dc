"""Secret calendar (ICS) URLs: create, rotate, revoke."""

from __future__ import annotations

import secrets
from typing import Any

from django.db import transaction
from django.utils import timezone

from bookings.models import CalendarFeed, FeedScope
from studio.auditing import Action, audit_record
from studio.errors import Forbidden
from studio.models import hash_token
from studio.roles import scopes_for


def _check_feed_scope(owner: Any, scope: str) -> None:
    if scope == FeedScope.STUDIO and "booking:admin" not in scopes_for(owner.role):
        raise Forbidden("A feed of every booking needs the booking:admin scope.", code="PERMISSION_DENIED")


@transaction.atomic
def feed_create(*, owner: Any, scope: str, name: str = "Bookings") -> tuple[CalendarFeed, str]:
    _check_feed_scope(owner, scope)
    raw = secrets.token_urlsafe(32)  # 256 bits
    feed = CalendarFeed.objects.create(
        studio=owner.studio, owner=owner, scope=scope, name=name, token_hash=hash_token(raw)
    )
    audit_record(action=Action.CALENDAR_FEED_CREATED, target=feed, after={"scope": scope})
    return feed, raw


@transaction.atomic
def feed_rotate(*, feed: CalendarFeed) -> tuple[CalendarFeed, str]:
    raw = secrets.token_urlsafe(32)
    feed.token_hash = hash_token(raw)
    feed.save(update_fields=["token_hash", "updated_at"])
    audit_record(action=Action.CALENDAR_FEED_ROTATED, target=feed)
    return feed, raw


@transaction.atomic
def feed_revoke(*, feed: CalendarFeed) -> CalendarFeed:
    if feed.revoked_at is None:
        feed.revoked_at = timezone.now()
        feed.save(update_fields=["revoked_at", "updated_at"])
        audit_record(action=Action.CALENDAR_FEED_REVOKED, target=feed)
    return feed
