"""The client portal API (/api/v1/portal/): opening a gallery, throttling of
wrong guesses, cutting access, the photo list, ratings, folders, trash, the
selection and media.

Every client gets a fresh REMOTE_ADDR: throttle counters (DRF's and the
portal's own) live in the cache, which on Redis outlives a test and a run.
"""

from __future__ import annotations

import math
import random
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.sessions.backends.db import SessionStore
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent
from galleries import services
from galleries.models import (
    Asset,
    AssetStatus,
    DownloadPermission,
    Folder,
    Gallery,
    Placement,
    Rating,
    Selection,
    SelectionStatus,
    Visibility,
    Visitor,
)
from galleries.storage import media_store
from studio import context
from studio.cache import studio_cache_key
from studio.roles import Role
from studio.tenancy import studio_scope, unscoped
from tests import factories
from tests.helpers import assert_api_error

PORTAL = "/api/v1/portal"
ACCESS = f"{PORTAL}/access/"


# --- helpers -----------------------------------------------------------------------------------------


def _ip() -> str:
    return f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


def _client(**kwargs: Any) -> APIClient:
    return APIClient(REMOTE_ADDR=_ip(), **kwargs)


@contextmanager
def _staff(studio: Any) -> Iterator[None]:
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        yield


def _gallery(studio: Any, *, publish: bool = True, **fields: Any) -> Gallery:
    gallery = factories.gallery(studio, **fields)
    if publish:
        with _staff(studio):
            services.gallery_publish(gallery=gallery)
    return gallery


def _access(client: APIClient, gallery: Gallery, code: str | None = None, **body: Any) -> Any:
    payload = {"studio": gallery.studio.slug, "code": gallery.access_code if code is None else code, **body}
    return client.post(ACCESS, payload, format="json")


def _open(
    gallery: Gallery, client: APIClient | None = None, *, raise_request_exception: bool = True, **body: Any
) -> APIClient:
    client = client or _client(raise_request_exception=raise_request_exception)
    response = _access(client, gallery, **body)
    assert response.status_code == 200, response.content
    return client


def _url(gallery: Gallery, suffix: str = "") -> str:
    return f"{PORTAL}/galleries/{gallery.pk}/{suffix}"


def _media(gallery: Gallery, asset: Asset, variant: str, query: str = "") -> str:
    return _url(gallery, f"assets/{asset.pk}/media/{variant}/{query}")


def _visitor(client: APIClient) -> Visitor:
    with unscoped():
        return Visitor.objects.get(pk=client.session["portal"]["visitor"])


def _bulk_assets(studio: Any, gallery: Gallery, count: int, *, status: str = AssetStatus.READY) -> list[Asset]:
    """Asset rows without files: enough for lists, ratings, folders and selections."""
    rows = []
    for index in range(count):
        key = uuid.uuid4().hex
        rows.append(
            Asset(
                studio=studio,
                gallery=gallery,
                original_filename=f"P{index:04d}.jpg",
                storage_key=f"test/{key}.jpg",
                content_type="image/jpeg",
                size=1000,
                width=64,
                height=48,
                status=status,
                sort_order=index + 1,
                derivatives=(
                    {
                        v: {"key": f"test/{key}-{v}.webp", "width": 64, "height": 48, "bytes": 10}
                        for v in ("thumb", "medium", "large")
                    }
                    if status == AssetStatus.READY
                    else {}
                ),
            )
        )
    with studio_scope(studio):
        Asset.objects.bulk_create(rows)
    return rows


def _ids(objects: list[Any]) -> list[str]:
    return [str(o.pk) for o in objects]


def _listed(client: APIClient, gallery: Gallery, query: str = "") -> list[str]:
    response = client.get(_url(gallery, f"assets/?page_size=200&{query}"))
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["results"]]


def _events(action: str, **filters: Any) -> list[AuditEvent]:
    with unscoped():
        return list(AuditEvent.objects.filter(action=action, **filters))


def _insert_batches(model: type, rows: int) -> int:
    """INSERT statements bulk_create needs for ``rows`` rows on this database
    (SQLite caps the variables of one statement; PostgreSQL needs one)."""
    size = max(connection.ops.bulk_batch_size(list(model._meta.concrete_fields), [None] * rows), 1)
    return math.ceil(rows / size)


def _rate(studio: Any, gallery: Gallery, visitor: Visitor, pairs: list[tuple[Asset, int | None]]) -> None:
    with context.acting_as(context.Actor.visitor(visitor)), studio_scope(studio):
        services.ratings_set(gallery=gallery, visitor=visitor, ratings=pairs)


def _file(studio: Any, folder: Folder, assets: list[Asset]) -> None:
    with _staff(studio):
        services.placements_add(folder=folder, assets=assets)


def _folder(studio: Any, gallery: Gallery, client: APIClient, name: str = "") -> Folder:
    """A folder of the visitor of ``client`` (the studio's own are read-only to visitors)."""
    visitor = _visitor(client)
    with context.acting_as(context.Actor.visitor(visitor)), studio_scope(studio):
        return services.folder_create(gallery=gallery, name=name or f"Mine {uuid.uuid4().hex[:6]}", visitor=visitor)


def _placed(folder: Folder) -> list[str]:
    with unscoped():
        return [
            str(a)
            for a in Placement.objects.filter(folder=folder).order_by("sort_order").values_list("asset_id", flat=True)
        ]


# --- 1. opening a gallery ----------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["smith-2025", "Smith 2025", " SMITH2025 ", "sMiTh-20-25"])
def test_right_code_opens_a_published_gallery_whatever_the_case_and_dashes(studio, typed):
    gallery = _gallery(studio, access_code="SMITH2025", title="Smith Wedding")
    client = _client()
    assert_api_error(client.get(_url(gallery)), 401, "PORTAL_SESSION_REQUIRED")
    response = _access(client, gallery, code=typed)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"] == str(gallery.pk)
    assert body["title"] == "Smith Wedding"
    assert body["studio"] == studio.name
    assert body["selection"] == "open"
    assert "access_code" not in body
    detail = client.get(_url(gallery))
    assert detail.status_code == 200, detail.content
    assert detail.json()["id"] == str(gallery.pk)


def test_wrong_code_is_denied_and_opens_nothing(studio, other_studio):
    gallery = _gallery(studio, access_code="SMITH2025")
    client = _client()
    error = assert_api_error(_access(client, gallery, code="SMITH2026"), 403, "ACCESS_DENIED")
    assert "code" in error["message"]
    # A right code, but of another studio's gallery.
    foreign = _gallery(other_studio, access_code="JONES2025")
    assert_api_error(_access(client, gallery, code=foreign.access_code), 403, "ACCESS_DENIED")
    assert_api_error(client.get(_url(gallery, "assets/")), 401, "PORTAL_SESSION_REQUIRED")
    assert_api_error(client.get(_url(foreign, "assets/")), 401, "PORTAL_SESSION_REQUIRED")
    with unscoped():
        assert not Visitor.objects.filter(gallery__in=[gallery, foreign]).exists()


def test_pin_is_required_checked_and_then_opens(studio):
    gallery = _gallery(studio, pin="4321")
    client = _client()
    error = assert_api_error(_access(client, gallery), 400, "PIN_REQUIRED")
    assert "pin" in error["fields"]
    assert_api_error(_access(client, gallery, pin="1234"), 403, "ACCESS_DENIED")
    assert_api_error(client.get(_url(gallery)), 401, "PORTAL_SESSION_REQUIRED")
    assert _access(client, gallery, pin="4321").status_code == 200
    assert client.get(_url(gallery)).status_code == 200


def test_ask_visitor_identity_demands_name_and_email(studio):
    gallery = _gallery(studio, ask_visitor_identity=True)
    client = _client()
    error = assert_api_error(_access(client, gallery), 400, "IDENTITY_REQUIRED")
    assert set(error["fields"]) == {"name", "email"}
    error = assert_api_error(_access(client, gallery, name="Ann Smith", email="  "), 400, "IDENTITY_REQUIRED")
    assert set(error["fields"]) == {"email"}
    error = assert_api_error(_access(client, gallery, name=" ", email="ann@example.com"), 400, "IDENTITY_REQUIRED")
    assert set(error["fields"]) == {"name"}
    assert_api_error(client.get(_url(gallery)), 401, "PORTAL_SESSION_REQUIRED")
    assert _access(client, gallery, name="Ann Smith", email="ann@example.com").status_code == 200
    visitor = _visitor(client)
    assert (visitor.name, visitor.email, visitor.gallery_id) == ("Ann Smith", "ann@example.com", gallery.pk)


@pytest.mark.parametrize("archive", [False, True], ids=["draft", "archived"])
def test_unpublished_gallery_is_unavailable(studio, archive):
    gallery = _gallery(studio, publish=archive)
    if archive:
        with _staff(studio):
            services.gallery_unpublish(gallery=gallery, archive=True)
    client = _client()
    error = assert_api_error(_access(client, gallery), 403, "GALLERY_UNAVAILABLE")
    assert "not available" in error["message"]
    assert "studio" in error["message"].lower()
    assert_api_error(client.get(_url(gallery)), 401, "PORTAL_SESSION_REQUIRED")


def test_expired_gallery_answers_410_with_the_date(studio):
    gallery = _gallery(studio, expires_at=datetime(2024, 3, 15, 12, 0, tzinfo=UTC))
    error = assert_api_error(_access(_client(), gallery), 410, "GALLERY_EXPIRED")
    assert "15 March 2024" in error["message"]


def test_gallery_that_expires_during_a_session_answers_410(studio):
    gallery = _gallery(studio, expires_at=timezone.now() + timedelta(days=3))
    client = _open(gallery)
    assert client.get(_url(gallery, "assets/")).status_code == 200
    with studio_scope(studio):
        Gallery.objects.filter(pk=gallery.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert_api_error(client.get(_url(gallery, "assets/")), 410, "GALLERY_EXPIRED")


def test_private_gallery_cannot_be_opened_by_link(studio):
    gallery = _gallery(studio, visibility=Visibility.PRIVATE)
    client = _client()
    error = assert_api_error(client.post(_url(gallery, "open/"), {}, format="json"), 403, "ACCESS_DENIED")
    assert "code" in error["message"]
    assert_api_error(client.get(_url(gallery)), 401, "PORTAL_SESSION_REQUIRED")
    missing = client.post(f"{PORTAL}/galleries/{uuid.uuid4()}/open/", {}, format="json")
    assert_api_error(missing, 403, "ACCESS_DENIED")


@pytest.mark.parametrize("visibility", [Visibility.UNLISTED, Visibility.PUBLIC])
def test_unlisted_and_public_galleries_open_by_link(studio, visibility):
    gallery = _gallery(studio, visibility=visibility)
    factories.ready_asset(studio, gallery)
    client = _client()
    response = client.post(_url(gallery, "open/"), {"name": "Guest"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["id"] == str(gallery.pk)
    listing = client.get(_url(gallery, "assets/"))
    assert listing.status_code == 200 and len(listing.json()["results"]) == 1
    assert _visitor(client).name == "Guest"
    # Not while it is a draft.
    draft = _gallery(studio, publish=False, visibility=visibility)
    assert_api_error(client.post(_url(draft, "open/"), {}, format="json"), 403, "GALLERY_UNAVAILABLE")


def test_one_session_is_one_gallery(studio):
    first, second = _gallery(studio), _gallery(studio)
    client = _open(first)
    assert client.get(_url(first, "assets/")).status_code == 200
    _open(second, client)
    assert client.get(_url(second, "assets/")).status_code == 200
    for suffix in ("", "assets/", "folders/", "selection/"):
        assert_api_error(client.get(_url(first, suffix)), 401, "PORTAL_SESSION_REQUIRED")
    # Leaving ends the second one too.
    assert client.delete(ACCESS).status_code == 204
    assert_api_error(client.get(_url(second, "assets/")), 401, "PORTAL_SESSION_REQUIRED")


def test_session_key_is_cycled_on_entry(studio):
    first, second = _gallery(studio), _gallery(studio)
    # A session planted by someone else before the client enters...
    planted = SessionStore()
    planted["note"] = "planted"
    planted.create()
    client = _client()
    client.cookies["sessionid"] = planted.session_key
    _open(first, client)
    entered = client.cookies["sessionid"].value
    assert entered and entered != planted.session_key
    # ...does not carry the client's access: the planter holds nothing.
    attacker = _client()
    attacker.cookies["sessionid"] = planted.session_key
    assert_api_error(attacker.get(_url(first)), 401, "PORTAL_SESSION_REQUIRED")
    # Every entry gets a new key; the old one is gone.
    _open(second, client)
    assert client.cookies["sessionid"].value not in ("", entered)
    stale = _client()
    stale.cookies["sessionid"] = entered
    assert_api_error(stale.get(_url(first)), 401, "PORTAL_SESSION_REQUIRED")
    assert_api_error(stale.get(_url(second)), 401, "PORTAL_SESSION_REQUIRED")


def test_opening_writes_a_gallery_opened_event_by_the_visitor(studio):
    gallery = _gallery(studio, visibility=Visibility.UNLISTED)
    client = _open(gallery, name="Ann Smith", email="ann@example.com")
    by_link = _client()
    assert by_link.post(_url(gallery, "open/"), {}, format="json").status_code == 200
    events = _events("gallery.opened", target_id=str(gallery.pk))
    assert len(events) == 2
    visitors = {str(_visitor(client).pk), str(_visitor(by_link).pk)}
    assert {e.after["visitor"] for e in events} == visitors
    assert {e.actor_ref for e in events} == visitors
    for event in events:
        assert event.actor_type == "visitor"
        assert event.actor_user_id is None
        assert event.studio_id == studio.pk
    assert any("Ann Smith" in e.actor_label for e in events)


def test_portal_writes_need_the_csrf_token_when_enforced(studio):
    gallery = _gallery(studio)
    [asset] = _bulk_assets(studio, gallery, 1)
    client = APIClient(enforce_csrf_checks=True, REMOTE_ADDR=_ip())
    error = assert_api_error(_access(client, gallery), 403, "PERMISSION_DENIED")
    assert "CSRF" in error["message"]
    with unscoped():
        assert not Visitor.objects.filter(gallery=gallery).exists()
    token = uuid.uuid4().hex  # what the csrftoken cookie holds (32 characters)
    client.cookies[django_settings.CSRF_COOKIE_NAME] = token
    assert_api_error(_access(client, gallery), 403, "PERMISSION_DENIED")  # cookie alone is not enough
    client.credentials(HTTP_X_CSRFTOKEN=token)
    assert _access(client, gallery).status_code == 200
    rating = _url(gallery, f"assets/{asset.pk}/rating/")
    assert client.put(rating, {"stars": 4}, format="json").status_code == 204
    # Reads pass without it; writes without it do not.
    client.credentials()
    assert client.get(_url(gallery, "assets/")).status_code == 200
    assert_api_error(client.put(rating, {"stars": 2}, format="json"), 403, "PERMISSION_DENIED")
    assert_api_error(client.post(_url(gallery, "folders/"), {"name": "X"}, format="json"), 403, "PERMISSION_DENIED")
    with studio_scope(studio):
        assert Rating.objects.get(asset=asset).stars == 4
        assert not Folder.objects.filter(gallery=gallery).exists()


# --- 2. throttling -----------------------------------------------------------------------------------


def test_wrong_codes_from_one_address_are_throttled_other_addresses_are_not(studio, settings):
    settings.PORTAL_FAILURES_PER_IP = 3
    settings.PORTAL_FAILURES_PER_GALLERY = 100
    gallery = _gallery(studio)
    attacker = _client()
    for _ in range(3):
        assert_api_error(_access(attacker, gallery, code="WRONG123"), 403, "ACCESS_DENIED")
    error = assert_api_error(_access(attacker, gallery, code="WRONG123"), 429, "TOO_MANY_ATTEMPTS")
    assert error["details"]["retry_after_seconds"] == settings.PORTAL_FAILURE_WINDOW_SECONDS
    # The address is refused even with the right code while its window lasts.
    assert_api_error(_access(attacker, gallery), 429, "TOO_MANY_ATTEMPTS")
    # Another address is unaffected: its wrong guesses are its own, and the right code works.
    other = _client()
    assert_api_error(_access(other, gallery, code="WRONG123"), 403, "ACCESS_DENIED")
    assert _access(other, gallery).status_code == 200


def test_wrong_pins_lock_the_gallery_for_one_window_only(studio, settings):
    settings.PORTAL_FAILURES_PER_IP = 100
    settings.PORTAL_FAILURES_PER_GALLERY = 3
    settings.PORTAL_FAILURE_WINDOW_SECONDS = 1
    gallery = _gallery(studio, pin="4321")
    started = time.monotonic()
    for _ in range(3):  # from three addresses: no per-address window fills
        assert_api_error(_access(_client(), gallery, pin="0000"), 403, "ACCESS_DENIED")
    window_ends_by = time.monotonic() + 1  # the window opened during the first attempt
    # The gallery's window is full: even the real client, with the right PIN, waits.
    assert_api_error(_access(_client(), gallery, pin="4321"), 429, "TOO_MANY_ATTEMPTS")
    assert_api_error(_access(_client(), gallery, pin="0000"), 429, "TOO_MANY_ATTEMPTS")
    assert time.monotonic() - started < 1, "too slow to observe a one-second window"
    # Refused attempts do not extend the window: once it passes, the client gets in.
    time.sleep(max(window_ends_by - time.monotonic(), 0) + 0.05)
    client = _client()
    assert _access(client, gallery, pin="4321").status_code == 200
    assert client.get(_url(gallery)).status_code == 200


def test_gallery_window_counts_only_that_gallery(studio, settings):
    settings.PORTAL_FAILURES_PER_IP = 100
    settings.PORTAL_FAILURES_PER_GALLERY = 2
    locked, other = _gallery(studio, pin="4321"), _gallery(studio, pin="4321")
    for _ in range(2):
        assert_api_error(_access(_client(), locked, pin="0000"), 403, "ACCESS_DENIED")
    assert_api_error(_access(_client(), locked, pin="4321"), 429, "TOO_MANY_ATTEMPTS")
    assert _access(_client(), other, pin="4321").status_code == 200
    # Ending the window (here: deleting its counter) lets the client in.
    cache.delete(studio_cache_key("portal", "fail", "gallery", locked.pk, studio=studio))
    assert _access(_client(), locked, pin="4321").status_code == 200


# --- 3. cutting access -------------------------------------------------------------------------------


def _unpublish(gallery: Gallery) -> None:
    services.gallery_unpublish(gallery=gallery)


def _rotate(gallery: Gallery) -> None:
    services.gallery_rotate_code(actor=None, gallery=gallery)


def _new_pin(gallery: Gallery) -> None:
    services.gallery_update(actor=None, gallery=gallery, pin="9876")


@pytest.mark.parametrize("cut", [_unpublish, _rotate, _new_pin], ids=["unpublish", "rotate-code", "change-pin"])
def test_staff_cutting_access_ends_existing_sessions(studio, cut):
    gallery = _gallery(studio, download_permission=DownloadPermission.ORIGINALS)
    asset = factories.ready_asset(studio, gallery)
    client = _open(gallery)
    assert client.get(_url(gallery, "assets/")).status_code == 200
    for variant in ("thumb", "original"):
        response = client.get(_media(gallery, asset, variant))
        assert response.status_code == 200
        _body(response)
    bystander = _open(gallery)
    with _staff(studio):
        cut(gallery)
    error = assert_api_error(client.get(_url(gallery, "assets/")), 401, "PORTAL_SESSION_REQUIRED")
    assert "code again" in error["message"]
    assert_api_error(client.get(_media(gallery, asset, "thumb")), 401, "PORTAL_SESSION_REQUIRED")
    assert_api_error(client.get(_media(gallery, asset, "original")), 401, "PORTAL_SESSION_REQUIRED")
    # Media first, for a session that has not hit the list since.
    error = assert_api_error(bystander.get(_media(gallery, asset, "original")), 401, "PORTAL_SESSION_REQUIRED")
    assert "code again" in error["message"]
    assert_api_error(bystander.get(_media(gallery, asset, "thumb")), 401, "PORTAL_SESSION_REQUIRED")


def test_after_rotation_only_the_new_code_opens(studio):
    gallery = _gallery(studio, access_code="OLDCODE1")
    client = _open(gallery)
    with _staff(studio):
        services.gallery_rotate_code(actor=None, gallery=gallery, access_code="new-code-2")
    assert_api_error(_access(client, gallery, code="OLDCODE1"), 403, "ACCESS_DENIED")
    assert _access(client, gallery, code="newcode2").status_code == 200
    assert client.get(_url(gallery, "assets/")).status_code == 200


# --- 4. the photo list -------------------------------------------------------------------------------


def test_list_shows_only_ready_assets_of_the_gallery(studio):
    gallery = _gallery(studio)
    ready = _bulk_assets(studio, gallery, 3)
    hidden = [
        _bulk_assets(studio, gallery, 1, status=s)[0]
        for s in (AssetStatus.PROCESSING, AssetStatus.FAILED, AssetStatus.AWAITING_UPLOAD)
    ]
    sibling = _gallery(studio)
    foreign = _bulk_assets(studio, sibling, 2)
    client = _open(gallery)
    assert sorted(_listed(client, gallery)) == sorted(_ids(ready))
    item = client.get(_url(gallery, f"assets/{ready[0].pk}/"))
    assert item.status_code == 200
    assert item.json()["filename"] == ready[0].original_filename
    for asset in [*hidden, foreign[0]]:
        assert_api_error(client.get(_url(gallery, f"assets/{asset.pk}/")), 404, "NOT_FOUND")


def test_stars_are_the_callers_own(studio):
    gallery = _gallery(studio)
    asset, other = _bulk_assets(studio, gallery, 2)
    ann, bob = _open(gallery), _open(gallery)
    assert ann.put(_url(gallery, f"assets/{asset.pk}/rating/"), {"stars": 5}, format="json").status_code == 204

    def stars(client: APIClient) -> dict[str, Any]:
        return {i["id"]: i["stars"] for i in client.get(_url(gallery, "assets/")).json()["results"]}

    assert stars(ann) == {str(asset.pk): 5, str(other.pk): None}
    assert stars(bob) == {str(asset.pk): None, str(other.pk): None}
    assert bob.get(_url(gallery, f"assets/{asset.pk}/")).json()["stars"] is None
    assert bob.put(_url(gallery, f"assets/{asset.pk}/rating/"), {"stars": 2}, format="json").status_code == 204
    assert stars(ann)[str(asset.pk)] == 5
    assert stars(bob)[str(asset.pk)] == 2
    assert _listed(bob, gallery, "min_stars=4") == []
    assert _listed(ann, gallery, "min_stars=4") == [str(asset.pk)]


def test_list_filters(studio):
    gallery = _gallery(studio)
    five, three, one, others_five, plain, binned = _bulk_assets(studio, gallery, 6)
    client, someone = _open(gallery), _open(gallery)
    _rate(studio, gallery, _visitor(client), [(five, 5), (three, 3), (one, 1)])
    _rate(studio, gallery, _visitor(someone), [(others_five, 5)])
    folder = factories.folder(studio, gallery, name="Album")
    _file(studio, folder, [three, plain])
    with _staff(studio):
        services.assets_trash(gallery=gallery, assets=[binned])

    def listed(query: str = "") -> set[str]:
        return set(_listed(client, gallery, query))

    assert listed() == set(_ids([five, three, one, others_five, plain]))
    assert listed("min_stars=3") == set(_ids([five, three]))
    assert listed("min_stars=5") == set(_ids([five]))
    assert listed("unrated=true") == set(_ids([others_five, plain]))
    assert listed("unrated=false") == set(_ids([five, three, one]))
    assert listed(f"folder={folder.pk}") == set(_ids([three, plain]))
    assert listed(f"folder={folder.pk}&min_stars=2") == set(_ids([three]))
    assert listed("trashed=true") == set(_ids([binned]))
    assert listed("trashed=false") == listed()
    item = next(i for i in client.get(_url(gallery, "assets/?trashed=true")).json()["results"])
    assert item["trashed"] is True
    assert item["folders"] == []
    filed = {i["id"]: i for i in client.get(_url(gallery, "assets/")).json()["results"]}
    assert filed[str(three.pk)]["folders"] == [str(folder.pk)]
    assert filed[str(three.pk)]["trashed"] is False


def test_cursor_pagination_with_page_size(studio):
    gallery = _gallery(studio)
    assets = _bulk_assets(studio, gallery, 7)
    client = _open(gallery)
    seen: list[str] = []
    sizes = []
    url: str | None = _url(gallery, "assets/?page_size=3")
    while url:
        page = client.get(url)
        assert page.status_code == 200, page.content
        body = page.json()
        sizes.append(len(body["results"]))
        seen.extend(i["id"] for i in body["results"])
        url = body["next"]
    assert sizes == [3, 3, 1]
    assert sorted(seen) == sorted(_ids(assets))
    assert len(set(seen)) == 7


def test_list_follows_the_studios_order(studio):
    gallery = _gallery(studio)
    assets = _bulk_assets(studio, gallery, 4)
    order = [assets[2], assets[0], assets[3], assets[1]]
    with studio_scope(studio):
        for position, asset in enumerate(order, start=1):
            Asset.objects.filter(pk=asset.pk).update(sort_order=position)
    client = _open(gallery)
    assert _listed(client, gallery) == _ids(order)


@pytest.mark.parametrize(
    "permission, original",
    [(DownloadPermission.NONE, False), (DownloadPermission.WEB, False), (DownloadPermission.ORIGINALS, True)],
)
def test_original_url_only_with_originals_permission(studio, permission, original):
    gallery = _gallery(studio, download_permission=permission)
    [asset] = _bulk_assets(studio, gallery, 1)
    client = _open(gallery)
    [item] = client.get(_url(gallery, "assets/")).json()["results"]
    assert item["urls"]["thumb"] == _media(gallery, asset, "thumb")
    assert item["urls"]["large"] == _media(gallery, asset, "large")
    assert item["urls"]["original"] == (_media(gallery, asset, "original") if original else None)
    assert client.get(_url(gallery)).json()["can_download"] is (permission != DownloadPermission.NONE)


def test_list_query_count_does_not_grow_with_page_size(studio):
    gallery = _gallery(studio)
    assets = _bulk_assets(studio, gallery, 120)
    client = _open(gallery)
    visitor = _visitor(client)
    _rate(studio, gallery, visitor, [(a, 1 + i % 5) for i, a in enumerate(assets[::2])])
    first, second = factories.folder(studio, gallery), factories.folder(studio, gallery)
    _file(studio, first, assets[:60])
    _file(studio, second, assets[30:90])
    counts = {}
    for size in (10, 100):
        with CaptureQueriesContext(connection) as queries:
            response = client.get(_url(gallery, f"assets/?page_size={size}"))
        assert response.status_code == 200
        assert len(response.json()["results"]) == size
        counts[size] = len(queries)
    assert counts[10] == counts[100], counts
    assert counts[100] <= 8, counts


# --- 5. ratings --------------------------------------------------------------------------------------


def test_rating_put_change_delete(studio):
    gallery = _gallery(studio)
    asset, _ = _bulk_assets(studio, gallery, 2)
    client = _open(gallery)
    url = _url(gallery, f"assets/{asset.pk}/rating/")

    def stored() -> int | None:
        with studio_scope(studio):
            rating = Rating.objects.filter(asset=asset, visitor=_visitor(client)).first()
        return rating.stars if rating else None

    assert client.put(url, {"stars": 4}, format="json").status_code == 204
    assert stored() == 4
    assert client.get(_url(gallery, f"assets/{asset.pk}/")).json()["stars"] == 4
    assert client.put(url, {"stars": 2}, format="json").status_code == 204
    assert stored() == 2
    with studio_scope(studio):
        assert Rating.objects.filter(asset=asset).count() == 1
    assert client.delete(url).status_code == 204
    assert stored() is None
    assert client.get(_url(gallery, f"assets/{asset.pk}/")).json()["stars"] is None
    assert client.delete(url).status_code == 204  # clearing nothing is fine


@pytest.mark.parametrize("stars", [0, 6, -1, "five", None])
def test_rating_outside_one_to_five_is_refused(studio, stars):
    gallery = _gallery(studio)
    [asset] = _bulk_assets(studio, gallery, 1)
    client = _open(gallery)
    error = assert_api_error(
        client.put(_url(gallery, f"assets/{asset.pk}/rating/"), {"stars": stars}, format="json"),
        400,
        "VALIDATION_ERROR",
    )
    assert "stars" in error["fields"]
    with studio_scope(studio):
        assert not Rating.objects.exists()
    bulk = client.post(
        _url(gallery, "assets/ratings/"),
        {"ratings": [{"asset": str(asset.pk), "stars": 0 if stars is None else stars}]},
        format="json",
    )
    assert_api_error(bulk, 400, "VALIDATION_ERROR")


def _bulk_rating_call(studio: Any, gallery: Gallery, client: APIClient, assets: list[Asset]) -> tuple[int, int]:
    """Half new ratings, a quarter changed, a quarter cleared. Returns (queries, new rows)."""
    n = len(assets)
    new, changed, cleared = assets[: n // 2], assets[n // 2 : 3 * n // 4], assets[3 * n // 4 :]
    _rate(studio, gallery, _visitor(client), [(a, 1) for a in changed + cleared])
    body = {
        "ratings": [{"asset": str(a.pk), "stars": 5} for a in new]
        + [{"asset": str(a.pk), "stars": 3} for a in changed]
        + [{"asset": str(a.pk), "stars": None} for a in cleared]
    }
    target = str(gallery.pk)
    set_before, cleared_before = (
        len(_events("ratings.set", target_id=target)),
        len(_events("ratings.cleared", target_id=target)),
    )
    with CaptureQueriesContext(connection) as queries:
        response = client.post(_url(gallery, "assets/ratings/"), body, format="json")
    assert response.status_code == 204, response.content
    # One event per kind for the whole call, not one per photo.
    assert len(_events("ratings.set", target_id=target)) == set_before + 1
    assert len(_events("ratings.cleared", target_id=target)) == cleared_before + 1
    with studio_scope(studio):
        mine = dict(Rating.objects.filter(visitor=_visitor(client)).values_list("asset_id", "stars"))
    assert mine == {**{a.pk: 5 for a in new}, **{a.pk: 3 for a in changed}}
    return len(queries), len(new)


def test_bulk_ratings_run_a_constant_number_of_queries(studio):
    gallery = _gallery(studio)
    assets = _bulk_assets(studio, gallery, 220)
    small_client, big_client = _open(gallery), _open(gallery)
    small, small_new = _bulk_rating_call(studio, gallery, small_client, assets[:20])
    big, big_new = _bulk_rating_call(studio, gallery, big_client, assets[20:])
    extra_inserts = _insert_batches(Rating, big_new) - _insert_batches(Rating, small_new)
    assert big == small + extra_inserts, (small, big)
    assert small <= 25, small
    [event] = [
        e
        for e in _events("ratings.set", target_id=str(gallery.pk))
        if e.after["visitor"] == str(_visitor(big_client).pk) and len(e.after["stars"]) == 150
    ]
    assert event.actor_type == "visitor"
    [cleared] = [e for e in _events("ratings.cleared", target_id=str(gallery.pk)) if len(e.after["assets"]) == 50]
    assert cleared.after["visitor"] == str(_visitor(big_client).pk)


def test_bulk_rating_of_an_unknown_asset_names_it_and_writes_nothing(studio):
    gallery = _gallery(studio)
    mine = _bulk_assets(studio, gallery, 2)
    [foreign] = _bulk_assets(studio, _gallery(studio), 1)
    [processing] = _bulk_assets(studio, gallery, 1, status=AssetStatus.PROCESSING)
    client = _open(gallery)
    for stranger in (foreign.pk, processing.pk, uuid.uuid4()):
        body = {"ratings": [{"asset": str(a.pk), "stars": 4} for a in mine] + [{"asset": str(stranger), "stars": 2}]}
        error = assert_api_error(
            client.post(_url(gallery, "assets/ratings/"), body, format="json"), 400, "VALIDATION_ERROR"
        )
        assert str(stranger) in " ".join(error["fields"]["ratings"])
        assert str(mine[0].pk) not in " ".join(error["fields"]["ratings"])
    with studio_scope(studio):
        assert not Rating.objects.exists()
    assert not _events("ratings.set", target_id=str(gallery.pk))


# --- 6. folders and placements -----------------------------------------------------------------------


def test_folder_create_rename_delete(studio):
    gallery = _gallery(studio)
    client = _open(gallery)
    created = client.post(_url(gallery, "folders/"), {"name": "Favourites"}, format="json")
    assert created.status_code == 201, created.content
    folder_id = created.json()["id"]
    assert created.json()["name"] == "Favourites"
    assert created.json()["asset_count"] == 0
    with studio_scope(studio):
        folder = Folder.objects.get(pk=folder_id)
    assert folder.gallery_id == gallery.pk
    assert folder.created_by_visitor_id == _visitor(client).pk
    error = assert_api_error(
        client.post(_url(gallery, "folders/"), {"name": "Favourites"}, format="json"), 409, "DUPLICATE_NAME"
    )
    assert "Favourites" in error["message"]
    # The same name in another gallery is fine.
    other = _gallery(studio)
    assert _open(other).post(_url(other, "folders/"), {"name": "Favourites"}, format="json").status_code == 201
    second = client.post(_url(gallery, "folders/"), {"name": "Prints"}, format="json").json()["id"]
    renamed = client.patch(_url(gallery, f"folders/{folder_id}/"), {"name": "Album"}, format="json")
    assert renamed.status_code == 200, renamed.content
    assert renamed.json()["name"] == "Album"
    assert_api_error(
        client.patch(_url(gallery, f"folders/{second}/"), {"name": "Album"}, format="json"), 409, "DUPLICATE_NAME"
    )
    listed = client.get(_url(gallery, "folders/")).json()["results"]
    assert {f["name"] for f in listed} == {"Album", "Prints"}
    assert client.delete(_url(gallery, f"folders/{folder_id}/")).status_code == 204
    assert [f["id"] for f in client.get(_url(gallery, "folders/")).json()["results"]] == [second]
    assert_api_error(
        client.patch(_url(gallery, f"folders/{folder_id}/"), {"name": "X"}, format="json"), 404, "NOT_FOUND"
    )


def test_folder_patch_without_a_name_changes_nothing(studio):
    gallery = _gallery(studio)
    client = _open(gallery, raise_request_exception=False)
    folder = client.post(_url(gallery, "folders/"), {"name": "Keep"}, format="json").json()["id"]
    response = client.patch(_url(gallery, f"folders/{folder}/"), {}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["name"] == "Keep"


def test_folder_reorder_must_list_every_folder(studio):
    gallery = _gallery(studio)
    client = _open(gallery)
    ids = [client.post(_url(gallery, "folders/"), {"name": n}, format="json").json()["id"] for n in ("A", "B", "C")]
    foreign = factories.folder(studio, _gallery(studio))
    reorder = _url(gallery, "folders/reorder/")
    assert_api_error(client.post(reorder, {"folders": ids[:2]}, format="json"), 400, "INCOMPLETE_ORDER")
    assert_api_error(client.post(reorder, {"folders": [*ids, str(foreign.pk)]}, format="json"), 400, "INCOMPLETE_ORDER")
    assert_api_error(
        client.post(reorder, {"folders": [*ids, str(uuid.uuid4())]}, format="json"), 400, "VALIDATION_ERROR"
    )
    wanted = [ids[2], ids[0], ids[1]]
    assert client.post(reorder, {"folders": wanted}, format="json").status_code == 204
    with studio_scope(studio):
        stored = list(Folder.objects.filter(gallery=gallery).order_by("sort_order").values_list("pk", flat=True))
    assert [str(pk) for pk in stored] == wanted


def test_folder_list_follows_the_reordering(studio):
    gallery = _gallery(studio)
    client = _open(gallery)
    ids = [client.post(_url(gallery, "folders/"), {"name": n}, format="json").json()["id"] for n in ("A", "B", "C")]
    wanted = [ids[1], ids[2], ids[0]]
    assert client.post(_url(gallery, "folders/reorder/"), {"folders": wanted}, format="json").status_code == 204
    assert [f["id"] for f in client.get(_url(gallery, "folders/")).json()["results"]] == wanted


def test_add_is_idempotent_keeps_order_and_appends_then_remove(studio):
    gallery = _gallery(studio)
    a, b, c, d = _bulk_assets(studio, gallery, 4)
    client = _open(gallery)
    folder = client.post(_url(gallery, "folders/"), {"name": "Album"}, format="json").json()["id"]
    add, remove = _url(gallery, f"folders/{folder}/add/"), _url(gallery, f"folders/{folder}/remove/")
    with unscoped():
        album = Folder.objects.get(pk=folder)
    assert client.post(add, {"assets": _ids([b, a])}, format="json").status_code == 204
    assert _placed(album) == _ids([b, a])
    assert client.post(add, {"assets": _ids([a, c, b])}, format="json").status_code == 204
    assert _placed(album) == _ids([b, a, c])
    assert client.post(add, {"assets": _ids([c])}, format="json").status_code == 204
    assert _placed(album) == _ids([b, a, c])
    [listed] = [f for f in client.get(_url(gallery, "folders/")).json()["results"] if f["id"] == folder]
    assert listed["asset_count"] == 3
    assert client.post(remove, {"assets": _ids([a, d])}, format="json").status_code == 204
    assert _placed(album) == _ids([b, c])
    assert client.post(add, {"assets": _ids([a])}, format="json").status_code == 204
    assert _placed(album) == _ids([b, c, a])
    # Ids of another gallery are refused by name, and nothing changes.
    [foreign] = _bulk_assets(studio, _gallery(studio), 1)
    error = assert_api_error(client.post(add, {"assets": _ids([d, foreign])}, format="json"), 400, "VALIDATION_ERROR")
    assert str(foreign.pk) in " ".join(error["fields"]["assets"])
    assert _placed(album) == _ids([b, c, a])


def test_an_asset_in_several_folders_and_the_folder_filter(studio):
    gallery = _gallery(studio)
    a, b, c = _bulk_assets(studio, gallery, 3)
    client = _open(gallery)
    first = client.post(_url(gallery, "folders/"), {"name": "First"}, format="json").json()["id"]
    second = client.post(_url(gallery, "folders/"), {"name": "Second"}, format="json").json()["id"]
    assert (
        client.post(_url(gallery, f"folders/{first}/add/"), {"assets": _ids([a, b])}, format="json").status_code == 204
    )
    assert (
        client.post(_url(gallery, f"folders/{second}/add/"), {"assets": _ids([a, c])}, format="json").status_code == 204
    )
    items = {i["id"]: i for i in client.get(_url(gallery, "assets/")).json()["results"]}
    assert sorted(items[str(a.pk)]["folders"]) == sorted([first, second])
    assert items[str(b.pk)]["folders"] == [first]
    assert items[str(c.pk)]["folders"] == [second]
    assert sorted(_listed(client, gallery, f"folder={first}")) == sorted(_ids([a, b]))
    assert sorted(_listed(client, gallery, f"folder={second}")) == sorted(_ids([a, c]))
    # Deleting a folder leaves its photos (and their other folders) alone.
    assert client.delete(_url(gallery, f"folders/{first}/")).status_code == 204
    assert sorted(_listed(client, gallery)) == sorted(_ids([a, b, c]))
    assert sorted(_listed(client, gallery, f"folder={second}")) == sorted(_ids([a, c]))
    assert client.get(_url(gallery, f"assets/{a.pk}/")).json()["folders"] == [second]


def test_move_between_folders_of_the_same_gallery_only(studio):
    gallery = _gallery(studio)
    a, b, c = _bulk_assets(studio, gallery, 3)
    client = _open(gallery)
    source, target = _folder(studio, gallery, client, "Source"), _folder(studio, gallery, client, "Target")
    _file(studio, source, [a, b])
    _file(studio, target, [c])
    move = _url(gallery, f"folders/{source.pk}/move/")
    assert client.post(move, {"assets": _ids([a]), "to": str(target.pk)}, format="json").status_code == 204
    assert _placed(source) == _ids([b])
    assert _placed(target) == _ids([c, a])
    elsewhere = factories.folder(studio, _gallery(studio), "Elsewhere")
    assert_api_error(
        client.post(move, {"assets": _ids([b]), "to": str(elsewhere.pk)}, format="json"), 400, "INVALID_FOLDER"
    )
    foreign_studio_folder = factories.folder(factories.studio())
    assert_api_error(
        client.post(move, {"assets": _ids([b]), "to": str(foreign_studio_folder.pk)}, format="json"),
        400,
        "VALIDATION_ERROR",
    )
    assert _placed(source) == _ids([b])
    assert _placed(target) == _ids([c, a])
    assert _placed(elsewhere) == []


def test_reorder_assets_puts_the_listed_first(studio):
    gallery = _gallery(studio)
    a, b, c, d, outside = _bulk_assets(studio, gallery, 5)
    client = _open(gallery)
    folder = _folder(studio, gallery, client)
    _file(studio, folder, [a, b, c, d])
    url = _url(gallery, f"folders/{folder.pk}/reorder-assets/")
    assert client.post(url, {"assets": _ids([c, a])}, format="json").status_code == 204
    assert _placed(folder) == _ids([c, a, b, d])
    assert client.post(url, {"assets": _ids([d, b, a, c])}, format="json").status_code == 204
    assert _placed(folder) == _ids([d, b, a, c])
    error = assert_api_error(client.post(url, {"assets": _ids([outside, a])}, format="json"), 400, "NOT_IN_FOLDER")
    assert str(outside.pk) in str(error["fields"])
    assert _placed(folder) == _ids([d, b, a, c])


def test_bulk_add_runs_a_constant_number_of_queries(studio):
    gallery = _gallery(studio)
    assets = _bulk_assets(studio, gallery, 220)
    client = _open(gallery)
    counts = {}
    for name, chosen in (("small", assets[:20]), ("big", assets[20:])):
        folder = _folder(studio, gallery, client, name)
        with CaptureQueriesContext(connection) as queries:
            response = client.post(_url(gallery, f"folders/{folder.pk}/add/"), {"assets": _ids(chosen)}, format="json")
        assert response.status_code == 204, response.content
        assert _placed(folder) == _ids(chosen)
        counts[name] = len(queries)
    extra_inserts = _insert_batches(Placement, 200) - _insert_batches(Placement, 20)
    assert counts["big"] == counts["small"] + extra_inserts, counts
    assert counts["small"] <= 20, counts


# --- 7. trash ----------------------------------------------------------------------------------------


def test_trash_and_restore_in_bulk(studio):
    gallery = _gallery(studio)
    assets = _bulk_assets(studio, gallery, 6)
    client = _open(gallery)
    binned, kept = assets[:4], assets[4:]
    assert client.post(_url(gallery, "assets/trash/"), {"assets": _ids(binned)}, format="json").status_code == 204
    assert sorted(_listed(client, gallery)) == sorted(_ids(kept))
    assert sorted(_listed(client, gallery, "trashed=true")) == sorted(_ids(binned))
    assert_api_error(client.get(_url(gallery, f"assets/{binned[0].pk}/")), 404, "NOT_FOUND")
    assert client.get(_url(gallery, f"assets/{binned[0].pk}/?trashed=true")).json()["trashed"] is True
    # Trashing again changes nothing.
    assert client.post(_url(gallery, "assets/trash/"), {"assets": _ids(binned[:1])}, format="json").status_code == 204
    assert sorted(_listed(client, gallery, "trashed=true")) == sorted(_ids(binned))
    back = binned[:3]
    assert client.post(_url(gallery, "assets/restore/"), {"assets": _ids(back)}, format="json").status_code == 204
    assert sorted(_listed(client, gallery)) == sorted(_ids([*kept, *back]))
    assert _listed(client, gallery, "trashed=true") == [str(binned[3].pk)]
    [foreign] = _bulk_assets(studio, _gallery(studio), 1)
    assert_api_error(
        client.post(_url(gallery, "assets/trash/"), {"assets": _ids([foreign])}, format="json"), 400, "VALIDATION_ERROR"
    )
    with unscoped():
        assert Asset.objects.get(pk=foreign.pk).trashed_at is None
    trashed, restored = (
        _events("assets.trashed", target_id=str(gallery.pk)),
        _events("assets.restored", target_id=str(gallery.pk)),
    )
    assert len(trashed) == 2 and len(restored) == 1
    assert restored[0].after["assets"] == _ids(back)


# --- 8. the selection --------------------------------------------------------------------------------


def test_finalise_freezes_rated_or_filed_non_trashed_photos(studio):
    gallery = _gallery(studio)
    rated, both, filed, rated_then_binned, untouched = _bulk_assets(studio, gallery, 5)
    ann = _open(gallery, name="Ann", email="ann@example.com")
    bob = _open(gallery, name="Bob", email="bob@example.com")
    _rate(studio, gallery, _visitor(ann), [(rated, 5), (both, 3), (rated_then_binned, 4)])
    _rate(studio, gallery, _visitor(bob), [(rated, 4)])
    keep, prints = _folder(studio, gallery, ann, "Keep"), _folder(studio, gallery, bob, "Prints")
    _file(studio, keep, [both, filed])
    _file(studio, prints, [both])
    # The studio's own folders are its curation, not a client's choice.
    _file(studio, factories.folder(studio, gallery, "Studio picks"), [untouched])
    assert (
        ann.post(_url(gallery, "assets/trash/"), {"assets": _ids([rated_then_binned])}, format="json").status_code
        == 204
    )
    assert_api_error(ann.get(_url(gallery, "selection/")), 404, "NOT_FINALIZED")
    response = ann.post(_url(gallery, "selection/"))
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "finalized"
    assert body["asset_count"] == 3
    assert body["finalized_by_label"] == str(_visitor(ann))
    rows = {row["asset"]: row for row in body["snapshot"]}
    assert set(rows) == set(_ids([rated, both, filed]))
    # Stars per visitor (whoever rated it), their average, and folder names in folder order.
    assert sorted(r["stars"] for r in rows[str(rated.pk)]["stars"]) == [4, 5]
    assert {r["label"] for r in rows[str(rated.pk)]["stars"]} == {str(_visitor(ann)), str(_visitor(bob))}
    assert rows[str(rated.pk)]["average"] == 4.5
    assert rows[str(rated.pk)]["folders"] == []
    assert [r["stars"] for r in rows[str(both.pk)]["stars"]] == [3]
    assert rows[str(both.pk)]["average"] == 3
    assert rows[str(both.pk)]["folders"] == ["Keep", "Prints"]
    assert rows[str(filed.pk)] == {
        "asset": str(filed.pk),
        "filename": filed.original_filename,
        "stars": [],
        "average": None,
        "folders": ["Keep"],
    }
    assert str(untouched.pk) not in rows
    # Finalising twice (by anyone) is harmless: the same selection.
    again = bob.post(_url(gallery, "selection/"))
    assert again.status_code == 201
    assert again.json()["id"] == body["id"]
    with studio_scope(studio):
        assert Selection.objects.filter(gallery=gallery).count() == 1
    got = bob.get(_url(gallery, "selection/"))
    assert got.status_code == 200 and got.json()["id"] == body["id"]
    assert bob.get(_url(gallery)).json()["selection"] == "finalized"
    assert len(_events("selection.finalized", target_id=body["id"])) == 1


def test_snapshot_keeps_every_visitors_stars(studio):
    gallery = _gallery(studio)
    [asset] = _bulk_assets(studio, gallery, 1)
    first, second = _open(gallery), _open(gallery)  # no name or email: both "Anonymous visitor"
    assert first.put(_url(gallery, f"assets/{asset.pk}/rating/"), {"stars": 5}, format="json").status_code == 204
    assert second.put(_url(gallery, f"assets/{asset.pk}/rating/"), {"stars": 1}, format="json").status_code == 204
    body = first.post(_url(gallery, "selection/")).json()
    [row] = body["snapshot"]
    assert len(row["stars"]) == 2, row
    assert row["average"] == 3.0, row


def test_selection_limit_is_enforced(studio):
    gallery = _gallery(studio, selection_limit=2)
    assets = _bulk_assets(studio, gallery, 4)
    client = _open(gallery)
    _rate(studio, gallery, _visitor(client), [(a, 5) for a in assets[:3]])
    error = assert_api_error(client.post(_url(gallery, "selection/")), 400, "SELECTION_LIMIT_EXCEEDED")
    assert error["details"] == {"limit": 2, "chosen": 3}
    assert "Remove 1" in error["message"]
    assert "up to 2" in error["message"]
    with studio_scope(studio):
        assert not Selection.objects.exists()
    # Trash one: now within the limit.
    assert client.post(_url(gallery, "assets/trash/"), {"assets": _ids(assets[:1])}, format="json").status_code == 204
    response = client.post(_url(gallery, "selection/"))
    assert response.status_code == 201, response.content
    assert response.json()["asset_count"] == 2


def test_empty_selection_is_refused(studio):
    gallery = _gallery(studio)
    assets = _bulk_assets(studio, gallery, 2)
    client = _open(gallery)
    assert_api_error(client.post(_url(gallery, "selection/")), 400, "EMPTY_SELECTION")
    # Rated, but in the trash: still nothing chosen.
    _rate(studio, gallery, _visitor(client), [(assets[0], 4)])
    assert client.post(_url(gallery, "assets/trash/"), {"assets": _ids(assets[:1])}, format="json").status_code == 204
    assert_api_error(client.post(_url(gallery, "selection/")), 400, "EMPTY_SELECTION")
    # An empty folder chooses nothing either.
    factories.folder(studio, gallery)
    assert_api_error(client.post(_url(gallery, "selection/")), 400, "EMPTY_SELECTION")
    with studio_scope(studio):
        assert not Selection.objects.exists()
    assert_api_error(client.get(_url(gallery, "selection/")), 404, "NOT_FINALIZED")


def test_finalised_selection_locks_writes_until_staff_reopen(studio, make_member, client_for):
    gallery = _gallery(studio)
    a, b, c = _bulk_assets(studio, gallery, 3)
    client = _open(gallery)
    folder, other = _folder(studio, gallery, client, "One"), _folder(studio, gallery, client, "Two")
    _file(studio, folder, [a, b])
    _rate(studio, gallery, _visitor(client), [(a, 5)])
    first = client.post(_url(gallery, "selection/"))
    assert first.status_code == 201
    f = f"folders/{folder.pk}/"
    writes = [
        ("put", f"assets/{a.pk}/rating/", {"stars": 1}),
        ("delete", f"assets/{a.pk}/rating/", {}),
        ("post", "assets/ratings/", {"ratings": [{"asset": str(c.pk), "stars": 2}]}),
        ("post", "assets/trash/", {"assets": _ids([b])}),
        ("post", "assets/restore/", {"assets": _ids([b])}),
        ("post", "folders/", {"name": "Three"}),
        ("patch", f, {"name": "Renamed"}),
        ("delete", f, {}),
        ("post", "folders/reorder/", {"folders": _ids([other, folder])}),
        ("post", f"{f}add/", {"assets": _ids([c])}),
        ("post", f"{f}remove/", {"assets": _ids([a])}),
        ("post", f"{f}move/", {"assets": _ids([a]), "to": str(other.pk)}),
        ("post", f"{f}reorder-assets/", {"assets": _ids([b, a])}),
    ]
    for method, suffix, body in writes:
        response = getattr(client, method)(_url(gallery, suffix), body, format="json")
        error = assert_api_error(response, 409, "SELECTION_FINALIZED")
        assert "reopen" in error["message"]
    with studio_scope(studio):
        assert Rating.objects.get(asset=a).stars == 5
        assert Rating.objects.count() == 1
        assert Folder.objects.filter(gallery=gallery).count() == 2
        assert Asset.objects.filter(gallery=gallery, trashed_at__isnull=False).count() == 0
    assert _placed(folder) == _ids([a, b])
    assert _placed(other) == []
    assert client.get(_url(gallery, "assets/")).status_code == 200  # reading is fine

    admin = client_for(make_member(Role.ADMIN))
    reopened = admin.post(f"/api/v1/studios/{studio.slug}/galleries/{gallery.pk}/reopen-selection/")
    assert reopened.status_code == 200, reopened.content
    assert reopened.json()["id"] == first.json()["id"]
    assert reopened.json()["status"] == "reopened"
    assert_api_error(client.get(_url(gallery, "selection/")), 404, "NOT_FINALIZED")
    assert client.get(_url(gallery)).json()["selection"] == "open"
    rate_a, new_folder, add_c = writes[0], writes[5], writes[9]
    for method, suffix, body in (rate_a, new_folder, add_c):
        response = getattr(client, method)(_url(gallery, suffix), body, format="json")
        assert response.status_code < 300, (suffix, response.content)
    second = client.post(_url(gallery, "selection/"))
    assert second.status_code == 201
    assert second.json()["id"] != first.json()["id"]
    assert second.json()["asset_count"] == 3  # a (rated), b (filed), c (added)
    with studio_scope(studio):
        statuses = dict(Selection.objects.filter(gallery=gallery).values_list("pk", "status"))
    assert {str(k): v for k, v in statuses.items()} == {
        first.json()["id"]: SelectionStatus.REOPENED,
        second.json()["id"]: SelectionStatus.FINALIZED,
    }


# --- 9. media ----------------------------------------------------------------------------------------


def _body(response: Any) -> bytes:
    # Exhausting the test client's stream closes the file; response.close()
    # by hand would also close the test's database connection.
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.mark.parametrize("variant", ["thumb", "medium", "large"])
def test_derivatives_stream_as_webp(studio, settings, variant):
    settings.MEDIA_URL_TTL_SECONDS = 120
    gallery = _gallery(studio, download_permission=DownloadPermission.NONE)
    asset = factories.ready_asset(studio, gallery)
    assert_api_error(_client().get(_media(gallery, asset, variant)), 401, "PORTAL_SESSION_REQUIRED")
    client = _open(gallery)
    response = client.get(_media(gallery, asset, variant))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/webp"
    assert response["Cache-Control"] == "private, max-age=110"
    assert "attachment" not in response.get("Content-Disposition", "")
    data = _body(response)
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    with media_store().open(asset.derivatives[variant]["key"]) as handle:
        assert data == handle.read()


def test_original_needs_the_originals_permission(studio):
    gallery = _gallery(studio, download_permission=DownloadPermission.WEB)
    asset = factories.ready_asset(studio, gallery, name="Bride.jpg")
    client = _open(gallery)
    error = assert_api_error(client.get(_media(gallery, asset, "original")), 403, "DOWNLOAD_NOT_ALLOWED")
    assert "original" in error["message"].lower()
    assert_api_error(client.get(_media(gallery, asset, "original", "?download=1")), 403, "DOWNLOAD_NOT_ALLOWED")
    with _staff(studio):
        services.gallery_update(actor=None, gallery=gallery, download_permission=DownloadPermission.ORIGINALS)
    response = client.get(_media(gallery, asset, "original", "?download=1"))
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment")
    assert 'filename="Bride.jpg"' in response["Content-Disposition"]
    with media_store().open(asset.storage_key) as handle:
        assert _body(response) == handle.read()


def test_download_sets_attachment_and_is_refused_without_permission(studio):
    gallery = _gallery(studio, download_permission=DownloadPermission.WEB)
    asset = factories.ready_asset(studio, gallery, name="Kiss.jpg")
    client = _open(gallery)
    response = client.get(_media(gallery, asset, "large", "?download=1"))
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment")
    assert 'filename="Kiss-large.webp"' in response["Content-Disposition"]
    _body(response)
    with _staff(studio):
        services.gallery_update(actor=None, gallery=gallery, download_permission=DownloadPermission.NONE)
    error = assert_api_error(client.get(_media(gallery, asset, "large", "?download=1")), 403, "DOWNLOAD_NOT_ALLOWED")
    assert "download" in error["message"].lower()
    viewed = client.get(_media(gallery, asset, "large"))  # viewing stays allowed
    assert viewed.status_code == 200
    _body(viewed)
    # A photo in the client's trash can be looked at, not downloaded.
    with _staff(studio):
        services.gallery_update(actor=None, gallery=gallery, download_permission=DownloadPermission.WEB)
    assert client.post(_url(gallery, "assets/trash/"), {"assets": _ids([asset])}, format="json").status_code == 204
    assert_api_error(client.get(_media(gallery, asset, "large", "?download=1")), 403, "DOWNLOAD_NOT_ALLOWED")
    viewed = client.get(_media(gallery, asset, "thumb"))
    assert viewed.status_code == 200
    _body(viewed)


def test_media_of_another_gallerys_asset_is_not_served(studio, other_studio):
    gallery = _gallery(studio, download_permission=DownloadPermission.ORIGINALS)
    factories.ready_asset(studio, gallery)
    sibling = _gallery(studio, download_permission=DownloadPermission.ORIGINALS)
    theirs = factories.ready_asset(studio, sibling)
    foreign_gallery = _gallery(other_studio, download_permission=DownloadPermission.ORIGINALS)
    foreign = factories.ready_asset(other_studio, foreign_gallery)
    client = _open(gallery)
    for asset in (theirs, foreign):
        for variant in ("thumb", "original"):
            assert_api_error(client.get(_media(gallery, asset, variant)), 404, "NOT_FOUND")
    assert_api_error(client.get(_media(sibling, theirs, "thumb")), 401, "PORTAL_SESSION_REQUIRED")
    assert_api_error(client.get(_media(foreign_gallery, foreign, "original")), 401, "PORTAL_SESSION_REQUIRED")


def _stored_but_not_ready(studio: Any, gallery: Gallery, status: str) -> Asset:
    """An uploaded original the pipeline has not accepted (yet)."""
    with studio_scope(studio):
        asset = Asset(
            studio=studio,
            gallery=gallery,
            original_filename="upload.jpg",
            content_type="image/jpeg",
            size=4,
            status=status,
            derivatives={},
        )
        asset.storage_key = f"studios/{studio.pk}/galleries/{gallery.pk}/originals/{asset.pk}.jpg"
        asset.save()
    media_store().put(asset.storage_key, b"\xff\xd8\xff\xe0", "image/jpeg")
    return asset


def test_media_of_a_photo_that_is_not_ready_is_not_served(studio):
    gallery = _gallery(studio, download_permission=DownloadPermission.ORIGINALS)
    processing = _stored_but_not_ready(studio, gallery, AssetStatus.PROCESSING)
    client = _open(gallery)
    assert_api_error(client.get(_url(gallery, f"assets/{processing.pk}/")), 404, "NOT_FOUND")
    response = client.get(_media(gallery, processing, "original"))
    served = _body(response) if response.streaming else b""
    assert response.status_code == 404, (response.status_code, served)
    assert_api_error(response, 404, "NOT_FOUND")


# --- rules added after review -------------------------------------------------------------------


def test_an_unlisted_gallerys_pin_is_asked_for_by_link_too(studio):
    gallery = _gallery(studio, visibility="unlisted", pin="4321")
    client = _client()
    missing = client.post(_url(gallery, "open/"), {}, format="json")
    assert_api_error(missing, 400, "PIN_REQUIRED")
    assert_api_error(client.post(_url(gallery, "open/"), {"pin": "0000"}, format="json"), 403, "ACCESS_DENIED")
    assert client.post(_url(gallery, "open/"), {"pin": "4321"}, format="json").status_code == 200
    assert client.get(_url(gallery, "assets/")).status_code == 200


def test_making_a_gallery_private_ends_sessions_opened_by_link(studio):
    gallery = _gallery(studio, visibility="unlisted")
    client = _client()
    assert client.post(_url(gallery, "open/"), {}, format="json").status_code == 200
    assert client.get(_url(gallery, "assets/")).status_code == 200
    with _staff(studio):
        services.gallery_update(actor=None, gallery=gallery, visibility="private")
    assert_api_error(client.get(_url(gallery, "assets/")), 401, "PORTAL_SESSION_REQUIRED")


def test_moving_refuses_photos_that_are_not_in_the_source_folder(studio):
    gallery = _gallery(studio)
    filed, loose = _bulk_assets(studio, gallery, 2)
    client = _open(gallery)
    source, target = _folder(studio, gallery, client, "From"), _folder(studio, gallery, client, "To")
    _file(studio, source, [filed])
    body = {"assets": _ids([filed, loose]), "to": str(target.pk)}
    error = assert_api_error(
        client.post(_url(gallery, f"folders/{source.pk}/move/"), body, format="json"), 400, "NOT_IN_FOLDER"
    )
    assert str(loose.pk) in " ".join(error["fields"]["assets"])
    with studio_scope(studio):
        assert list(target.placements.values_list("asset_id", flat=True)) == []  # nothing moved
        assert list(source.placements.values_list("asset_id", flat=True)) == [filed.pk]


@pytest.mark.django_db
@pytest.mark.parametrize("suffix", ["", "assets/", "folders/", "selection/"])
def test_an_undeclared_method_answers_405_before_any_session_check(studio, suffix):
    """TRACE answered 401 ("open the gallery first"), as if a session could make it work."""
    gallery = _gallery(studio)
    for client in (_client(), _open(gallery)):
        response = client.generic("TRACE", _url(gallery, suffix))
        assert_api_error(response, 405, "METHOD_NOT_ALLOWED")
        assert "GET" in response["Allow"] or "POST" in response["Allow"]
