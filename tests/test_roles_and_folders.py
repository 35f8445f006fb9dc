"""Roles see and do only what their role allows (issue 8, section 5), and the
staff API's day-one additions (section 6): bookings entered by staff, the
studio's storage, the client's view of a deposit paid by hand."""

from __future__ import annotations

import zoneinfo
from datetime import datetime, time, timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from bookings import services as booking_services
from bookings.models import Booking, BookingStatus, WorkingHours
from galleries import services as gallery_services
from galleries.models import Folder, Visibility
from studio import context
from studio.roles import Role
from studio.tenancy import studio_scope, unscoped
from tests import factories
from tests.helpers import assert_api_error
from tests.test_bookings_concurrency import _assert_winners, _storm, open_throttles  # noqa: F401 - a fixture
from tests.test_portal import _bulk_assets, _gallery, _open, _url, _visitor

UTC = zoneinfo.ZoneInfo("UTC")


def _staff_folder(studio: Any, gallery: Any, name: str = "Studio picks") -> Folder:
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        return gallery_services.folder_create(gallery=gallery, name=name)


def _mine(client: APIClient, gallery: Any, name: str) -> str:
    response = client.post(_url(gallery, "folders/"), {"name": name}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def _folder_names(client: APIClient, gallery: Any) -> list[str]:
    response = client.get(_url(gallery, "folders/"))
    assert response.status_code == 200, response.content
    return sorted(f["name"] for f in response.json()["results"])


# --- portal folders ----------------------------------------------------------------------------------------------


def test_visitors_do_not_see_each_others_folders_unless_the_studio_shares(studio):
    gallery = _gallery(studio)
    assets = _bulk_assets(studio, gallery, 2)
    _staff_folder(studio, gallery)
    anna, ben = _open(gallery), _open(gallery)
    annas = _mine(anna, gallery, "Anna's")
    assert (
        anna.post(_url(gallery, f"folders/{annas}/add/"), {"assets": [str(assets[0].pk)]}, format="json").status_code
        == 204
    )
    bens = _mine(ben, gallery, "Ben's")

    assert _folder_names(anna, gallery) == ["Anna's", "Studio picks"]
    assert _folder_names(ben, gallery) == ["Ben's", "Studio picks"]
    # Ben cannot reach Anna's folder by its id, nor learn what it holds.
    assert ben.get(_url(gallery, f"folders/{annas}/")).status_code in (404, 405)
    assert_api_error(
        ben.patch(_url(gallery, f"folders/{annas}/"), {"name": "Mine now"}, format="json"), 404, "NOT_FOUND"
    )
    assert_api_error(ben.delete(_url(gallery, f"folders/{annas}/")), 404, "NOT_FOUND")
    assert_api_error(
        ben.post(_url(gallery, f"folders/{annas}/add/"), {"assets": [str(assets[1].pk)]}, format="json"),
        404,
        "NOT_FOUND",
    )
    photos = ben.get(_url(gallery, "assets/")).json()["results"]
    assert all(annas not in p["folders"] for p in photos)
    assert ben.get(_url(gallery, f"assets/{assets[0].pk}/")).json()["folders"] == []
    assert ben.get(_url(gallery, f"assets/?folder={annas}")).json()["results"] == []
    assert [p["id"] for p in anna.get(_url(gallery, f"assets/?folder={annas}")).json()["results"]] == [
        str(assets[0].pk)
    ]
    # A visitor's reorder lists their own folders only.
    assert ben.post(_url(gallery, "folders/reorder/"), {"folders": [bens]}, format="json").status_code == 204
    with unscoped():
        assert Folder.objects.get(pk=annas).name == "Anna's"

    # The studio turns on a shared selection: everyone sees, and works on, everyone's.
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        gallery_services.gallery_update(actor=None, gallery=gallery, shared_selection=True)
    assert _folder_names(ben, gallery) == ["Anna's", "Ben's", "Studio picks"]
    assert ben.get(_url(gallery, f"assets/{assets[0].pk}/")).json()["folders"] == [annas]
    renamed = ben.patch(_url(gallery, f"folders/{annas}/"), {"name": "Ours"}, format="json")
    assert renamed.status_code == 200, renamed.content


def test_the_studios_folders_are_read_only_to_visitors(studio):
    gallery = _gallery(studio)
    assets = _bulk_assets(studio, gallery, 1)
    picks = _staff_folder(studio, gallery)
    client = _open(gallery)
    assert "Studio picks" in _folder_names(client, gallery)
    for method, suffix, body in [
        ("patch", "", {"name": "Mine"}),
        ("delete", "", None),
        ("post", "add/", {"assets": [str(assets[0].pk)]}),
        ("post", "remove/", {"assets": [str(assets[0].pk)]}),
        ("post", "reorder-assets/", {"assets": []}),
    ]:
        response = getattr(client, method)(_url(gallery, f"folders/{picks.pk}/{suffix}"), body, format="json")
        assert_api_error(response, 403, "PERMISSION_DENIED")
    mine = _mine(client, gallery, "Mine")
    moved_in = client.post(
        _url(gallery, f"folders/{mine}/move/"), {"assets": [str(assets[0].pk)], "to": str(picks.pk)}, format="json"
    )
    assert moved_in.status_code in (400, 403)
    with unscoped():
        assert Folder.objects.get(pk=picks.pk).name == "Studio picks"
        assert not picks.placements.exists()


def test_two_visitors_may_each_have_a_folder_of_the_same_name(studio):
    gallery = _gallery(studio)
    anna, ben = _open(gallery), _open(gallery)
    _mine(anna, gallery, "Favourites")
    _mine(ben, gallery, "Favourites")  # another visitor's private names are not taken
    assert _visitor(anna).pk != _visitor(ben).pk


# --- codes and visibility by role ---------------------------------------------------------------------------------


def test_a_viewer_reads_galleries_without_their_codes(studio, client_for):
    gallery = factories.gallery(studio)
    url = f"/api/v1/studios/{studio.slug}/galleries/"
    viewer = client_for(factories.member(studio, Role.VIEWER))
    listed = viewer.get(url).json()["results"]
    detail = viewer.get(f"{url}{gallery.pk}/").json()
    for body in (listed[0], detail):
        assert (body["access_code"], body["has_pin"]) == (None, None)
        assert body["title"] == gallery.title
    assistant = client_for(factories.member(studio, Role.ASSISTANT))
    assert assistant.get(f"{url}{gallery.pk}/").json()["access_code"] == gallery.access_code


def test_opening_a_gallery_is_as_sensitive_as_its_code(studio, client_for):
    gallery = factories.gallery(studio)
    url = f"/api/v1/studios/{studio.slug}/galleries/{gallery.pk}/"
    assistant = client_for(factories.member(studio, Role.ASSISTANT))
    for visibility in (Visibility.PUBLIC, Visibility.UNLISTED):
        assert_api_error(assistant.patch(url, {"visibility": visibility}, format="json"), 403, "PERMISSION_DENIED")
    assert_api_error(assistant.patch(url, {"access_code": "NEWCODE1"}, format="json"), 403, "PERMISSION_DENIED")
    gallery.refresh_from_db()
    assert gallery.visibility == Visibility.PRIVATE
    photographer = client_for(factories.member(studio, Role.PHOTOGRAPHER))
    assert photographer.patch(url, {"visibility": Visibility.PUBLIC}, format="json").status_code == 200


# --- bookings entered by staff ------------------------------------------------------------------------------------


@pytest.fixture
def open_studio(studio):
    with studio_scope(studio):
        WorkingHours.objects.bulk_create(
            [WorkingHours(studio=studio, weekday=d, start_time=time(8), end_time=time(20)) for d in range(7)]
        )
    return studio


def _start(days: int = 6, hour: int = 12) -> datetime:
    day = (timezone.now() + timedelta(days=days)).date()
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def _post(client: APIClient, studio: Any, **body: Any) -> Any:
    return client.post(f"/api/v1/studios/{studio.slug}/bookings/", body, format="json")


def test_staff_post_a_booking_taken_by_phone(open_studio, client_for, django_capture_on_commit_callbacks):
    studio = open_studio
    service = factories.service(studio, deposit=0)
    assistant = client_for(factories.member(studio, Role.ASSISTANT))
    start = _start()
    with django_capture_on_commit_callbacks(execute=True):
        response = _post(
            assistant,
            studio,
            service=str(service.pk),
            start=start.isoformat(),
            client_name="Phone Client",
            client_email="phone@example.com",
            client_phone="+44 20 0000",
        )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "confirmed" and datetime.fromisoformat(body["starts_at"]) == start
    assert (body["client_name"], body["client_phone"]) == ("Phone Client", "+44 20 0000")

    # The same time again, or inside it: 409, nothing saved.
    again = _post(
        assistant,
        studio,
        service=str(service.pk),
        start=start.isoformat(),
        client_name="B",
        client_email="b@example.com",
    )
    assert_api_error(again, 409, "SLOT_UNAVAILABLE")
    # Outside the hours: refused unless anytime; a time without offset: 400.
    late = _start(hour=22).isoformat()
    assert_api_error(
        _post(assistant, studio, service=str(service.pk), start=late, client_name="C", client_email="c@example.com"),
        409,
        "SLOT_UNAVAILABLE",
    )
    assert (
        _post(
            assistant,
            studio,
            service=str(service.pk),
            start=late,
            client_name="C",
            client_email="c@example.com",
            anytime=True,
        ).status_code
        == 201
    )
    naive = _post(
        assistant,
        studio,
        service=str(service.pk),
        start=start.replace(tzinfo=None, hour=15).isoformat(),
        client_name="D",
        client_email="d@example.com",
    )
    assert_api_error(naive, 400, "VALIDATION_ERROR")
    # A viewer may not; another studio's service is unknown.
    viewer = client_for(factories.member(studio, Role.VIEWER))
    denied = _post(
        viewer,
        studio,
        service=str(service.pk),
        start=_start(hour=16).isoformat(),
        client_name="E",
        client_email="e@example.com",
    )
    assert_api_error(denied, 403, "PERMISSION_DENIED")
    foreign = factories.service(factories.studio())
    assert_api_error(
        _post(
            assistant,
            studio,
            service=str(foreign.pk),
            start=_start(hour=16).isoformat(),
            client_name="E",
            client_email="e@example.com",
        ),
        400,
        "VALIDATION_ERROR",
    )
    with studio_scope(studio):
        assert Booking.objects.count() == 2


def test_a_staff_booking_and_a_clients_hold_never_share_a_time(open_studio, client_for):
    """One after the other, both ways; the race is the next test."""
    studio = open_studio
    service = factories.service(studio)
    start = _start(days=7)
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        booking_services.booking_hold(service=service, starts_at=start, client_name="W", client_email="w@example.com")
    staff = client_for(factories.member(studio, Role.ASSISTANT))
    body = {"service": str(service.pk), "client_name": "P", "client_email": "p@example.com"}
    assert_api_error(_post(staff, studio, start=start.isoformat(), **body), 409, "SLOT_UNAVAILABLE")
    later = start + timedelta(hours=3)
    assert _post(staff, studio, start=later.isoformat(), **body).status_code == 201
    hold = APIClient(REMOTE_ADDR="10.9.8.7").post(
        f"/api/v1/public/studios/{studio.slug}/holds/",
        {"service": str(service.pk), "start": later.isoformat(), "name": "W2", "email": "w2@example.com"},
        format="json",
    )
    assert_api_error(hold, 409, "SLOT_UNAVAILABLE")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("threaded_db", "open_throttles")
def test_racing_staff_bookings_and_holds_leave_one_winner():
    studio = factories.studio()
    with studio_scope(studio):
        WorkingHours.objects.bulk_create(
            [WorkingHours(studio=studio, weekday=d, start_time=time(8), end_time=time(20)) for d in range(7)]
        )
    service = factories.service(studio)
    start = _start(days=8, hour=14).isoformat()
    staff = [factories.member(studio, Role.ASSISTANT) for _ in range(4)]

    def by_staff(member: Any) -> Any:
        def call() -> Any:
            client = APIClient(raise_request_exception=False)
            client.force_authenticate(member.user)
            return _post(
                client, studio, service=str(service.pk), start=start, client_name="S", client_email="s@example.com"
            )

        return call

    def by_client(n: int) -> Any:
        def call() -> Any:
            return APIClient(REMOTE_ADDR=f"10.1.2.{n + 1}", raise_request_exception=False).post(
                f"/api/v1/public/studios/{studio.slug}/holds/",
                {"service": str(service.pk), "start": start, "name": f"C{n}", "email": f"c{n}@example.com"},
                format="json",
            )

        return call

    responses = _storm([by_staff(m) for m in staff] + [by_client(n) for n in range(12)])
    _assert_winners(responses, 1)
    with unscoped():
        live = Booking.objects.filter(studio=studio, status__in=["held", "confirmed"]).count()
    assert live == 1


# --- storage ------------------------------------------------------------------------------------------------------


def test_the_storage_endpoint_reports_what_the_quota_counts(studio, client_for):
    (asset,) = [factories.ready_asset(studio)]
    studio.storage_quota_bytes = int((asset.size + asset.derivative_bytes) / 0.9)
    studio.save()
    viewer = client_for(factories.member(studio, Role.VIEWER))
    response = viewer.get(f"/api/v1/studios/{studio.slug}/storage/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["originals_bytes"] == asset.size and body["derivatives_bytes"] == asset.derivative_bytes > 0
    assert body["used_bytes"] == asset.size + asset.derivative_bytes and body["photos"] == 1
    assert body["quota_bytes"] == studio.storage_quota_bytes and body["level"] == "warning"
    stranger = client_for(factories.member(factories.studio(), Role.OWNER))
    assert_api_error(stranger.get(f"/api/v1/studios/{studio.slug}/storage/"), 404, "NOT_FOUND")


# --- the client's side of a deposit paid by hand ------------------------------------------------------------------


def test_the_client_sees_the_amount_instructions_and_deadline(open_studio, settings):
    settings.PAYMENT_PROVIDER = "manual"
    studio = open_studio
    studio.payment_instructions = "Bank transfer to IBAN XX00 0000."
    studio.timezone = "Europe/Paris"
    studio.save()
    service = factories.service(studio, price=100, deposit=30, currency="EUR")
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        booking, raw = booking_services.booking_hold(
            service=service, starts_at=_start(days=9, hour=11), client_name="K", client_email="k@example.com"
        )
    client = APIClient(REMOTE_ADDR="10.7.7.7")
    held = client.get(f"/api/v1/public/bookings/{raw}/").json()
    assert held["payment_instructions"] is None and held["timezone"] == "Europe/Paris"
    body = client.post(f"/api/v1/public/bookings/{raw}/checkout/").json()
    assert body["status"] == BookingStatus.AWAITING_PAYMENT and body["next_step"] == "pay"
    assert (body["deposit_amount"], body["service"]["currency"]) == ("30.00", "EUR")
    assert body["payment_instructions"] == "Bank transfer to IBAN XX00 0000."
    assert datetime.fromisoformat(body["hold_expires_at"]) > timezone.now() + timedelta(hours=24)
