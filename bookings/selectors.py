"""Reads for bookings: a client's booking by its link, what a calendar feed
shows and its version, and the services a studio offers."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Max, Q, QuerySet
from django.utils import timezone

from bookings import ics
from bookings.models import Booking, BookingStatus, CalendarFeed, FeedScope, Service
from studio.errors import DomainError
from studio.models import hash_token
from studio.roles import scopes_for
from studio.tenancy import unscoped

FEED_PAST = timedelta(days=90)
FEED_FUTURE = timedelta(days=400)


def booking_for_token(raw: str) -> Booking:
    with unscoped():  # the token names the booking, whichever studio it is in
        booking = (
            Booking.objects.select_related("studio", "service")
            .filter(token_hash=hash_token(raw), studio__is_active=True)
            .first()
        )
    if booking is None:
        raise DomainError("This booking link is not valid.", code="NOT_FOUND", status_code=404)
    return booking


def active_services() -> QuerySet[Service]:
    return Service.objects.filter(is_active=True)


# --- calendar feeds ---------------------------------------------------------------------------------


def feed_for_token(raw: str) -> CalendarFeed | None:
    """The live feed a token names, if its owner may still see it. The
    owner's account and role are checked on every fetch: a deactivated
    user's feeds answer 404 for as long as the account is inactive (checked
    here because the core's user_deactivate cannot reach this app), and a
    demoted member's feed stops showing what they may no longer see."""
    with unscoped():  # the token names the feed, whichever studio it is in
        feed = (
            CalendarFeed.objects.select_related("studio", "owner")
            .filter(
                token_hash=hash_token(raw),
                revoked_at__isnull=True,
                studio__is_active=True,
                owner__user__is_active=True,
            )
            .first()
        )
    if feed is None:
        return None
    needed = "booking:admin" if feed.scope == FeedScope.STUDIO else "booking:read"
    return feed if needed in scopes_for(feed.owner.role) else None


def feed_bookings(feed: CalendarFeed) -> QuerySet[Booking]:
    """What the feed's owner may see: every booking (studio feeds, booking:admin)
    or those assigned to them or their teams. Only bookings that are or were
    confirmed: holds and unpaid checkouts last minutes and anyone can make
    them, with any name, so a hold that lapsed is no event for a calendar to
    show, even cancelled. A confirmed booking that was cancelled stays (as
    STATUS:CANCELLED), so calendars that had it remove it."""
    now = timezone.now()
    were_confirmed = Q(status__in=[BookingStatus.CONFIRMED, BookingStatus.COMPLETED]) | Q(
        status=BookingStatus.CANCELLED, confirmed_at__isnull=False
    )
    bookings = Booking.objects.filter(were_confirmed, starts_at__gte=now - FEED_PAST, starts_at__lte=now + FEED_FUTURE)
    if feed.scope == FeedScope.MEMBER:
        mine = Q(assigned_members=feed.owner) | Q(resource=str(feed.owner_id))
        mine |= Q(assigned_team__team_members__membership=feed.owner)
        bookings = bookings.filter(pk__in=Booking.objects.filter(mine).values("pk"))
    return bookings


@dataclass(frozen=True)
class FeedVersion:
    etag: str
    last_modified: datetime


def feed_version(feed: CalendarFeed, bookings: QuerySet[Booking]) -> FeedVersion:
    """Changes whenever an event of the feed would: events also show the
    service's name and the studio's name and zone, so their changes count, and
    so does a new way of writing them (ics.FORMAT_VERSION)."""
    stamp = bookings.aggregate(count=Count("pk"), last=Max("updated_at"), service=Max("service__updated_at"))
    last = max(filter(None, [stamp["last"], stamp["service"], feed.updated_at, feed.studio.updated_at]))
    version = f"{ics.FORMAT_VERSION}:{feed.pk}:{feed.scope}:{feed.name}:{stamp['count']}:{last.isoformat()}"
    return FeedVersion(etag='"' + hashlib.sha256(version.encode()).hexdigest()[:32] + '"', last_modified=last)


# --- work due, for Celery beat: one query across studios each ---------------------------------------


def studios_with_expired_holds(*, now: datetime | None = None) -> list[Any]:
    now = now or timezone.now()
    with unscoped():  # which studios have work is the question
        return list(
            Booking.objects.filter(
                status__in=[BookingStatus.HELD, BookingStatus.AWAITING_PAYMENT],
                hold_expires_at__lte=now,
                studio__is_active=True,
            )
            .values_list("studio_id", flat=True)
            .distinct()
        )


def studios_with_reminders_due(*, now: datetime | None = None) -> list[Any]:
    now = now or timezone.now()
    with unscoped():  # which studios have work is the question
        return list(
            Booking.objects.filter(
                status=BookingStatus.CONFIRMED,
                reminder_sent_at__isnull=True,
                starts_at__gt=now,
                starts_at__lte=now + timedelta(hours=settings.BOOKING_REMINDER_HOURS),
                studio__is_active=True,
            )
            .values_list("studio_id", flat=True)
            .distinct()
        )
