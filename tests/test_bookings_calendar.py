"""Calendar feeds (staff API, the secret ICS URL, who sees what), the ICS
itself read back with independent parsers, conditional GET, query counts,
confirmation and cancellation emails with their invitations, reminders and
the Celery beat tasks.

The feed shows bookings from 90 days before to 400 days after "now"; the
feed view's clock is pinned to FEED_NOW so the dates below never drift out
of that window. The studio is in America/Los_Angeles.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from types import SimpleNamespace
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import icalendar
import pytest
import recurring_ical_events
from django.conf import settings as django_settings
from django.core import mail
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.http import http_date, parse_http_date

from bookings import services, tasks, views
from bookings.models import Booking, BookingStatus, CalendarFeed, Service, WorkingHours
from studio import context
from studio import services as studio_services
from studio.models import EmailLog, EmailStatus, Studio, hash_token
from studio.roles import Role
from studio.tenancy import studio_scope
from tests import factories
from tests.helpers import assert_api_error, mail_to

pytestmark = pytest.mark.django_db

LA = ZoneInfo("America/Los_Angeles")
FEED_NOW = datetime(2026, 10, 15, 19, tzinfo=UTC)
DAY = date(2026, 10, 20)  # a Tuesday, inside the feed window
WINDOW = (datetime(2026, 9, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


@pytest.fixture(autouse=True)
def _feed_clock(monkeypatch):
    monkeypatch.setattr(views, "timezone", SimpleNamespace(now=lambda: FEED_NOW))


# --- helpers ----------------------------------------------------------------------------------


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=LA).astimezone(UTC)


def la_studio(**fields) -> Studio:
    studio = factories.studio()
    Studio.objects.filter(pk=studio.pk).update(timezone="America/Los_Angeles", **fields)
    studio.refresh_from_db()
    return studio


@pytest.fixture
def studio_la(db) -> Studio:
    return la_studio(contact_email="hello@studio.example")


@pytest.fixture
def scope(studio_la):
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio_la):
        yield studio_la


@pytest.fixture
def owner_la(studio_la):
    return factories.owner_membership(studio_la)


def open_every_day(studio: Studio) -> None:
    with studio_scope(studio):
        WorkingHours.objects.bulk_create(
            [WorkingHours(studio=studio, weekday=d, start_time=time(8), end_time=time(20)) for d in range(7)]
        )


def place(
    service: Service,
    start: datetime,
    *,
    status: str = BookingStatus.CONFIRMED,
    resource: str = "studio",
    email: str = "casey@example.com",
    hold_expires_at: datetime | None = None,
    confirmed_at: datetime | None = None,
) -> Booking:
    end = start + timedelta(minutes=service.duration_minutes)
    with studio_scope(service.studio):
        return Booking.objects.create(
            studio=service.studio,
            service=service,
            client_name="Casey Client",
            client_email=email,
            starts_at=start,
            ends_at=end,
            blocked_start=start,
            blocked_end=end,
            resource=resource,
            status=status,
            hold_expires_at=hold_expires_at,
            confirmed_at=confirmed_at,
            token_hash=hash_token(secrets.token_urlsafe(16)),
        )


@contextmanager
def as_actor(studio: Studio) -> Iterator[None]:
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        yield


def make_feed(owner, scope: str = "studio") -> str:
    """A feed's path (/calendar/<token>.ics)."""
    with as_actor(owner.studio):
        _, raw = services.feed_create(owner=owner, scope=scope)
    return f"/calendar/{raw}.ics"


def held_then_confirmed(service: Service, start: datetime, email: str = "dana@example.com") -> Booking:
    with as_actor(service.studio):
        booking, _ = services.booking_hold(
            service=service, starts_at=start, client_name="Dana Client", client_email=email, now=FEED_NOW
        )
        return services.booking_confirm(booking=booking, now=FEED_NOW)


def fetch(api, path: str, **headers):
    return api.get(urlsplit(path).path, **headers)


def calendar_of(response) -> icalendar.Calendar:
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/calendar")
    return icalendar.Calendar.from_ical(response.content)


def events(cal: icalendar.Calendar) -> dict[str, icalendar.Event]:
    found = {str(e["UID"]): e for e in cal.walk("VEVENT")}
    assert len(found) == len(cal.walk("VEVENT")), "duplicate UIDs"
    return found


def uid_of(booking: Booking, cal: icalendar.Calendar) -> str:
    (uid,) = [u for u in events(cal) if str(booking.pk) in u]
    return uid


def feeds_url(studio: Studio, pk: object | None = None, action: str = "") -> str:
    base = f"/api/v1/studios/{studio.slug}/calendar-feeds/"
    if pk is None:
        return base
    return f"{base}{pk}/{action + '/' if action else ''}"


def listed(response) -> list[dict]:
    body = response.json()
    return body["results"] if isinstance(body, dict) else body


# --- feeds through the staff API -------------------------------------------------------------------


def test_feed_lifecycle_create_list_fetch_rotate_revoke(studio_la, owner_la, client_for, api):
    staff = client_for(owner_la)

    created = staff.post(feeds_url(studio_la), {"scope": "studio", "name": "Everything"}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["scope"] == "studio" and body["name"] == "Everything"
    url = body["url"]
    assert url.startswith(django_settings.SITE_URL.rstrip("/") + "/calendar/")
    assert re.fullmatch(r"/calendar/[A-Za-z0-9_-]{40,}\.ics", urlsplit(url).path)

    rows = listed(staff.get(feeds_url(studio_la)))
    assert [r["id"] for r in rows] == [body["id"]]
    assert rows[0]["url"] is None  # the URL is shown once
    raw = urlsplit(url).path.removeprefix("/calendar/").removesuffix(".ics")
    with studio_scope(studio_la):
        assert CalendarFeed.objects.get().token_hash == hash_token(raw) != raw  # only the hash is kept

    feed = fetch(api, url)
    assert feed.status_code == 200
    assert feed["Content-Type"].startswith("text/calendar")
    icalendar.Calendar.from_ical(feed.content)

    rotated = staff.post(feeds_url(studio_la, body["id"], "rotate"))
    assert rotated.status_code == 200, rotated.content
    new_url = rotated.json()["url"]
    assert new_url and new_url != url
    assert fetch(api, url).status_code == 404
    assert fetch(api, new_url).status_code == 200

    revoked = staff.delete(feeds_url(studio_la, body["id"]))
    assert revoked.status_code == 204
    assert fetch(api, new_url).status_code == 404
    with studio_scope(studio_la):
        assert CalendarFeed.objects.get().revoked_at is not None

    assert fetch(api, f"/calendar/{secrets.token_urlsafe(32)}.ics").status_code == 404


def test_each_member_manages_only_their_own_feeds(studio_la, owner_la, client_for):
    admin = factories.member(studio_la, Role.ADMIN)
    created = client_for(owner_la).post(feeds_url(studio_la), {"scope": "studio"}, format="json")
    feed_id = created.json()["id"]
    other = client_for(admin)

    assert listed(other.get(feeds_url(studio_la))) == []
    assert other.post(feeds_url(studio_la, feed_id, "rotate")).status_code == 404
    assert other.delete(feeds_url(studio_la, feed_id)).status_code == 404


def test_a_viewer_cannot_make_a_studio_feed_but_can_make_their_own(studio_la, client_for):
    viewer = client_for(factories.member(studio_la, Role.VIEWER))

    refused = viewer.post(feeds_url(studio_la), {"scope": "studio", "name": "All"}, format="json")
    assert_api_error(refused, 403, "PERMISSION_DENIED")
    with studio_scope(studio_la):
        assert not CalendarFeed.objects.exists()

    mine = viewer.post(feeds_url(studio_la), {"scope": "member", "name": "Mine"}, format="json")
    assert mine.status_code == 201, mine.content
    assert mine.json()["url"]


def test_a_member_feed_shows_only_bookings_assigned_to_them(studio_la, owner_la, client_for, api):
    viewer = factories.member(studio_la, Role.VIEWER)
    colleague = factories.member(studio_la, Role.PHOTOGRAPHER)
    team = factories.team(studio_la, members=[viewer])
    lone_team = factories.team(studio_la, members=[colleague])
    service = factories.service(studio_la)
    start = at(DAY, 9)

    def b(hours: int, **fields) -> Booking:
        return factories.booking(studio_la, start=start + timedelta(hours=hours), service_=service, **fields)

    by_resource = b(0, resource=str(viewer.pk))
    by_member = b(1, resource="studio")
    by_team = b(2, resource="studio-x")
    everything_at_once = b(3, resource=str(viewer.pk))
    theirs = b(4, resource=str(colleague.pk))
    their_team = b(5, resource="studio-y")
    nobodys = b(6, resource="studio")
    with as_actor(studio_la):
        services.booking_assign(booking=by_member, members=[viewer])
        services.booking_assign(booking=by_team, team=team)
        services.booking_assign(booking=everything_at_once, members=[viewer, colleague], team=team)
        services.booking_assign(booking=their_team, team=lone_team)
    elsewhere = la_studio()
    foreign = factories.booking(elsewhere, start=start, resource=str(viewer.pk))

    created = client_for(viewer).post(feeds_url(studio_la), {"scope": "member"}, format="json")
    cal = calendar_of(fetch(api, created.json()["url"]))
    shown = set(events(cal))
    expected = {by_resource, by_member, by_team, everything_at_once}
    assert len(shown) == len(expected)
    assert all(any(str(x.pk) in u for u in shown) for x in expected)
    hidden = [theirs, their_team, nobodys, foreign]
    assert not any(str(x.pk) in u for u in shown for x in hidden)

    everyone = calendar_of(fetch(api, make_feed(owner_la, "studio")))
    assert len(events(everyone)) == 7  # the whole studio, and not the other one
    assert not any(str(foreign.pk) in u for u in events(everyone))


def test_a_feed_stops_serving_when_its_owner_loses_the_scope_it_needs(studio_la, api):
    admin = factories.member(studio_la, Role.ADMIN)
    studio_feed = make_feed(admin, "studio")
    own_feed = make_feed(admin, "member")
    assert fetch(api, studio_feed).status_code == 200

    with as_actor(studio_la):
        studio_services.membership_change_role(actor=None, membership=admin, role=Role.VIEWER)
    assert fetch(api, studio_feed).status_code == 404  # checked on every fetch
    assert fetch(api, own_feed).status_code == 200  # a viewer may still see their own

    with as_actor(studio_la):
        studio_services.membership_remove(actor=None, membership=admin)
    assert fetch(api, own_feed).status_code == 404


def test_a_feed_of_an_inactive_studio_is_gone(studio_la, owner_la, api):
    path = make_feed(owner_la)
    Studio.objects.filter(pk=studio_la.pk).update(is_active=False)
    assert fetch(api, path).status_code == 404


# --- the ICS, read back ---------------------------------------------------------------------------------


def test_feed_parses_with_independent_parsers_across_a_dst_change(studio_la, owner_la, api):
    service = factories.service(studio_la, name="Portrait")
    before = place(service, at(date(2026, 10, 31), 10))  # 17:00 UTC (PDT)
    after = place(service, at(date(2026, 11, 2), 10))  # 18:00 UTC (PST)
    held = place(service, at(DAY, 9), status=BookingStatus.HELD, hold_expires_at=FEED_NOW + timedelta(minutes=5))
    cancelled = place(service, at(DAY, 11), status=BookingStatus.CANCELLED, confirmed_at=FEED_NOW)
    paying = place(
        service,
        at(DAY, 13),
        status=BookingStatus.AWAITING_PAYMENT,
        hold_expires_at=FEED_NOW + timedelta(minutes=20),
    )
    path = make_feed(owner_la)

    first = fetch(api, path)
    cal = calendar_of(first)
    by_uid = events(cal)
    assert len(by_uid) == 3
    # Holds and unpaid checkouts last minutes and anyone makes them: not in calendars.
    assert not any(str(b.pk) in u for u in by_uid for b in (held, paying))
    assert {str(by_uid[uid_of(b, cal)]["STATUS"]) for b in (before, after)} == {"CONFIRMED"}
    assert str(by_uid[uid_of(cancelled, cal)]["STATUS"]) == "CANCELLED"  # was confirmed: calendars remove it

    # Stable UIDs: the same on the next fetch.
    second = calendar_of(fetch(api, path))
    assert set(events(second)) == set(by_uid)

    # The zone travels with the calendar.
    (vtimezone,) = cal.walk("VTIMEZONE")
    assert str(vtimezone["TZID"]) == "America/Los_Angeles"
    rules_only = vtimezone.to_tz(lookup_tzid=False)  # built from the VTIMEZONE's own rules
    assert datetime(2026, 10, 31, 10, tzinfo=rules_only).utcoffset() == timedelta(hours=-7)
    assert datetime(2026, 11, 2, 10, tzinfo=rules_only).utcoffset() == timedelta(hours=-8)

    # DTSTART in the studio's zone, at the booking's instant, on both sides of the change.
    for booking, local in ((before, "20261031T100000"), (after, "20261102T100000")):
        event = by_uid[uid_of(booking, cal)]
        assert event["DTSTART"].params["TZID"] == "America/Los_Angeles"
        assert event.decoded("DTSTART") == booking.starts_at
        assert event.decoded("DTEND") == booking.ends_at
        assert f"DTSTART;TZID=America/Los_Angeles:{local}".encode() in first.content

    occurrences = recurring_ical_events.of(icalendar.Calendar.from_ical(first.content)).between(*WINDOW)
    starts = {str(e["UID"]): e["DTSTART"].dt for e in occurrences}
    assert starts[uid_of(before, cal)] == datetime(2026, 10, 31, 17, tzinfo=UTC)
    assert starts[uid_of(after, cal)] == datetime(2026, 11, 2, 18, tzinfo=UTC)
    assert all(e["DTEND"].dt - e["DTSTART"].dt == timedelta(hours=1) for e in occurrences)
    assert len(occurrences) == 3


def test_sequence_rises_on_reschedule_and_cancel(scope, owner_la, api):
    open_every_day(scope)
    service = factories.service(scope)
    booking = held_then_confirmed(service, at(DAY, 10))
    path = make_feed(owner_la)

    cal = calendar_of(fetch(api, path))
    uid = uid_of(booking, cal)
    confirmed = events(cal)[uid]
    assert str(confirmed["STATUS"]) == "CONFIRMED"

    services.booking_reschedule(
        booking=booking, starts_at=at(DAY + timedelta(days=1), 11), by_client=False, now=FEED_NOW
    )
    moved = events(calendar_of(fetch(api, path)))[uid]
    assert int(moved["SEQUENCE"]) > int(confirmed["SEQUENCE"])
    assert moved.decoded("DTSTART") == at(DAY + timedelta(days=1), 11)

    services.booking_cancel(booking=booking, by_client=False, now=FEED_NOW)
    gone = events(calendar_of(fetch(api, path)))[uid]  # kept, so calendars remove it
    assert int(gone["SEQUENCE"]) > int(moved["SEQUENCE"])
    assert str(gone["STATUS"]) == "CANCELLED"


# --- conditional GET -----------------------------------------------------------------------------------


def test_conditional_get_with_etag_and_last_modified(scope, owner_la, api):
    service = factories.service(scope)
    booking = place(service, at(DAY, 10))
    path = make_feed(owner_la)

    first = fetch(api, path)
    etag, last_modified = first["ETag"], first["Last-Modified"]
    assert etag.startswith('"') and etag.endswith('"')
    assert parse_http_date(last_modified)

    unchanged = fetch(api, path, HTTP_IF_NONE_MATCH=etag)
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    assert unchanged["ETag"] == etag
    assert fetch(api, path, HTTP_IF_NONE_MATCH='"something-else"').status_code == 200

    later = http_date(parse_http_date(last_modified) + 60)
    earlier = http_date(parse_http_date(last_modified) - 3600)
    assert fetch(api, path, HTTP_IF_MODIFIED_SINCE=later).status_code == 304
    assert fetch(api, path, HTTP_IF_MODIFIED_SINCE=last_modified).status_code == 304
    assert fetch(api, path, HTTP_IF_MODIFIED_SINCE=earlier).status_code == 200

    services.booking_assign(booking=booking, notes="Bring the props")
    changed = fetch(api, path, HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200
    assert changed["ETag"] != etag
    assert b"Bring the props" in changed.content
    assert fetch(api, path, HTTP_IF_NONE_MATCH=changed["ETag"]).status_code == 304

    place(service, at(DAY, 14))  # a new booking changes it too
    assert fetch(api, path, HTTP_IF_NONE_MATCH=changed["ETag"]).status_code == 200


def test_renaming_the_service_changes_the_feed(scope, owner_la, api):
    service = factories.service(scope, name="Portrait")
    place(service, at(DAY, 10))
    path = make_feed(owner_la)
    first = fetch(api, path)
    assert b"SUMMARY:Portrait: Casey Client" in first.content

    service.name = "Family portrait"
    services.service_save(service=service)

    again = fetch(api, path)
    assert b"SUMMARY:Family portrait: Casey Client" in again.content
    assert again["ETag"] != first["ETag"]


# --- query counts ----------------------------------------------------------------------------------------


def _bulk(service: Service, count: int, resources: list[str], offset: int = 0) -> None:
    rows = []
    for i in range(offset, offset + count):
        start = at(DAY, 8) + timedelta(hours=3 * i)
        rows.append(
            Booking(
                studio=service.studio,
                service=service,
                client_name=f"Client {i}",
                client_email=f"c{i}@example.com",
                starts_at=start,
                ends_at=start + timedelta(hours=1),
                blocked_start=start,
                blocked_end=start + timedelta(hours=1),
                resource=resources[i % len(resources)],
                status=BookingStatus.CANCELLED if i % 5 == 0 else BookingStatus.CONFIRMED,
                confirmed_at=FEED_NOW - timedelta(days=1),  # confirmed, then some cancelled: all in feeds
                token_hash=hash_token(secrets.token_urlsafe(16)),
            )
        )
    with studio_scope(service.studio):
        Booking.objects.bulk_create(rows)


@pytest.mark.parametrize("scope_name", ["studio", "member"])
def test_the_feed_reads_a_fixed_number_of_queries(studio_la, owner_la, api, scope_name):
    service = factories.service(studio_la)
    resources = [str(owner_la.pk), "studio"]
    path = make_feed(owner_la, scope_name)
    with studio_scope(studio_la):  # fetched just now: this fetch does not record it again
        CalendarFeed.objects.update(last_fetched_at=FEED_NOW)

    def measured() -> tuple[int, int]:
        with CaptureQueriesContext(connection) as queries:
            response = fetch(api, path)
        return len(queries), len(events(calendar_of(response)))

    _bulk(service, 20, resources)
    few_queries, few = measured()  # a new ETag: the body is built
    _bulk(service, 180, resources, offset=20)
    many_queries, many = measured()
    cached_queries, cached = measured()  # unchanged: the body built last time

    assert (few, many, cached) == ((20, 200, 200) if scope_name == "studio" else (10, 100, 100))
    assert many_queries == few_queries
    assert few_queries <= 5
    assert cached_queries <= few_queries


def test_a_fetch_records_when_the_feed_was_last_fetched(studio_la, owner_la, api):
    path = make_feed(owner_la)
    with studio_scope(studio_la):
        assert CalendarFeed.objects.get().last_fetched_at is None
    fetch(api, path)
    with studio_scope(studio_la):
        assert CalendarFeed.objects.get().last_fetched_at == FEED_NOW


# --- emails with invitations -------------------------------------------------------------------------------


def invite_of(message) -> tuple[icalendar.Calendar, object]:
    (attachment,) = message.attachments
    filename, content, mimetype = attachment
    assert filename == "invite.ics"
    assert mimetype.startswith("text/calendar")
    (part,) = [p for p in message.message().walk() if p.get_content_type() == "text/calendar"]
    content = content.encode() if isinstance(content, str) else content
    return icalendar.Calendar.from_ical(content), part


def test_confirming_sends_one_email_with_a_request_invitation(scope, django_capture_on_commit_callbacks):
    open_every_day(scope)
    service = factories.service(scope, name="Portrait")
    with context.acting_as(factories.TEST_ACTOR):
        held, _ = services.booking_hold(
            service=service,
            starts_at=at(DAY, 10),
            client_name="Dana Client",
            client_email="dana@example.com",
            now=FEED_NOW,
        )
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        services.booking_confirm(booking=held, now=FEED_NOW)

    [message] = mail_to(mail.outbox, "dana@example.com")
    cal, part = invite_of(message)
    assert str(cal["METHOD"]) == "REQUEST"
    assert part.get_param("method") == "REQUEST"
    (event,) = cal.walk("VEVENT")
    assert str(event["ATTENDEE"]).lower() == "mailto:dana@example.com"
    assert str(event["ORGANIZER"]).lower() == "mailto:hello@studio.example"
    assert str(event["STATUS"]) == "CONFIRMED"
    assert str(held.pk) in str(event["UID"])
    assert event.decoded("DTSTART") == at(DAY, 10)
    assert event["DTSTART"].params["TZID"] == "America/Los_Angeles"
    (occurrence,) = recurring_ical_events.of(cal).between(*WINDOW)
    assert occurrence["DTSTART"].dt == at(DAY, 10)


def test_nothing_is_sent_when_the_confirmation_rolls_back(scope, django_capture_on_commit_callbacks):
    open_every_day(scope)
    service = factories.service(scope)
    with context.acting_as(factories.TEST_ACTOR):
        held, _ = services.booking_hold(
            service=service, starts_at=at(DAY, 10), client_name="D", client_email="d@example.com", now=FEED_NOW
        )
    mail.outbox.clear()

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        services.booking_confirm(booking=held, now=FEED_NOW)
        raise RuntimeError("something later failed")

    assert callbacks == []
    assert mail.outbox == []
    held.refresh_from_db()
    assert held.status == BookingStatus.HELD


def test_cancelling_sends_a_cancel_invitation(scope, django_capture_on_commit_callbacks):
    open_every_day(scope)
    service = factories.service(scope)
    with django_capture_on_commit_callbacks(execute=True):
        booking = held_then_confirmed(service, at(DAY, 10))
    confirmation, _ = invite_of(mail_to(mail.outbox, "dana@example.com")[-1])
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        services.booking_cancel(booking=booking, by_client=False, now=FEED_NOW)

    (cancelled,) = mail_to(mail.outbox, "dana@example.com")
    cal, _ = invite_of(cancelled)
    assert str(cal["METHOD"]) == "CANCEL"
    (event,) = cal.walk("VEVENT")
    (before,) = confirmation.walk("VEVENT")
    assert str(event["STATUS"]) == "CANCELLED"
    assert str(event["UID"]) == str(before["UID"])
    assert int(event["SEQUENCE"]) > int(before["SEQUENCE"])


def test_the_cancellation_attachment_declares_method_cancel(scope, django_capture_on_commit_callbacks):
    open_every_day(scope)
    service = factories.service(scope)
    booking = held_then_confirmed(service, at(DAY, 10))
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        services.booking_cancel(booking=booking, by_client=False, now=FEED_NOW)

    cal, part = invite_of(mail_to(mail.outbox, "dana@example.com")[0])
    assert str(cal["METHOD"]) == "CANCEL"
    assert part.get_param("method") == "CANCEL"


def test_an_invitation_has_an_organizer_even_without_a_studio_contact_email(db, django_capture_on_commit_callbacks):
    studio = la_studio()  # contact_email left empty (the default)
    open_every_day(studio)
    service = factories.service(studio)

    with django_capture_on_commit_callbacks(execute=True):
        held_then_confirmed(service, at(DAY, 10))

    cal, _ = invite_of(mail_to(mail.outbox, "dana@example.com")[-1])
    (event,) = cal.walk("VEVENT")
    assert str(event.get("ORGANIZER", "")).lower().startswith("mailto:")


# --- reminders ------------------------------------------------------------------------------------------------

R_NOW = datetime(2026, 10, 20, 16, tzinfo=UTC)


def test_reminders_go_once_to_confirmed_bookings_in_the_next_24_hours(scope, django_capture_on_commit_callbacks):
    service = factories.service(scope)

    def b(hours: float, status: str = BookingStatus.CONFIRMED) -> Booking:
        name = f"{status}-{hours}".replace(".", "_")
        return place(service, R_NOW + timedelta(hours=hours), status=status, email=f"{name}@example.com")

    soon = b(2)
    last = b(24)
    b(25)  # too far
    b(3, BookingStatus.CANCELLED)
    b(4, BookingStatus.HELD)
    b(-1)  # already started

    with django_capture_on_commit_callbacks(execute=True):
        services.reminders_send(now=R_NOW)

    assert sorted(m.to[0] for m in mail.outbox) == sorted([soon.client_email, last.client_email])
    assert all(m.attachments == [] for m in mail.outbox)
    soon.refresh_from_db()
    # Marked when the email log says it went out, not when it was queued.
    log = EmailLog.objects.get(kind="booking.reminder", recipient=soon.client_email)
    assert log.status == EmailStatus.SENT and soon.reminder_sent_at == log.sent_at

    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert services.reminders_send(now=R_NOW + timedelta(minutes=15)) == 0
    assert mail.outbox == []


def test_a_rescheduled_booking_gets_a_reminder_for_its_new_time(scope, django_capture_on_commit_callbacks):
    open_every_day(scope)
    service = factories.service(scope)
    booking = held_then_confirmed(service, at(date(2026, 10, 21), 8))  # 23 h after R_NOW
    with django_capture_on_commit_callbacks(execute=True):
        services.reminders_send(now=R_NOW)
    assert [m.subject.split(":")[0] for m in mail.outbox] == ["Tomorrow"]

    new_start = at(date(2026, 10, 24), 10)
    services.booking_reschedule(booking=booking, starts_at=new_start, by_client=False, now=R_NOW)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.reminders_send(now=new_start - timedelta(hours=20))
    assert [m.to for m in mail.outbox] == [["dana@example.com"]]


def test_beat_schedule_names_the_booking_tasks():
    from studio.celery import app

    schedule = django_settings.CELERY_BEAT_SCHEDULE
    by_task = {entry["task"]: entry["schedule"] for entry in schedule.values()}
    assert {"bookings.send_reminders", "bookings.release_expired_holds"} <= set(by_task)
    assert float(by_task["bookings.send_reminders"]) <= 3600  # well inside the 24 h window
    assert float(by_task["bookings.release_expired_holds"]) <= 300
    assert {"bookings.send_reminders", "bookings.send_reminders_for", "bookings.release_expired_holds"} <= set(
        app.tasks
    )


def test_send_reminders_runs_per_studio_in_scope(db, django_capture_on_commit_callbacks):
    from studio.celery import app

    assert app.conf.task_always_eager
    now = timezone.now()
    first, second, asleep = la_studio(), la_studio(), la_studio()
    mine = place(factories.service(first), now + timedelta(hours=2), email="first@example.com")
    yours = place(factories.service(second), now + timedelta(hours=3), email="second@example.com")
    dormant = place(factories.service(asleep), now + timedelta(hours=2), email="asleep@example.com")
    Studio.objects.filter(pk=asleep.pk).update(is_active=False)

    with django_capture_on_commit_callbacks(execute=True):
        queued = tasks.send_reminders.delay().get()

    assert queued == 2  # the two active studios with reminders due
    assert sorted(m.to[0] for m in mail.outbox) == ["first@example.com", "second@example.com"]
    for booking, reminded in ((mine, True), (yours, True), (dormant, False)):
        with studio_scope(booking.studio):
            assert (Booking.objects.get(pk=booking.pk).reminder_sent_at is not None) is reminded


def test_release_expired_holds_runs_per_studio(db):
    now = timezone.now()
    studio = la_studio()
    service = factories.service(studio)
    expired = place(
        service, now + timedelta(days=2), status=BookingStatus.HELD, hold_expires_at=now - timedelta(minutes=1)
    )
    fresh = place(
        service, now + timedelta(days=3), status=BookingStatus.HELD, hold_expires_at=now + timedelta(minutes=9)
    )

    tasks.release_expired_holds.delay().get()

    with studio_scope(studio):
        expired.refresh_from_db()
        fresh.refresh_from_db()
    assert (expired.status, expired.cancel_reason) == (BookingStatus.CANCELLED, "hold_expired")
    assert expired.sequence == 1
    assert fresh.status == BookingStatus.HELD
