"""The media pipeline end to end on the embedded default (local files, eager
Celery): derivatives, bad input, idempotency, retries, duplicates, quota,
presign validation and the local upload endpoint."""

from __future__ import annotations

import functools
import hashlib
import io
import random
import struct
import time
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from celery.exceptions import Retry
from django.core import signing
from django.core.files.storage import default_storage
from django.utils import timezone
from PIL import ExifTags, Image
from rest_framework.test import APIClient

from galleries import imaging, selectors, services, tasks
from galleries.models import Asset, AssetStatus, Gallery, UploadBatch
from galleries.storage import (
    LocalMediaStore,
    ObjectChanged,
    StorageError,
    derivative_key,
    media_store,
    original_key,
)
from studio import context
from studio.models import Studio
from studio.tenancy import studio_scope
from tests import factories
from tests.gallery_helpers import gallery_url, post_to_target
from tests.helpers import assert_api_error

SIZES = ("large", "medium", "thumb")


# --- images --------------------------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def photo(width: int = 800, height: int = 600, *, orientation: int = 1, seed: int = 0) -> bytes:
    """A JPEG with EXIF (orientation, capture time, GPS), different for each seed."""
    image = Image.new("RGB", (width, height), (seed * 37 % 256, 90, 160))
    for x in range(0, width, 20):
        image.paste(((x + seed) % 256, 255 - x % 256, 40), (x, 0, x + 10, height))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.DateTime] = "2025:06:14 16:20:00"
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = "2024:05:04 13:14:15"
    exif[ExifTags.IFD.GPSInfo] = {1: "N", 2: (37.0, 46.0, 30.0), 3: "W", 4: (122.0, 25.0, 10.0)}
    return encode(image, "JPEG", quality=88, exif=exif.tobytes())


@functools.cache
def noisy_jpeg() -> bytes:
    return encode(Image.effect_noise((600, 400), 60).convert("RGB"), "JPEG", quality=90)


def garbage_body_jpeg() -> bytes:
    """Every header segment of a real JPEG (up to and including SOS), then
    random bytes where the compressed picture should be, then EOI."""
    real = noisy_jpeg()
    sos = real.index(b"\xff\xda")
    header_end = sos + 2 + struct.unpack(">H", real[sos + 2 : sos + 4])[0]
    body = random.Random(7).randbytes(len(real) - header_end - 2)
    return real[:header_end] + body + b"\xff\xd9"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@functools.cache
def bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A real, valid 1-bit PNG of width x height, all black: ~50 KB on disk,
    400 megapixels decoded."""
    row = b"\x00" * (1 + (width + 7) // 8)
    packer = zlib.compressobj(6)
    idat = b"".join(packer.compress(row * 1000) for _ in range(height // 1000))
    idat += packer.compress(row * (height % 1000)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


# --- assets and storage --------------------------------------------------------------------------------


@contextmanager
def in_studio(studio: Studio) -> Iterator[None]:
    """The scope a Celery task runs in (studio_task): the studio and a system actor."""
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        yield


def stored_asset(
    studio: Studio, gallery: Any, data: bytes, *, name: str = "IMG_0001.jpg", content_type: str = "image/jpeg"
) -> Asset:
    """An asset whose original is in storage, waiting for its derivatives
    (what upload_complete leaves behind)."""
    with in_studio(studio):
        asset = Asset(
            studio=studio,
            gallery=gallery,
            original_filename=name,
            content_type=content_type,
            size=len(data),
            status=AssetStatus.PROCESSING,
        )
        extension = imaging.FORMATS[imaging.MIME_TO_FORMAT[content_type]][1][0]
        asset.storage_key = original_key(asset, extension)
        asset.save()
        media_store().put(asset.storage_key, data, content_type)
    return asset


def process(studio: Studio, asset: Asset, *, force: bool = False) -> Asset:
    with in_studio(studio):
        services.asset_process(asset_id=asset.pk, force=force)
        asset.refresh_from_db()
    return asset


def reload(studio: Studio, asset: Asset) -> Asset:
    with studio_scope(studio):
        return Asset.objects.get(pk=asset.pk)


def stored(key: str) -> Path:
    return Path(default_storage.path(key))


def files_under(prefix: str) -> dict[str, int]:
    """Every file stored under a key prefix: relative path -> inode (a rewrite
    through put()'s atomic rename gives a new inode)."""
    root = stored(prefix)
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.stat().st_ino for p in sorted(root.rglob("*")) if p.is_file()}


def derivatives_prefix(asset: Asset) -> str:
    return f"studios/{asset.studio_id}/galleries/{asset.gallery_id}/derivatives/"


def run_task(studio_id: Any, asset_id: Any, **kwargs: Any) -> Any:
    return tasks.make_derivatives.apply(args=(str(studio_id), str(asset_id)), kwargs=kwargs).get()


def asset_url(studio: Studio, asset: Asset) -> str:
    return f"/api/v1/studios/{studio.slug}/galleries/{asset.gallery_id}/assets/{asset.pk}/"


@pytest.fixture
def gallery(studio):
    return factories.gallery(studio)


@pytest.fixture
def staff(owner, client_for) -> APIClient:
    return client_for(owner)


# === 1. derivatives =====================================================================================


def test_processing_stores_three_webp_derivatives_and_records_the_photo(studio, gallery):
    data = photo(1200, 800, orientation=6)
    asset = process(studio, stored_asset(studio, gallery, data, name="portrait.jpg"))

    assert (asset.status, asset.failure_reason) == (AssetStatus.READY, "")
    # As displayed: orientation 6 turns the 1200x800 frame upright.
    assert (asset.width, asset.height, asset.orientation) == (800, 1200, 6)
    assert asset.captured_at == datetime(2024, 5, 4, 13, 14, 15, tzinfo=UTC)  # DateTimeOriginal, not DateTime
    assert asset.sha256 == hashlib.sha256(data).hexdigest()
    assert set(asset.derivatives) == set(SIZES)
    expected = {"large": (800, 1200), "medium": (683, 1024), "thumb": (267, 400)}
    total = 0
    for size in SIZES:
        entry = asset.derivatives[size]
        assert entry["key"] == derivative_key(asset, size)
        path = stored(entry["key"])
        assert entry["bytes"] == path.stat().st_size
        total += entry["bytes"]
        with Image.open(path) as image:
            assert image.format == "WEBP"
            assert image.size == (entry["width"], entry["height"]) == expected[size]
            assert not image.getexif()  # GPS included
            assert "exif" not in image.info and "icc_profile" not in image.info
    assert asset.derivative_bytes == total
    assert files_under(derivatives_prefix(asset)).keys() == {f"{asset.pk}/{s}.webp" for s in SIZES}


def marked(fmt: str, orientation: int) -> bytes:
    """300x200 blue with a red stored top-left corner, and an EXIF orientation."""
    image = Image.new("RGB", (300, 200), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 60, 60))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    return encode(image, fmt, quality=95, exif=exif if fmt == "TIFF" else exif.tobytes())


def red_corner(path: Path) -> str:
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    w, h = rgb.size
    corners = {
        "top-left": (10, 10),
        "top-right": (w - 11, 10),
        "bottom-left": (10, h - 11),
        "bottom-right": (w - 11, h - 11),
    }
    (found,) = [name for name, xy in corners.items() if rgb.getpixel(xy)[0] > 200 and rgb.getpixel(xy)[2] < 80]
    return found


@pytest.mark.parametrize(("orientation", "corner"), [(6, "top-right"), (8, "bottom-left")])
def test_exif_orientation_is_applied_to_stored_derivatives(studio, gallery, orientation, corner):
    asset = process(studio, stored_asset(studio, gallery, marked("JPEG", orientation), name="turned.jpg"))
    assert (asset.status, asset.width, asset.height, asset.orientation) == (AssetStatus.READY, 200, 300, orientation)
    for size in SIZES:
        entry = asset.derivatives[size]
        assert (entry["width"], entry["height"]) == (200, 300)
        assert red_corner(stored(entry["key"])) == corner, size


def test_a_rotated_tiff_records_its_displayed_size(studio, gallery):
    asset = process(
        studio, stored_asset(studio, gallery, marked("TIFF", 6), name="scan.tif", content_type="image/tiff")
    )
    assert asset.status == AssetStatus.READY
    assert (asset.derivatives["large"]["width"], asset.derivatives["large"]["height"]) == (200, 300)
    assert red_corner(stored(asset.derivatives["large"]["key"])) == "top-right"
    assert (asset.width, asset.height) == (200, 300)


def test_big_images_give_2048_1024_400(studio, gallery):
    asset = process(studio, stored_asset(studio, gallery, photo(3000, 2000)))
    sizes = {name: (d["width"], d["height"]) for name, d in asset.derivatives.items()}
    assert sizes == {"large": (2048, 1365), "medium": (1024, 683), "thumb": (400, 267)}
    assert (asset.width, asset.height) == (3000, 2000)


def test_png_with_alpha_and_greyscale_jpeg_become_ready(studio, gallery):
    rgba = Image.new("RGBA", (300, 200), (10, 200, 30, 0))
    rgba.paste((10, 200, 30, 255), (150, 0, 300, 200))
    cutout = process(studio, stored_asset(studio, gallery, encode(rgba, "PNG"), name="a.png", content_type="image/png"))
    grey = process(studio, stored_asset(studio, gallery, encode(Image.linear_gradient("L"), "JPEG"), name="g.jpg"))

    assert cutout.status == grey.status == AssetStatus.READY
    with Image.open(stored(cutout.derivatives["thumb"]["key"])) as image:
        assert image.mode == "RGBA"
        assert image.getpixel((10, 100))[3] < 10 and image.getpixel((290, 100))[3] > 245
    assert (grey.width, grey.height) == (256, 256)


def test_webp_quality_setting_is_honoured(studio, gallery, settings):
    data = noisy_jpeg()
    default = process(studio, stored_asset(studio, gallery, data, name="a.jpg"))
    settings.DERIVATIVE_WEBP_QUALITY = 20
    other_gallery = factories.gallery(studio)
    low = process(studio, stored_asset(studio, other_gallery, data, name="a.jpg"))
    assert low.status == AssetStatus.READY
    assert low.derivative_bytes < default.derivative_bytes * 0.8


# === 2. bad input ======================================================================================


def _first_half_of_a_jpeg() -> bytes:
    data = noisy_jpeg()
    return data[: len(data) // 2]


def _damaged_header() -> bytes:
    return noisy_jpeg()[:120] + random.Random(3).randbytes(4000)


BAD_INPUT = {
    # case: (bytes, filename, content type, words the reason must contain)
    "text": (lambda: b"Dear client, here are the notes for Saturday.\n" * 20, "notes.jpg", "image/jpeg", ["not a"]),
    "truncated": (_first_half_of_a_jpeg, "cut.jpg", "image/jpeg", ["truncated", "upload it again"]),
    "empty": (lambda: b"", "nothing.jpg", "image/jpeg", ["empty", "0 bytes"]),
    "wrong extension": (
        lambda: encode(Image.new("RGB", (40, 30)), "PNG"),
        "really-a-png.jpg",
        "image/jpeg",
        [".jpg", "PNG", "rename"],
    ),
    "damaged header": (_damaged_header, "broken.jpg", "image/jpeg", ["damaged"]),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_fails_with_a_reason_and_the_original_is_kept(
    studio, gallery, staff, case, django_capture_on_commit_callbacks
):
    make, name, content_type, words = BAD_INPUT[case]
    asset = stored_asset(studio, gallery, make(), name=name, content_type=content_type)
    assert stored(asset.storage_key).exists()

    with django_capture_on_commit_callbacks(execute=True):
        asset = process(studio, asset)

    assert asset.status == AssetStatus.FAILED
    for word in words:
        assert word.lower() in asset.failure_reason.lower(), asset.failure_reason
    assert asset.derivatives == {} and asset.derivative_bytes == 0
    # Kept for the studio (or a fixed pipeline); only the cleanup deletes it.
    assert stored(asset.storage_key).exists()
    assert files_under(derivatives_prefix(asset)) == {}

    response = staff.get(asset_url(studio, asset))
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["failure_reason"]) == ("failed", asset.failure_reason)
    assert body["urls"] == {"thumb": None, "medium": None, "large": None, "original": None}


def test_bad_input_through_the_task_is_a_clean_failure_not_a_retry(studio, gallery, django_capture_on_commit_callbacks):
    asset = stored_asset(studio, gallery, _first_half_of_a_jpeg(), name="cut.jpg")
    with django_capture_on_commit_callbacks(execute=True):
        assert run_task(studio.pk, asset.pk) == AssetStatus.FAILED
    assert "truncated" in reload(studio, asset).failure_reason
    assert stored(asset.storage_key).exists()


def test_a_failed_asset_keeps_its_original_and_loses_partial_derivatives_on_commit(
    studio, gallery, monkeypatch, django_capture_on_commit_callbacks
):
    """Before, a failure deleted the original with the derivatives. Now an
    error after some derivatives were written deletes those (after commit)
    and keeps the original."""
    from galleries import storage

    real_put = storage.LocalMediaStore.put

    def put_then_break(self, key, data, content_type):  # noqa: ANN001, ANN202
        real_put(self, key, data, content_type)
        if key.endswith("medium.webp"):
            raise RuntimeError("a bug after two derivatives were written")

    monkeypatch.setattr(storage.LocalMediaStore, "put", put_then_break)
    asset = stored_asset(studio, gallery, photo(640, 480))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        asset = process(studio, asset)
    assert asset.status == AssetStatus.FAILED and "on our side" in asset.failure_reason
    assert set(files_under(derivatives_prefix(asset))) == {f"{asset.pk}/large.webp", f"{asset.pk}/medium.webp"}
    for callback in callbacks:
        callback()
    assert files_under(derivatives_prefix(asset)) == {}
    assert stored(asset.storage_key).exists()


def test_a_missing_original_fails_the_asset(studio, gallery, django_capture_on_commit_callbacks):
    asset = stored_asset(studio, gallery, photo(64, 48))
    stored(asset.storage_key).unlink()
    with django_capture_on_commit_callbacks(execute=True):
        asset = process(studio, asset)
    assert asset.status == AssetStatus.FAILED
    assert "missing" in asset.failure_reason and "upload it again" in asset.failure_reason.lower()


def test_the_pixel_limit_setting_is_honoured(studio, gallery, settings, django_capture_on_commit_callbacks):
    data = encode(Image.new("1", (1200, 1000)), "PNG")  # 1.2 megapixels, a few hundred bytes
    settings.DERIVATIVE_MAX_PIXELS = 1_000_000
    asset = stored_asset(studio, gallery, data, name="wide.png", content_type="image/png")
    with django_capture_on_commit_callbacks(execute=True):
        asset = process(studio, asset)
    assert asset.status == AssetStatus.FAILED
    assert "1200x1000" in asset.failure_reason and "megapixels" in asset.failure_reason
    assert "limit is 1 megapixels" in asset.failure_reason
    assert stored(asset.storage_key).exists()

    settings.DERIVATIVE_MAX_PIXELS = 1_200_000
    again = process(
        studio, stored_asset(studio, factories.gallery(studio), data, name="wide.png", content_type="image/png")
    )
    assert again.status == AssetStatus.READY


def test_a_decompression_bomb_fails_with_the_pixel_limit_reason(studio, gallery, django_capture_on_commit_callbacks):
    data = bomb_png()
    assert len(data) < 100_000
    asset = stored_asset(studio, gallery, data, name="bomb.png", content_type="image/png")
    with django_capture_on_commit_callbacks(execute=True):
        asset = process(studio, asset)
    assert asset.status == AssetStatus.FAILED
    assert "megapixels" in asset.failure_reason and "100" in asset.failure_reason


def test_harmless_jpeg_warnings_pass_but_data_that_ends_early_does_not(
    studio, gallery, django_capture_on_commit_callbacks
):
    """Camera files often carry harmless warnings (bytes before a marker):
    those photos are processed. A body whose data ends before the frame does
    (here: random bytes, which end the data segment at a stray marker) is
    refused as truncated; before, it became a ready photo of noise and grey."""
    extraneous = noisy_jpeg()[:-2] + b"\x00\x00\x00\xff\xd9"  # "3 extraneous bytes before marker 0xd9"
    fine = process(studio, stored_asset(studio, gallery, extraneous, name="camera.jpg"))
    assert fine.status == AssetStatus.READY and (fine.width, fine.height) == (600, 400)

    data = garbage_body_jpeg()
    with Image.open(io.BytesIO(data)) as header_only:
        assert header_only.size == (600, 400)  # the header is valid
    asset = stored_asset(studio, factories.gallery(studio), data, name="garbage.jpg")
    with django_capture_on_commit_callbacks(execute=True):
        asset = process(studio, asset)
    assert asset.status == AssetStatus.FAILED and "truncated" in asset.failure_reason


def test_upload_complete_fails_content_that_is_not_what_was_announced(
    studio, gallery, staff, django_capture_on_commit_callbacks
):
    files = [
        ("really-a-png.jpg", encode(Image.new("RGB", (40, 30)), "PNG"), "image/jpeg"),
        ("notes.jpg", b"just some text, honestly" * 10, "image/jpeg"),
        ("good.jpg", photo(64, 48), "image/jpeg"),
    ]
    with django_capture_on_commit_callbacks(execute=True):
        result = upload(staff, studio, gallery, files)

    failed = {f["filename"]: f["reason"] for f in result["failed"]}
    assert set(failed) == {"really-a-png.jpg", "notes.jpg"}
    assert "PNG" in failed["really-a-png.jpg"] and "image/jpeg" in failed["really-a-png.jpg"]
    assert "not a JPEG" in failed["notes.jpg"]
    with studio_scope(studio):
        assets = {a.original_filename: a for a in Asset.objects.filter(gallery=gallery)}
    assert assets["good.jpg"].status == AssetStatus.READY
    for name in failed:
        assert assets[name].status == AssetStatus.FAILED and assets[name].failure_reason == failed[name]
        # Kept until the cleanup's retention, moved off the one-time key.
        assert stored(assets[name].storage_key).exists()
        assert not stored(assets[name].upload_key).exists()
    assert stored(assets["good.jpg"].storage_key + ".type").read_text() == "image/jpeg"
    assert not stored(assets["good.jpg"].upload_key).exists()

    progress = staff.get(gallery_url(studio, gallery, f"uploads/{result['batch']}/")).json()
    assert {f["filename"]: f["reason"] for f in progress["failed"]} == failed


def test_a_truncated_upload_passes_complete_then_fails_in_the_pipeline(
    studio, gallery, staff, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        result = upload(staff, studio, gallery, [("cut.jpg", _first_half_of_a_jpeg(), "image/jpeg")])
    assert len(result["processing"]) == 1 and result["failed"] == []
    body = staff.get(gallery_url(studio, gallery, f"assets/{result['processing'][0]}/")).json()
    assert body["status"] == "failed"
    assert "truncated" in body["failure_reason"]


# === 3. idempotency =====================================================================================


def test_running_the_task_twice_changes_nothing(studio, gallery):
    asset = stored_asset(studio, gallery, photo(900, 600))

    assert run_task(studio.pk, asset.pk) == AssetStatus.READY
    first = reload(studio, asset)
    files = files_under(derivatives_prefix(asset))
    assert files.keys() == {f"{asset.pk}/{s}.webp" for s in SIZES}

    assert run_task(studio.pk, asset.pk) == AssetStatus.READY
    second = reload(studio, asset)
    assert second.derivatives == first.derivatives
    assert second.updated_at == first.updated_at  # a ready asset is left alone
    assert files_under(derivatives_prefix(asset)) == files  # not even rewritten
    with studio_scope(studio):
        assert Asset.objects.filter(gallery=gallery).count() == 1


def test_force_re_encodes_to_the_same_keys(studio, gallery):
    asset = stored_asset(studio, gallery, photo(900, 600))
    run_task(studio.pk, asset.pk)
    before = reload(studio, asset)
    files = files_under(derivatives_prefix(asset))

    assert run_task(studio.pk, asset.pk, force=True) == AssetStatus.READY

    after = reload(studio, asset)
    assert {k: d["key"] for k, d in after.derivatives.items()} == {k: d["key"] for k, d in before.derivatives.items()}
    rewritten = files_under(derivatives_prefix(asset))
    assert rewritten.keys() == files.keys()  # no new objects, no .tmp left over
    assert all(rewritten[name] != files[name] for name in files)  # each one written again
    assert (after.status, after.sha256, after.width) == (AssetStatus.READY, before.sha256, before.width)
    with studio_scope(studio):
        assert Asset.objects.filter(gallery=gallery).count() == 1


def test_regenerate_endpoint_re_encodes_ready_and_stuck_assets(
    studio, gallery, staff, django_capture_on_commit_callbacks
):
    ready = factories.ready_asset(studio, gallery)
    # A photo whose task gave up (storage down past its retries) stays
    # "processing"; regenerating is how staff unstick it.
    stuck = stored_asset(studio, gallery, photo(64, 48, seed=5), name="stuck.jpg")
    with in_studio(studio):
        not_uploaded = Asset.objects.create(
            studio=studio,
            gallery=gallery,
            original_filename="later.jpg",
            storage_key="k/later.jpg",
            content_type="image/jpeg",
            size=10,
            status=AssetStatus.AWAITING_UPLOAD,
        )
    files = files_under(derivatives_prefix(ready))

    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(gallery_url(studio, gallery, "regenerate-derivatives/"), {}, format="json")

    assert response.status_code == 202, response.content
    assert {a["id"] for a in response.json()} == {str(ready.pk), str(stuck.pk)}  # not the one never uploaded
    rewritten = {k: v for k, v in files_under(derivatives_prefix(ready)).items() if k in files}
    assert rewritten.keys() == files.keys()
    assert all(rewritten[name] != files[name] for name in files)
    assert reload(studio, stuck).status == AssetStatus.READY
    assert reload(studio, not_uploaded).status == AssetStatus.AWAITING_UPLOAD


def test_the_task_is_a_no_op_for_a_missing_or_inactive_studio(studio, gallery):
    asset = stored_asset(studio, gallery, photo(64, 48))
    assert run_task(uuid.uuid4(), asset.pk) is None
    Studio.objects.filter(pk=studio.pk).update(is_active=False)
    assert run_task(studio.pk, asset.pk) is None
    assert reload(studio, asset).status == AssetStatus.PROCESSING
    assert files_under(derivatives_prefix(asset)) == {}


def test_the_task_is_a_no_op_for_a_deleted_or_unknown_asset(studio, gallery):
    asset = stored_asset(studio, gallery, photo(64, 48))
    with in_studio(studio):
        Asset.objects.filter(pk=asset.pk).delete()
    assert run_task(studio.pk, asset.pk) is None
    assert run_task(studio.pk, uuid.uuid4()) is None
    assert files_under(derivatives_prefix(asset)) == {}


def test_the_task_leaves_an_asset_awaiting_upload_alone(studio, gallery):
    asset = stored_asset(studio, gallery, photo(64, 48))
    with in_studio(studio):
        Asset.objects.filter(pk=asset.pk).update(status=AssetStatus.AWAITING_UPLOAD)
    assert run_task(studio.pk, asset.pk) == AssetStatus.AWAITING_UPLOAD
    assert files_under(derivatives_prefix(asset)) == {}


def test_another_studios_asset_is_invisible_to_the_task(studio, other_studio, gallery):
    asset = stored_asset(studio, gallery, photo(64, 48))
    assert run_task(other_studio.pk, asset.pk) is None
    assert reload(studio, asset).status == AssetStatus.PROCESSING


# === 4. retries ========================================================================================


def test_the_task_retries_storage_errors_with_backoff_and_late_acks():
    task = tasks.make_derivatives
    assert task.name == "galleries.make_derivatives"
    assert tuple(task.autoretry_for) == (StorageError,)
    assert task.acks_late is True
    assert task.reject_on_worker_lost is True
    assert 3 <= task.max_retries <= 20
    assert task.retry_backoff and task.retry_backoff_max >= 60


@pytest.fixture
def flaky_put(monkeypatch):
    """LocalMediaStore.put raises StorageError on its first `fail` calls."""
    real = LocalMediaStore.put
    state = {"fail": 0, "calls": 0}  # armed by each test, once its original is stored

    def put(self: LocalMediaStore, key: str, data: bytes, content_type: str) -> None:
        state["calls"] += 1
        if state["calls"] <= state["fail"]:
            raise StorageError("S3 put_object failed: SlowDown")
        real(self, key, data, content_type)

    monkeypatch.setattr(LocalMediaStore, "put", put)
    return state


def test_a_storage_error_leaves_the_asset_processing_for_a_retry(studio, gallery, flaky_put):
    asset = stored_asset(studio, gallery, photo(300, 200))
    flaky_put.update(calls=0, fail=1)
    with pytest.raises(StorageError):
        process(studio, asset)
    asset = reload(studio, asset)
    assert (asset.status, asset.derivatives) == (AssetStatus.PROCESSING, {})
    assert asset.failure_reason.startswith("Waiting for storage")  # staff see why it is still processing
    assert stored(asset.storage_key).exists()

    done = process(studio, asset)  # the retry finishes it
    assert (done.status, done.failure_reason) == (AssetStatus.READY, "")


def test_eager_apply_retries_inline_until_storage_works(studio, gallery, flaky_put, settings):
    settings.CELERY_TASK_EAGER_PROPAGATES = False  # then the eager tracer re-applies on Retry
    asset = stored_asset(studio, gallery, photo(300, 200))
    flaky_put.update(calls=0, fail=2)
    result = tasks.make_derivatives.delay(str(studio.pk), str(asset.pk))
    assert (result.state, result.result) == ("SUCCESS", AssetStatus.READY)
    assert flaky_put["calls"] == 2 + len(SIZES)
    asset = reload(studio, asset)
    assert asset.status == AssetStatus.READY
    assert files_under(derivatives_prefix(asset)).keys() == {f"{asset.pk}/{s}.webp" for s in SIZES}


def test_with_eager_propagation_the_retry_is_raised_and_the_asset_stays_processing(
    studio, gallery, flaky_put, settings
):
    assert settings.CELERY_TASK_EAGER_PROPAGATES is True
    asset = stored_asset(studio, gallery, photo(300, 200))
    flaky_put.update(calls=0, fail=1)
    with pytest.raises(Retry) as retry:
        tasks.make_derivatives.delay(str(studio.pk), str(asset.pk))
    assert isinstance(retry.value.exc, StorageError)
    assert 10 <= retry.value.when <= 20  # the floor, plus a jitter of up to the floor
    assert reload(studio, asset).status == AssetStatus.PROCESSING
    assert run_task(studio.pk, asset.pk) == AssetStatus.READY


# === 5. duplicates =====================================================================================


def test_the_same_bytes_twice_in_a_gallery_fail_as_a_duplicate(studio, gallery, django_capture_on_commit_callbacks):
    data = photo(200, 150, seed=9)
    first = process(studio, stored_asset(studio, gallery, data, name="first.jpg"))
    assert first.status == AssetStatus.READY

    second = stored_asset(studio, gallery, data, name="second.jpg")
    with django_capture_on_commit_callbacks(execute=True):
        second = process(studio, second)

    assert second.status == AssetStatus.FAILED
    assert second.failure_reason.startswith("Duplicate of first.jpg")
    assert stored(second.storage_key).exists()  # a failed photo keeps its original until the cleanup
    assert files_under(f"{derivatives_prefix(second)}{second.pk}/") == {}
    assert stored(first.storage_key).exists()  # the first copy is untouched
    assert reload(studio, first).status == AssetStatus.READY


def test_the_same_bytes_in_another_gallery_are_fine(studio, gallery):
    data = photo(200, 150, seed=10)
    first = process(studio, stored_asset(studio, gallery, data, name="first.jpg"))
    elsewhere = process(studio, stored_asset(studio, factories.gallery(studio), data, name="first.jpg"))
    assert first.status == elsewhere.status == AssetStatus.READY
    assert first.sha256 == elsewhere.sha256


def test_a_failed_copy_does_not_block_a_new_upload(studio, gallery, django_capture_on_commit_callbacks):
    data = photo(200, 150, seed=11)
    first = process(studio, stored_asset(studio, gallery, data, name="first.jpg"))
    with django_capture_on_commit_callbacks(execute=True):
        assert process(studio, stored_asset(studio, gallery, data, name="dup.jpg")).status == AssetStatus.FAILED
    with in_studio(studio):
        Asset.objects.filter(pk=first.pk).delete()
    third = process(studio, stored_asset(studio, gallery, data, name="third.jpg"))
    assert third.status == AssetStatus.READY


def _a_twin_finishes_during_processing(monkeypatch, studio, twin: Asset, data: bytes) -> None:
    """While our asset is being encoded, its twin (same bytes) becomes ready."""
    real = imaging.make_derivatives

    def racing(*args: Any, **kwargs: Any):
        result = real(*args, **kwargs)
        with studio_scope(studio):
            Asset.objects.filter(pk=twin.pk).update(status=AssetStatus.READY, sha256=hashlib.sha256(data).hexdigest())
        return result

    monkeypatch.setattr(imaging, "make_derivatives", racing)


def test_a_twin_that_finishes_first_wins_the_race(studio, gallery, monkeypatch, django_capture_on_commit_callbacks):
    data = photo(200, 150, seed=12)
    twin = stored_asset(studio, gallery, data, name="twin.jpg")
    asset = stored_asset(studio, gallery, data, name="late.jpg")
    _a_twin_finishes_during_processing(monkeypatch, studio, twin, data)

    with django_capture_on_commit_callbacks(execute=True):
        asset = process(studio, asset)

    assert asset.status == AssetStatus.FAILED
    assert asset.failure_reason.startswith("Duplicate")
    assert stored(asset.storage_key).exists()  # kept until the cleanup, like any failed photo
    assert reload(studio, twin).status == AssetStatus.READY


def test_a_twin_race_leaves_no_derivatives_behind(studio, gallery, monkeypatch, django_capture_on_commit_callbacks):
    data = photo(200, 150, seed=13)
    twin = stored_asset(studio, gallery, data, name="twin.jpg")
    asset = stored_asset(studio, gallery, data, name="late.jpg")
    _a_twin_finishes_during_processing(monkeypatch, studio, twin, data)

    with django_capture_on_commit_callbacks(execute=True):
        asset = process(studio, asset)

    assert asset.status == AssetStatus.FAILED
    assert files_under(f"{derivatives_prefix(asset)}{asset.pk}/") == {}, "derivatives of a failed asset left in storage"


def test_presign_refuses_a_known_sha256_up_front(studio, gallery, staff):
    data = photo(200, 150, seed=14)
    factories.ready_asset(studio, gallery, name="kept.jpg", data=data)
    digest = hashlib.sha256(data).hexdigest()
    other = hashlib.sha256(b"something else").hexdigest()

    response = staff.post(
        gallery_url(studio, gallery, "uploads/"),
        {
            "files": [
                {"filename": "again.jpg", "size": len(data), "content_type": "image/jpeg", "sha256": digest},
                {"filename": "new.jpg", "size": 1000, "content_type": "image/jpeg", "sha256": other},
                {"filename": "new-copy.jpg", "size": 1000, "content_type": "image/jpeg", "sha256": other},
            ]
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert [t["filename"] for t in body["targets"]] == ["new.jpg"]
    reasons = {r["filename"]: r["reason"] for r in body["rejected"]}
    assert reasons.keys() == {"again.jpg", "new-copy.jpg"}
    assert "kept.jpg" in reasons["again.jpg"] and "already" in reasons["again.jpg"].lower()
    assert "new.jpg" in reasons["new-copy.jpg"]


# === 6. quota ==========================================================================================


def usage(studio: Studio) -> int:
    with studio_scope(studio):
        return selectors.storage_usage(studio)


def set_quota(studio: Studio, quota: int) -> None:
    Studio.objects.filter(pk=studio.pk).update(storage_quota_bytes=quota)


def test_usage_counts_what_is_stored_and_what_is_reserved(
    studio, gallery, staff, settings, django_capture_on_commit_callbacks
):
    assert usage(studio) == 0
    ready = factories.ready_asset(studio, gallery)
    on_disk = sum(stored(d["key"]).stat().st_size for d in ready.derivatives.values())
    assert ready.derivative_bytes == on_disk > 0
    assert usage(studio) == ready.size + on_disk  # settled: as measured

    with django_capture_on_commit_callbacks(execute=True):
        failed = process(studio, stored_asset(studio, gallery, b"not an image at all", name="x.jpg"))
    assert failed.status == AssetStatus.FAILED and failed.size > 0
    # Its original is still stored (until the cleanup), so it counts.
    assert usage(studio) == ready.size + on_disk + failed.size

    # A target handed out reserves the file and an estimate of its derivatives.
    staff.post(
        gallery_url(studio, gallery, "uploads/"),
        {"files": [{"filename": "soon.jpg", "size": 5_000_000, "content_type": "image/jpeg"}]},
        format="json",
    )
    reserved = 5_000_000 + settings.DERIVATIVE_ESTIMATE_BYTES
    assert usage(studio) == ready.size + on_disk + failed.size + reserved
    assert usage(factories.studio()) == 0  # per studio


def test_a_target_never_used_stops_counting_when_its_reservation_ends(studio, gallery, staff, settings):
    """Before, 200 abandoned targets counted for 48 hours (8.5 GB against
    70 MB stored): the reservation now ends with UPLOAD_RESERVATION_SECONDS."""
    response = staff.post(
        gallery_url(studio, gallery, "uploads/"),
        {"files": [{"filename": f"{i}.jpg", "size": 40_000_000, "content_type": "image/jpeg"} for i in range(200)]},
        format="json",
    )
    assert response.status_code == 201
    assert usage(studio) == 200 * (40_000_000 + settings.DERIVATIVE_ESTIMATE_BYTES)
    later = timezone.now() + timedelta(seconds=settings.UPLOAD_RESERVATION_SECONDS + 1)
    with studio_scope(studio):
        assert selectors.storage_usage(studio, now=later) == 0


def test_derivatives_are_reserved_with_an_estimate_so_the_quota_is_not_overrun(studio, gallery, staff, settings):
    """Before, targets reserved the originals only: a studio filled exactly to
    its quota ended above it once the derivatives were written."""
    settings.DERIVATIVE_ESTIMATE_BYTES = 300_000
    set_quota(studio, 10_000_000)
    files = [{"filename": f"{i}.jpg", "size": 2_000_000, "content_type": "image/jpeg"} for i in range(5)]
    response = staff.post(gallery_url(studio, gallery, "uploads/"), {"files": files}, format="json")
    error = assert_api_error(response, 413, "STORAGE_QUOTA_EXCEEDED")
    assert error["details"] == {"usage_bytes": 0, "quota_bytes": 10_000_000, "requested_bytes": 11_500_000}
    response = staff.post(gallery_url(studio, gallery, "uploads/"), {"files": files[:4]}, format="json")
    assert response.status_code == 201


def test_presign_over_the_quota_answers_413_with_the_numbers(studio, gallery, staff):
    ready = factories.ready_asset(studio, gallery)
    used = ready.size + ready.derivative_bytes
    set_quota(studio, used + 2000)
    files = [
        {"filename": "a.jpg", "size": 600, "content_type": "image/jpeg"},
        {"filename": "b.jpg", "size": 500, "content_type": "image/jpeg"},
        {"filename": "c.pdf", "size": 10**9, "content_type": "application/pdf"},  # rejected: does not count
    ]

    response = staff.post(gallery_url(studio, gallery, "uploads/"), {"files": files}, format="json")

    # Small files: the derivative estimate is the file's own size.
    error = assert_api_error(response, 413, "STORAGE_QUOTA_EXCEEDED")
    assert error["details"] == {"usage_bytes": used, "quota_bytes": used + 2000, "requested_bytes": 2200}
    with studio_scope(studio):
        assert not UploadBatch.objects.filter(gallery=gallery).exists()
        assert Asset.objects.filter(gallery=gallery).count() == 1

    files[1]["size"] = 400  # exactly up to the quota
    response = staff.post(gallery_url(studio, gallery, "uploads/"), {"files": files}, format="json")
    assert response.status_code == 201, response.content
    assert len(response.json()["targets"]) == 2
    assert usage(studio) == used + 2000


def test_failed_photos_count_until_the_cleanup_frees_them(studio, gallery, staff, django_capture_on_commit_callbacks):
    set_quota(studio, 2000)
    with django_capture_on_commit_callbacks(execute=True):
        failed = process(studio, stored_asset(studio, gallery, b"x" * 1500, name="x.jpg"))
    assert failed.status == AssetStatus.FAILED
    body = {"files": [{"filename": "a.jpg", "size": 300, "content_type": "image/jpeg"}]}  # + 300 estimated
    assert_api_error(
        staff.post(gallery_url(studio, gallery, "uploads/"), body, format="json"), 413, "STORAGE_QUOTA_EXCEEDED"
    )
    with in_studio(studio), django_capture_on_commit_callbacks(execute=True):
        assert services.uploads_cleanup(older_than=timezone.now() + timedelta(seconds=1)) == 1
    assert not stored(failed.storage_key).exists()
    assert staff.post(gallery_url(studio, gallery, "uploads/"), body, format="json").status_code == 201


# === 7. presign validation and the local upload endpoint ==============================================


def presign(client: APIClient, studio: Studio, gallery: Any, files: list[dict[str, Any]]) -> Any:
    return client.post(gallery_url(studio, gallery, "uploads/"), {"files": files}, format="json")


def upload(client: APIClient, studio: Studio, gallery: Any, files: list[tuple[str, bytes, str]]) -> dict[str, Any]:
    """Presign, POST each file to its target, complete."""
    response = presign(
        client, studio, gallery, [{"filename": n, "size": len(d), "content_type": t} for n, d, t in files]
    )
    assert response.status_code == 201, response.content
    body = response.json()
    data = {name: d for name, d, _ in files}
    for target in body["targets"]:
        sent = post_to_target(target, data[target["filename"]])
        assert sent.status_code == 204, sent.content
    done = client.post(gallery_url(studio, gallery, f"uploads/{body['batch']}/complete/"), {}, format="json")
    assert done.status_code == 200, done.content
    return {"batch": body["batch"], "targets": body["targets"], **done.json()}


def test_more_than_500_files_is_a_400(studio, gallery, staff):
    files = [{"filename": f"IMG_{i:04d}.jpg", "size": 1000, "content_type": "image/jpeg"} for i in range(501)]
    error = assert_api_error(presign(staff, studio, gallery, files), 400, "VALIDATION_ERROR")
    assert any("500" in " ".join(messages) for messages in error["fields"].values()), error
    with studio_scope(studio):
        assert not Asset.objects.filter(gallery=gallery).exists()

    response = presign(staff, studio, gallery, files[:500])
    assert response.status_code == 201, response.content
    assert len(response.json()["targets"]) == 500


def test_bad_files_are_rejected_with_reasons_and_good_ones_get_targets(studio, gallery, staff, settings):
    settings.UPLOAD_MAX_BYTES = 5 * 1024 * 1024
    files = [
        {"filename": "good.jpg", "size": 1000, "content_type": "image/jpeg"},
        {"filename": "Good.JPEG", "size": 1000, "content_type": "image/jpeg"},
        {"filename": "limit.png", "size": 5 * 1024 * 1024, "content_type": "image/png"},
        {"filename": "clip.mov", "size": 1000, "content_type": "video/quicktime"},
        {"filename": "anim.gif", "size": 1000, "content_type": "image/gif"},
        {"filename": "photo.png", "size": 1000, "content_type": "image/jpeg"},
        {"filename": "noextension", "size": 1000, "content_type": "image/jpeg"},
        {"filename": "huge.tif", "size": 5 * 1024 * 1024 + 1, "content_type": "image/tiff"},
    ]

    response = presign(staff, studio, gallery, files)

    assert response.status_code == 201, response.content
    body = response.json()
    assert [t["filename"] for t in body["targets"]] == ["good.jpg", "Good.JPEG", "limit.png"]
    reasons = {r["filename"]: r["reason"] for r in body["rejected"]}
    assert reasons.keys() == {"clip.mov", "anim.gif", "photo.png", "noextension", "huge.tif"}
    assert "video/quicktime" in reasons["clip.mov"] and "not accepted" in reasons["clip.mov"]
    assert "image/gif" in reasons["anim.gif"]
    assert ".png" in reasons["photo.png"] and "image/jpeg" in reasons["photo.png"]
    assert "nothing" in reasons["noextension"]
    assert "larger than 5.0\xa0MB" in reasons["huge.tif"]
    with studio_scope(studio):
        made = Asset.objects.filter(gallery=gallery)
        assert sorted(made.values_list("original_filename", flat=True)) == ["Good.JPEG", "good.jpg", "limit.png"]
        assert set(made.values_list("status", flat=True)) == {AssetStatus.AWAITING_UPLOAD}
        assert {a.storage_key.rsplit(".", 1)[-1] for a in made} == {"jpg", "png"}


def test_an_empty_file_is_rejected_by_the_service(studio, gallery, owner):
    with in_studio(studio):
        result = services.upload_presign(
            gallery=gallery,
            files=[
                services.FileRequest("empty.jpg", 0, "image/jpeg"),
                services.FileRequest("fine.jpg", 10, "image/jpeg"),
            ],
            user=owner.user,
        )
    assert [a.original_filename for a, _ in result.accepted] == ["fine.jpg"]
    assert result.rejected == [{"filename": "empty.jpg", "reason": "The file is empty."}]


def test_an_empty_file_in_a_batch_is_rejected_alone(studio, gallery, staff):
    response = presign(
        staff,
        studio,
        gallery,
        [
            {"filename": "empty.jpg", "size": 0, "content_type": "image/jpeg"},
            {"filename": "fine.jpg", "size": 1000, "content_type": "image/jpeg"},
        ],
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert [t["filename"] for t in body["targets"]] == ["fine.jpg"]
    assert [(r["filename"], "empty" in r["reason"]) for r in body["rejected"]] == [("empty.jpg", True)]


@pytest.fixture
def target(studio, gallery, staff) -> dict[str, Any]:
    """One upload target for a real 64x48 JPEG (the bytes are in target['data'])."""
    data = photo(64, 48, seed=21)
    response = presign(staff, studio, gallery, [{"filename": "a.jpg", "size": len(data), "content_type": "image/jpeg"}])
    assert response.status_code == 201, response.content
    return {**response.json()["targets"][0], "data": data, "batch": response.json()["batch"]}


def post_raw(url: str, fields: dict[str, str], data: bytes) -> Any:
    parts = urlsplit(url)
    upload_file = io.BytesIO(data)
    upload_file.name = "upload"
    return APIClient().post(f"{parts.path}?{parts.query}", {**fields, "file": upload_file}, format="multipart")


def test_the_local_endpoint_stores_a_file_that_keeps_the_policy(target):
    assert set(target["fields"]) == {"key", "Content-Type"}
    assert target["fields"]["Content-Type"] == "image/jpeg"
    response = post_raw(target["url"], target["fields"], target["data"])
    assert response.status_code == 204, response.content
    key = target["fields"]["key"]
    assert stored(key).read_bytes() == target["data"]
    info = media_store().head(key)
    assert (info.size, info.content_type) == (len(target["data"]), "image/jpeg")


@pytest.mark.parametrize("delta", [-1, 1])
def test_the_local_endpoint_wants_the_exact_size(target, delta):
    data = target["data"] + b"\x00" if delta > 0 else target["data"][:-1]
    error = assert_api_error(post_raw(target["url"], target["fields"], data), 400, "ENTITY_SIZE_MISMATCH")
    assert str(len(target["data"])) in error["message"]
    assert not stored(target["fields"]["key"]).exists()


def test_the_local_endpoint_refuses_a_body_far_larger_than_announced(target):
    response = post_raw(target["url"], target["fields"], target["data"] + b"\x00" * 64 * 1024)
    assert_api_error(response, 400, "ENTITY_TOO_LARGE")
    assert not stored(target["fields"]["key"]).exists()


def test_the_local_endpoint_wants_the_signed_content_type(target):
    fields = {**target["fields"], "Content-Type": "image/png"}
    error = assert_api_error(post_raw(target["url"], fields, target["data"]), 403, "UPLOAD_POLICY_INVALID")
    assert "content type" in error["message"]
    assert not stored(target["fields"]["key"]).exists()


def test_the_local_endpoint_wants_the_signed_key(studio, gallery, staff, target):
    other = presign(
        staff, studio, gallery, [{"filename": "b.jpg", "size": len(target["data"]), "content_type": "image/jpeg"}]
    )
    other_key = other.json()["targets"][0]["fields"]["key"]
    for key in (other_key, f"studios/{studio.pk}/evil.jpg", "../../etc/passwd"):
        fields = {**target["fields"], "key": key}
        error = assert_api_error(post_raw(target["url"], fields, target["data"]), 403, "UPLOAD_POLICY_INVALID")
        assert "key" in error["message"]
    assert not stored(other_key).exists() and not stored(target["fields"]["key"]).exists()


def test_the_local_endpoint_refuses_a_tampered_policy(target):
    parts = urlsplit(target["url"])
    policy = parse_qs(parts.query)["policy"][0]
    forged = signing.dumps({"key": target["fields"]["key"], "size": 10**9, "type": "image/jpeg"}, salt="wrong-salt")
    for bad in (policy[:-2] + ("AA" if not policy.endswith("AA") else "BB"), forged, ""):
        url = f"{parts.path}?{urlencode({'policy': bad})}"
        assert_api_error(post_raw(url, target["fields"], target["data"]), 403, "UPLOAD_POLICY_INVALID")
    assert not stored(target["fields"]["key"]).exists()


@pytest.mark.parametrize(("minutes_ago", "status"), [(14, 204), (16, 403)])
def test_the_local_endpoint_honours_the_ttl(studio, gallery, staff, monkeypatch, settings, minutes_ago, status):
    assert settings.UPLOAD_URL_TTL_SECONDS == 15 * 60
    issued = int(time.time()) - minutes_ago * 60
    with monkeypatch.context() as patch:
        patch.setattr(signing.TimestampSigner, "timestamp", lambda self: signing.b62_encode(issued))
        response = presign(staff, studio, gallery, [{"filename": "a.jpg", "size": 10, "content_type": "image/jpeg"}])
    upload_target = response.json()["targets"][0]

    sent = post_raw(upload_target["url"], upload_target["fields"], b"\xff\xd8\xff" + b"\x00" * 7)

    if status == 204:
        assert sent.status_code == 204, sent.content
    else:
        error = assert_api_error(sent, 403, "UPLOAD_EXPIRED")
        assert "expired" in error["message"]
        assert not stored(upload_target["fields"]["key"]).exists()


def test_the_local_endpoint_ttl_setting_is_honoured(target, settings):
    settings.UPLOAD_URL_TTL_SECONDS = -1  # every link issued is already too old
    assert_api_error(post_raw(target["url"], target["fields"], target["data"]), 403, "UPLOAD_EXPIRED")


def test_the_local_endpoint_is_single_use(studio, gallery, staff, target, django_capture_on_commit_callbacks):
    assert post_raw(target["url"], target["fields"], target["data"]).status_code == 204
    with django_capture_on_commit_callbacks(execute=True):
        done = staff.post(gallery_url(studio, gallery, f"uploads/{target['batch']}/complete/"), {}, format="json")
    assert done.json()["processing"] == [target["asset"]]
    assert staff.get(gallery_url(studio, gallery, f"assets/{target['asset']}/")).json()["status"] == "ready"

    again = post_raw(target["url"], target["fields"], b"\xff\xd8\xff" + b"\x00" * (len(target["data"]) - 3))
    assert_api_error(again, 409, "UPLOAD_NOT_EXPECTED")
    # What was checked was moved off the one-time key to the original's key.
    original = reload(studio, Asset(pk=target["asset"])).storage_key
    assert stored(original).read_bytes() == target["data"]
    assert not stored(target["fields"]["key"]).exists()


def test_the_local_store_copies_only_the_object_that_was_checked(studio):
    """The embedded default answers a swap like S3: its entity tag changes
    when the file is written again, and a copy naming the old one is
    refused, its target untouched."""
    store = media_store()
    source, target = f"studios/{studio.pk}/up/a.jpg", f"studios/{studio.pk}/originals/a.jpg"
    store.put(source, b"checked", "image/jpeg")
    checked = store.head(source).etag
    assert checked and store.head(source).etag == checked
    time.sleep(0.01)  # a later modification time, even on a coarse clock
    store.put(source, b"swapped", "image/jpeg")
    assert store.head(source).etag != checked
    with pytest.raises(ObjectChanged):
        store.copy(source, target, if_match=checked)
    assert store.head(target) is None
    store.copy(source, target, if_match=store.head(source).etag)
    assert stored(target).read_bytes() == b"swapped"
    store.delete([source])
    with pytest.raises(FileNotFoundError):
        store.copy(source, target, if_match=checked)
    assert stored(target).read_bytes() == b"swapped"


def test_local_upload_targets_follow_the_host_the_client_called(studio, gallery, staff, settings):
    """The embedded default's upload stand-in is on this site: its targets are
    absolute on the host of the request, whatever SITE_URL says (a browser on
    localhost posting to 127.0.0.1 would cross origins, which the page's
    Content-Security-Policy and CORS refuse)."""
    settings.SITE_URL = "http://elsewhere.invalid"
    response = staff.post(
        gallery_url(studio, gallery, "uploads/"),
        {"files": [{"filename": "a.jpg", "size": 1000, "content_type": "image/jpeg"}]},
        format="json",
        HTTP_HOST="localhost",
    )
    assert response.status_code == 201, response.content
    url = response.json()["targets"][0]["url"]
    assert url.startswith("http://localhost/uploads/local/?policy="), url


def test_deleting_a_gallery_reads_its_photos_keys_in_queries_that_do_not_grow_with_them(
    studio, django_capture_on_commit_callbacks
):
    """gallery_delete collects every key of every photo (original, upload
    key, previews): a field left out of its .only() was loaded photo by
    photo, one query each."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts = []
    for photos in (2, 7):
        gallery = factories.gallery(studio)
        for index in range(photos):
            factories.ready_asset(studio, gallery, name=f"p{index}.jpg", data=photo(40, 30, seed=100 + index))
        with (
            CaptureQueriesContext(connection) as queries,
            django_capture_on_commit_callbacks(execute=False),
            context.acting_as(factories.TEST_ACTOR),
            studio_scope(studio),
        ):
            services.gallery_delete(gallery=Gallery.objects.get(pk=gallery.pk))
        counts.append(len(queries))
    assert counts[0] == counts[1], counts
