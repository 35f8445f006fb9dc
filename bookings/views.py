"""Non-API views: the ICS feed and the public booking and contact pages."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from django.core.cache import cache
from django.db.models import Count, Max, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotModified
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.utils.http import http_date, parse_http_date_safe
from django.views.decorators.http import require_GET

from bookings import ics
from bookings.models import Booking, BookingStatus, CalendarFeed, FeedScope, Service
from studio.cache import studio_cache_key
from studio.models import Studio, hash_token
from studio.roles import scopes_for
from studio.tenancy import studio_scope, unscoped

FEED_PAST = timedelta(days=90)
FEED_FUTURE = timedelta(days=400)
FEED_CACHE_SECONDS = 6 * 3600


def feed_bookings(feed: CalendarFeed) -> QuerySet:
    """What the feed's owner may see: every booking (studio feeds, booking:admin)
    or those assigned to them or their teams. Holds are left out: they last
    minutes; cancelled bookings stay, so calendars remove them."""
    now = timezone.now()
    bookings = Booking.objects.filter(starts_at__gte=now - FEED_PAST, starts_at__lte=now + FEED_FUTURE).exclude(
        status=BookingStatus.HELD
    )
    if feed.scope == FeedScope.MEMBER:
        mine = Q(assigned_members=feed.owner) | Q(resource=str(feed.owner_id))
        mine |= Q(assigned_team__team_members__membership=feed.owner)
        bookings = bookings.filter(pk__in=Booking.objects.filter(mine).values("pk"))
    return bookings


def _allowed(feed: CalendarFeed) -> bool:
    scopes = scopes_for(feed.owner.role)
    needed = "booking:admin" if feed.scope == FeedScope.STUDIO else "booking:read"
    return needed in scopes


@require_GET
def calendar_feed(request: HttpRequest, token: str) -> HttpResponse:
    with unscoped():  # the token names the feed, whichever studio it is in
        feed = (
            CalendarFeed.objects.select_related("studio", "owner")
            .filter(token_hash=hash_token(token), revoked_at__isnull=True, studio__is_active=True)
            .first()
        )
    # The owner's role is checked on every fetch: a demoted member's feed
    # stops showing what they may no longer see.
    if feed is None or not _allowed(feed):
        raise Http404("No such calendar.")
    with studio_scope(feed.studio):
        bookings = feed_bookings(feed)
        # Events also show the service's name and the studio's name and zone:
        # their changes must change the ETag (and the cached body) too.
        stamp = bookings.aggregate(count=Count("pk"), last=Max("updated_at"), service=Max("service__updated_at"))
        last = max(filter(None, [stamp["last"], stamp["service"], feed.updated_at, feed.studio.updated_at]))
        version = f"{feed.pk}:{feed.scope}:{feed.name}:{stamp['count']}:{last.isoformat()}"
        etag = '"' + hashlib.sha256(version.encode()).hexdigest()[:32] + '"'
        if _not_modified(request, etag, last):
            response = HttpResponseNotModified()
        else:
            # Rendering a year of events costs ~0.5 ms each (icalendar); the
            # body is cached under its ETag, so an unchanged feed is built once.
            key = studio_cache_key("ics", feed.pk, etag.strip('"'))
            body = cache.get(key)
            if body is None:
                ordered = bookings.select_related("service", "studio").order_by("starts_at")
                body = ics.feed(f"{feed.studio.name}: {feed.name}", ordered)
                cache.set(key, body, timeout=FEED_CACHE_SECONDS)
            response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
            if feed.last_fetched_at is None or timezone.now() - feed.last_fetched_at > timedelta(minutes=5):
                CalendarFeed.objects.filter(pk=feed.pk).update(last_fetched_at=timezone.now())
    response["ETag"] = etag
    response["Last-Modified"] = http_date(last.timestamp())
    response["Cache-Control"] = "private, max-age=300"
    return response


def _not_modified(request: HttpRequest, etag: str, last: object) -> bool:
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None:
        return etag in [tag.strip() for tag in if_none_match.split(",")]
    since = parse_http_date_safe(request.headers.get("If-Modified-Since", ""))
    return since is not None and int(last.timestamp()) <= since  # type: ignore[attr-defined]


def book(request: HttpRequest, slug: str) -> HttpResponse:
    studio = get_object_or_404(Studio, slug=slug, is_active=True)
    with studio_scope(studio):
        services = list(Service.objects.filter(is_active=True))
    return render(request, "bookings/book.html", {"studio": studio, "services": services})


def manage(request: HttpRequest, token: str) -> HttpResponse:
    return render(request, "bookings/manage.html", {"token": token})


def contact(request: HttpRequest, slug: str) -> HttpResponse:
    studio = get_object_or_404(Studio, slug=slug, is_active=True)
    with studio_scope(studio):
        services = list(Service.objects.filter(is_active=True))
    return render(request, "bookings/contact.html", {"studio": studio, "services": services})
