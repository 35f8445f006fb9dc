"""Available slots: weekly hours in the studio's zone, per-member hours, date
overrides, time off, buffers, notice and advance limits, the daily limit,
live bookings and holds, daylight-saving days, several members as resources,
the public slots endpoint and a fixed number of queries.

Every computation passes ``now=``; the studio is in America/Los_Angeles
(UTC-8 in winter, UTC-7 in summer; 2026-03-08 springs forward 02:00 -> 03:00,
2026-11-01 falls back 02:00 -> 01:00).
"""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bookings import availability, services
from bookings.models import Booking, BookingStatus, DateOverride, Service, TimeOff, WorkingHours
from studio import context
from studio.models import Studio, hash_token
from studio.roles import Role
from studio.tenancy import studio_scope
from tests import factories
from tests.helpers import assert_api_error

pytestmark = pytest.mark.django_db

LA = ZoneInfo("America/Los_Angeles")
NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)  # a Thursday, well before every day used below
MON = date(2026, 1, 5)  # a Monday in winter (UTC-8)
TUE = MON + timedelta(days=1)
WEEK = timedelta(days=7)
EVERY_DAY = range(7)


# --- helpers ----------------------------------------------------------------------------------


def at(day: date, hour: int, minute: int = 0, *, fold: int = 0) -> datetime:
    """The instant (UTC) of a Los Angeles wall-clock time."""
    return datetime.combine(day, time(hour, minute), tzinfo=LA).replace(fold=fold).astimezone(UTC)


def hm(moment: datetime) -> str:
    return moment.astimezone(LA).strftime("%H:%M")


def hm_range(first: str, last: str, step: int = 30) -> list[str]:
    start = datetime.strptime(first, "%H:%M")
    stop = datetime.strptime(last, "%H:%M")
    out = []
    while start <= stop:
        out.append(start.strftime("%H:%M"))
        start += timedelta(minutes=step)
    return out


def la_studio() -> Studio:
    studio = factories.studio()
    Studio.objects.filter(pk=studio.pk).update(timezone="America/Los_Angeles")
    studio.refresh_from_db()
    return studio


@pytest.fixture
def studio_la(db) -> Studio:
    return la_studio()


@pytest.fixture
def scope(studio_la):
    """The studio, with its scope and a test actor active for the whole test."""
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio_la):
        yield studio_la


def hours(studio: Studio, weekdays, start: time, end: time, member=None) -> None:
    for weekday in weekdays:
        WorkingHours.objects.create(studio=studio, member=member, weekday=weekday, start_time=start, end_time=end)


def service_for(studio: Studio, members=(), **fields) -> Service:
    service = factories.service(studio, **fields)
    if members:
        with studio_scope(studio):
            service.members.set(members)
    return service


def place(
    service: Service,
    start: datetime,
    *,
    status: str = BookingStatus.CONFIRMED,
    resource: str = "studio",
    hold_expires_at: datetime | None = None,
) -> Booking:
    """A booking row as the services would write it (buffers included)."""
    end = start + timedelta(minutes=service.duration_minutes)
    with studio_scope(service.studio):
        return Booking.objects.create(
            studio=service.studio,
            service=service,
            client_name="Casey Client",
            client_email="casey@example.com",
            starts_at=start,
            ends_at=end,
            blocked_start=start - timedelta(minutes=service.buffer_before_minutes),
            blocked_end=end + timedelta(minutes=service.buffer_after_minutes),
            resource=resource,
            status=status,
            hold_expires_at=hold_expires_at,
            token_hash=hash_token(secrets.token_urlsafe(16)),
        )


def slots(service: Service, first: date, last: date | None = None, *, now: datetime = NOW) -> list:
    with studio_scope(service.studio):
        return availability.available_slots(service, first, last or first, now=now)


def starts(service: Service, day: date, *, now: datetime = NOW) -> list[str]:
    return [hm(s.start) for s in slots(service, day, now=now)]


def by_start(service: Service, day: date, *, now: datetime = NOW) -> dict[str, set[str]]:
    return {hm(s.start): set(s.resources) for s in slots(service, day, now=now)}


def hold(service: Service, start: datetime, *, now: datetime = NOW) -> Booking:
    with context.acting_as(factories.TEST_ACTOR), studio_scope(service.studio):
        booking, _ = services.booking_hold(
            service=service, starts_at=start, client_name="Robin", client_email="robin@example.com", now=now
        )
    return booking


# --- weekly hours -----------------------------------------------------------------------------


def test_slots_follow_weekly_hours_in_the_studio_zone(scope):
    hours(scope, [0], time(9), time(17))  # Mondays 09:00-17:00 local
    service = service_for(scope, duration_minutes=60, slot_step_minutes=30)

    found = slots(service, MON)

    assert found[0].start == datetime(2026, 1, 5, 17, tzinfo=UTC)  # 09:00 PST
    assert found[-1].start == datetime(2026, 1, 6, 0, tzinfo=UTC)  # 16:00 PST, ends at closing
    assert [hm(s.start) for s in found] == hm_range("09:00", "16:00")
    assert all(s.end - s.start == timedelta(hours=1) for s in found)
    assert all(s.resources == ("studio",) for s in found)
    assert slots(service, TUE) == []  # no hours on Tuesdays
    whole_week = slots(service, MON - timedelta(days=1), MON + timedelta(days=5))
    assert {s.start.astimezone(LA).date() for s in whole_week} == {MON}
    assert len(whole_week) == len(found)


def test_member_hours_apply_to_them_and_a_member_without_hours_uses_the_studios(scope):
    ana = factories.member(scope, Role.PHOTOGRAPHER)
    ben = factories.member(scope, Role.PHOTOGRAPHER)
    hours(scope, [0, 1], time(9), time(17))  # the studio: Monday and Tuesday
    hours(scope, [0], time(10), time(12), member=ana)  # Ana: Mondays 10-12 only
    service = service_for(scope, members=[ana, ben], slot_step_minutes=60)
    a, b = str(ana.pk), str(ben.pk)

    assert by_start(service, MON) == {
        "09:00": {b},
        "10:00": {a, b},
        "11:00": {a, b},
        **{h: {b} for h in hm_range("12:00", "16:00", 60)},
    }
    # Ana's own hours replace the studio's: she has none on Tuesdays; Ben
    # (no hours of his own) follows the studio's.
    assert by_start(service, TUE) == {h: {b} for h in hm_range("09:00", "16:00", 60)}
    # Ana first: resources come in the order the members were added.
    assert next(s for s in slots(service, MON) if hm(s.start) == "10:00").resources == (a, b)


# --- date overrides ---------------------------------------------------------------------------


def test_date_overrides_replace_the_weekly_hours_for_that_date(scope):
    hours(scope, [0], time(9), time(17))
    service = service_for(scope, slot_step_minutes=60)
    DateOverride.objects.create(studio=scope, date=MON, start_time=time(10), end_time=time(12))
    DateOverride.objects.create(studio=scope, date=MON + WEEK)  # no times: closed
    DateOverride.objects.create(studio=scope, date=TUE, start_time=time(13), end_time=time(15))
    split = MON + 3 * WEEK
    DateOverride.objects.create(studio=scope, date=split, start_time=time(9), end_time=time(10))
    DateOverride.objects.create(studio=scope, date=split, start_time=time(15), end_time=time(17))

    assert starts(service, MON) == ["10:00", "11:00"]
    assert slots(service, MON + WEEK) == []
    assert starts(service, MON + 2 * WEEK) == hm_range("09:00", "16:00", 60)  # back to the weekly hours
    assert starts(service, TUE) == ["13:00", "14:00"]  # opens a day without weekly hours
    assert starts(service, split) == ["09:00", "15:00", "16:00"]


def test_member_overrides_win_over_the_studios(scope):
    ana = factories.member(scope, Role.PHOTOGRAPHER)
    ben = factories.member(scope, Role.PHOTOGRAPHER)
    hours(scope, [0], time(9), time(17))
    service = service_for(scope, members=[ana, ben], slot_step_minutes=60)
    a, b = str(ana.pk), str(ben.pk)
    DateOverride.objects.create(studio=scope, date=MON, start_time=time(10), end_time=time(12))
    DateOverride.objects.create(studio=scope, member=ana, date=MON, start_time=time(14), end_time=time(16))
    DateOverride.objects.create(studio=scope, member=ana, date=MON + WEEK)  # Ana off that day

    assert by_start(service, MON) == {"10:00": {b}, "11:00": {b}, "14:00": {a}, "15:00": {a}}
    assert by_start(service, MON + WEEK) == {h: {b} for h in hm_range("09:00", "16:00", 60)}


# --- time off -----------------------------------------------------------------------------------


def test_studio_time_off_removes_overlapping_slots(scope):
    hours(scope, [0], time(9), time(17))
    service = service_for(scope, slot_step_minutes=30)
    elsewhere = factories.member(scope, Role.PHOTOGRAPHER)
    TimeOff.objects.create(studio=scope, starts_at=at(MON, 12), ends_at=at(MON, 13, 30))
    # A member's time off does not close a service the studio performs.
    TimeOff.objects.create(studio=scope, member=elsewhere, starts_at=at(MON, 0), ends_at=at(TUE, 0))
    # Time off that began the day before still counts.
    TimeOff.objects.create(studio=scope, starts_at=at(MON + WEEK - timedelta(days=1), 20), ends_at=at(MON + WEEK, 10))

    assert starts(service, MON) == hm_range("09:00", "11:00") + hm_range("13:30", "16:00")
    assert starts(service, MON + WEEK) == hm_range("10:00", "16:00")


def test_member_time_off_removes_only_that_members_slots(scope):
    ana = factories.member(scope, Role.PHOTOGRAPHER)
    ben = factories.member(scope, Role.PHOTOGRAPHER)
    hours(scope, [0], time(9), time(17))
    service = service_for(scope, members=[ana, ben], slot_step_minutes=60)
    a, b = str(ana.pk), str(ben.pk)
    TimeOff.objects.create(studio=scope, member=ana, starts_at=at(MON, 9), ends_at=at(MON, 13))
    TimeOff.objects.create(studio=scope, starts_at=at(MON + WEEK, 0), ends_at=at(MON + WEEK, 23, 59))

    assert by_start(service, MON) == {
        **{h: {b} for h in hm_range("09:00", "12:00", 60)},
        **{h: {a, b} for h in hm_range("13:00", "16:00", 60)},
    }
    assert slots(service, MON + WEEK) == []  # the studio's time off covers every member


# --- buffers ----------------------------------------------------------------------------------------


def test_buffers_of_the_booking_and_of_the_new_service(scope):
    hours(scope, [0], time(8), time(17))
    messy = service_for(scope, buffer_after_minutes=30, slot_step_minutes=30)
    plain = service_for(scope, slot_step_minutes=30)
    prep = service_for(scope, buffer_before_minutes=30, slot_step_minutes=30)
    assert hm(slots(messy, MON)[-1].start) == "15:30"  # the clean-up must fit before closing
    assert starts(prep, MON)[0] == "08:30"  # and so must the preparation

    booking = hold(messy, at(MON, 10))  # 10:00-11:00, blocks until 11:30
    assert (booking.blocked_start, booking.blocked_end) == (at(MON, 10), at(MON, 11, 30))

    offered = starts(plain, MON)
    assert "09:00" in offered  # ends at 10:00 sharp
    assert "09:30" not in offered
    assert "11:00" not in offered  # inside the clean-up
    assert "11:30" in offered
    with_prep = starts(prep, MON)
    assert "11:30" not in with_prep  # its preparation (11:00-11:30) meets the clean-up
    assert "12:00" in with_prep
    assert "09:00" in with_prep  # 08:30-10:00 taken, touching the booking only
    assert "09:30" not in with_prep
    again = starts(messy, MON)
    assert "08:30" in again and "09:00" not in again  # its own clean-up would run into the booking


def test_buffer_before_of_the_new_service_against_a_plain_booking(scope):
    hours(scope, [0], time(8), time(17))
    plain = service_for(scope, slot_step_minutes=30)
    prep = service_for(scope, buffer_before_minutes=30, slot_step_minutes=30)
    place(plain, at(MON, 10))  # 10:00-11:00, no buffers

    offered = starts(prep, MON)
    assert "11:00" not in offered  # its preparation would start at 10:30
    assert "11:30" in offered
    assert "09:00" in offered  # 08:30-10:00
    assert "09:30" not in offered


# --- notice, advance, daily limit ---------------------------------------------------------------


def test_min_notice_and_max_advance_days(scope):
    hours(scope, [0], time(9), time(17))
    service = service_for(scope, min_notice_minutes=120, max_advance_days=7, slot_step_minutes=30)
    now = at(MON, 10)

    assert starts(service, MON, now=now) == hm_range("12:00", "16:00")  # from now + 2 h, inclusive
    assert starts(service, MON + WEEK, now=now) == ["09:00", "09:30", "10:00"]  # up to now + 7 days
    assert slots(service, MON + 2 * WEEK, now=now) == []
    assert len(slots(service, MON, MON + 2 * WEEK, now=now)) == 9 + 3
    assert slots(service, MON, now=at(MON, 16)) == []  # all too soon


def test_daily_limit_counts_live_bookings_of_the_service_on_the_local_date(scope):
    hours(scope, [0, 1], time(9), time(17))
    limited = service_for(scope, daily_limit=2, slot_step_minutes=60)
    other = service_for(scope, slot_step_minutes=60)
    place(limited, at(MON, 9))
    place(limited, at(MON, 11))
    place(limited, at(MON + WEEK, 9))
    place(limited, at(MON + WEEK, 12), status=BookingStatus.CANCELLED)  # does not count
    place(other, at(MON + WEEK, 14), resource="elsewhere")  # another service: does not count

    assert slots(limited, MON) == []  # two already: the day is full
    assert starts(limited, MON + WEEK) == ["10:00", "11:00", "12:00", "13:00", "14:00", "15:00", "16:00"]

    # The local date counts, not the UTC one: 23:00 on Monday is Tuesday 07:00 UTC.
    one_a_day = service_for(scope, daily_limit=1, slot_step_minutes=60)
    place(one_a_day, at(MON + 2 * WEEK, 23), resource="late")
    assert slots(one_a_day, MON + 2 * WEEK) == []
    assert starts(one_a_day, TUE + 2 * WEEK) == hm_range("09:00", "16:00", 60)


# --- bookings and holds ------------------------------------------------------------------------------


def test_live_bookings_and_unexpired_holds_block_expired_holds_and_cancelled_do_not(scope):
    hours(scope, [0], time(9), time(17))
    service = service_for(scope, slot_step_minutes=60)
    place(service, at(MON, 9))  # confirmed
    place(service, at(MON, 10), status=BookingStatus.HELD, hold_expires_at=NOW + timedelta(minutes=5))
    place(service, at(MON, 11), status=BookingStatus.AWAITING_PAYMENT, hold_expires_at=NOW + timedelta(minutes=20))
    place(service, at(MON, 12), status=BookingStatus.HELD, hold_expires_at=NOW - timedelta(minutes=1))
    place(service, at(MON, 13), status=BookingStatus.CANCELLED)

    assert starts(service, MON) == ["12:00", "13:00", "14:00", "15:00", "16:00"]
    # Once the hold's time is up it stops taking the slot.
    later = NOW + timedelta(minutes=6)
    assert starts(service, MON, now=later) == ["10:00", "12:00", "13:00", "14:00", "15:00", "16:00"]


def test_a_new_hold_takes_the_slot_of_an_expired_hold(scope):
    hours(scope, [0], time(9), time(17))
    service = service_for(scope, slot_step_minutes=60)
    stale = place(service, at(MON, 11), status=BookingStatus.HELD, hold_expires_at=NOW - timedelta(minutes=1))

    fresh = hold(service, at(MON, 11))

    stale.refresh_from_db()
    assert (stale.status, stale.cancel_reason) == (BookingStatus.CANCELLED, "hold_expired")
    assert (fresh.status, fresh.resource) == (BookingStatus.HELD, "studio")
    assert "11:00" not in starts(service, MON)


def test_rescheduling_into_the_slot_of_an_expired_hold(scope):
    hours(scope, [0], time(9), time(17))
    service = service_for(scope, slot_step_minutes=60)
    booking = place(service, at(MON, 9))
    place(service, at(MON, 11), status=BookingStatus.HELD, hold_expires_at=NOW - timedelta(minutes=1))
    assert "11:00" in starts(service, MON)

    moved = services.booking_reschedule(booking=booking, starts_at=at(MON, 11), by_client=False, now=NOW)

    assert moved.starts_at == at(MON, 11)


# --- daylight saving time ----------------------------------------------------------------------------------


def test_spring_forward_day_has_no_start_in_the_missing_hour(scope):
    spring = date(2026, 3, 8)  # a Sunday
    assert spring.weekday() == 6
    hours(scope, [6], time(1), time(5))
    hourly = service_for(scope, slot_step_minutes=60)
    half_hourly = service_for(scope, slot_step_minutes=30)
    whole_day = service_for(scope, slot_step_minutes=60)

    found = slots(hourly, spring)
    assert [s.start for s in found] == [
        datetime(2026, 3, 8, 9, tzinfo=UTC),  # 01:00 PST
        datetime(2026, 3, 8, 10, tzinfo=UTC),  # 03:00 PDT: 02:00 never happens
        datetime(2026, 3, 8, 11, tzinfo=UTC),  # 04:00 PDT
    ]
    assert [hm(s.start) for s in found] == ["01:00", "03:00", "04:00"]
    assert all(s.end - s.start == timedelta(hours=1) for s in found)
    assert [b.start - a.start for a, b in zip(found, found[1:], strict=False)] == [timedelta(hours=1)] * 2

    for s in slots(half_hourly, spring):
        local = s.start.astimezone(LA)
        assert local.hour != 2
        # A wall-clock time that exists maps back to the same instant.
        assert datetime.combine(local.date(), local.time(), tzinfo=LA).astimezone(UTC) == s.start
    assert [hm(s.start) for s in slots(half_hourly, spring)] == ["01:00", "01:30", "03:00", "03:30", "04:00"]

    # A whole day (00:00-23:59) is 23 hours long.
    DateOverride.objects.create(studio=scope, date=spring, start_time=time(0), end_time=time(23, 59))
    day = slots(whole_day, spring)
    assert len(day) == 22  # 00:00, 01:00, then 03:00 ... 22:00
    assert "02:00" not in [hm(s.start) for s in day]
    assert all(b.start - a.start == timedelta(hours=1) for a, b in zip(day, day[1:], strict=False))
    DateOverride.objects.create(studio=scope, date=spring + WEEK, start_time=time(0), end_time=time(23, 59))
    assert len(slots(whole_day, spring + WEEK)) == 23  # an ordinary Sunday


def test_hours_opening_inside_the_missing_hour_start_after_the_jump(scope):
    spring = date(2026, 3, 8)
    DateOverride.objects.create(studio=scope, date=spring, start_time=time(2, 30), end_time=time(5))
    service = service_for(scope, slot_step_minutes=30)

    found = slots(service, spring)
    assert [hm(s.start) for s in found] == ["03:30", "04:00"]
    assert found[0].start == datetime(2026, 3, 8, 10, 30, tzinfo=UTC)


def test_fall_back_day_has_the_repeated_hour_twice(scope):
    autumn = date(2026, 11, 1)  # a Sunday
    now = datetime(2026, 10, 1, tzinfo=UTC)
    hours(scope, [6], time(1), time(4))
    service = service_for(scope, slot_step_minutes=60)

    found = slots(service, autumn, now=now)
    assert [s.start for s in found] == [
        datetime(2026, 11, 1, 8, tzinfo=UTC),  # 01:00 PDT
        datetime(2026, 11, 1, 9, tzinfo=UTC),  # 01:00 PST, the second time round
        datetime(2026, 11, 1, 10, tzinfo=UTC),  # 02:00 PST
        datetime(2026, 11, 1, 11, tzinfo=UTC),  # 03:00 PST
    ]
    assert [hm(s.start) for s in found] == ["01:00", "01:00", "02:00", "03:00"]
    assert [s.start.astimezone(LA).utcoffset() for s in found[:2]] == [timedelta(hours=-7), timedelta(hours=-8)]
    assert all(s.end - s.start == timedelta(minutes=60) for s in found)


def test_weekly_hours_keep_their_wall_clock_across_the_fall_back_change(scope):
    now = datetime(2026, 10, 1, tzinfo=UTC)
    hours(scope, EVERY_DAY, time(9), time(17))
    service = service_for(scope, slot_step_minutes=60)
    before, after = date(2026, 10, 30), date(2026, 11, 2)

    found = slots(service, before, after, now=now)
    first = {}
    for s in found:
        first.setdefault(s.start.astimezone(LA).date(), s.start)
    assert first[before] == datetime(2026, 10, 30, 16, tzinfo=UTC)  # 09:00 PDT
    assert first[date(2026, 11, 1)] == datetime(2026, 11, 1, 17, tzinfo=UTC)  # 09:00 PST
    assert first[after] == datetime(2026, 11, 2, 17, tzinfo=UTC)
    per_day = {d: sum(1 for s in found if s.start.astimezone(LA).date() == d) for d in first}
    assert set(per_day.values()) == {8}  # 09:00 ... 16:00 every day
    assert all(s.end - s.start == timedelta(hours=1) for s in found)


# --- several members: one resource each ------------------------------------------------------------------


def test_a_slot_stays_open_while_either_member_is_free(scope):
    ana = factories.member(scope, Role.PHOTOGRAPHER)
    ben = factories.member(scope, Role.PHOTOGRAPHER)
    hours(scope, [0], time(9), time(17))
    service = service_for(scope, members=[ana, ben], slot_step_minutes=60)
    a, b = str(ana.pk), str(ben.pk)
    ten = at(MON, 10)
    assert by_start(service, MON)["10:00"] == {a, b}

    first = hold(service, ten)
    assert first.resource == a
    assert {str(pk) for pk in first.assigned_members.values_list("pk", flat=True)} == {a}
    assert by_start(service, MON)["10:00"] == {b}  # Ben is still free
    assert by_start(service, MON)["11:00"] == {a, b}

    second = hold(service, ten)
    assert second.resource == b
    assert "10:00" not in by_start(service, MON)

    with pytest.raises(services.SlotUnavailable) as caught:
        hold(service, ten)
    assert caught.value.status_code == 409
    assert caught.value.code == "SLOT_UNAVAILABLE"
    with studio_scope(scope):
        assert Booking.objects.filter(starts_at=ten).count() == 2


def test_public_holds_take_each_member_then_answer_409(studio_la, api):
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio_la):
        ana = factories.member(studio_la, Role.PHOTOGRAPHER)
        ben = factories.member(studio_la, Role.PHOTOGRAPHER)
        hours(studio_la, EVERY_DAY, time(9), time(17))
    service = service_for(studio_la, members=[ana, ben])
    day = timezone.now().astimezone(LA).date() + timedelta(days=7)
    url = f"/api/v1/public/studios/{studio_la.slug}/holds/"
    payload = {"service": str(service.pk), "start": at(day, 10).isoformat(), "name": "Jo", "email": "jo@example.com"}

    taken = []
    for _ in range(2):
        response = api.post(url, payload, format="json")
        assert response.status_code == 201, response.content
        taken.append(response.json()["token"])
    with studio_scope(studio_la):
        resources = set(Booking.objects.filter(starts_at=at(day, 10)).values_list("resource", flat=True))
    assert resources == {str(ana.pk), str(ben.pk)}

    assert_api_error(api.post(url, payload, format="json"), 409, "SLOT_UNAVAILABLE")


# --- the public slots endpoint ------------------------------------------------------------------------------


def slots_url(studio: Studio, service_id: object) -> str:
    return f"/api/v1/public/studios/{studio.slug}/services/{service_id}/slots/"


def test_public_slots_lists_starts_and_ends(studio_la, api):
    with studio_scope(studio_la):
        hours(studio_la, EVERY_DAY, time(9), time(17))
    service = service_for(studio_la, slot_step_minutes=60)
    day = timezone.now().astimezone(LA).date() + timedelta(days=7)

    response = api.get(slots_url(studio_la, service.pk), {"start": day.isoformat(), "end": str(day + timedelta(1))})

    assert response.status_code == 200, response.content
    body = response.json()
    assert all(set(item) == {"start", "end"} for item in body)
    got = [(datetime.fromisoformat(i["start"]), datetime.fromisoformat(i["end"])) for i in body]
    assert got[0] == (at(day, 9), at(day, 10))
    assert len(got) == 16  # 09:00 ... 16:00 on two days
    assert all(end - start == timedelta(hours=1) for start, end in got)
    expected = slots(service, day, day + timedelta(days=1), now=timezone.now())
    assert got == [(s.start, s.end) for s in expected]


@pytest.mark.parametrize(
    "query",
    [
        {"start": "2026-13-01", "end": "2026-12-31"},
        {"start": "next monday", "end": "2026-12-31"},
        {"start": "2026-12-01"},
        {"start": "2026-12-10", "end": "2026-12-09"},
        {"start": "2026-12-01", "end": "2027-02-02"},  # 63 days on
    ],
)
def test_public_slots_refuses_bad_ranges(studio_la, api, query):
    service = service_for(studio_la)
    response = api.get(slots_url(studio_la, service.pk), query)
    assert_api_error(response, 400, "VALIDATION_ERROR")


def test_public_slots_accepts_62_days(studio_la, api):
    service = service_for(studio_la)
    response = api.get(slots_url(studio_la, service.pk), {"start": "2026-12-01", "end": "2027-02-01"})
    assert response.status_code == 200, response.content


def test_public_slots_404_for_another_studios_or_an_inactive_service(studio_la, api):
    with studio_scope(studio_la):
        hours(studio_la, EVERY_DAY, time(9), time(17))
    other = la_studio()
    theirs = service_for(other)
    retired = service_for(studio_la, is_active=False)
    day = timezone.now().astimezone(LA).date() + timedelta(days=7)
    query = {"start": day.isoformat(), "end": day.isoformat()}

    assert api.get(slots_url(studio_la, theirs.pk), query).status_code == 404
    assert api.get(slots_url(studio_la, retired.pk), query).status_code == 404
    assert api.get(slots_url(other, theirs.pk), query).status_code == 200
    mine = service_for(studio_la)
    assert api.get(slots_url(studio_la, mine.pk), query).json()  # the same query works for a service of its own


# --- a fixed number of queries --------------------------------------------------------------------------------


def test_a_month_of_slots_reads_a_fixed_number_of_queries(scope):
    ana = factories.member(scope, Role.PHOTOGRAPHER)
    ben = factories.member(scope, Role.PHOTOGRAPHER)
    hours(scope, EVERY_DAY, time(8), time(20))
    hours(scope, [0, 2, 4], time(10), time(18), member=ana)
    service = service_for(scope, members=[ana, ben], slot_step_minutes=30)
    short = service_for(scope, duration_minutes=30)
    first = date(2026, 2, 1)
    days = [first + timedelta(days=d) for d in range(30)]
    DateOverride.objects.create(studio=scope, date=days[3])
    DateOverride.objects.create(studio=scope, member=ben, date=days[4], start_time=time(12), end_time=time(14))
    TimeOff.objects.create(studio=scope, member=ana, starts_at=at(days[5], 0), ends_at=at(days[7], 0))
    resources = [str(ana.pk), str(ben.pk)]

    def add(per_day: range) -> None:
        rows = []
        for day in days:
            for k in per_day:
                start = at(day, 8) + timedelta(minutes=70 * k)
                rows.append(
                    Booking(
                        studio=scope,
                        service=short,
                        client_name="Bulk",
                        client_email="bulk@example.com",
                        starts_at=start,
                        ends_at=start + timedelta(minutes=30),
                        blocked_start=start,
                        blocked_end=start + timedelta(minutes=30),
                        resource=resources[k % 2],
                        status=BookingStatus.CONFIRMED,
                        token_hash=hash_token(secrets.token_urlsafe(16)),
                    )
                )
        Booking.objects.bulk_create(rows)

    def month() -> tuple[int, int]:
        fresh = Service.objects.get(pk=service.pk)
        with CaptureQueriesContext(connection) as queries:
            found = availability.available_slots(fresh, days[0], days[-1], now=NOW)
        return len(queries), len(found)

    add(range(1))
    assert Booking.objects.count() == 30
    few_queries, few_slots = month()
    add(range(1, 10))
    assert Booking.objects.count() == 300
    many_queries, many_slots = month()

    assert many_slots < few_slots  # the bookings are in range and count
    assert many_queries == few_queries
    assert few_queries <= 8
