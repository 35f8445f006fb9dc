"""The lean read path of the two hot lists (the portal's photo list, the
staff asset list): plain rows in, plain dicts out, instead of a serializer
per photo. What it answers must be exactly what the serializers answer for
the same rows (they stay the schema and the detail's shape), its query count
must not grow with the page, and it stays inside the studio and the visitor.
"""

from __future__ import annotations

import random
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.http import QueryDict
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.exceptions import ValidationError
from rest_framework.test import APIClient

from galleries import selectors, services
from galleries.api.serializers import PortalAssetSerializer, StaffAssetSerializer
from galleries.filtersets import PortalAssetFilterSet
from galleries.models import Asset, AssetStatus, DownloadPermission, Folder, Gallery, Placement, Rating, Visitor
from studio import context
from studio.models import Studio
from studio.tenancy import studio_scope, unscoped
from tests import factories
from tests.gallery_helpers import gallery_url
from tests.helpers import assert_api_error

PORTAL = "/api/v1/portal"
VARIANTS = ("thumb", "medium", "large")


def _published(studio: Studio, **fields: Any) -> Gallery:
    gallery = factories.gallery(studio, **fields)
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        services.gallery_publish(gallery=gallery)
    return gallery


def _open(gallery: Gallery) -> tuple[APIClient, Visitor]:
    client = APIClient(REMOTE_ADDR=f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}")
    opened = client.post(
        f"{PORTAL}/access/", {"studio": gallery.studio.slug, "code": gallery.access_code}, format="json"
    )
    assert opened.status_code == 200, opened.content
    with unscoped():
        visitor = Visitor.objects.get(pk=client.session["portal"]["visitor"])
    return client, visitor


def _assets(studio: Studio, gallery: Gallery, count: int, *, statuses: tuple[str, ...] = (AssetStatus.READY,)) -> list:
    """Rows of every shape the lists meet: every derivative, some, none; with
    and without a capture time (one at exactly UTC midnight, one with
    microseconds); no pixel size; the statuses given, in turn."""
    shapes: list[tuple[str, ...]] = [VARIANTS, ("thumb",), ("thumb", "medium"), ()]
    rows = []
    for index in range(count):
        key = uuid.uuid4().hex
        status = statuses[index % len(statuses)]
        variants = shapes[index // len(statuses) % len(shapes)] if status == AssetStatus.READY else ()
        captured = [
            None,
            datetime(2026, 6, 1, 0, 0, tzinfo=UTC),
            datetime(2026, 6, 1, 14, 3, 7, 123456, tzinfo=UTC),
        ][index % 3]
        rows.append(
            Asset(
                studio=studio,
                gallery=gallery,
                original_filename=f"P{index:04d} é.jpg",
                storage_key=f"test/{key}.jpg",
                content_type="image/jpeg",
                size=1000 + index,
                sha256=f"{index:064x}" if index % 2 else "",
                width=None if index % 5 == 4 else 64,
                height=None if index % 5 == 4 else 48,
                captured_at=captured,
                status=status,
                failure_reason="Not an image." if status == AssetStatus.FAILED else "",
                sort_order=index + 1,
                derivatives={
                    v: {"key": f"test/{key}-{v}.webp", "width": 64, "height": 48, "bytes": 10} for v in variants
                },
            )
        )
    with studio_scope(studio):
        return Asset.objects.bulk_create(rows)


def _rate(studio: Studio, visitor: Visitor, assets: list, start: int = 1) -> None:
    with studio_scope(studio):
        Rating.objects.bulk_create(
            [Rating(studio=studio, asset=a, visitor=visitor, stars=1 + (i + start) % 5) for i, a in enumerate(assets)]
        )


_folder_order = iter(range(1, 1_000_000))


def _folder(studio: Studio, gallery: Gallery, assets: list, *, visitor: Visitor | None = None) -> Folder:
    # Distinct sort orders: a photo's folders are listed in the folders' order.
    with studio_scope(studio):
        folder = Folder.objects.create(
            studio=studio,
            gallery=gallery,
            name=f"F{uuid.uuid4().hex[:6]}",
            created_by_visitor=visitor,
            sort_order=next(_folder_order),
        )
        Placement.objects.bulk_create(
            [Placement(studio=studio, folder=folder, asset=a, sort_order=i) for i, a in enumerate(assets)]
        )
    return folder


def _pages(client: APIClient, url: str) -> list[dict[str, Any]]:
    """Every row of a list, following the cursors."""
    rows: list[dict[str, Any]] = []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        rows += body["results"]
        url = body["next"]
    return rows


def _portal_serializer_rows(gallery: Gallery, visitor: Visitor, *, trashed: bool = False) -> list[dict[str, Any]]:
    """What PortalAssetSerializer (the schema's, and the path before the lean
    one) answers for the list's rows: each photo's folders found one by one."""
    studio = gallery.studio
    with studio_scope(studio), timezone.override(studio.timezone):
        assets = selectors.portal_assets(Asset.objects.filter(gallery=gallery), visitor=visitor)
        assets = assets.filter(trashed_at__isnull=not trashed).order_by("sort_order", "created_at")
        context_ = {"gallery": gallery, "visitor": visitor, "studio": studio}
        return PortalAssetSerializer(list(assets), many=True, context=context_).data


def _staff_serializer_rows(studio: Studio, gallery: Gallery) -> list[dict[str, Any]]:
    with studio_scope(studio), timezone.override(studio.timezone):
        assets = selectors.assets_with_rating_summary(Asset.objects.filter(gallery=gallery)).order_by(
            "sort_order", "created_at"
        )
        return StaffAssetSerializer(list(assets), many=True, context={"studio": studio}).data


def _same_rows(lean: list[dict[str, Any]], serialized: list[dict[str, Any]]) -> None:
    """Field by field, so a difference names the photo and the field."""
    assert [row["id"] for row in lean] == [row["id"] for row in serialized]
    for got, want in zip(lean, serialized, strict=True):
        assert list(got) == list(want), got["id"]
        for field in want:
            assert got[field] == want[field], (got["id"], field)


# --- the portal's list -------------------------------------------------------------------------------


@pytest.mark.parametrize("permission", [DownloadPermission.WEB, DownloadPermission.ORIGINALS])
@pytest.mark.parametrize("shared", [False, True])
def test_portal_list_equals_the_serializer_field_by_field(studio, permission, shared):
    Studio.objects.filter(pk=studio.pk).update(timezone="America/New_York")
    studio.refresh_from_db()
    gallery = _published(studio, download_permission=permission, shared_selection=shared)
    assets = _assets(studio, gallery, 23)
    client, me = _open(gallery)
    _, other = _open(gallery)
    _rate(studio, me, assets[::2])
    _rate(studio, other, assets[1::3], start=3)
    _folder(studio, gallery, assets[:10])  # the studio's
    _folder(studio, gallery, assets[5:15], visitor=me)
    _folder(studio, gallery, assets[8:20], visitor=other)  # seen only with a shared selection
    with studio_scope(studio):
        Asset.objects.filter(pk__in=[a.pk for a in assets[20:]]).update(trashed_at=timezone.now())

    for trashed in (False, True):
        query = f"?page_size=7&trashed={str(trashed).lower()}"
        lean = _pages(client, f"{PORTAL}/galleries/{gallery.pk}/assets/{query}")
        serialized = _portal_serializer_rows(gallery, me, trashed=trashed)
        assert len(lean) == (3 if trashed else 20)
        _same_rows(lean, serialized)

    # The serializer is the yardstick; say plainly what it holds too.
    rows = {row["id"]: row for row in _pages(client, f"{PORTAL}/galleries/{gallery.pk}/assets/?page_size=100")}
    media = f"{PORTAL}/galleries/{gallery.pk}/assets"
    for index, asset in enumerate(assets[:20]):
        row = rows[str(asset.pk)]
        for variant in VARIANTS:
            want = f"{media}/{asset.pk}/media/{variant}/" if variant in asset.derivatives else None
            assert row["urls"][variant] == want
        original = f"{media}/{asset.pk}/media/original/"
        assert row["urls"]["original"] == (original if permission == DownloadPermission.ORIGINALS else None)
        assert row["sizes"] == {v: {"width": 64, "height": 48} for v in asset.derivatives}
        assert row["stars"] == (1 + (index // 2 + 1) % 5 if index % 2 == 0 else None)
        assert row["captured_at"] in (None, "2026-05-31T20:00:00-04:00", "2026-06-01T10:03:07.123456-04:00")


def test_portal_list_filters_equal_the_serializer(studio):
    gallery = _published(studio)
    assets = _assets(studio, gallery, 30)
    client, me = _open(gallery)
    _rate(studio, me, assets[::3])
    folder = _folder(studio, gallery, list(reversed(assets[4:16])), visitor=me)
    serialized = {row["id"]: row for row in _portal_serializer_rows(gallery, me)}
    base = f"{PORTAL}/galleries/{gallery.pk}/assets/?page_size=4"
    cases = {
        "min_stars=3": [a for i, a in enumerate(assets) if i % 3 == 0 and 1 + (i // 3 + 1) % 5 >= 3],
        "unrated=true": [a for i, a in enumerate(assets) if i % 3],
        # In the folder's own order.
        f"folder={folder.pk}": list(reversed(assets[4:16])),
    }
    for query, expected in cases.items():
        lean = _pages(client, f"{base}&{query}")
        assert [row["id"] for row in lean] == [str(a.pk) for a in expected], query
        _same_rows(lean, [serialized[str(a.pk)] for a in expected])


def test_portal_list_bad_cursor_is_still_refused(studio):
    gallery = _published(studio)
    _assets(studio, gallery, 3)
    client, _ = _open(gallery)
    response = client.get(f"{PORTAL}/galleries/{gallery.pk}/assets/?cursor=%%%")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_CURSOR"


def _portal_queries(client: APIClient, url: str) -> dict[int, int]:
    counts = {}
    for size in (10, 100):
        client.get(f"{url}&page_size={size}")  # the visitor's last_seen_at write, once a minute
        with CaptureQueriesContext(connection) as queries:
            response = client.get(f"{url}&page_size={size}")
        assert response.status_code == 200
        assert len(response.json()["results"]) == size
        counts[size] = len(queries)
    return counts


def test_portal_list_queries_do_not_grow_with_the_page(studio):
    gallery = _published(studio)
    assets = _assets(studio, gallery, 130)
    client, me = _open(gallery)
    _rate(studio, me, assets[::2])
    folder = _folder(studio, gallery, assets[:110], visitor=me)
    _folder(studio, gallery, assets[20:120])
    url = f"{PORTAL}/galleries/{gallery.pk}/assets/?trashed=false"
    plain = _portal_queries(client, url)
    assert plain[10] == plain[100] <= 5, plain  # session, gallery, visitor, page, folders
    in_folder = _portal_queries(client, f"{url}&folder={folder.pk}")
    assert in_folder[10] == in_folder[100] == plain[10], in_folder


def test_portal_list_stays_in_the_studio_and_the_visitor(studio, other_studio):
    gallery = _published(studio, shared_selection=False)
    assets = _assets(studio, gallery, 6)
    client, me = _open(gallery)
    _, neighbour = _open(gallery)
    _rate(studio, neighbour, assets)
    private = _folder(studio, gallery, assets, visitor=neighbour)
    elsewhere = _published(other_studio)
    foreign = _assets(other_studio, elsewhere, 4)
    _folder(other_studio, elsewhere, foreign)

    rows = _pages(client, f"{PORTAL}/galleries/{gallery.pk}/assets/")
    assert [row["id"] for row in rows] == [str(a.pk) for a in assets]
    assert all(row["stars"] is None and row["folders"] == [] for row in rows)
    # Another visitor's private folder cannot be probed through the filter.
    assert _pages(client, f"{PORTAL}/galleries/{gallery.pk}/assets/?folder={private.pk}") == []
    # Another studio's gallery is not this session's.
    assert client.get(f"{PORTAL}/galleries/{elsewhere.pk}/assets/").status_code == 401


# --- the staff list ----------------------------------------------------------------------------------


@pytest.fixture
def staff(owner, client_for) -> APIClient:
    return client_for(owner)


def test_staff_list_equals_the_serializer_field_by_field(studio, staff):
    Studio.objects.filter(pk=studio.pk).update(timezone="Asia/Kolkata")
    studio.refresh_from_db()
    gallery = _published(studio)
    statuses = (AssetStatus.READY, AssetStatus.FAILED, AssetStatus.AWAITING_UPLOAD, AssetStatus.PROCESSING)
    assets = _assets(studio, gallery, 26, statuses=statuses)
    visitors = [factories.visitor(studio, gallery) for _ in range(3)]
    for n, visitor in enumerate(visitors):
        _rate(studio, visitor, assets[n::2], start=n)  # averages such as 2.5 and 3.333...
    with studio_scope(studio):
        Asset.objects.filter(pk__in=[a.pk for a in assets[:3]]).update(trashed_at=timezone.now() - timedelta(days=1))

    lean = _pages(staff, gallery_url(studio, gallery, "assets/?page_size=6"))
    serialized = _staff_serializer_rows(studio, gallery)
    assert len(lean) == 26
    _same_rows(lean, serialized)
    rows = {row["id"]: row for row in lean}
    with studio_scope(studio):
        stars: dict[str, list[int]] = {}
        for asset_id, given in Rating.objects.values_list("asset_id", "stars"):
            stars.setdefault(str(asset_id), []).append(given)
    for asset in assets:
        row = rows[str(asset.pk)]
        given = stars.get(str(asset.pk), [])
        assert row["rating_count"] == len(given)
        assert row["average_stars"] == (pytest.approx(sum(given) / len(given)) if given else None)
        for variant in VARIANTS:
            assert (row["urls"][variant] is None) == (variant not in asset.derivatives)
        unusable = asset.status in (AssetStatus.FAILED, AssetStatus.AWAITING_UPLOAD)
        assert (row["urls"]["original"] is None) == unusable
        assert row["created_at"].endswith("+05:30")

    # The expected rows come from the serializer's rows and the filter's
    # meaning, never from the lean answer: an ignored filter must fail.
    cases = {
        "status=failed": lambda row: row["status"] == "failed",
        "status=ready&status=processing": lambda row: row["status"] in ("ready", "processing"),
        "trashed=true": lambda row: row["trashed"],
        "trashed=false": lambda row: not row["trashed"],
    }
    for query, keep in cases.items():
        lean = _pages(staff, gallery_url(studio, gallery, f"assets/?page_size=5&{query}"))
        wanted = [row for row in serialized if keep(row)]
        assert 0 < len(wanted) < len(serialized), query
        _same_rows(lean, wanted)


def test_staff_list_queries_do_not_grow_with_the_page(studio, staff):
    gallery = _published(studio)
    assets = _assets(studio, gallery, 120)
    _rate(studio, factories.visitor(studio, gallery), assets)
    url = gallery_url(studio, gallery, "assets/")
    staff.get(url + "?page_size=1")  # warm up: the token's last-used write
    counts = {}
    for size in (10, 100):
        with CaptureQueriesContext(connection) as queries:
            response = staff.get(f"{url}?page_size={size}")
        assert response.status_code == 200
        assert len(response.json()["results"]) == size
        counts[size] = len(queries)
    assert counts[10] == counts[100] <= 5, counts


def test_staff_list_stays_in_the_studio(studio, other_studio, staff):
    gallery = _published(studio)
    mine = _assets(studio, gallery, 3)
    elsewhere = _published(other_studio)
    _assets(other_studio, elsewhere, 3)
    rows = _pages(staff, gallery_url(studio, gallery, "assets/"))
    assert sorted(row["id"] for row in rows) == sorted(str(a.pk) for a in mine)
    assert staff.get(gallery_url(other_studio, elsewhere, "assets/")).status_code == 404
    # The other studio's gallery under this studio's slug: not there either.
    assert staff.get(gallery_url(studio, elsewhere, "assets/")).status_code == 404


# --- filters, validated without a FilterSet (ListFilterSet.cleaned) ---------------------------------


@pytest.mark.parametrize(("query", "field"), [("min_stars=abc", "min_stars"), ("folder=not-a-uuid", "folder")])
def test_a_bad_portal_filter_is_a_400_naming_it(studio, query, field):
    gallery = _published(studio)
    _assets(studio, gallery, 2)
    client, _ = _open(gallery)
    error = assert_api_error(client.get(f"{PORTAL}/galleries/{gallery.pk}/assets/?{query}"), 400, "VALIDATION_ERROR")
    assert list(error["fields"]) == [field]


def test_a_bad_staff_filter_is_a_400_naming_it(studio, staff):
    gallery = _published(studio)
    _assets(studio, gallery, 2)
    error = assert_api_error(staff.get(gallery_url(studio, gallery, "assets/?status=bogus")), 400, "VALIDATION_ERROR")
    assert list(error["fields"]) == ["status"]


def test_threads_validating_filters_at_once_each_get_their_own_answer():
    """The fields are shared by every request's form (not deep-copied): eight
    threads validating different filters at once must not see each other's."""
    start = threading.Barrier(8)
    wrong: list[Any] = []

    def client(n: int) -> None:
        start.wait()
        for i in range(200):
            stars, folder = (n + i) % 5 + 1, uuid.uuid4()
            data = QueryDict(f"min_stars={stars}&folder={folder}&trashed=true")
            bad = QueryDict(f"min_stars=x{n}&folder={folder}")
            try:
                cleaned = PortalAssetFilterSet.cleaned(data)
                if (cleaned["min_stars"], cleaned["folder"], cleaned["trashed"]) != (stars, folder, True):
                    wrong.append(cleaned)
                PortalAssetFilterSet.cleaned(bad)
                wrong.append(("accepted", bad))
            except ValidationError as exc:
                if set(exc.detail) != {"min_stars"}:
                    wrong.append(exc.detail)
            except Exception as exc:  # noqa: BLE001 - reported below
                wrong.append(exc)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert wrong == []


_ZONES = ("UTC", "Europe/Paris", "America/Los_Angeles", "Asia/Kolkata", "Pacific/Kiritimati")


@pytest.mark.parametrize("zone", _ZONES)
def test_lean_instants_are_drfs_for_every_kind_of_value(zone, settings):
    """The lean lists format an aware instant inline; every value must come
    out as DRF's DateTimeField (the serializers') writes it: zones with and
    without DST, half-hour and +14 offsets, both sides of a DST change to
    the microsecond, naive values and strings (DRF's path), and the
    overflow DRF refuses."""
    from zoneinfo import ZoneInfo

    from rest_framework import serializers as drf

    from galleries.api.serializers import _instants

    paris = ZoneInfo("Europe/Paris")
    values = [
        datetime(2026, 6, 1, 14, 3, 7, 123456, tzinfo=UTC),
        datetime(2026, 6, 1, 14, 3, 7, tzinfo=UTC),
        datetime(2026, 3, 29, 0, 59, 59, 999999, tzinfo=UTC),  # Paris springs forward at 01:00 UTC
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
        datetime(2026, 10, 25, 0, 59, 59, 999999, tzinfo=UTC),  # and falls back
        datetime(2026, 10, 25, 1, 0, 0, 1, tzinfo=UTC),
        datetime(2026, 11, 1, 1, 30, tzinfo=ZoneInfo("America/Los_Angeles")),
        datetime(2026, 7, 14, 12, 0, tzinfo=paris),
        datetime(2026, 7, 14, 12, 0),  # naive
        "2026-07-14T12:00:00Z",
    ]
    with timezone.override(ZoneInfo(zone)):
        lean = _instants()
        drfs = drf.DateTimeField(default_timezone=timezone.get_current_timezone()).to_representation
        for value in values:
            assert lean(value) == drfs(value), (zone, value)
        # The ends of time: out of range in some zones (DRF's "overflow"
        # error, the same from both), fine in others.
        for edge in (datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, tzinfo=UTC)):
            outcomes = []
            for represent in (lean, drfs):
                try:
                    outcomes.append(represent(edge))
                except ValidationError as exc:
                    outcomes.append(exc.detail)
            assert outcomes[0] == outcomes[1], (zone, edge, outcomes)
