"""Calendars tell the truth (issue 8, section 4): what a feed or an invitation
says is what an independent reader understands, at daylight-saving edges too.

- a deactivated owner's feed stops (tests/test_user_deactivation.py has the rest);
- the repeated fall-back hour is written in UTC, so 01:30 PDT and 01:30 PST
  stay an hour apart in every reader;
- holds that were never confirmed never reach a calendar;
- VTIMEZONE components are yearly RRULEs that vobject, icalendar and
  recurring-ical-events read alike (RDATE lists were read by vobject as
  permanent standard time);
- HEAD on a feed answers like GET, without a body.

The studio is in America/Los_Angeles; the feed view's clock is pinned to
FEED_NOW (as in tests/test_bookings_calendar.py).
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, date, datetime, time, timedelta
from types import SimpleNamespace
from urllib.parse import urlsplit

import icalendar
import pytest
import recurring_ical_events
import vobject
from django.conf import settings as django_settings
from django.core import mail
from django.test import RequestFactory
from rest_framework.test import APIClient

from bookings import ics, views
from bookings import services as booking_services
from bookings.models import Booking, BookingStatus, WorkingHours
from studio import context
from studio.models import User
from studio.roles import Role
from studio.tenancy import studio_scope
from tests import factories
from tests.helpers import mail_to
from tests.test_bookings_calendar import LA, at, la_studio, make_feed, place

pytestmark = pytest.mark.django_db

FEED_NOW = datetime(2026, 10, 15, 19, tzinfo=UTC)
FALL_BACK = date(2026, 11, 1)  # Sunday: 02:00 PDT becomes 01:00 PST
# 01:30 on that day, twice: in daylight time (fold 0), then an hour later in standard time.
FIRST_0130 = datetime(2026, 11, 1, 8, 30, tzinfo=UTC)
SECOND_0130 = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
WINDOW = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2028, 1, 1, tzinfo=UTC))


@pytest.fixture(autouse=True)
def _feed_clock(monkeypatch):
    monkeypatch.setattr(views, "timezone", SimpleNamespace(now=lambda: FEED_NOW))


@pytest.fixture
def studio_la(db):
    return la_studio(contact_email="hello@studio.example")


@pytest.fixture
def owner_la(studio_la):
    return factories.owner_membership(studio_la)


def _get(path: str, **headers):
    return APIClient().get(urlsplit(path).path, **headers)


def _vobject_starts(content: bytes) -> dict[str, tuple[datetime, datetime]]:
    """UID -> (start, end) in UTC, as vobject (dateutil's tzical) reads them."""
    cal = vobject.readOne(content.decode())
    return {
        str(e.uid.value): (e.dtstart.value.astimezone(UTC), e.dtend.value.astimezone(UTC))
        for e in cal.contents.get("vevent", [])
    }


def _icalendar_rules_starts(content: bytes) -> dict[str, tuple[datetime, datetime]]:
    """UID -> (start, end) in UTC, local times read through the calendar's own
    VTIMEZONE (not the reader's copy of the IANA database)."""
    cal = icalendar.Calendar.from_ical(content)
    zones = {str(tz["TZID"]): tz.to_tz(lookup_tzid=False) for tz in cal.walk("VTIMEZONE")}
    found = {}
    for e in cal.walk("VEVENT"):
        ends = []
        for prop in ("DTSTART", "DTEND"):
            value = e[prop].dt
            tzid = e[prop].params.get("TZID")
            if tzid:
                value = value.replace(tzinfo=zones[tzid])
            ends.append(value.astimezone(UTC))
        found[str(e["UID"])] = (ends[0], ends[1])
    return found


def _recurring_starts(content: bytes) -> dict[str, tuple[datetime, datetime]]:
    occurrences = recurring_ical_events.of(icalendar.Calendar.from_ical(content)).between(*WINDOW)
    return {str(e["UID"]): (e["DTSTART"].dt.astimezone(UTC), e["DTEND"].dt.astimezone(UTC)) for e in occurrences}


def _readings(content: bytes) -> dict[str, dict[str, tuple[datetime, datetime]]]:
    return {
        "vobject": _vobject_starts(content),
        "icalendar (VTIMEZONE rules)": _icalendar_rules_starts(content),
        "recurring-ical-events": _recurring_starts(content),
    }


def _uid(booking: Booking, uids) -> str:
    (found,) = [u for u in uids if str(booking.pk) in u]
    return found


# --- the repeated hour ------------------------------------------------------------------------------


def test_both_0130s_of_the_fall_back_night_keep_their_instants_in_every_reader(studio_la, owner_la):
    service = factories.service(studio_la, name="Night shoot")  # 60 minutes
    first = place(service, FIRST_0130, resource="a", confirmed_at=FEED_NOW)  # 01:30 PDT - 01:30 PST
    second = place(service, SECOND_0130, resource="b", confirmed_at=FEED_NOW)  # 01:30 PST - 02:30 PST
    before = place(service, datetime(2026, 11, 1, 7, 15, tzinfo=UTC), resource="c")  # 00:15 PDT - 01:15 PDT (!)
    morning = place(service, at(FALL_BACK, 10), resource="d")  # 10:00 PST, nothing ambiguous

    response = _get(make_feed(owner_la))
    assert response.status_code == 200
    body = response.content

    # The wall time 01:30 names two instants: never written with the zone.
    assert b"TZID=America/Los_Angeles:20261101T013" not in body
    assert b"DTSTART:20261101T083000Z" in body
    assert b"DTSTART:20261101T093000Z" in body
    # Unambiguous times stay in the studio's zone.
    assert b"DTSTART;TZID=America/Los_Angeles:20261101T100000" in body
    for reader, starts in _readings(body).items():
        for booking in (first, second, before, morning):
            got = starts[_uid(booking, starts)]
            assert got == (booking.starts_at, booking.ends_at), (reader, booking.starts_at, got)
            assert got[1] - got[0] == timedelta(hours=1), reader  # neither zero-length nor two hours


def test_an_end_in_the_repeated_hour_writes_the_whole_event_in_utc(studio_la, owner_la):
    """00:15 PDT to 01:15 PDT: the start names one instant, the end two."""
    service = factories.service(studio_la)
    booking = place(service, datetime(2026, 11, 1, 7, 15, tzinfo=UTC))
    body = _get(make_feed(owner_la)).content
    (event,) = icalendar.Calendar.from_ical(body).walk("VEVENT")
    assert event["DTSTART"].to_ical() == b"20261101T071500Z"
    assert event["DTEND"].to_ical() == b"20261101T081500Z"
    assert event.decoded("DTEND") == booking.ends_at


def test_the_confirmation_invitation_in_the_repeated_hour_keeps_its_instant(
    studio_la, django_capture_on_commit_callbacks
):
    with studio_scope(studio_la):
        WorkingHours.objects.create(studio=studio_la, weekday=6, start_time=time(0), end_time=time(23, 59))
    service = factories.service(studio_la, name="Blue hour", duration_minutes=30)
    invitations = {}
    for start in (FIRST_0130, SECOND_0130):
        with context.acting_as(factories.TEST_ACTOR), studio_scope(studio_la):
            held, _ = booking_services.booking_hold(
                service=service,
                starts_at=start,
                client_name="Nell Night",
                client_email="nell@example.com",
                now=FEED_NOW,
            )
            mail.outbox.clear()
            with django_capture_on_commit_callbacks(execute=True):
                booking_services.booking_confirm(booking=held, now=FEED_NOW)
        (message,) = mail_to(mail.outbox, "nell@example.com")
        ((_, content, _),) = message.attachments
        invitations[start] = content.encode() if isinstance(content, str) else content

    for start, content in invitations.items():
        assert b"TZID=America/Los_Angeles:20261101T013000" not in content
        for reader, starts in _readings(content).items():
            ((got_start, got_end),) = starts.values()
            assert (got_start, got_end) == (start, start + timedelta(minutes=30)), reader


@pytest.mark.parametrize(
    ("local", "one_instant"),
    [
        (datetime(2026, 11, 1, 1, 30, tzinfo=LA), False),  # the repeated hour, first time
        (datetime(2026, 11, 1, 1, 30, fold=1, tzinfo=LA), False),  # and second time
        (datetime(2026, 3, 8, 2, 30, tzinfo=LA), False),  # the skipped hour: no such time
        (datetime(2026, 11, 1, 0, 59, 59, tzinfo=LA), True),
        (datetime(2026, 11, 1, 2, 0, tzinfo=LA), True),
        (datetime(2026, 3, 8, 3, 0, tzinfo=LA), True),
        (datetime(2026, 10, 25, 2, 30, tzinfo=zoneinfo.ZoneInfo("Europe/Berlin")), False),
        (datetime(2026, 4, 5, 1, 45, tzinfo=zoneinfo.ZoneInfo("Australia/Lord_Howe")), False),  # half an hour back
        (datetime(2026, 4, 5, 2, 30, tzinfo=zoneinfo.ZoneInfo("Australia/Lord_Howe")), True),
        (datetime(2026, 4, 5, 2, 30, tzinfo=UTC), True),
    ],
)
def test_which_wall_times_name_one_instant(local, one_instant):
    assert ics.names_one_instant(local) is one_instant


# --- VTIMEZONE: one reading for every reader --------------------------------------------------------------


def test_a_summer_event_reads_at_its_instant_in_vobject_and_icalendar(studio_la, owner_la):
    """The issue's case: the RDATE-list VTIMEZONE put a summer event an hour late in vobject."""
    service = factories.service(studio_la)
    summer = place(service, at(date(2027, 7, 1), 10), resource="a")  # 17:00 UTC
    winter = place(service, at(date(2026, 12, 1), 10), resource="b")  # 18:00 UTC
    body = _get(make_feed(owner_la)).content

    for reader, starts in _readings(body).items():
        assert starts[_uid(summer, starts)][0] == datetime(2027, 7, 1, 17, tzinfo=UTC), reader
        assert starts[_uid(winter, starts)][0] == datetime(2026, 12, 1, 18, tzinfo=UTC), reader
    (vtimezone,) = icalendar.Calendar.from_ical(body).walk("VTIMEZONE")
    subs = vtimezone.subcomponents
    assert subs and all("RRULE" in sub for sub in subs) and not any("RDATE" in sub for sub in subs)


def test_the_invitation_vtimezone_reads_right_in_vobject(studio_la):
    service = factories.service(studio_la)
    booking = place(service, at(date(2027, 6, 15), 9), confirmed_at=FEED_NOW)
    with studio_scope(studio_la):
        content = ics.invitation(Booking.objects.select_related("studio", "service").get(pk=booking.pk))
    cal = vobject.readOne(content.decode())
    assert cal.vevent.dtstart.value.astimezone(UTC) == datetime(2027, 6, 15, 16, tzinfo=UTC)
    assert cal.vevent.dtstart.value.utcoffset() == timedelta(hours=-7)


def _oracle_instants(zone: zoneinfo.ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """Every 7 hours (so every hour of the day comes round), and every minute
    of each hour in which zoneinfo says the offset changes."""
    found, at_, previous = [], start, start.astimezone(zone).utcoffset()
    while at_ < end:
        following = at_ + timedelta(hours=1)
        offset = following.astimezone(zone).utcoffset()
        if offset != previous:
            found += [at_ + timedelta(minutes=m) for m in range(61)]
        elif (at_ - start) % timedelta(hours=7) == timedelta(0):
            found.append(at_)
        previous, at_ = offset, following
    return found


@pytest.mark.parametrize(
    "tzid",
    [
        "America/Los_Angeles",
        "Australia/Sydney",  # southern hemisphere
        "Australia/Lord_Howe",  # a 30-minute change
        "Asia/Jerusalem",  # the Friday before the last Sunday of March
        "Europe/Dublin",  # "negative" daylight time in tzdata
        "Pacific/Chatham",  # +12:45 / +13:45
        "Africa/Casablanca",  # Ramadan: no yearly rule at all
        "America/Santiago",  # changes at midnight
        "Asia/Tokyo",  # no changes
        "America/Asuncion",  # dropped daylight time in 2024
    ],
)
def test_every_reader_agrees_with_zoneinfo_for_every_unambiguous_time(tzid):
    first, last = date(2026, 7, 1), date(2027, 11, 19)  # a feed's span
    cal = icalendar.Calendar()
    cal.add("prodid", ics.PRODID)
    cal.add("version", "2.0")
    cal.add_component(ics.vtimezone(tzid, first, last))
    text = cal.to_ical().decode()
    readers = {
        "vobject": vobject.readOne(text).vtimezone.gettzinfo(),
        "icalendar": icalendar.Calendar.from_ical(text).walk("VTIMEZONE")[0].to_tz(lookup_tzid=False),
    }
    zone = zoneinfo.ZoneInfo(tzid)
    checked = 0
    # From a year and a half before the span to a year after it.
    for instant in _oracle_instants(zone, datetime(2025, 1, 1, tzinfo=UTC), datetime(2028, 12, 31, tzinfo=UTC)):
        local = instant.astimezone(zone)
        wall = local.replace(tzinfo=None)
        if wall.replace(tzinfo=zone, fold=0).utcoffset() != wall.replace(tzinfo=zone, fold=1).utcoffset():
            continue  # the repeated hour: written in UTC, never as a wall time
        for name, reader in readers.items():
            assert wall.replace(tzinfo=reader).utcoffset() == local.utcoffset(), (name, wall)
        checked += 1
    assert checked > 4000


def test_a_studio_in_utc_needs_no_vtimezone(db):
    studio = factories.studio()  # the default zone, UTC
    owner = factories.owner_membership(studio)
    service = factories.service(studio)
    booking = place(service, datetime(2026, 11, 1, 9, 30, tzinfo=UTC))
    body = _get(make_feed(owner)).content
    assert b"BEGIN:VTIMEZONE" not in body
    assert b"DTSTART:20261101T093000Z" in body
    assert _vobject_starts(body)[_uid(booking, _vobject_starts(body))][0] == booking.starts_at


# --- lapsed holds never reach a calendar --------------------------------------------------------------


def test_holds_that_were_never_confirmed_never_reach_a_feed(studio_la, owner_la):
    with studio_scope(studio_la):
        WorkingHours.objects.bulk_create(
            [WorkingHours(studio=studio_la, weekday=d, start_time=time(8), end_time=time(20)) for d in range(7)]
        )
    free = factories.service(studio_la, name="Portrait")
    paid = factories.service(studio_la, name="Wedding", price=200, deposit=50)
    photographer = factories.member(studio_la, Role.PHOTOGRAPHER)
    day = date(2026, 10, 20)

    def act(fn, **kwargs):
        with context.acting_as(factories.TEST_ACTOR), studio_scope(studio_la):
            return fn(**kwargs)

    def hold(service, hour, name, now=FEED_NOW):
        booking, _ = act(
            booking_services.booking_hold,
            service=service,
            starts_at=at(day, hour),
            client_name=name,
            client_email="x@example.com",
            now=now,
        )
        return act(booking_services.booking_assign, booking=booking, members=[photographer])

    def checkout(booking, now=FEED_NOW):
        act(booking_services.booking_checkout, booking=booking, success_url="s", cancel_url="c", now=now)

    lapsed = hold(free, 8, "Spam Lapsed Hold")
    lapsed_checkout = hold(paid, 9, "Spam Lapsed Checkout")
    checkout(lapsed_checkout)
    given_up = hold(free, 11, "Spam Given Up")
    act(booking_services.booking_cancel, booking=given_up, by_client=True, now=FEED_NOW)
    confirmed = act(booking_services.booking_confirm, booking=hold(free, 13, "Real Confirmed"), now=FEED_NOW)
    cancelled = act(booking_services.booking_confirm, booking=hold(free, 14, "Real Cancelled"), now=FEED_NOW)
    act(booking_services.booking_cancel, booking=cancelled, by_client=False, now=FEED_NOW)
    completed = act(booking_services.booking_confirm, booking=hold(free, 15, "Real Completed"), now=FEED_NOW)
    act(booking_services.booking_complete, booking=completed)
    # Past the lapsed checkout's window (a deposit paid by hand waits days).
    later = FEED_NOW + timedelta(hours=django_settings.BOOKING_MANUAL_PAYMENT_HOURS, minutes=1)
    act(booking_services.holds_release, now=later)  # what beat does every minute
    live_hold = hold(free, 16, "Spam Live Hold", now=later)
    paying = hold(paid, 17, "Spam Still Paying", now=later)
    checkout(paying, now=later)
    with studio_scope(studio_la):
        states = {b.client_name: b.status for b in Booking.objects.all()}
    assert states == {
        "Spam Lapsed Hold": BookingStatus.CANCELLED,
        "Spam Lapsed Checkout": BookingStatus.CANCELLED,
        "Spam Given Up": BookingStatus.CANCELLED,
        "Real Confirmed": BookingStatus.CONFIRMED,
        "Real Cancelled": BookingStatus.CANCELLED,
        "Real Completed": BookingStatus.COMPLETED,
        "Spam Live Hold": BookingStatus.HELD,
        "Spam Still Paying": BookingStatus.AWAITING_PAYMENT,
    }

    for path in (make_feed(owner_la, "studio"), make_feed(photographer, "member")):
        body = _get(path).content
        assert b"Spam" not in body
        cal = icalendar.Calendar.from_ical(body)
        shown = {str(e["UID"]): str(e["STATUS"]) for e in cal.walk("VEVENT")}
        assert sorted(shown.values()) == ["CANCELLED", "CONFIRMED", "CONFIRMED"]
        assert shown[_uid(cancelled, shown)] == "CANCELLED"  # it was confirmed: calendars must remove it
        assert shown[_uid(confirmed, shown)] == shown[_uid(completed, shown)] == "CONFIRMED"
        for never in (lapsed, lapsed_checkout, paying, given_up, live_hold):
            assert not any(str(never.pk) in u for u in shown)


# --- HEAD ---------------------------------------------------------------------------------------------


def test_head_on_a_feed_answers_like_get_without_a_body(studio_la, owner_la):
    service = factories.service(studio_la)
    place(service, at(date(2026, 10, 20), 10))
    path = urlsplit(make_feed(owner_la)).path
    got = APIClient().get(path)
    assert got.status_code == 200 and got.content

    head = APIClient().head(path)
    assert head.status_code == 200
    assert head.content == b""
    for header in ("Content-Type", "ETag", "Last-Modified", "Cache-Control"):
        assert head[header] == got[header], header
    assert int(head["Content-Length"]) == len(got.content)
    assert APIClient().head(path, HTTP_IF_NONE_MATCH=got["ETag"]).status_code == 304
    assert APIClient().head("/calendar/not-a-feed.ics").status_code == 404
    assert APIClient().post(path).status_code == 405

    # The view itself sends no body, whatever the server in front of it does.
    token = path.removeprefix("/calendar/").removesuffix(".ics")
    direct = views.calendar_feed(RequestFactory().head(path), token)
    assert direct.status_code == 200
    assert direct.content == b""
    assert int(direct["Content-Length"]) == len(got.content)


def test_head_is_refused_for_a_feed_whose_owner_is_inactive(studio_la, owner_la):
    path = urlsplit(make_feed(owner_la)).path
    assert APIClient().head(path).status_code == 200
    User.objects.filter(pk=owner_la.user_id).update(is_active=False)
    assert APIClient().head(path).status_code == 404
