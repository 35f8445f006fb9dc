"""The feed's per-event cache (issue 12): each VEVENT's text is cached under
a digest of everything it shows, so a feed where one booking changed
re-renders one event, and a cached event can never be stale.

- the feed built from the cache is byte for byte the feed icalendar writes
  for the whole calendar, cold, warm and after a change, across a DST edge;
- every field an event shows is a new key when it changes, even written
  with a queryset update() that leaves updated_at alone;
- a cancelled booking's event says CANCELLED on the next fetch;
- icalendar and recurring-ical-events read the cached feed;
- with Redis down the feed is built without the cache (and stores nothing).

The studio is in America/Los_Angeles; the feed view's clock is pinned as in
tests/test_bookings_calendar.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import icalendar
import pytest
import recurring_ical_events
from django.core.cache import cache
from rest_framework.test import APIClient

from bookings import ics, views
from bookings.models import Booking, BookingStatus, Service
from studio.models import Studio
from studio.tenancy import studio_scope
from tests import factories
from tests.test_bookings_calendar import DAY, at, la_studio, make_feed, place

pytestmark = pytest.mark.django_db

FEED_NOW = datetime(2026, 10, 15, 19, tzinfo=UTC)
FIRST_0130 = datetime(2026, 11, 1, 8, 30, tzinfo=UTC)  # 01:30 PDT, the hour written twice: in UTC
WINDOW = (datetime(2026, 9, 1, tzinfo=UTC), datetime(2027, 6, 1, tzinfo=UTC))


@pytest.fixture(autouse=True)
def _feed_clock(monkeypatch):
    monkeypatch.setattr(views, "timezone", SimpleNamespace(now=lambda: FEED_NOW))


@pytest.fixture
def studio_la(db) -> Studio:
    return la_studio(contact_email="hello@studio.example")


@pytest.fixture
def service(studio_la) -> Service:
    return factories.service(studio_la, name="Portrait")


@pytest.fixture
def bookings(service) -> list[Booking]:
    """Both sides of the fall-back change, the repeated hour, a cancelled
    one, long notes (folded lines) and text that needs escaping."""
    made = [
        place(service, at(date(2026, 10, 31), 10), confirmed_at=FEED_NOW),
        place(service, at(date(2026, 11, 2), 10), confirmed_at=FEED_NOW),
        place(service, FIRST_0130, resource="a", confirmed_at=FEED_NOW),
        place(service, at(DAY, 11), status=BookingStatus.CANCELLED, confirmed_at=FEED_NOW),
        place(service, at(date(2027, 3, 20), 15), confirmed_at=FEED_NOW),
    ]
    with studio_scope(service.studio):
        Booking.objects.filter(pk=made[1].pk).update(
            notes="Ünïcødé, commas; semicolons\nand a second line. " * 6, client_phone="+1 555 0100"
        )
    return made


def loaded(studio: Studio) -> list[Booking]:
    """The bookings as the feed view reads them: fresh from the database."""
    with studio_scope(studio):
        return list(Booking.objects.select_related("service", "studio").order_by("starts_at"))


def both(studio: Studio) -> tuple[bytes, bytes]:
    bookings = loaded(studio)
    return ics.feed("Feed", bookings), ics.feed("Feed", bookings, use_cache=False)


@pytest.fixture
def renders(monkeypatch) -> list[Any]:
    """The bookings whose events were rendered (not read from the cache)."""
    seen: list[Any] = []
    original = ics.event

    def counting(booking: Booking, **kwargs: Any) -> icalendar.Event:
        seen.append(booking.pk)
        return original(booking, **kwargs)

    monkeypatch.setattr(ics, "event", counting)
    return seen


# --- byte for byte ----------------------------------------------------------------------------------


def test_cold_and_warm_feeds_are_byte_identical_to_icalendars_own(studio_la, bookings, renders):
    cold, reference = both(studio_la)
    assert cold == reference
    renders.clear()
    warm = ics.feed("Feed", loaded(studio_la))
    assert warm == reference
    assert renders == []  # all five from the cache
    assert b"\r\n " in warm  # the long notes were folded, and stay so
    assert warm.count(b"BEGIN:VTIMEZONE") == 1
    assert b"DTSTART:20261101T083000Z" in warm  # the repeated hour, in UTC


def test_one_changed_booking_is_the_one_event_rendered(studio_la, bookings, renders):
    ics.feed("Feed", loaded(studio_la))
    renders.clear()
    with studio_scope(studio_la):
        Booking.objects.filter(pk=bookings[2].pk).update(client_name="Robin Renamed")
    cached, reference = both(studio_la)
    assert renders == [bookings[2].pk, *[b.pk for b in loaded(studio_la)]]  # then the reference's own
    assert cached == reference
    assert b"Robin Renamed" in cached


def test_the_feed_views_rows_make_the_same_feed_without_another_query(studio_la, bookings, django_assert_num_queries):
    with studio_scope(studio_la):
        rows = ics.feed_rows(Booking.objects.all(), Studio.objects.get(pk=studio_la.pk))
    assert [b.pk for b in rows] == [b.pk for b in loaded(studio_la)]
    with django_assert_num_queries(0):  # every field an event reads was loaded
        cold = ics.feed("Feed", rows)
        warm = ics.feed("Feed", rows)
    assert cold == warm == ics.feed("Feed", loaded(studio_la), use_cache=False)


def test_an_empty_feed_is_a_calendar_with_no_events(studio_la):
    cached, reference = both(studio_la)
    assert cached == reference
    assert b"BEGIN:VEVENT" not in cached


# --- every field an event shows is part of its key ---------------------------------------------------------


def _booking_update(**fields: Any) -> Callable[[Studio, Booking], None]:
    def change(studio: Studio, booking: Booking) -> None:
        # update(): updated_at is not touched, so the key cannot lean on it.
        with studio_scope(studio):
            Booking.objects.filter(pk=booking.pk).update(**fields)

    return change


def _moved(studio: Studio, booking: Booking) -> None:
    later = timedelta(hours=2)
    _booking_update(
        starts_at=booking.starts_at + later,
        ends_at=booking.ends_at + later,
        blocked_start=booking.blocked_start + later,
        blocked_end=booking.blocked_end + later,
    )(studio, booking)


def _studio_update(**fields: Any) -> Callable[[Studio, Booking], None]:
    def change(studio: Studio, booking: Booking) -> None:
        Studio.objects.filter(pk=studio.pk).update(**fields)

    return change


def _service_renamed(studio: Studio, booking: Booking) -> None:
    with studio_scope(studio):
        Service.objects.filter(pk=booking.service_id).update(name="Family portrait")


CHANGES = {
    "client_name": _booking_update(client_name="Robin Renamed"),
    "client_email": _booking_update(client_email="robin@example.org"),
    "client_phone": _booking_update(client_phone="+1 555 0199"),
    "notes": _booking_update(notes="Bring the dog"),
    "status": _booking_update(status=BookingStatus.CANCELLED),
    "sequence": _booking_update(sequence=7),
    "updated_at": _booking_update(updated_at=FEED_NOW + timedelta(minutes=3)),
    "times": _moved,
    "service name": _service_renamed,
    "studio name": _studio_update(name="Renamed Studio"),
    "studio zone": _studio_update(timezone="Europe/Paris"),
    "studio contact": _studio_update(contact_email="desk@studio.example"),
    "site host": lambda studio, booking: None,  # the settings fixture changes it below
}


@pytest.mark.parametrize("what", list(CHANGES))
def test_a_change_to_anything_an_event_shows_shows_on_the_next_build(studio_la, bookings, what, settings):
    before, _ = both(studio_la)
    CHANGES[what](studio_la, bookings[0])
    if what == "site host":
        settings.SITE_URL = "https://calendar.example.net"
    cached, reference = both(studio_la)
    assert reference != before  # the change shows in what icalendar writes...
    assert cached == reference  # ...and the cache never hides it


def test_the_sender_address_is_part_of_the_key(studio_la, service, settings):
    Studio.objects.filter(pk=studio_la.pk).update(contact_email="")  # the organizer is then the sender
    place(service, at(DAY, 10), confirmed_at=FEED_NOW)
    before, _ = both(studio_la)
    settings.DEFAULT_FROM_EMAIL = "Studio <bookings@mail.example>"
    cached, reference = both(studio_la)
    assert b"bookings@mail.example" in reference and reference != before
    assert cached == reference


# --- through the feed's URL ---------------------------------------------------------------------------


def test_a_cancelled_booking_says_cancelled_on_the_next_fetch(studio_la, service):
    owner = factories.owner_membership(studio_la)
    booking = place(service, at(DAY, 10), confirmed_at=FEED_NOW)
    kept = place(service, at(DAY, 14), confirmed_at=FEED_NOW)
    path = make_feed(owner)
    first = APIClient().get(path)
    assert b"STATUS:CONFIRMED" in first.content and b"STATUS:CANCELLED" not in first.content

    with studio_scope(studio_la):
        booking.status, booking.cancelled_at = BookingStatus.CANCELLED, FEED_NOW
        booking.sequence += 1
        booking.save()
    second = APIClient().get(path)
    assert second["ETag"] != first["ETag"]
    events = {str(e["UID"]): e for e in icalendar.Calendar.from_ical(second.content).walk("VEVENT")}
    assert str(events[ics.uid(booking)]["STATUS"]) == "CANCELLED"
    assert int(events[ics.uid(booking)]["SEQUENCE"]) == booking.sequence
    assert str(events[ics.uid(kept)]["STATUS"]) == "CONFIRMED"
    assert second.content == ics.feed(f"{studio_la.name}: {_feed_name(studio_la)}", loaded(studio_la), use_cache=False)


def _feed_name(studio: Studio) -> str:
    from bookings.models import CalendarFeed

    with studio_scope(studio):
        return CalendarFeed.objects.get().name


def test_studio_and_member_feeds_share_events_and_each_shows_only_its_own(studio_la, service, renders):
    owner = factories.owner_membership(studio_la)
    mine = place(service, at(DAY, 10), resource=str(owner.pk), confirmed_at=FEED_NOW)
    other = place(service, at(DAY, 14), confirmed_at=FEED_NOW)
    studio_feed, member_feed = make_feed(owner, "studio"), make_feed(owner, "member")

    everything = APIClient().get(studio_feed).content
    renders.clear()
    own = APIClient().get(member_feed).content
    assert renders == []  # the member feed's one event came from the cache the studio feed filled
    assert ics.uid(mine).encode() in own and ics.uid(other).encode() not in own
    assert ics.uid(other).encode() in everything


def test_the_cached_feed_reads_in_icalendar_and_recurring_ical_events(studio_la, bookings):
    ics.feed("Feed", loaded(studio_la))  # fill the cache
    warm = ics.feed("Feed", loaded(studio_la))
    assert warm.endswith(b"END:VCALENDAR\r\n")
    assert all(line.endswith(b"\r") or not line for line in warm.split(b"\n"))  # CRLF throughout
    assert all(len(line) <= 76 for line in warm.split(b"\n"))  # 75 octets and the CR

    cal = icalendar.Calendar.from_ical(warm)
    (zone,) = cal.walk("VTIMEZONE")
    assert str(zone["TZID"]) == "America/Los_Angeles"
    by_uid = {str(e["UID"]): e for e in cal.walk("VEVENT")}
    assert set(by_uid) == {ics.uid(b) for b in bookings}
    assert str(by_uid[ics.uid(bookings[3])]["STATUS"]) == "CANCELLED"

    occurrences = recurring_ical_events.of(cal).between(*WINDOW)
    starts = {str(e["UID"]): e["DTSTART"].dt for e in occurrences}
    assert len(starts) == len(bookings)
    for booking in bookings:
        assert starts[ics.uid(booking)] == booking.starts_at  # the same instant, DST edges included


# --- the cache unreachable -----------------------------------------------------------------------------


@pytest.fixture
def cache_down(monkeypatch) -> Iterator[list[str]]:
    """Every cache call the feed makes fails as an unreachable Redis does;
    the calls made are listed."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    import studio.cache

    calls: list[str] = []

    class Down:
        def __getattr__(self, name: str) -> Callable[..., Any]:
            def fail(*args: Any, **kwargs: Any) -> Any:
                calls.append(name)
                raise RedisConnectionError("Connection refused")

            return fail

    monkeypatch.setattr(ics, "cache", Down())  # the events' cache
    monkeypatch.setattr(studio.cache, "cache", Down())  # the whole body's, in the view
    yield calls


def test_with_the_cache_down_the_feed_is_built_without_it(studio_la, bookings, cache_down, caplog):
    with caplog.at_level(logging.WARNING, logger="bookings.ics"):
        cached, reference = both(studio_la)
    assert cached == reference
    assert cache_down == ["get_many"]  # one failed round trip: no second wait to store
    assert "cache unreachable" in caplog.text


def test_with_the_cache_down_the_feed_url_still_answers(studio_la, bookings, cache_down):
    path = make_feed(factories.owner_membership(studio_la))
    response = APIClient().get(path)
    assert response.status_code == 200
    assert response.content.count(b"BEGIN:VEVENT") == len(bookings)


def test_an_entry_of_another_shape_is_a_miss(studio_la, bookings):
    ics.feed("Feed", loaded(studio_la))
    keys = ics._event_keys(loaded(studio_la))
    cache.set(keys[0], b"something else")  # say, written by a future version under a key it reused
    cached, reference = both(studio_la)
    assert cached == reference
