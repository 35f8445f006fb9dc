"""Bookings over HTTP.

- the staff API under /api/v1/studios/{slug}/: services, working hours, date
  overrides, time off, bookings and their actions, contact submissions and
  calendar feeds; every role on every endpoint (403 vs allowed), and 404 for
  another studio's objects;
- the public API under /api/v1/public/: a studio's services, holds, the
  client's booking by token, and the contact form (honeypot, throttle, email);
- the public pages /book/<slug>/, /book/manage/<token>/ and /contact/<slug>/.
"""

from __future__ import annotations

import contextlib
import random
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.test import APIClient

from audit.models import AuditEvent
from bookings import availability
from bookings import services as booking_services
from bookings.api.urls import urlpatterns as staff_urlpatterns
from bookings.models import (
    Booking,
    BookingStatus,
    CalendarFeed,
    ContactSubmission,
    DateOverride,
    Payment,
    PaymentStatus,
    Service,
    TimeOff,
    WorkingHours,
)
from studio import context
from studio.auditing import Action
from studio.models import Membership, Studio
from studio.roles import Role, scopes_for
from studio.tenancy import studio_scope
from tests import factories
from tests.helpers import assert_api_error, mail_to, studio_notices

ROLES = [Role.VIEWER, Role.ASSISTANT, Role.PHOTOGRAPHER, Role.ADMIN, Role.OWNER]

# --- helpers -----------------------------------------------------------------------------------------


def _url(studio: Studio, suffix: str = "") -> str:
    return f"/api/v1/studios/{studio.slug}/{suffix}"


def _public(studio: Studio, suffix: str) -> str:
    return f"/api/v1/public/studios/{studio.slug}/{suffix}"


@contextlib.contextmanager
def _acting(studio: Studio) -> Iterator[Studio]:
    """Service calls from the test itself: a studio scope and an audit actor."""
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        yield studio


def _events(studio: Studio, action: str, target: Any = None) -> list[AuditEvent]:
    with studio_scope(studio):
        queryset = AuditEvent.objects.filter(action=action)
        if target is not None:
            queryset = queryset.filter(target_id=str(target.pk))
        return list(queryset.order_by("seq"))


def _audit_count(studio: Studio) -> int:
    with studio_scope(studio):
        return AuditEvent.objects.count()


def _fresh(studio: Studio, obj: Any) -> Any:
    with studio_scope(studio):
        return type(obj).objects.get(pk=obj.pk)


def _exists(studio: Studio, obj: Any) -> bool:
    with studio_scope(studio):
        return type(obj).objects.filter(pk=obj.pk).exists()


def _count(studio: Studio, model: type) -> int:
    with studio_scope(studio):
        return model.objects.count()


def _anon() -> APIClient:
    """An anonymous client from an address no other test uses: public
    throttles count per address, and on Redis their counters outlive a test."""
    octets = [random.randint(0, 255), random.randint(0, 255), random.randint(1, 254)]
    return APIClient(REMOTE_ADDR="10.{}.{}.{}".format(*octets))


def _dt(value: str) -> Any:
    parsed = parse_datetime(value)
    assert parsed is not None, value
    return parsed


def _as(studio: Studio, role: str) -> Membership:
    return factories.owner_membership(studio) if role == Role.OWNER else factories.member(studio, role)


def _open_every_day(studio: Studio) -> None:
    from datetime import time

    with studio_scope(studio):
        if not WorkingHours.objects.filter(member__isnull=True).exists():
            WorkingHours.objects.bulk_create(
                [WorkingHours(studio=studio, weekday=d, start_time=time(8), end_time=time(20)) for d in range(7)]
            )


def _slots(service: Service, day: Any = None, exclude: Any = None) -> list[availability.Slot]:
    day = day or timezone.now().date() + timedelta(days=5)
    with studio_scope(service.studio):
        return availability.available_slots(service, day, day, exclude=exclude)


def _bookable(studio: Studio, **fields: Any) -> tuple[Service, Any]:
    """A service of a studio open 08-20 every day, and a free start five days ahead."""
    service = factories.service(studio, **fields)
    _open_every_day(studio)
    slots = _slots(service)
    assert slots
    return service, slots[len(slots) // 2].start


def _held(studio: Studio, **fields: Any) -> tuple[Booking, str]:
    service, start = _bookable(studio, **fields)
    with _acting(studio):
        return booking_services.booking_hold(
            service=service, starts_at=start, client_name="Casey", client_email="casey@example.com"
        )


def _confirmed(studio: Studio, **fields: Any) -> tuple[Booking, str]:
    booking, raw = _held(studio, **fields)
    with _acting(studio):
        return booking_services.booking_confirm(booking=booking), raw


def _other_start(booking: Booking) -> Any:
    slots = _slots(booking.service, booking.starts_at.date(), exclude=booking.pk)
    return next(s.start for s in slots if abs(s.start - booking.starts_at) >= timedelta(hours=2))


def _enquiry(studio: Studio, **fields: Any) -> ContactSubmission:
    fields.setdefault("name", "Eve Enquirer")
    fields.setdefault("email", "eve@example.com")
    fields.setdefault("message", "Do you do newborn shoots?")
    with studio_scope(studio):
        return ContactSubmission.objects.create(studio=studio, **fields)


def _feed(owner: Membership, scope: str = "member") -> CalendarFeed:
    with _acting(owner.studio):
        return booking_services.feed_create(owner=owner, scope=scope)[0]


def _hours(studio: Studio, **fields: Any) -> WorkingHours:
    from datetime import time

    fields.setdefault("weekday", 0)
    fields.setdefault("start_time", time(9))
    fields.setdefault("end_time", time(17))
    with _acting(studio):
        return booking_services.availability_save(obj=WorkingHours(**fields))


def _override(studio: Studio, **fields: Any) -> DateOverride:
    fields.setdefault("date", timezone.now().date() + timedelta(days=30))
    with _acting(studio):
        return booking_services.availability_save(obj=DateOverride(**fields))


def _time_off(studio: Studio, **fields: Any) -> TimeOff:
    start = timezone.now().replace(microsecond=0) + timedelta(days=40)
    fields.setdefault("starts_at", start)
    fields.setdefault("ends_at", start + timedelta(hours=4))
    with _acting(studio):
        return booking_services.availability_save(obj=TimeOff(**fields))


@pytest.fixture
def staff(owner, client_for) -> APIClient:
    return client_for(owner)


# --- 1. every role on every staff endpoint -------------------------------------------------------------

Maker = Callable[[Studio, Membership], tuple[str, str, Any]]


def _detail(suffix: str, make: Callable[[Studio], Any], method: str, body: Any = None, tail: str = "") -> Maker:
    return lambda s, m: (method, _url(s, f"{suffix}/{make(s).pk}/{tail}"), body)


def _collection(suffix: str, method: str, body: Any = None) -> Maker:
    return lambda s, m: (method, _url(s, f"{suffix}/"), body)


def _convert(s: Studio, m: Membership) -> tuple[str, str, Any]:
    service, start = _bookable(s)
    body = {"service": str(service.pk), "start": start.isoformat()}
    return "post", _url(s, f"contact-submissions/{_enquiry(s).pk}/convert/"), body


def _staff_booking(s: Studio, m: Membership) -> tuple[str, str, Any]:
    service, start = _bookable(s)
    body = {"service": str(service.pk), "start": start.isoformat(), "client_name": "P", "client_email": "p@example.com"}
    return "post", _url(s, "bookings/"), body


def _reschedule(s: Studio, m: Membership) -> tuple[str, str, Any]:
    booking, _ = _confirmed(s)
    return "post", _url(s, f"bookings/{booking.pk}/reschedule/"), {"start": _other_start(booking).isoformat()}


# (route name, method) -> (scope needed, status when allowed, request maker)
SCOPE_TABLE: dict[tuple[str, str], tuple[str, int, Maker]] = {
    ("service-list", "GET"): ("booking:read", 200, _collection("services", "get")),
    ("service-list", "POST"): (
        "booking:admin",
        201,
        _collection("services", "post", {"name": "Portraits", "duration_minutes": 60, "price": "120.00"}),
    ),
    ("service-detail", "GET"): ("booking:read", 200, _detail("services", factories.service, "get")),
    ("service-detail", "PUT"): (
        "booking:admin",
        200,
        _detail("services", factories.service, "put", {"name": "Renamed", "duration_minutes": 45}),
    ),
    ("service-detail", "PATCH"): (
        "booking:admin",
        200,
        _detail("services", factories.service, "patch", {"price": "99.00"}),
    ),
    ("service-detail", "DELETE"): ("booking:admin", 204, _detail("services", factories.service, "delete")),
    ("working-hours-list", "GET"): ("booking:read", 200, _collection("working-hours", "get")),
    ("working-hours-list", "POST"): (
        "booking:admin",
        201,
        _collection("working-hours", "post", {"weekday": 2, "start_time": "09:00", "end_time": "17:00"}),
    ),
    ("working-hours-detail", "GET"): ("booking:read", 200, _detail("working-hours", _hours, "get")),
    ("working-hours-detail", "PUT"): (
        "booking:admin",
        200,
        _detail("working-hours", _hours, "put", {"weekday": 3, "start_time": "10:00", "end_time": "18:00"}),
    ),
    ("working-hours-detail", "PATCH"): (
        "booking:admin",
        200,
        _detail("working-hours", _hours, "patch", {"end_time": "16:00"}),
    ),
    ("working-hours-detail", "DELETE"): ("booking:admin", 204, _detail("working-hours", _hours, "delete")),
    ("date-override-list", "GET"): ("booking:read", 200, _collection("date-overrides", "get")),
    ("date-override-list", "POST"): (
        "booking:admin",
        201,
        _collection("date-overrides", "post", {"date": "2031-12-24"}),
    ),
    ("date-override-detail", "GET"): ("booking:read", 200, _detail("date-overrides", _override, "get")),
    ("date-override-detail", "PUT"): (
        "booking:admin",
        200,
        _detail("date-overrides", _override, "put", {"date": "2031-12-26", "start_time": "10:00", "end_time": "12:00"}),
    ),
    ("date-override-detail", "PATCH"): (
        "booking:admin",
        200,
        _detail("date-overrides", _override, "patch", {"date": "2031-12-27"}),
    ),
    ("date-override-detail", "DELETE"): ("booking:admin", 204, _detail("date-overrides", _override, "delete")),
    ("time-off-list", "GET"): ("booking:read", 200, _collection("time-off", "get")),
    ("time-off-list", "POST"): (
        "booking:admin",
        201,
        _collection("time-off", "post", {"starts_at": "2031-07-01T00:00:00Z", "ends_at": "2031-07-08T00:00:00Z"}),
    ),
    ("time-off-detail", "GET"): ("booking:read", 200, _detail("time-off", _time_off, "get")),
    ("time-off-detail", "PUT"): (
        "booking:admin",
        200,
        _detail("time-off", _time_off, "put", {"starts_at": "2031-08-01T00:00:00Z", "ends_at": "2031-08-02T00:00:00Z"}),
    ),
    ("time-off-detail", "PATCH"): ("booking:admin", 200, _detail("time-off", _time_off, "patch", {"reason": "Trip"})),
    ("time-off-detail", "DELETE"): ("booking:admin", 204, _detail("time-off", _time_off, "delete")),
    ("booking-list", "GET"): ("booking:read", 200, _collection("bookings", "get")),
    ("booking-detail", "GET"): ("booking:read", 200, _detail("bookings", factories.booking, "get")),
    ("booking-detail", "PATCH"): (
        "booking:write",
        200,
        _detail("bookings", factories.booking, "patch", {"notes": "Bring the reflector"}),
    ),
    ("booking-confirm", "POST"): (
        "booking:write",
        200,
        _detail("bookings", lambda s: _held(s)[0], "post", {}, "confirm/"),
    ),
    ("booking-cancel", "POST"): (
        "booking:write",
        200,
        _detail("bookings", factories.booking, "post", {"reason": "Rain"}, "cancel/"),
    ),
    ("booking-complete", "POST"): (
        "booking:write",
        200,
        _detail("bookings", factories.booking, "post", {}, "complete/"),
    ),
    ("booking-reschedule", "POST"): ("booking:write", 200, _reschedule),
    ("booking-list", "POST"): ("booking:write", 201, _staff_booking),
    ("booking-mark-paid", "POST"): (
        "booking:admin",
        200,
        _detail("bookings", lambda s: _held(s, price=200, deposit=50)[0], "post", {}, "mark-paid/"),
    ),
    ("contact-submission-list", "GET"): ("booking:read", 200, _collection("contact-submissions", "get")),
    ("contact-submission-detail", "GET"): ("booking:read", 200, _detail("contact-submissions", _enquiry, "get")),
    ("contact-submission-convert", "POST"): ("booking:write", 201, _convert),
    ("calendar-feed-list", "GET"): ("booking:read", 200, _collection("calendar-feeds", "get")),
    ("calendar-feed-list", "POST"): (
        "booking:read",
        201,
        _collection("calendar-feeds", "post", {"scope": "member", "name": "Mine"}),
    ),
    ("calendar-feed-detail", "DELETE"): (
        "booking:read",
        204,
        lambda s, m: ("delete", _url(s, f"calendar-feeds/{_feed(m).pk}/"), None),
    ),
    ("calendar-feed-rotate", "POST"): (
        "booking:read",
        200,
        lambda s, m: ("post", _url(s, f"calendar-feeds/{_feed(m).pk}/rotate/"), {}),
    ),
}


def _send(client: APIClient, method: str, url: str, body: Any = None) -> Any:
    if method == "get":
        return client.get(url)
    return getattr(client, method)(url, body, format="json")


def test_the_scope_table_covers_every_staff_route() -> None:
    served = set()
    for pattern in staff_urlpatterns:
        view = pattern.callback
        for method in view.actions:
            if method in view.cls.http_method_names and method != "head":
                served.add((pattern.name, method.upper()))
    assert served == set(SCOPE_TABLE)


def test_the_roles_grant_the_documented_booking_scopes() -> None:
    booking_scopes = {role: {s for s in scopes_for(role) if s.startswith("booking:")} for role in ROLES}
    assert booking_scopes == {
        Role.VIEWER: {"booking:read"},
        Role.ASSISTANT: {"booking:read", "booking:write"},
        Role.PHOTOGRAPHER: {"booking:read", "booking:write"},
        Role.ADMIN: {"booking:read", "booking:write", "booking:admin"},
        Role.OWNER: {"booking:read", "booking:write", "booking:admin"},
    }


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", list(SCOPE_TABLE), ids=lambda e: f"{e[1]} {e[0]}")
def test_each_role_on_each_staff_endpoint(endpoint, role, studio, client_for):
    scope, ok_status, make = SCOPE_TABLE[endpoint]
    member = _as(studio, role)
    client = client_for(member)
    method, url, body = make(studio, member)
    events_before = _audit_count(studio)
    response = _send(client, method, url, body)
    if scope in scopes_for(role):
        assert response.status_code == ok_status, response.content
        if method != "get":
            assert _audit_count(studio) > events_before  # every mutation is audited
    else:
        assert_api_error(response, 403, "PERMISSION_DENIED")
        assert _audit_count(studio) == events_before


def test_signed_out_and_non_members_get_nothing(studio, other_studio, client_for):
    factories.service(studio)
    assert_api_error(APIClient().get(_url(studio, "services/")), 401, "NOT_AUTHENTICATED")
    outsider = client_for(factories.owner_membership(other_studio))
    for suffix in ("services/", "bookings/", "working-hours/", "contact-submissions/", "calendar-feeds/"):
        assert_api_error(outsider.get(_url(studio, suffix)), 404, "NOT_FOUND")
    assert_api_error(outsider.post(_url(studio, "services/"), {"name": "X", "duration_minutes": 5}), 404, "NOT_FOUND")
    assert _count(studio, Service) == 1


# Detail endpoints, tried with another studio's object.
FOREIGN_CASES: dict[str, tuple[str, str, Callable[[Studio], Any], Any]] = {
    "GET service": ("get", "services/{}/", factories.service, None),
    "PATCH service": ("patch", "services/{}/", factories.service, {"name": "Mine now"}),
    "DELETE service": ("delete", "services/{}/", factories.service, None),
    "GET working hours": ("get", "working-hours/{}/", _hours, None),
    "PATCH working hours": ("patch", "working-hours/{}/", _hours, {"end_time": "10:00"}),
    "DELETE working hours": ("delete", "working-hours/{}/", _hours, None),
    "PATCH date override": ("patch", "date-overrides/{}/", _override, {"date": "2031-01-01"}),
    "DELETE date override": ("delete", "date-overrides/{}/", _override, None),
    "PATCH time off": ("patch", "time-off/{}/", _time_off, {"reason": "x"}),
    "DELETE time off": ("delete", "time-off/{}/", _time_off, None),
    "GET booking": ("get", "bookings/{}/", factories.booking, None),
    "PATCH booking": ("patch", "bookings/{}/", factories.booking, {"notes": "x"}),
    "confirm booking": ("post", "bookings/{}/confirm/", lambda s: _held(s)[0], {}),
    "cancel booking": ("post", "bookings/{}/cancel/", factories.booking, {}),
    "complete booking": ("post", "bookings/{}/complete/", factories.booking, {}),
    "reschedule booking": ("post", "bookings/{}/reschedule/", factories.booking, {"start": "2031-01-01T10:00:00Z"}),
    "mark booking paid": ("post", "bookings/{}/mark-paid/", lambda s: _held(s, price=200, deposit=50)[0], {}),
    "GET enquiry": ("get", "contact-submissions/{}/", _enquiry, None),
    "convert enquiry": ("post", "contact-submissions/{}/convert/", _enquiry, None),
    "revoke feed": ("delete", "calendar-feeds/{}/", lambda s: _feed(factories.owner_membership(s)), None),
    "rotate feed": ("post", "calendar-feeds/{}/rotate/", lambda s: _feed(factories.owner_membership(s)), {}),
}


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OWNER])
@pytest.mark.parametrize("case", list(FOREIGN_CASES))
def test_another_studios_objects_are_not_found(case, role, studio, other_studio, client_for):
    method, pattern, make, body = FOREIGN_CASES[case]
    theirs = make(other_studio)
    before = _fresh(other_studio, theirs)
    if case == "convert enquiry":
        body = {"service": str(factories.service(studio).pk), "start": "2031-01-01T10:00:00Z"}
    client = client_for(_as(studio, role))
    events = _audit_count(other_studio)
    # 404 for every role, before any role check: a 403 would confirm the id exists.
    assert_api_error(_send(client, method, _url(studio, pattern.format(theirs.pk)), body), 404, "NOT_FOUND")
    after = _fresh(other_studio, theirs)
    assert after.updated_at == before.updated_at
    assert _audit_count(other_studio) == events


# --- 2. services ----------------------------------------------------------------------------------------


def test_create_service_with_members_and_list_it(studio, other_studio, staff, client_for):
    photographer = factories.member(studio, Role.PHOTOGRAPHER)
    body = {
        "name": "Family portraits",
        "description": "An hour in the studio.",
        "duration_minutes": 60,
        "buffer_after_minutes": 15,
        "price": "250.00",
        "deposit": "50.00",
        "currency": "EUR",
        "members": [str(photographer.pk)],
    }
    response = staff.post(_url(studio, "services/"), body, format="json")
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["members"] == [str(photographer.pk)]
    assert (created["price"], created["deposit"], created["currency"]) == ("250.00", "50.00", "EUR")
    with studio_scope(studio):
        service = Service.objects.get(pk=created["id"])
        assert list(service.members.all()) == [photographer]
    assert service.studio_id == studio.pk
    [event] = _events(studio, Action.SERVICE_CREATED, service)
    assert event.before is None
    assert event.after["name"] == "Family portraits" and event.after["deposit"] == "50.00"
    assert event.actor_user_id == factories.owner_membership(studio).user_id

    factories.service(other_studio, name="Elsewhere")
    viewer = client_for(factories.member(studio, Role.VIEWER))
    listed = viewer.get(_url(studio, "services/"))
    assert listed.status_code == 200, listed.content
    assert [row["name"] for row in listed.json()["results"]] == ["Family portraits"]
    detail = viewer.get(_url(studio, f"services/{service.pk}/"))
    assert detail.json()["buffer_after_minutes"] == 15


def test_a_deposit_above_the_price_is_refused(studio, staff):
    refused = staff.post(
        _url(studio, "services/"), {"name": "X", "duration_minutes": 60, "price": "100", "deposit": "150"}
    )
    assert "deposit" in assert_api_error(refused, 400, "VALIDATION_ERROR")["fields"]
    assert _count(studio, Service) == 0

    service = factories.service(studio, price=Decimal("100"), deposit=Decimal("20"))
    url = _url(studio, f"services/{service.pk}/")
    # Against the stored price, and against the stored deposit.
    assert "deposit" in assert_api_error(staff.patch(url, {"deposit": "100.01"}), 400, "VALIDATION_ERROR")["fields"]
    assert "deposit" in assert_api_error(staff.patch(url, {"price": "19.99"}), 400, "VALIDATION_ERROR")["fields"]
    fresh = _fresh(studio, service)
    assert (fresh.price, fresh.deposit) == (Decimal("100"), Decimal("20"))
    equal = staff.patch(url, {"price": "150", "deposit": "150"})
    assert equal.status_code == 200, equal.content
    assert (equal.json()["price"], equal.json()["deposit"]) == ("150.00", "150.00")


@pytest.mark.parametrize("field", ["duration_minutes", "slot_step_minutes"])
def test_zero_minutes_are_refused(studio, staff, field):
    body = {"name": "X", "duration_minutes": 60, field: 0}
    assert_api_error(staff.post(_url(studio, "services/"), body), 400, "VALIDATION_ERROR")
    assert _count(studio, Service) == 0


def test_service_members_must_be_members_of_this_studio(studio, other_studio, staff):
    mine = factories.member(studio, Role.PHOTOGRAPHER)
    theirs = factories.member(other_studio, Role.PHOTOGRAPHER)
    foreign = staff.post(
        _url(studio, "services/"),
        {"name": "X", "duration_minutes": 30, "members": [str(mine.pk), str(theirs.pk)]},
        format="json",
    )
    error = assert_api_error(foreign, 400, "VALIDATION_ERROR")
    assert str(theirs.pk) in " ".join(error["fields"]["members"])
    unknown = staff.post(
        _url(studio, "services/"), {"name": "X", "duration_minutes": 30, "members": [str(uuid.uuid4())]}
    )
    assert "members" in assert_api_error(unknown, 400, "VALIDATION_ERROR")["fields"]
    assert _count(studio, Service) == 0

    service = factories.service(studio)
    patched = staff.patch(_url(studio, f"services/{service.pk}/"), {"members": [str(theirs.pk)]}, format="json")
    assert_api_error(patched, 400, "VALIDATION_ERROR")
    with studio_scope(studio):
        assert not service.members.exists()
    ok = staff.patch(_url(studio, f"services/{service.pk}/"), {"members": [str(mine.pk)]}, format="json")
    assert ok.status_code == 200 and ok.json()["members"] == [str(mine.pk)]


def test_service_update_is_audited_with_before_and_after(studio, staff):
    service = factories.service(studio, name="Headshots", price=Decimal("80"))
    response = staff.patch(_url(studio, f"services/{service.pk}/"), {"name": "Business headshots", "price": "95.50"})
    assert response.status_code == 200, response.content
    assert response.json()["name"] == "Business headshots"
    assert _fresh(studio, service).price == Decimal("95.50")
    [event] = _events(studio, Action.SERVICE_UPDATED, service)
    assert event.before["name"] == "Headshots" and event.after["name"] == "Business headshots"
    assert event.before["price"] == "80.00" and event.after["price"] == "95.50"
    assert event.before["duration_minutes"] == event.after["duration_minutes"] == 60
    assert event.actor_type == "user" and event.actor_user_id == factories.owner_membership(studio).user_id
    assert event.request_id == response["X-Request-ID"]


def test_put_replaces_a_service(studio, staff):
    service = factories.service(studio, name="Old", duration_minutes=60, buffer_after_minutes=10)
    response = staff.put(_url(studio, f"services/{service.pk}/"), {"name": "New", "duration_minutes": 30})
    assert response.status_code == 200, response.content
    fresh = _fresh(studio, service)
    assert (fresh.name, fresh.duration_minutes) == ("New", 30)
    incomplete = staff.put(_url(studio, f"services/{service.pk}/"), {"name": "No duration"})
    assert "duration_minutes" in assert_api_error(incomplete, 400, "VALIDATION_ERROR")["fields"]


def test_a_service_with_bookings_cannot_be_deleted(studio, staff):
    service = factories.service(studio)
    factories.booking(studio, service_=service, status=BookingStatus.CANCELLED)
    response = staff.delete(_url(studio, f"services/{service.pk}/"))
    assert_api_error(response, 409, "SERVICE_IN_USE")
    assert _exists(studio, service)
    assert not _events(studio, Action.SERVICE_DELETED)
    # Deactivating is the way out.
    deactivated = staff.patch(_url(studio, f"services/{service.pk}/"), {"is_active": False})
    assert deactivated.status_code == 200 and deactivated.json()["is_active"] is False


def test_a_service_without_bookings_is_deleted_and_audited(studio, staff):
    service = factories.service(studio, name="Unused")
    response = staff.delete(_url(studio, f"services/{service.pk}/"))
    assert response.status_code == 204, response.content
    assert not _exists(studio, service)
    [event] = _events(studio, Action.SERVICE_DELETED, service)
    assert event.before["name"] == "Unused" and event.after is None
    assert_api_error(staff.get(_url(studio, f"services/{service.pk}/")), 404, "NOT_FOUND")


# --- 3. availability --------------------------------------------------------------------------------------


def test_working_hours_crud_is_audited(studio, staff):
    photographer = factories.member(studio, Role.PHOTOGRAPHER)
    created = staff.post(
        _url(studio, "working-hours/"),
        {"weekday": 4, "start_time": "09:00", "end_time": "13:00", "member": str(photographer.pk)},
    )
    assert created.status_code == 201, created.content
    assert created.json()["member"] == str(photographer.pk)
    studio_wide = staff.post(_url(studio, "working-hours/"), {"weekday": 1, "start_time": "10:00", "end_time": "18:00"})
    assert studio_wide.status_code == 201 and studio_wide.json()["member"] is None
    listed = staff.get(_url(studio, "working-hours/")).json()["results"]
    assert [row["weekday"] for row in listed] == [1, 4]  # by weekday

    hours_id = created.json()["id"]
    patched = staff.patch(_url(studio, f"working-hours/{hours_id}/"), {"end_time": "14:30"})
    assert patched.status_code == 200, patched.content
    assert patched.json()["end_time"] == "14:30:00"
    with studio_scope(studio):
        hours = WorkingHours.objects.get(pk=hours_id)
    events = _events(studio, Action.AVAILABILITY_CHANGED, hours)
    assert events[0].before is None and events[0].after["weekday"] == 4
    assert events[1].before["end_time"] == "13:00:00" and events[1].after["end_time"] == "14:30:00"

    assert staff.delete(_url(studio, f"working-hours/{hours_id}/")).status_code == 204
    assert not _exists(studio, hours)
    last = _events(studio, Action.AVAILABILITY_CHANGED, hours)[-1]
    assert last.before["end_time"] == "14:30:00" and last.after is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"weekday": 1, "start_time": "17:00", "end_time": "09:00"}, "end_time"),
        ({"weekday": 1, "start_time": "09:00", "end_time": "09:00"}, "end_time"),
        ({"weekday": 7, "start_time": "09:00", "end_time": "17:00"}, "weekday"),
        ({"weekday": -1, "start_time": "09:00", "end_time": "17:00"}, "weekday"),
        ({"weekday": 1, "start_time": "9 o'clock", "end_time": "17:00"}, "start_time"),
    ],
)
def test_invalid_working_hours_are_refused(studio, staff, body, field):
    response = staff.post(_url(studio, "working-hours/"), body)
    assert field in assert_api_error(response, 400, "VALIDATION_ERROR")["fields"]
    assert _count(studio, WorkingHours) == 0


def test_patching_working_hours_checks_against_the_stored_times(studio, staff):
    from datetime import time

    hours = _hours(studio, start_time=time(9), end_time=time(17))
    url = _url(studio, f"working-hours/{hours.pk}/")
    assert "end_time" in assert_api_error(staff.patch(url, {"end_time": "08:00"}), 400, "VALIDATION_ERROR")["fields"]
    assert "end_time" in assert_api_error(staff.patch(url, {"start_time": "18:00"}), 400, "VALIDATION_ERROR")["fields"]
    assert "weekday" in assert_api_error(staff.patch(url, {"weekday": 9}), 400, "VALIDATION_ERROR")["fields"]
    fresh = _fresh(studio, hours)
    assert (fresh.weekday, fresh.start_time, fresh.end_time) == (0, time(9), time(17))


def test_working_hours_of_another_studios_member_are_refused(studio, other_studio, staff):
    theirs = factories.member(other_studio, Role.PHOTOGRAPHER)
    body = {"weekday": 1, "start_time": "09:00", "end_time": "17:00", "member": str(theirs.pk)}
    assert (
        "member"
        in assert_api_error(staff.post(_url(studio, "working-hours/"), body), 400, "VALIDATION_ERROR")["fields"]
    )
    assert _count(studio, WorkingHours) == 0


@pytest.mark.parametrize(
    "body",
    [
        {"date": "2031-05-01", "start_time": "10:00"},
        {"date": "2031-05-01", "end_time": "14:00"},
        {"date": "2031-05-01", "start_time": "10:00", "end_time": None},
        {"date": "2031-05-01", "start_time": "14:00", "end_time": "10:00"},
    ],
)
def test_invalid_date_overrides_are_refused(studio, staff, body):
    response = staff.post(_url(studio, "date-overrides/"), body, format="json")
    assert "end_time" in assert_api_error(response, 400, "VALIDATION_ERROR")["fields"]
    assert _count(studio, DateOverride) == 0


def test_date_overrides_open_or_close_a_day(studio, staff):
    closed = staff.post(_url(studio, "date-overrides/"), {"date": "2031-12-25"})
    assert closed.status_code == 201, closed.content
    assert (closed.json()["start_time"], closed.json()["end_time"]) == (None, None)
    opened = staff.post(
        _url(studio, "date-overrides/"), {"date": "2031-12-24", "start_time": "10:00", "end_time": "13:00"}
    )
    assert opened.status_code == 201, opened.content
    with studio_scope(studio):
        assert DateOverride.objects.get(pk=closed.json()["id"]).is_closed
        assert not DateOverride.objects.get(pk=opened.json()["id"]).is_closed
    listed = staff.get(_url(studio, "date-overrides/")).json()["results"]
    assert [row["date"] for row in listed] == ["2031-12-24", "2031-12-25"]
    with studio_scope(studio):
        opened_row = DateOverride.objects.get(pk=opened.json()["id"])
    [event] = _events(studio, Action.AVAILABILITY_CHANGED, opened_row)
    assert event.after["start_time"] == "10:00:00" and event.after["date"] == "2031-12-24"


def test_patching_one_time_of_an_open_override(studio, staff):
    from datetime import time

    override = _override(studio, start_time=time(10), end_time=time(14))
    url = _url(studio, f"date-overrides/{override.pk}/")
    response = staff.patch(url, {"start_time": "11:00"})
    assert response.status_code == 200, response.content
    assert _fresh(studio, override).start_time == time(11)


def test_patching_an_override_still_checks_the_order(studio, staff):
    from datetime import time

    override = _override(studio, start_time=time(10), end_time=time(14))
    url = _url(studio, f"date-overrides/{override.pk}/")
    assert_api_error(staff.patch(url, {"start_time": "15:00", "end_time": "12:00"}), 400, "VALIDATION_ERROR")
    assert _fresh(studio, override).start_time == time(10)
    closed = staff.patch(url, {"start_time": None, "end_time": None}, format="json")
    assert closed.status_code == 200, closed.content
    assert _fresh(studio, override).is_closed


def test_time_off_crud_and_validation(studio, staff):
    refused = staff.post(
        _url(studio, "time-off/"), {"starts_at": "2031-07-08T00:00:00Z", "ends_at": "2031-07-01T00:00:00Z"}
    )
    assert "ends_at" in assert_api_error(refused, 400, "VALIDATION_ERROR")["fields"]
    same = staff.post(
        _url(studio, "time-off/"), {"starts_at": "2031-07-01T00:00:00Z", "ends_at": "2031-07-01T00:00:00Z"}
    )
    assert_api_error(same, 400, "VALIDATION_ERROR")
    assert _count(studio, TimeOff) == 0

    created = staff.post(
        _url(studio, "time-off/"),
        {"starts_at": "2031-07-01T00:00:00Z", "ends_at": "2031-07-08T00:00:00Z", "reason": "Holiday"},
    )
    assert created.status_code == 201, created.content
    url = _url(studio, f"time-off/{created.json()['id']}/")
    # A PATCH of one end is checked against the stored other end.
    assert_api_error(staff.patch(url, {"ends_at": "2031-06-30T00:00:00Z"}), 400, "VALIDATION_ERROR")
    assert_api_error(staff.patch(url, {"starts_at": "2031-07-09T00:00:00Z"}), 400, "VALIDATION_ERROR")
    moved = staff.patch(url, {"ends_at": "2031-07-10T00:00:00Z"})
    assert moved.status_code == 200, moved.content
    with studio_scope(studio):
        off = TimeOff.objects.get(pk=created.json()["id"])
    assert off.ends_at == _dt("2031-07-10T00:00:00Z")
    changes = _events(studio, Action.AVAILABILITY_CHANGED, off)
    assert len(changes) == 2
    assert changes[1].before["ends_at"].startswith("2031-07-08") and changes[1].after["ends_at"].startswith(
        "2031-07-10"
    )
    assert staff.delete(url).status_code == 204
    assert _count(studio, TimeOff) == 0
    assert len(_events(studio, Action.AVAILABILITY_CHANGED, off)) == 3


def test_time_off_blocks_public_slots(studio, staff):
    service, start = _bookable(studio)
    day = start.date()
    assert any(s.start == start for s in _slots(service, day))
    response = staff.post(
        _url(studio, "time-off/"),
        {"starts_at": (start - timedelta(minutes=30)).isoformat(), "ends_at": (start + timedelta(hours=2)).isoformat()},
    )
    assert response.status_code == 201, response.content
    assert all(s.start != start for s in _slots(service, day))


# --- 4. bookings --------------------------------------------------------------------------------------------


def _ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def test_booking_list_filters(studio, other_studio, staff):
    base = timezone.now().replace(minute=0, second=0, microsecond=0) + timedelta(days=10)
    portrait = factories.service(studio, name="Portrait", duration_minutes=60)
    wedding = factories.service(studio, name="Wedding", duration_minutes=120)
    photographer = factories.member(studio, Role.PHOTOGRAPHER)
    assistant = factories.member(studio, Role.ASSISTANT)
    crew = factories.team(studio, members=[assistant])
    early = factories.booking(studio, service_=portrait, start=base)  # [0h, 1h)
    middle = factories.booking(studio, service_=wedding, start=base + timedelta(hours=2), status="held")  # [2h, 4h)
    late = factories.booking(  # [5h, 6h), performed by the photographer (its resource)
        studio, service_=portrait, start=base + timedelta(hours=5), status="cancelled", resource=str(photographer.pk)
    )
    with studio_scope(studio):
        early.assigned_members.set([photographer])
        middle.assigned_team = crew
        middle.save(update_fields=["assigned_team"])
    factories.booking(other_studio, start=base)

    def ids(**query: Any) -> list[str]:
        return _ids(staff.get(_url(studio, "bookings/") + "?" + urlencode(query, doseq=True)))

    everything = [str(early.pk), str(middle.pk), str(late.pk)]
    assert ids() == everything  # by start time; the other studio's is not there
    # start/end select bookings overlapping the window; touching is not overlapping.
    assert ids(start=(base + timedelta(hours=1)).isoformat()) == [str(middle.pk), str(late.pk)]
    assert ids(end=(base + timedelta(hours=2)).isoformat()) == [str(early.pk)]
    window = {
        "start": (base + timedelta(minutes=30)).isoformat(),
        "end": (base + timedelta(hours=2, minutes=1)).isoformat(),
    }
    assert ids(**window) == [str(early.pk), str(middle.pk)]
    assert ids(
        start=(base + timedelta(hours=3)).isoformat(), end=(base + timedelta(hours=3, minutes=5)).isoformat()
    ) == [str(middle.pk)]
    assert ids(status=["held", "cancelled"]) == [str(middle.pk), str(late.pk)]
    assert ids(status="confirmed") == [str(early.pk)]
    assert ids(service=str(wedding.pk)) == [str(middle.pk)]
    assert ids(service=str(portrait.pk), status="confirmed") == [str(early.pk)]
    assert ids(member=str(photographer.pk)) == [str(early.pk), str(late.pk)]  # assigned, or the resource
    assert ids(member=str(assistant.pk)) == [str(middle.pk)]  # through the team
    assert ids(member=str(uuid.uuid4())) == []
    for bad in ({"status": "bogus"}, {"service": "not-a-uuid"}, {"start": "yesterday"}):
        assert_api_error(staff.get(_url(studio, "bookings/") + "?" + urlencode(bad)), 400, "VALIDATION_ERROR")


def test_booking_detail(studio, client_for):
    booking, _ = _held(studio, price=200, deposit=50)
    viewer = client_for(factories.member(studio, Role.VIEWER))
    response = viewer.get(_url(studio, f"bookings/{booking.pk}/"))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"] == str(booking.pk)
    assert body["service"] == str(booking.service_id) and body["service_name"] == booking.service.name
    assert body["status"] == "held" and body["deposit_amount"] == "50.00"
    assert (body["client_name"], body["client_email"]) == ("Casey", "casey@example.com")
    assert _dt(body["starts_at"]) == booking.starts_at
    assert body["payments"] == [] and body["assigned_members"] == [] and body["assigned_team"] is None
    assert "token_hash" not in body
    assert_api_error(viewer.get(_url(studio, f"bookings/{uuid.uuid4()}/")), 404, "NOT_FOUND")


def test_patch_assigns_members_team_and_notes_audited(studio, other_studio, client_for):
    booking = factories.booking(studio)
    photographer = factories.member(studio, Role.PHOTOGRAPHER)
    crew = factories.team(studio, "Crew")
    assistant = factories.member(studio, Role.ASSISTANT)
    client = client_for(assistant)
    url = _url(studio, f"bookings/{booking.pk}/")
    body = {
        "assigned_members": [str(photographer.pk)],
        "assigned_team": str(crew.pk),
        "notes": "Bring the reflector",
        # Read-only: ignored.
        "status": "cancelled",
        "client_email": "someone@else.example",
        "starts_at": "2031-01-01T10:00:00Z",
    }
    response = client.patch(url, body, format="json")
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["assigned_members"] == [str(photographer.pk)]
    assert data["assigned_team"] == str(crew.pk)
    assert data["notes"] == "Bring the reflector"
    fresh = _fresh(studio, booking)
    assert (fresh.status, fresh.client_email, fresh.starts_at) == ("confirmed", "casey@example.com", booking.starts_at)
    assert fresh.assigned_team_id == crew.pk and fresh.sequence == booking.sequence + 1
    [event] = _events(studio, Action.BOOKING_UPDATED, booking)
    assert event.before == {"members": [], "team": None, "notes": ""}
    assert event.after == {"members": [str(photographer.pk)], "team": str(crew.pk), "notes": "Bring the reflector"}
    assert event.actor_user_id == assistant.user_id

    theirs = factories.member(other_studio, Role.PHOTOGRAPHER)
    their_team = factories.team(other_studio)
    refused = client.patch(url, {"assigned_members": [str(theirs.pk)]}, format="json")
    assert "assigned_members" in assert_api_error(refused, 400, "VALIDATION_ERROR")["fields"]
    refused = client.patch(url, {"assigned_team": str(their_team.pk)}, format="json")
    assert "assigned_team" in assert_api_error(refused, 400, "VALIDATION_ERROR")["fields"]
    assert len(_events(studio, Action.BOOKING_UPDATED, booking)) == 1

    cleared = client.patch(url, {"assigned_team": None}, format="json")
    assert cleared.status_code == 200, cleared.content
    assert cleared.json()["assigned_team"] is None
    assert cleared.json()["assigned_members"] == [str(photographer.pk)]  # untouched
    assert cleared.json()["notes"] == "Bring the reflector"
    last = _events(studio, Action.BOOKING_UPDATED, booking)[-1]
    assert last.before["team"] == str(crew.pk) and last.after["team"] is None


def test_put_on_a_booking_is_not_allowed(studio, staff):
    booking = factories.booking(studio)
    response = staff.put(_url(studio, f"bookings/{booking.pk}/"), {"notes": "x"}, format="json")
    assert_api_error(response, 405, "METHOD_NOT_ALLOWED")
    assert _fresh(studio, booking).notes == ""
    assert_api_error(staff.delete(_url(studio, f"bookings/{booking.pk}/")), 405, "METHOD_NOT_ALLOWED")
    # POST enters a booking (tests/test_roles_and_folders.py): an empty one is refused.
    assert_api_error(staff.post(_url(studio, "bookings/"), {}, format="json"), 400, "VALIDATION_ERROR")
    assert _exists(studio, booking)


def test_confirm_a_held_booking(studio, staff, django_capture_on_commit_callbacks):
    booking, _ = _held(studio)
    url = _url(studio, f"bookings/{booking.pk}/confirm/")
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(url)
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "confirmed" and response.json()["hold_expires_at"] is None
    fresh = _fresh(studio, booking)
    assert fresh.status == BookingStatus.CONFIRMED and fresh.confirmed_at is not None
    assert len(_events(studio, Action.BOOKING_CONFIRMED, booking)) == 1
    [email] = mail_to(mail.outbox, "casey@example.com")
    assert email.subject.startswith("Confirmed") and "/book/manage/" in email.body
    assert studio_notices(mail.outbox, "casey@example.com") == ["New booking"]
    # Again: nothing changes.
    assert staff.post(url).status_code == 200
    assert len(_events(studio, Action.BOOKING_CONFIRMED, booking)) == 1
    cancelled = factories.booking(studio, status=BookingStatus.CANCELLED)
    assert_api_error(staff.post(_url(studio, f"bookings/{cancelled.pk}/confirm/")), 409, "NOT_HELD")
    assert _fresh(studio, cancelled).status == BookingStatus.CANCELLED


def test_cancel_with_a_reason(studio, staff, django_capture_on_commit_callbacks):
    booking, _ = _confirmed(studio)
    sequence = _fresh(studio, booking).sequence
    url = _url(studio, f"bookings/{booking.pk}/cancel/")
    assert_api_error(staff.post(url, {"reason": "x" * 201}, format="json"), 400, "VALIDATION_ERROR")
    assert _fresh(studio, booking).status == BookingStatus.CONFIRMED
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(url, {"reason": "The client is ill"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "cancelled" and response.json()["cancel_reason"] == "The client is ill"
    fresh = _fresh(studio, booking)
    assert fresh.cancelled_at is not None and fresh.sequence == sequence + 1
    [event] = _events(studio, Action.BOOKING_CANCELLED, booking)
    assert event.before == {"status": "confirmed"}
    assert event.after == {"status": "cancelled", "reason": "The client is ill"}
    [email] = mail_to(mail.outbox, "casey@example.com")
    assert email.subject.startswith("Cancelled")
    assert studio_notices(mail.outbox, "casey@example.com") == ["Booking cancelled"]
    assert email.attachments and email.attachments[0][0] == "invite.ics"
    # Cancelling again changes nothing; the slot is free again.
    assert staff.post(url, {}, format="json").status_code == 200
    assert len(_events(studio, Action.BOOKING_CANCELLED, booking)) == 1
    assert any(s.start == booking.starts_at for s in _slots(booking.service, booking.starts_at.date()))


def test_cancel_without_reason_and_a_completed_booking(studio, staff):
    booking = factories.booking(studio)
    response = staff.post(_url(studio, f"bookings/{booking.pk}/cancel/"), {}, format="json")
    assert response.status_code == 200 and response.json()["cancel_reason"] == "cancelled_by_studio"
    done = factories.booking(studio, status=BookingStatus.COMPLETED)
    assert_api_error(staff.post(_url(studio, f"bookings/{done.pk}/cancel/"), {}), 409, "ALREADY_COMPLETED")
    assert _fresh(studio, done).status == BookingStatus.COMPLETED


@pytest.mark.parametrize(
    "status", [BookingStatus.HELD, BookingStatus.AWAITING_PAYMENT, BookingStatus.CANCELLED, BookingStatus.COMPLETED]
)
def test_only_a_confirmed_booking_can_be_completed(studio, staff, status):
    booking = factories.booking(studio, status=status)
    assert_api_error(staff.post(_url(studio, f"bookings/{booking.pk}/complete/")), 409, "NOT_CONFIRMED")
    assert _fresh(studio, booking).status == status
    assert not _events(studio, Action.BOOKING_COMPLETED, booking)


def test_complete_a_confirmed_booking(studio, staff):
    booking = factories.booking(studio)
    response = staff.post(_url(studio, f"bookings/{booking.pk}/complete/"))
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "completed"
    assert _fresh(studio, booking).status == BookingStatus.COMPLETED
    [event] = _events(studio, Action.BOOKING_COMPLETED, booking)
    assert event.after == {"status": "completed"}


def test_reschedule_to_a_free_slot(studio, staff, django_capture_on_commit_callbacks):
    booking, _ = _confirmed(studio)
    new_start = _other_start(booking)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(
            _url(studio, f"bookings/{booking.pk}/reschedule/"), {"start": new_start.isoformat()}, format="json"
        )
    assert response.status_code == 200, response.content
    assert _dt(response.json()["starts_at"]) == new_start
    fresh = _fresh(studio, booking)
    assert fresh.starts_at == new_start and fresh.ends_at == new_start + timedelta(minutes=60)
    assert fresh.blocked_start == new_start and fresh.status == BookingStatus.CONFIRMED
    [event] = _events(studio, Action.BOOKING_RESCHEDULED, booking)
    assert _dt(event.before["starts_at"]) == booking.starts_at and _dt(event.after["starts_at"]) == new_start
    [email] = mail_to(mail.outbox, booking.client_email)
    assert email.subject.startswith("Rescheduled") and "/book/manage/" in email.body
    assert studio_notices(mail.outbox, booking.client_email) == ["Booking moved"]


def test_reschedule_to_a_taken_or_invalid_time_conflicts(studio, staff):
    booking, _ = _confirmed(studio)
    other, _ = _confirmed(studio)  # same studio resource
    url = _url(studio, f"bookings/{booking.pk}/reschedule/")
    assert_api_error(staff.post(url, {"start": other.starts_at.isoformat()}, format="json"), 409, "SLOT_UNAVAILABLE")
    off_step = _other_start(booking) + timedelta(minutes=7)
    assert_api_error(staff.post(url, {"start": off_step.isoformat()}, format="json"), 409, "SLOT_UNAVAILABLE")
    night = booking.starts_at.replace(hour=2, minute=0)
    assert_api_error(staff.post(url, {"start": night.isoformat()}, format="json"), 409, "SLOT_UNAVAILABLE")
    assert_api_error(staff.post(url, {}, format="json"), 400, "VALIDATION_ERROR")
    assert _fresh(studio, booking).starts_at == booking.starts_at
    assert not _events(studio, Action.BOOKING_RESCHEDULED, booking)
    with _acting(studio):
        booking_services.booking_cancel(booking=other, by_client=False)
    gone = _url(studio, f"bookings/{other.pk}/reschedule/")
    assert_api_error(staff.post(gone, {"start": _other_start(booking).isoformat()}, format="json"), 409, "NOT_LIVE")


def test_mark_paid_confirms_the_booking(studio, client_for):
    admin = factories.member(studio, Role.ADMIN)
    client = client_for(admin)
    booking, _ = _held(studio, price=200, deposit=50)
    response = client.post(_url(studio, f"bookings/{booking.pk}/mark-paid/"))
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["amount"], body["provider"], body["currency"]) == ("paid", "50.00", "manual", "USD")
    fresh = _fresh(studio, booking)
    assert fresh.status == BookingStatus.CONFIRMED
    with studio_scope(studio):
        [payment] = Payment.objects.filter(booking=booking)
    assert payment.status == PaymentStatus.PAID and payment.marked_paid_by_id == admin.user_id
    assert _events(studio, Action.PAYMENT_RECEIVED, payment)
    detail = client.get(_url(studio, f"bookings/{booking.pk}/")).json()
    assert [p["status"] for p in detail["payments"]] == ["paid"]

    no_deposit = factories.booking(studio, status=BookingStatus.HELD)
    assert_api_error(client.post(_url(studio, f"bookings/{no_deposit.pk}/mark-paid/")), 400, "NO_DEPOSIT")
    assert _fresh(studio, no_deposit).status == BookingStatus.HELD


def _populate(studio: Studio, service: Service, count: int, start: Any, **fields: Any) -> None:
    members = [factories.member(studio, Role.PHOTOGRAPHER) for _ in range(2)]
    for i in range(count):
        booking = factories.booking(studio, service_=service, start=start + timedelta(hours=i), **fields)
        with studio_scope(studio):
            booking.assigned_members.set(members)
            Payment.objects.create(studio=studio, booking=booking, provider="manual", amount=10, currency="USD")


def _list_queries(client: APIClient, studio: Studio, expected: int) -> int:
    client.get(_url(studio, "bookings/?page_size=100"))  # warm: token and cache bookkeeping
    with CaptureQueriesContext(connection) as queries:
        response = client.get(_url(studio, "bookings/?page_size=100"))
    assert response.status_code == 200, response.content
    rows = response.json()["results"]
    assert len(rows) == expected
    assert all(len(row["assigned_members"]) == 2 and len(row["payments"]) == 1 for row in rows)
    return len(queries.captured_queries)


def test_booking_list_query_count_does_not_grow(studio, staff):
    service = factories.service(studio)
    start = timezone.now().replace(microsecond=0) + timedelta(days=3)
    _populate(studio, service, 10, start)
    ten = _list_queries(staff, studio, 10)
    _populate(studio, service, 90, start + timedelta(days=1))
    assert _list_queries(staff, studio, 100) == ten


def test_booking_list_query_count_with_teams_does_not_grow(studio, staff):
    service = factories.service(studio)
    start = timezone.now().replace(microsecond=0) + timedelta(days=3)
    crew = factories.team(studio)
    _populate(studio, service, 10, start, assigned_team=crew)
    ten = _list_queries(staff, studio, 10)
    _populate(studio, service, 90, start + timedelta(days=1), assigned_team=crew)
    assert _list_queries(staff, studio, 100) == ten


# --- 5. contact submissions ----------------------------------------------------------------------------------


def test_contact_submissions_list_and_detail(studio, other_studio, client_for):
    first = _enquiry(studio, name="First")
    second = _enquiry(studio, name="Second", phone="+1 555 0100")
    _enquiry(other_studio, name="Theirs")
    viewer = client_for(factories.member(studio, Role.VIEWER))
    listed = viewer.get(_url(studio, "contact-submissions/"))
    assert [row["name"] for row in listed.json()["results"]] == ["Second", "First"]  # newest first
    detail = viewer.get(_url(studio, f"contact-submissions/{second.pk}/"))
    assert detail.status_code == 200, detail.content
    assert detail.json() | {"created_at": None} == {
        "id": str(second.pk),
        "name": "Second",
        "email": "eve@example.com",
        "phone": "+1 555 0100",
        "message": "Do you do newborn shoots?",
        "service": None,
        "booking": None,
        "handled_at": None,
        "created_at": None,
    }
    assert first.pk != second.pk


def test_convert_an_enquiry_into_a_confirmed_booking(studio, client_for, django_capture_on_commit_callbacks):
    assistant = factories.member(studio, Role.ASSISTANT)
    client = client_for(assistant)
    service, start = _bookable(studio, price=300, deposit=100)
    enquiry = _enquiry(studio, phone="+44 20 0000", message="Wedding on the 5th?")
    url = _url(studio, f"contact-submissions/{enquiry.pk}/convert/")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"service": str(service.pk), "start": start.isoformat()}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "confirmed" and body["service"] == str(service.pk)
    assert (body["client_name"], body["client_email"], body["client_phone"]) == (
        "Eve Enquirer",
        "eve@example.com",
        "+44 20 0000",
    )
    assert _dt(body["starts_at"]) == start and body["notes"] == "Wedding on the 5th?"
    with studio_scope(studio):
        booking = Booking.objects.get(pk=body["id"])
    assert booking.studio_id == studio.pk and booking.confirmed_at is not None
    fresh = _fresh(studio, enquiry)
    assert fresh.booking_id == booking.pk and fresh.handled_at is not None
    assert client.get(_url(studio, f"contact-submissions/{enquiry.pk}/")).json()["booking"] == str(booking.pk)
    [converted] = _events(studio, Action.CONTACT_CONVERTED, enquiry)
    assert converted.after == {"booking": str(booking.pk)} and converted.actor_user_id == assistant.user_id
    assert _events(studio, Action.BOOKING_CONFIRMED, booking)
    [email] = mail_to(mail.outbox, "eve@example.com")
    assert "/book/manage/" in email.body
    assert studio_notices(mail.outbox, "eve@example.com") == ["New booking"]
    # The time is taken now.
    assert all(s.start != start for s in _slots(service, start.date()))

    again = client.post(url, {"service": str(service.pk), "start": _other_start(booking).isoformat()}, format="json")
    assert_api_error(again, 409, "ALREADY_CONVERTED")
    with studio_scope(studio):
        assert Booking.objects.count() == 1


def test_converting_into_a_taken_time_conflicts(studio, staff):
    taken, _ = _confirmed(studio)
    other_service = factories.service(studio)  # the studio is the one resource of both
    enquiry = _enquiry(studio)
    url = _url(studio, f"contact-submissions/{enquiry.pk}/convert/")
    response = staff.post(url, {"service": str(other_service.pk), "start": taken.starts_at.isoformat()}, format="json")
    assert_api_error(response, 409, "SLOT_UNAVAILABLE")
    fresh = _fresh(studio, enquiry)
    assert fresh.booking_id is None and fresh.handled_at is None
    assert not _events(studio, Action.CONTACT_CONVERTED, enquiry)
    with studio_scope(studio):
        assert Booking.objects.count() == 1


def test_convert_needs_a_service_of_this_studio(studio, other_studio, staff):
    enquiry = _enquiry(studio)
    theirs = factories.service(other_studio)
    url = _url(studio, f"contact-submissions/{enquiry.pk}/convert/")
    response = staff.post(url, {"service": str(theirs.pk), "start": "2031-01-01T10:00:00Z"}, format="json")
    assert "service" in assert_api_error(response, 400, "VALIDATION_ERROR")["fields"]
    assert (
        "start"
        in assert_api_error(staff.post(url, {"service": str(factories.service(studio).pk)}), 400, "VALIDATION_ERROR")[
            "fields"
        ]
    )
    assert _fresh(studio, enquiry).booking_id is None


# --- 6. calendar feeds --------------------------------------------------------------------------------------------


def test_calendar_feeds_are_each_members_own(studio, client_for):
    me = factories.member(studio, Role.PHOTOGRAPHER)
    colleague = factories.member(studio, Role.ADMIN)
    client = client_for(me)
    created = client.post(_url(studio, "calendar-feeds/"), {"name": "Phone"}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["scope"] == "member" and created.json()["url"].endswith(".ics")
    mine = created.json()["id"]
    theirs = _feed(colleague, scope="studio")

    listed = client.get(_url(studio, "calendar-feeds/"))
    assert [row["id"] for row in listed.json()["results"]] == [mine]
    assert listed.json()["results"][0]["url"] is None  # shown on create and rotate only
    assert_api_error(client.delete(_url(studio, f"calendar-feeds/{theirs.pk}/")), 404, "NOT_FOUND")
    assert_api_error(client.post(_url(studio, f"calendar-feeds/{theirs.pk}/rotate/")), 404, "NOT_FOUND")
    fresh = _fresh(studio, theirs)
    assert fresh.revoked_at is None and fresh.token_hash == theirs.token_hash

    rotated = client.post(_url(studio, f"calendar-feeds/{mine}/rotate/"))
    assert rotated.status_code == 200 and rotated.json()["url"] != created.json()["url"]
    assert client.delete(_url(studio, f"calendar-feeds/{mine}/")).status_code == 204
    with studio_scope(studio):
        assert CalendarFeed.objects.get(pk=mine).revoked_at is not None


def test_a_studio_wide_feed_needs_booking_admin(studio, client_for):
    photographer = client_for(factories.member(studio, Role.PHOTOGRAPHER))
    refused = photographer.post(_url(studio, "calendar-feeds/"), {"scope": "studio"}, format="json")
    assert_api_error(refused, 403, "PERMISSION_DENIED")
    assert _count(studio, CalendarFeed) == 0
    admin = client_for(factories.member(studio, Role.ADMIN))
    created = admin.post(_url(studio, "calendar-feeds/"), {"scope": "studio"}, format="json")
    assert created.status_code == 201 and created.json()["scope"] == "studio"


# --- 7. public API: services and holds ------------------------------------------------------------------------


def test_public_services_lists_the_active_services_of_that_studio(studio, other_studio):
    portrait = factories.service(studio, name="Portrait", price=Decimal("120"))
    factories.service(studio, name="Retired", is_active=False)
    factories.service(other_studio, name="Elsewhere")
    response = _anon().get(_public(studio, "services/"))
    assert response.status_code == 200, response.content
    [row] = response.json()
    assert row["id"] == str(portrait.pk) and row["name"] == "Portrait" and row["price"] == "120.00"
    assert set(row) == {"id", "name", "description", "duration_minutes", "price", "deposit", "currency"}


def test_public_services_of_an_unknown_or_inactive_studio(studio):
    factories.service(studio)
    assert_api_error(_anon().get("/api/v1/public/studios/no-such-studio/services/"), 404, "NOT_FOUND")
    Studio.objects.filter(pk=studio.pk).update(is_active=False)
    assert_api_error(_anon().get(_public(studio, "services/")), 404, "NOT_FOUND")
    assert_api_error(
        _anon().post(_public(studio, "contact/"), {"name": "A", "email": "a@example.com", "message": "Hi"}),
        404,
        "NOT_FOUND",
    )


def _hold_body(service: Service, start: Any, **extra: Any) -> dict[str, Any]:
    return {"service": str(service.pk), "start": start.isoformat(), "name": "Ana", "email": "ana@example.com", **extra}


def test_hold_without_deposit_then_confirm(studio):
    service, start = _bookable(studio, price=100)
    client = _anon()
    response = client.post(_public(studio, "holds/"), _hold_body(service, start, phone="+1 555"), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    token = body["token"]
    assert len(token) >= 32
    assert body["manage_url"] == settings.SITE_URL.rstrip("/") + f"/book/manage/{token}/"
    held = body["booking"]
    assert held["status"] == "held" and held["next_step"] == "confirm" and held["deposit_amount"] == "0.00"
    assert held["studio"] == studio.name and held["service"]["id"] == str(service.pk)
    assert _dt(held["starts_at"]) == start and held["hold_expires_at"]
    with studio_scope(studio):
        booking = Booking.objects.get(pk=held["id"])
    assert (booking.client_phone, booking.status) == ("+1 555", BookingStatus.HELD)
    [event] = _events(studio, Action.BOOKING_HELD, booking)
    assert event.actor_type == "client"

    shown = _anon().get(f"/api/v1/public/bookings/{token}/")
    assert shown.status_code == 200, shown.content
    assert shown.json()["id"] == held["id"] and shown.json()["next_step"] == "confirm"
    confirmed = _anon().post(f"/api/v1/public/bookings/{token}/confirm/")
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "confirmed"
    assert _anon().get(f"/api/v1/public/bookings/{token}/").json()["next_step"] == "none"
    assert_api_error(_anon().get(f"/api/v1/public/bookings/{token}x/"), 404, "NOT_FOUND")


def test_hold_with_deposit_asks_for_checkout(studio):
    service, start = _bookable(studio, price=200, deposit=50)
    response = _anon().post(_public(studio, "holds/"), _hold_body(service, start), format="json")
    assert response.status_code == 201, response.content
    held = response.json()["booking"]
    assert held["next_step"] == "checkout" and held["deposit_amount"] == "50.00"
    assert held["checkout_url"] is None
    shown = _anon().get(f"/api/v1/public/bookings/{response.json()['token']}/").json()
    assert shown["next_step"] == "checkout"
    refused = _anon().post(f"/api/v1/public/bookings/{response.json()['token']}/confirm/")
    assert_api_error(refused, 402, "DEPOSIT_REQUIRED")


def test_a_held_slot_cannot_be_held_twice(studio):
    service, start = _bookable(studio)
    assert _anon().post(_public(studio, "holds/"), _hold_body(service, start), format="json").status_code == 201
    again = _anon().post(_public(studio, "holds/"), _hold_body(service, start, email="bo@example.com"), format="json")
    assert_api_error(again, 409, "SLOT_UNAVAILABLE")
    with studio_scope(studio):
        assert Booking.objects.count() == 1


@pytest.mark.parametrize(
    ("shift", "note"),
    [(timedelta(minutes=7), "between two slot starts"), (timedelta(days=400), "too far ahead")],
)
def test_a_start_that_is_not_a_slot_conflicts(studio, shift, note):
    service, start = _bookable(studio)
    response = _anon().post(_public(studio, "holds/"), _hold_body(service, start + shift), format="json")
    assert_api_error(response, 409, "SLOT_UNAVAILABLE")
    assert _count(studio, Booking) == 0


def test_a_start_outside_the_hours_conflicts(studio):
    service, start = _bookable(studio)
    night = start.replace(hour=3, minute=0)
    assert_api_error(
        _anon().post(_public(studio, "holds/"), _hold_body(service, night), format="json"), 409, "SLOT_UNAVAILABLE"
    )
    past = timezone.now().replace(microsecond=0) - timedelta(days=1)
    assert_api_error(
        _anon().post(_public(studio, "holds/"), _hold_body(service, past), format="json"), 409, "SLOT_UNAVAILABLE"
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"name": ""}, "name"),
        ({"start": "tomorrow at ten"}, "start"),
        ({"service": "not-a-uuid"}, "service"),
    ],
)
def test_hold_validation(studio, change, field):
    service, start = _bookable(studio)
    response = _anon().post(_public(studio, "holds/"), {**_hold_body(service, start), **change}, format="json")
    assert field in assert_api_error(response, 400, "VALIDATION_ERROR")["fields"]
    assert _count(studio, Booking) == 0


def test_hold_for_an_inactive_or_foreign_service_is_not_found(studio, other_studio):
    service, start = _bookable(studio)
    with _acting(studio):
        service.is_active = False
        booking_services.service_save(service=service)
    assert_api_error(
        _anon().post(_public(studio, "holds/"), _hold_body(service, start), format="json"), 404, "NOT_FOUND"
    )
    theirs, their_start = _bookable(other_studio)
    # Through this studio's URL, the other studio's service does not exist.
    response = _anon().post(_public(studio, "holds/"), _hold_body(theirs, their_start), format="json")
    assert_api_error(response, 404, "NOT_FOUND")
    assert _count(studio, Booking) == 0 and _count(other_studio, Booking) == 0


# --- 8. public API: contact ------------------------------------------------------------------------------------


def _contact(studio: Studio, client: APIClient | None = None, **extra: Any) -> Any:
    body = {"name": "Robin", "email": "robin@example.com", "message": "Can we book a shoot in May?", **extra}
    return (client or _anon()).post(_public(studio, "contact/"), body, format="json")


def test_contact_is_stored_and_mailed_to_the_studio(studio, django_capture_on_commit_callbacks):
    Studio.objects.filter(pk=studio.pk).update(contact_email="hello@studio.example")
    service = factories.service(studio, name="Maternity")
    client = _anon()
    with django_capture_on_commit_callbacks(execute=True):
        response = _contact(studio, client, phone="+1 555 0101", service=str(service.pk))
    assert response.status_code == 202, response.content
    with studio_scope(studio):
        [submission] = ContactSubmission.objects.all()
    assert (submission.name, submission.email, submission.phone) == ("Robin", "robin@example.com", "+1 555 0101")
    assert submission.service_id == service.pk and submission.message == "Can we book a shoot in May?"
    assert submission.ip == client.defaults["REMOTE_ADDR"]
    [event] = _events(studio, Action.CONTACT_RECEIVED, submission)
    assert event.actor_type == "client" and event.after["service"] == str(service.pk)
    [email] = mail.outbox
    assert email.to == ["hello@studio.example"]
    assert "Robin" in email.subject
    assert "Can we book a shoot in May?" in email.body and "Maternity" in email.body and "+1 555 0101" in email.body


def test_contact_mail_goes_to_the_owners_without_a_contact_email(studio, django_capture_on_commit_callbacks):
    owner = factories.owner_membership(studio)
    factories.member(studio, Role.ADMIN)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = _contact(studio)
    assert response.status_code == 202, response.content
    assert len(callbacks) == 1
    [email] = mail.outbox
    assert email.to == [owner.user.email]


def test_contact_mail_is_sent_only_after_commit(studio, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert _contact(studio).status_code == 202
    assert len(callbacks) == 1 and mail.outbox == []
    callbacks[0]()
    assert len(mail.outbox) == 1


def test_contact_honeypot_stores_and_sends_nothing(studio, django_capture_on_commit_callbacks):
    events = _audit_count(studio)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = _contact(studio, website="http://spam.example")
    assert response.status_code == 202, response.content
    assert _count(studio, ContactSubmission) == 0
    assert callbacks == [] and mail.outbox == []
    assert _audit_count(studio) == events


@pytest.mark.parametrize(
    ("change", "field"),
    [({"email": "nope"}, "email"), ({"message": ""}, "message"), ({"name": ""}, "name"), ({"service": "x"}, "service")],
)
def test_contact_validation(studio, change, field):
    response = _contact(studio, **change)
    assert field in assert_api_error(response, 400, "VALIDATION_ERROR")["fields"]
    assert _count(studio, ContactSubmission) == 0


def test_contact_with_an_unknown_or_foreign_service_is_not_found(
    studio, other_studio, django_capture_on_commit_callbacks
):
    inactive = factories.service(studio, is_active=False)
    theirs = factories.service(other_studio)
    with django_capture_on_commit_callbacks(execute=True):
        for service_id in (uuid.uuid4(), theirs.pk, inactive.pk):
            assert_api_error(_contact(studio, service=str(service_id)), 404, "NOT_FOUND")
    assert _count(studio, ContactSubmission) == 0 and _count(other_studio, ContactSubmission) == 0
    assert mail.outbox == []


def test_contact_is_throttled_per_address(studio):
    assert settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["contact"] == "5/hour"
    client = _anon()
    for _ in range(5):
        assert _contact(studio, client).status_code == 202
    throttled = _contact(studio, client)
    error = assert_api_error(throttled, 429, "THROTTLED")
    assert int(throttled["Retry-After"]) > 0 and error["details"]["retry_after_seconds"] > 0
    assert _count(studio, ContactSubmission) == 5
    # Another address is not affected.
    assert _contact(studio, _anon()).status_code == 202
    assert _count(studio, ContactSubmission) == 6


# --- 9. public pages ------------------------------------------------------------------------------------------------


def test_booking_page_shows_the_studio_and_its_active_services(studio, other_studio):
    factories.service(studio, name="Portrait session", price=Decimal("150"), deposit=Decimal("30"))
    factories.service(studio, name="Retired package", is_active=False)
    factories.service(other_studio, name="Their session")
    response = _anon().get(f"/book/{studio.slug}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert studio.name in html
    assert "Portrait session" in html and "deposit 30" in html
    assert "Retired package" not in html and "Their session" not in html
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert f"/api/v1/public/studios/{studio.slug}/" in html


def test_booking_page_without_services_points_to_the_contact_form(studio):
    html = _anon().get(f"/book/{studio.slug}/").content.decode()
    assert "not open right now" in html and f"/contact/{studio.slug}/" in html
    assert 'id="book"' not in html


def test_booking_page_escapes_the_studio_name(studio):
    Studio.objects.filter(pk=studio.pk).update(name="<script>alert(1)</script> Studio")
    html = _anon().get(f"/book/{studio.slug}/").content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Studio" in html


def test_pages_of_an_unknown_or_inactive_studio_are_not_found(studio):
    assert _anon().get("/book/no-such-studio/").status_code == 404
    assert _anon().get("/contact/no-such-studio/").status_code == 404
    Studio.objects.filter(pk=studio.pk).update(is_active=False)
    assert _anon().get(f"/book/{studio.slug}/").status_code == 404
    assert _anon().get(f"/contact/{studio.slug}/").status_code == 404


def test_contact_page_has_the_form_and_a_hidden_honeypot(studio):
    factories.service(studio, name="Headshots")
    response = _anon().get(f"/contact/{studio.slug}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert studio.name in html and 'id="contact"' in html and "Headshots" in html
    for field in ('name="name"', 'name="email"', 'name="message"', 'name="phone"'):
        assert field in html
    trap = html[html.index('<div class="trap"') :]
    trap = trap[: trap.index("</div>")]
    assert 'aria-hidden="true"' in trap and 'name="website"' in trap and 'tabindex="-1"' in trap
    # The trap's rule lives in the page's stylesheet (the CSP allows no inline style).
    assert '<link rel="stylesheet" href="/static/site/public.css">' in html
    assert ".trap { position: absolute; left: -5000px; }" in (settings.BASE_DIR / "static/site/public.css").read_text()
    assert '<meta name="viewport"' in html
    assert f"/api/v1/public/studios/{studio.slug}/contact/" in html


def test_manage_page_renders_for_the_token(studio):
    _, raw = _held(studio)
    response = _anon().get(f"/book/manage/{raw}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert response.context["page"]["booking_url"] == f"/api/v1/public/bookings/{raw}/"
    assert '<script id="page-data" type="application/json">' in html and '<meta name="viewport"' in html
    # A link that names no booking is a clear 404; what it holds is never echoed.
    tricky = _anon().get('/book/manage/a"+alert(1)+"b/')
    assert tricky.status_code == 404 and "alert(1)" not in tricky.content.decode()


# --- 10. bugs ------------------------------------------------------------------------------------------------


def test_marking_paid_twice_records_one_payment(studio, staff):
    booking, _ = _held(studio, price=200, deposit=50)
    url = _url(studio, f"bookings/{booking.pk}/mark-paid/")
    assert staff.post(url).status_code == 200
    again = staff.post(url)
    assert again.status_code in (200, 409), again.content
    with studio_scope(studio):
        assert Payment.objects.filter(booking=booking, status=PaymentStatus.PAID).count() == 1


@pytest.mark.parametrize(("price", "deposit"), [("-5.00", "-10.00"), ("10.00", "-1.00")])
def test_negative_prices_are_refused(studio, staff, price, deposit):
    body = {"name": "Negative", "duration_minutes": 30, "price": price, "deposit": deposit}
    assert_api_error(staff.post(_url(studio, "services/"), body), 400, "VALIDATION_ERROR")
    assert _count(studio, Service) == 0


def test_a_newline_in_the_contact_name_cannot_break_the_email(studio, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = _contact(studio, name="Robin\nBcc: victim@example.com")
    if response.status_code == 400:
        assert _count(studio, ContactSubmission) == 0
    else:
        assert response.status_code == 202, response.content
        [email] = mail.outbox
        assert "\n" not in email.subject and not email.bcc
        assert email.to == [factories.owner_membership(studio).user.email]


def _expire(studio: Studio, booking: Booking) -> None:
    """The hold's time has passed, but nothing released it yet (no new hold, no beat run)."""
    with studio_scope(studio):
        Booking.objects.filter(pk=booking.pk).update(hold_expires_at=timezone.now() - timedelta(minutes=1))


def test_converting_into_an_expired_hold_does_not_double_book(studio, staff):
    held, _ = _held(studio)
    _expire(studio, held)
    assert any(s.start == held.starts_at for s in _slots(held.service, held.starts_at.date()))  # offered again
    enquiry = _enquiry(studio)
    body = {"service": str(factories.service(studio).pk), "start": held.starts_at.isoformat()}
    converted = staff.post(_url(studio, f"contact-submissions/{enquiry.pk}/convert/"), body, format="json")
    assert converted.status_code == 201, converted.content
    late = staff.post(_url(studio, f"bookings/{held.pk}/confirm/"))
    assert late.status_code == 409, late.content
    with studio_scope(studio):
        live = Booking.objects.filter(status=BookingStatus.CONFIRMED, starts_at=held.starts_at, resource="studio")
        assert live.count() == 1


def test_rescheduling_into_an_expired_hold_releases_it(studio, staff):
    held, _ = _held(studio)
    mine, _ = _confirmed(studio)
    _expire(studio, held)
    response = staff.post(
        _url(studio, f"bookings/{mine.pk}/reschedule/"), {"start": held.starts_at.isoformat()}, format="json"
    )
    assert response.status_code == 200, response.content
    assert _fresh(studio, mine).starts_at == held.starts_at
    assert _fresh(studio, held).status == BookingStatus.CANCELLED
