"""Exports on S3, against a real S3 HTTP endpoint (moto in server mode),
through django-storages' S3Storage built from the production options (the
fixtures of tests/test_galleries_s3.py). The ZIP is written with a real
multipart upload; a cancelled or failed export leaves no object and no
unfinished upload behind; downloads redirect to a presigned GET that names
the file."""

from __future__ import annotations

import io
import os
import zipfile
from datetime import timedelta
from typing import Any

import pytest
import requests
from PIL import Image

from galleries import storage
from galleries.models import Export
from galleries.services import exports
from galleries.storage import S3MediaStore
from studio import context
from studio.tenancy import studio_scope
from tests import factories
from tests import test_galleries_s3 as _s3_setup
from tests.helpers import assert_api_error
from tests.test_galleries_s3 import BUCKET, Bucket

# The moto server and the production-configured S3 storage of the upload
# tests, one definition (pytest collects fixtures by module attribute).
moto_url = _s3_setup.moto_url
s3 = _s3_setup.s3

# S3's smallest part (but the last): three 2 MiB photos make a 3-part upload.
PART = 5 * 1024 * 1024


def _noise_jpeg(seed: int) -> bytes:
    """About 2 MiB: random pixels do not compress."""
    image = Image.frombytes("RGB", (1600, 1200), os.urandom(1600 * 1200 * 3))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=95)
    return out.getvalue()


def _url(studio: Any, gallery: Any, suffix: str = "") -> str:
    return f"/api/v1/studios/{studio.slug}/galleries/{gallery.pk}/exports/{suffix}"


def _uploads(bucket: Bucket) -> list[dict[str, Any]]:
    return bucket.client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])


def _export_keys(bucket: Bucket, studio: Any) -> set[str]:
    return {key for key in bucket.keys(f"studios/{studio.pk}/") if "/exports/" in key}


@pytest.fixture
def big_gallery(s3, studio, monkeypatch) -> tuple[Any, list[Any]]:
    monkeypatch.setattr(storage, "MULTIPART_PART_SIZE", PART)
    gallery = factories.gallery(studio)
    assets = [factories.ready_asset(studio, gallery, name=f"IMG_{i}.jpg", data=_noise_jpeg(i)) for i in range(6)]
    assert sum(a.size for a in assets) > 2 * PART
    return gallery, assets


def _request(studio: Any, gallery: Any, **fields: Any) -> Export:
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        export, _ = exports.export_request(gallery=gallery, user=factories.owner_membership(studio).user, **fields)
    return export


def _run(studio: Any, export: Export) -> Export:
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        exports.export_run(export_id=export.pk)
        return Export.objects.get(pk=export.pk)


def test_zip_is_written_by_multipart_upload_and_downloaded_from_a_presigned_url(
    s3, studio, owner, client_for, big_gallery, django_capture_on_commit_callbacks
):
    gallery, assets = big_gallery
    client = client_for(owner)
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post(_url(studio, gallery), {"kind": "zip", "size": "original"}, format="json")
    assert created.status_code == 201, created.content
    polled = client.get(_url(studio, gallery, f"{created.json()['id']}/")).json()
    assert polled["status"] == "done", polled["failure_reason"]

    with studio_scope(studio):
        row = Export.objects.get(pk=polled["id"])
    head = s3.head(row.file_key)
    assert head["ContentLength"] == polled["file_size"]
    assert head["ContentType"] == "application/zip"
    # A multipart object's ETag ends with its part count.
    parts = int(head["ETag"].strip('"').rpartition("-")[2])
    assert parts == -(-polled["file_size"] // PART) >= 3
    assert _uploads(s3) == []

    response = client.get(polled["download_url"])
    assert response.status_code == 302
    assert response["Location"].startswith(s3.url)
    assert response["Cache-Control"] == "private, no-store"
    fetched = requests.get(response["Location"], timeout=30)
    assert fetched.status_code == 200
    assert polled["filename"] in fetched.headers["Content-Disposition"]
    assert "attachment" in fetched.headers["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(fetched.content))
    assert archive.testzip() is None
    assert archive.namelist() == [a.original_filename for a in assets]
    for asset in assets:
        assert archive.read(asset.original_filename) == s3.get(asset.storage_key)


def test_web_size_zip_on_s3_holds_the_large_derivatives(s3, studio, owner):
    gallery = factories.gallery(studio)
    assets = [factories.ready_asset(studio, gallery, name=n) for n in ("a.jpg", "A.JPG")]
    export = _run(studio, _request(studio, gallery, kind="zip"))
    assert export.status == "done", export.failure_reason
    archive = zipfile.ZipFile(io.BytesIO(s3.get(export.file_key)))
    assert archive.namelist() == ["a.webp", "A (2).webp"]
    for name, asset in zip(archive.namelist(), assets, strict=True):
        assert archive.read(name) == s3.get(asset.derivatives["large"]["key"])


def test_a_cancelled_run_aborts_its_multipart_upload(s3, studio, owner, big_gallery, monkeypatch):
    gallery, _ = big_gallery
    export = _request(studio, gallery, kind="zip", size="original")
    opened: list[str] = []
    real = S3MediaStore.iter_chunks

    def cancel_on_fourth(self: Any, key: str, chunk_size: int = 1024 * 1024) -> Any:
        opened.append(key)
        if len(opened) == 4:  # by now at least one part has been uploaded
            assert _uploads(s3), "the multipart upload should be under way"
            with context.acting_as(factories.TEST_ACTOR):
                exports.export_cancel(export=Export.objects.get(pk=export.pk))
        yield from real(self, key, chunk_size)

    monkeypatch.setattr(S3MediaStore, "iter_chunks", cancel_on_fourth)
    assert _run(studio, export).status == "cancelled"
    assert len(opened) == 4
    assert _uploads(s3) == []
    assert _export_keys(s3, studio) == set()


def test_a_failed_run_leaves_no_object_or_upload_and_expiry_deletes_done_files(
    s3, studio, owner, big_gallery, client_for
):
    gallery, assets = big_gallery
    s3.store.delete([assets[-1].storage_key])
    failed = _run(studio, _request(studio, gallery, kind="zip", size="original"))
    assert failed.status == "failed" and assets[-1].original_filename in failed.failure_reason
    assert _uploads(s3) == [] and _export_keys(s3, studio) == set()

    done = _run(studio, _request(studio, gallery, kind="zip"))
    assert done.status == "done" and s3.exists(done.file_key)
    assert exports.exports_expire(now=done.expires_at + timedelta(seconds=1)) == 2
    assert not s3.exists(done.file_key)
    assert_api_error(client_for(owner).get(_url(studio, gallery, f"{done.pk}/download/")), 410, "EXPORT_EXPIRED")
