"""The staff bin: a photo staff delete leaves the client's portal, counts,
folders and exports at once, keeps its bytes and what clients did with it,
and comes back as it was when restored; the storage report still counts its
bytes until it is purged; uploading the same file again works while it sits
in the bin, and then restoring it is refused rather than making a copy."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from galleries import selectors
from galleries.models import Asset
from studio import context
from studio.tenancy import studio_scope
from tests import factories
from tests.gallery_helpers import gallery_url
from tests.helpers import assert_api_error
from tests.test_meta import portal_client


@pytest.fixture
def staff(owner, client_for) -> APIClient:
    return client_for(owner)


def _purl(gallery: Any, suffix: str = "") -> str:
    return f"/api/v1/portal/galleries/{gallery.pk}/{suffix}"


def _ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def test_a_binned_photo_leaves_the_portal_and_comes_back_with_its_ratings_and_folders(studio, staff):
    gallery = factories.gallery(studio)
    kept, binned = factories.ready_asset(studio, gallery), factories.ready_asset(studio, gallery)
    client = portal_client(gallery)
    assert client.put(_purl(gallery, f"assets/{binned.pk}/rating/"), {"stars": 5}, format="json").status_code == 204
    folder = client.post(_purl(gallery, "folders/"), {"name": "Album"}, format="json").json()["id"]
    added = client.post(_purl(gallery, f"folders/{folder}/add/"), {"assets": [str(binned.pk)]}, format="json")
    assert added.status_code in (200, 204), added.content

    assert staff.delete(gallery_url(studio, gallery, f"assets/{binned.pk}/")).status_code == 204

    assert _ids(client.get(_purl(gallery, "assets/"))) == [str(kept.pk)]
    assert_api_error(client.get(_purl(gallery, f"assets/{binned.pk}/")), 404, "NOT_FOUND")
    assert _ids(client.get(_purl(gallery, "assets/"), {"folder": folder})) == []
    folders = {f["id"]: f for f in client.get(_purl(gallery, "folders/")).json()["results"]}
    assert folders[folder]["asset_count"] == 0
    assert client.get(_purl(gallery)).json()["counts"]["photos"] == 1
    # Nor can a client act on it.
    assert client.put(_purl(gallery, f"assets/{binned.pk}/rating/"), {"stars": 1}, format="json").status_code == 404
    with studio_scope(studio):
        assert list(selectors.chosen_assets(gallery)) == []

    assert staff.post(gallery_url(studio, gallery, f"assets/{binned.pk}/restore/")).status_code == 200
    assert set(_ids(client.get(_purl(gallery, "assets/")))) == {str(kept.pk), str(binned.pk)}
    assert _ids(client.get(_purl(gallery, "assets/"), {"folder": folder})) == [str(binned.pk)]
    mine = {row["id"]: row for row in client.get(_purl(gallery, "assets/")).json()["results"]}
    assert mine[str(binned.pk)]["stars"] == 5 and mine[str(binned.pk)]["folders"] == [folder]


def test_the_bin_still_counts_in_storage_until_purged(studio, staff, django_capture_on_commit_callbacks):
    gallery = factories.gallery(studio)
    asset = factories.ready_asset(studio, gallery)
    with studio_scope(studio):
        before = selectors.storage_report(studio)
    assert staff.delete(gallery_url(studio, gallery, f"assets/{asset.pk}/")).status_code == 204
    with studio_scope(studio):
        report = selectors.storage_report(studio)
        assert report["used_bytes"] == before["used_bytes"] == selectors.storage_usage(studio)
        assert report["photos_in_bin"] == 1 and report["bin_bytes"] == asset.size + asset.derivative_bytes
        assert report["photos_ready"] == before["photos_ready"] - 1
    with django_capture_on_commit_callbacks(execute=True):
        assert staff.post(gallery_url(studio, gallery, f"assets/{asset.pk}/purge/")).status_code == 204
    with studio_scope(studio):
        after = selectors.storage_report(studio)
    assert after["used_bytes"] == before["used_bytes"] - asset.size - asset.derivative_bytes
    assert after["photos_in_bin"] == 0


def test_the_same_file_uploaded_again_while_in_the_bin_blocks_its_restore(studio, staff):
    gallery = factories.gallery(studio)
    original = factories.ready_asset(studio, gallery)
    assert staff.delete(gallery_url(studio, gallery, f"assets/{original.pk}/")).status_code == 204
    with studio_scope(studio):
        # What a second upload of the same file ends as: a ready photo with the same checksum.
        copy = factories.ready_asset(studio, gallery)
        Asset.objects.filter(pk=copy.pk).update(sha256=original.sha256)
    assert_api_error(
        staff.post(gallery_url(studio, gallery, f"assets/{original.pk}/restore/")), 409, "DUPLICATE_CONTENT"
    )
    with studio_scope(studio):
        assert Asset.with_deleted.get(pk=original.pk).deleted_at is not None


def test_viewers_cannot_delete_restore_or_purge(studio, client_for, django_capture_on_commit_callbacks):
    from studio.roles import Role

    gallery = factories.gallery(studio)
    asset = factories.ready_asset(studio, gallery)
    viewer = client_for(factories.member(studio, role=Role.VIEWER))
    assert viewer.delete(gallery_url(studio, gallery, f"assets/{asset.pk}/")).status_code == 403
    with studio_scope(studio):
        Asset.objects.filter(pk=asset.pk).update(deleted_at=asset.created_at)  # in the bin
    for action in ("restore", "purge"):
        assert viewer.post(gallery_url(studio, gallery, f"assets/{asset.pk}/{action}/")).status_code == 403
    # Another studio's staff: 404, bin or not.
    other = factories.studio()
    outsider = client_for(factories.member(other, role=Role.OWNER))
    assert outsider.post(gallery_url(studio, gallery, f"assets/{asset.pk}/restore/")).status_code == 404


def test_a_photo_binned_while_its_previews_are_made_stays_in_the_bin(studio, staff, monkeypatch):
    """Processing read the row before the job ran; writing it back whole
    would take the photo out of the bin (and undo a client's trash or a
    sweep's count). It writes only what it owns."""
    from galleries import imaging
    from galleries.services import processing

    gallery = factories.gallery(studio)
    asset = factories.ready_asset(studio, gallery)
    real = imaging.make_derivatives

    def binned_meanwhile(*args: Any, **kwargs: Any) -> Any:
        with studio_scope(studio):
            Asset.objects.filter(pk=asset.pk).update(deleted_at=asset.created_at, trashed_at=asset.created_at)
        return real(*args, **kwargs)

    monkeypatch.setattr(imaging, "make_derivatives", binned_meanwhile)
    with studio_scope(studio), context.acting_as(factories.TEST_ACTOR):
        processing.asset_process(asset_id=asset.pk, force=True)
        fresh = Asset.with_deleted.get(pk=asset.pk)
    assert fresh.status == "ready" and fresh.deleted_at is not None and fresh.trashed_at is not None
