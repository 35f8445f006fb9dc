"""No 500 from any input (issue 8, section 2): out-of-range dates and
settings, deeply nested JSON, control characters in what a client sends,
forged cursors, oversized bodies. Each answers 4xx in the one error shape.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent
from bookings import availability
from bookings.models import MAX_ADVANCE_DAYS, ContactSubmission, Service
from studio.api.parsers import MAX_JSON_DEPTH
from studio.auditing import Action
from studio.models import Studio
from studio.tenancy import studio_scope
from tests import factories
from tests.helpers import assert_api_error
from tests.test_bookings_api import _anon, _bookable, _held, _public, _url

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner_client(owner, client_for) -> APIClient:
    return client_for(owner)


def _hold(studio: Studio, service: Service, start: str) -> Any:
    body = {"service": str(service.pk), "start": start, "name": "Ana", "email": "ana@example.com"}
    return _anon().post(_public(studio, "holds/"), body, format="json")


# --- 1. dates and settings out of range -------------------------------------------------------------------


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01", "1899-06-01", "2300-01-01"])
def test_public_slots_refuse_dates_out_of_range(studio, day):
    service, _ = _bookable(studio)
    response = _anon().get(_public(studio, f"services/{service.pk}/slots/"), {"start": day, "end": day})
    error = assert_api_error(response, 400, "VALIDATION_ERROR")
    assert "between" in error["fields"]["start"][0]


@pytest.mark.parametrize("start", ["9999-12-31T23:00:00Z", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
def test_a_hold_far_out_of_range_is_refused(studio, start):
    service, _ = _bookable(studio)
    error = assert_api_error(_hold(studio, service, start), 400, "VALIDATION_ERROR")
    assert "start" in error["fields"]


def test_a_start_without_an_offset_is_refused_not_read_as_utc(studio):
    service, start = _bookable(studio)
    naive = start.astimezone(UTC).replace(tzinfo=None).isoformat()
    error = assert_api_error(_hold(studio, service, naive), 400, "VALIDATION_ERROR")
    assert "offset" in error["fields"]["start"][0]
    assert error["details"]["field_codes"]["start"] == ["offset_required"]
    assert _hold(studio, service, start.isoformat()).status_code == 201


def test_a_client_reschedule_to_year_9999_is_refused(studio):
    _, token = _held(studio)
    response = _anon().post(f"/api/v1/public/bookings/{token}/reschedule/", {"start": "9999-12-31T23:00:00Z"})
    assert_api_error(response, 400, "VALIDATION_ERROR")


def test_a_staff_reschedule_and_a_conversion_to_year_9999_are_refused(studio, owner_client):
    service, _ = _bookable(studio)
    booking = factories.booking(studio, service_=service)
    response = owner_client.post(
        _url(studio, f"bookings/{booking.pk}/reschedule/"), {"start": "9999-12-31T23:00:00Z"}, format="json"
    )
    assert_api_error(response, 400, "VALIDATION_ERROR")
    with studio_scope(studio):
        submission = ContactSubmission.objects.create(studio=studio, name="Eve", email="eve@example.com", message="Hi")
    response = owner_client.post(
        _url(studio, f"contact-submissions/{submission.pk}/convert/"),
        {"service": str(service.pk), "start": "9999-12-31T23:00:00Z"},
        format="json",
    )
    assert_api_error(response, 400, "VALIDATION_ERROR")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_advance_days", 2147483647),
        ("min_notice_minutes", 2147483647),
        ("buffer_before_minutes", 10**9),
        ("buffer_after_minutes", 10**9),
        ("duration_minutes", 10**9),
        ("slot_step_minutes", 10**9),
        ("daily_limit", 10**9),
    ],
)
def test_service_settings_are_bounded(studio, owner_client, field, value):
    body = {"name": "Portrait", "duration_minutes": 60, field: value}
    error = assert_api_error(owner_client.post(_url(studio, "services/"), body, format="json"), 400, "VALIDATION_ERROR")
    assert field in error["fields"]


def test_a_service_stored_with_huge_settings_keeps_its_public_page(studio):
    """Values stored before the bounds existed must not break the page
    until someone edits the service."""
    service, _ = _bookable(studio)
    with studio_scope(studio):
        Service.objects.filter(pk=service.pk).update(max_advance_days=2147483647, slot_step_minutes=2147483647)
    today = timezone.now().date()
    response = _anon().get(
        _public(studio, f"services/{service.pk}/slots/"),
        {"start": (today + timedelta(days=5)).isoformat(), "end": (today + timedelta(days=6)).isoformat()},
    )
    assert response.status_code == 200, response.content
    with studio_scope(studio):
        Service.objects.filter(pk=service.pk).update(min_notice_minutes=2147483647, buffer_before_minutes=2147483647)
    response = _anon().get(
        _public(studio, f"services/{service.pk}/slots/"),
        {"start": (today + timedelta(days=5)).isoformat(), "end": (today + timedelta(days=6)).isoformat()},
    )
    assert response.status_code == 200, response.content
    assert response.json() == []


@pytest.mark.parametrize("zone", ["Etc/GMT-14", "Etc/GMT+12"])
def test_availability_at_the_ends_of_the_calendar(studio, zone):
    Studio.objects.filter(pk=studio.pk).update(timezone=zone)
    studio.refresh_from_db()
    service, _ = _bookable(studio)
    service.max_advance_days = 2147483647
    with studio_scope(studio):
        assert availability.available_slots(service, date.min, date.min) == []
        assert availability.available_slots(service, date.max, date.max) == []
        # Not a loop over 3.6 million days: only the (bounded) horizon is walked.
        slots = availability.available_slots(service, date.min, date.max)
        assert slots and slots[-1].start <= timezone.now() + timedelta(days=MAX_ADVANCE_DAYS)
        assert availability.slot_for(service, datetime(9999, 12, 31, 23, tzinfo=UTC)) is None
        assert availability.slot_for(service, datetime(1, 1, 1, tzinfo=UTC)) is None


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("bookings/", {"start": "9999-12-31T23:59:59-14:00"}),
        ("bookings/", {"end": "0001-01-01T00:00:00+14:00"}),
        ("audit-events/", {"since": "9999-12-31T23:59:59-14:00"}),
        ("audit-events/", {"until": "0001-01-01T00:00:00+14:00"}),
    ],
)
def test_date_filters_beyond_what_utc_can_hold_are_refused(studio, owner_client, path, query):
    error = assert_api_error(owner_client.get(_url(studio, path), query), 400, "VALIDATION_ERROR")
    assert error["details"]["field_codes"] == {next(iter(query)): ["out_of_range"]}


# --- 2. deeply nested JSON ---------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [5000, MAX_JSON_DEPTH + 1])
def test_deeply_nested_json_is_a_malformed_request(studio, owner_client, depth):
    body = "[" * depth + "]" * depth
    response = owner_client.post(_url(studio, "teams/"), body, content_type="application/json")
    error = assert_api_error(response, 400, "MALFORMED_REQUEST")
    assert str(MAX_JSON_DEPTH) in error["message"]
    # Without sign-in too (the public booking API).
    response = _anon().post(_public(studio, "holds/"), "[" * 5000, content_type="application/json")
    assert_api_error(response, 400, "MALFORMED_REQUEST")


def test_json_nested_as_deep_as_allowed_is_parsed(studio, owner_client):
    body = '{"name": "Ok", "description": "", "x": ' + "[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1) + "}"
    response = owner_client.post(_url(studio, "teams/"), body, content_type="application/json")
    assert response.status_code == 201, response.content


# --- 3. control characters in what is stored ------------------------------------------------------------------


def test_a_nul_in_the_user_agent_is_not_stored(studio, owner_client):
    """On PostgreSQL the NUL made every audited write fail (500)."""
    response = owner_client.post(
        _url(studio, "teams/"), {"name": "Night shift"}, format="json", HTTP_USER_AGENT="curl/8\x00\x1b[31m\x7fx"
    )
    assert response.status_code == 201, response.content
    with studio_scope(studio):
        event = AuditEvent.objects.get(action=Action.TEAM_CREATED)
    assert event.user_agent == "curl/8[31mx"


def test_a_nul_in_the_audit_export_filters_is_not_stored(studio, owner_client):
    response = owner_client.get(_url(studio, "audit-events/export/?x=%00y&z=%1b[0m&z=%00&target_type=teams.team"))
    assert response.status_code == 200
    b"".join(response.streaming_content)
    with studio_scope(studio):
        event = AuditEvent.objects.get(action=Action.AUDIT_EXPORTED)
    assert event.after == {"filters": {"x": "y", "z": ["[0m", ""], "target_type": "teams.team"}}


# --- 4. cursors -------------------------------------------------------------------------------------------------


def _cursor(position: str) -> str:
    return base64.b64encode(f"p={position}".encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    ["cD0A", "zzz", "%%%", _cursor("not-a-number"), _cursor("99999999999999999999999"), _cursor("")],
)
def test_a_forged_cursor_on_the_asset_list_is_one_clear_400(studio, owner_client, cursor):
    gallery = factories.gallery(studio)
    response = owner_client.get(_url(studio, f"galleries/{gallery.pk}/assets/"), {"cursor": cursor})
    error = assert_api_error(response, 400, "INVALID_CURSOR")
    assert "cursor" in error["message"]


@pytest.mark.parametrize(
    "cursor", ["cD0A", "zzz", _cursor("yesterday"), _cursor("2026-01-01 10:00:00"), _cursor("9999-99-99")]
)
def test_a_forged_cursor_on_date_ordered_lists_is_the_same_400(studio, owner_client, cursor):
    for path in ("bookings/", "teams/", "audit-events/"):
        assert_api_error(owner_client.get(_url(studio, path), {"cursor": cursor}), 400, "INVALID_CURSOR")


def test_the_cursors_the_api_hands_out_still_work(studio, owner_client):
    for n in range(3):
        factories.team(studio, name=f"Team {n}")
    first = owner_client.get(_url(studio, "teams/"), {"page_size": 2}).json()
    assert len(first["results"]) == 2 and first["next"]
    second = owner_client.get(first["next"])
    assert second.status_code == 200, second.content
    assert len(second.json()["results"]) == 1


# --- 5. errors Django answers before any view --------------------------------------------------------------------


def test_a_body_over_the_upload_limit_gets_the_api_error_shape(studio, owner_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = '{"name": "' + "a" * 2000 + '"}'
    response = owner_client.post(_url(studio, "teams/"), body, content_type="application/json")
    assert_api_error(response, 400, "MALFORMED_REQUEST")


def test_a_bad_request_outside_the_api_keeps_the_html_page(settings, client):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = client.post("/accounts/login/", {"login": "a" * 2000})
    assert response.status_code == 400
    assert not response["Content-Type"].startswith("application/json")


def test_a_csrf_failure_on_the_api_has_the_api_error_shape(studio, owner):
    session = APIClient(enforce_csrf_checks=True)
    session.force_login(owner.user)
    response = session.post(_url(studio, "teams/"), {"name": "No token"}, format="json")
    assert_api_error(response, 403, "PERMISSION_DENIED")


def test_the_csrf_failure_view_answers_json_on_api_paths(rf):
    from studio.errors import csrf_failure

    api = csrf_failure(rf.post("/api/v1/me/tokens/"), reason="CSRF cookie not set.")
    assert api.status_code == 403 and api["Content-Type"] == "application/json"
    assert json.loads(api.content)["error"]["code"] == "PERMISSION_DENIED"
    page = csrf_failure(rf.post("/accounts/login/"), reason="CSRF cookie not set.")
    assert page.status_code == 403 and page["Content-Type"].startswith("text/html")


def test_the_migration_brings_stored_settings_within_the_bounds(studio):
    import importlib

    from django.apps import apps

    migration = importlib.import_module("bookings.migrations.0005_service_setting_bounds")
    service = factories.service(studio)
    with studio_scope(studio):
        Service.objects.filter(pk=service.pk).update(max_advance_days=2147483647, slot_step_minutes=2147483647)
    migration.clamp_settings(apps, None)
    with studio_scope(studio):
        service.refresh_from_db()
    assert (service.max_advance_days, service.slot_step_minutes, service.duration_minutes) == (3650, 1440, 60)
