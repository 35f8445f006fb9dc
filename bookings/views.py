"""Non-API views: the ICS feed and the public booking and contact pages."""

from __future__ import annotations

from datetime import timedelta

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotModified
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import http_date, parse_http_date_safe
from django.views.decorators.http import require_safe

from bookings import ics, selectors
from bookings.models import CalendarFeed
from studio.cache import cache_get_or_none, cache_set_quietly, studio_cache_key
from studio.errors import DomainError
from studio.models import Studio
from studio.tenancy import studio_scope

FEED_CACHE_SECONDS = 6 * 3600


@require_safe  # GET, and HEAD: some calendar clients probe a URL with it before subscribing
def calendar_feed(request: HttpRequest, token: str) -> HttpResponse:
    feed = selectors.feed_for_token(token)
    if feed is None:
        raise Http404("No such calendar.")
    with studio_scope(feed.studio):
        bookings = selectors.feed_bookings(feed)
        version = selectors.feed_version(feed, bookings)
        etag, last = version.etag, version.last_modified
        if _not_modified(request, etag, last):
            response = HttpResponseNotModified()
        else:
            # The body is cached under its ETag, so an unchanged feed is built
            # once; a changed one reuses every unchanged event's cached text
            # (ics.feed), so one booking's edit re-renders one event.
            key = studio_cache_key("ics", feed.pk, etag.strip('"'))
            # Redis down is a miss (logged): the feed is built, not a 500.
            body = cache_get_or_none(key)
            if body is None:
                body = ics.feed(f"{feed.studio.name}: {feed.name}", ics.feed_rows(bookings, feed.studio))
                cache_set_quietly(key, body, FEED_CACHE_SECONDS)
            response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
            if request.method == "HEAD":
                # The headers of GET, the length included, and no body: not
                # every server in front of Django strips it.
                response.content = b""
                response["Content-Length"] = str(len(body))
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
        services = list(selectors.active_services())
    return render(request, "bookings/book.html", {"studio": studio, "services": services})


def manage(request: HttpRequest, token: str) -> HttpResponse:
    """The client's page for their booking. The page itself talks to the
    public booking API; the studio (its zone, its slots, how to pay) is
    rendered here so every time is shown, and picked, in the studio's zone."""
    try:
        booking = selectors.booking_for_token(token)
    except DomainError:
        return render(request, "bookings/manage_invalid.html", status=404)
    page = {
        "booking_url": reverse("api:client-booking", kwargs={"token": token}),
        "slots_url": reverse("api:public-slots", kwargs={"public_slug": booking.studio.slug, "pk": booking.service_id}),
        "timezone": booking.studio.timezone,
    }
    return render(request, "bookings/manage.html", {"studio": booking.studio, "page": page})


def contact(request: HttpRequest, slug: str) -> HttpResponse:
    studio = get_object_or_404(Studio, slug=slug, is_active=True)
    with studio_scope(studio):
        services = list(selectors.active_services())
    return render(request, "bookings/contact.html", {"studio": studio, "services": services})
