"""The media pipeline never loses an original and never leaves a photo stuck.

Camera-sized images in every EXIF orientation and format, headers that lie
(with the decoder's peak memory measured in a separate process), odd EXIF
values, errors of ours at the task boundary, the sweeper's limits, checksums
announced and recorded, colour marked only in EXIF, HEIC from phones, and
TIFFs we cannot read.
"""

from __future__ import annotations

import io
import json
import math
import struct
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pillow_heif
import pytest
from django.core.files.storage import default_storage
from django.utils import timezone
from PIL import ExifTags, Image, ImageOps

from galleries import imaging, selectors, services, tasks
from galleries.models import Asset, AssetStatus
from galleries.storage import media_store
from studio.tenancy import studio_scope
from tests import factories
from tests.test_galleries_pipeline import encode, in_studio, process, reload, stored_asset

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def gallery(studio):
    return factories.gallery(studio)


# --- every orientation, camera-sized -------------------------------------------------------------------


def quadrants(width: int, height: int, fmt: str, orientation: int) -> bytes:
    """Four coloured quadrants (red, green / blue, white) at camera size, with
    an EXIF orientation: where each colour ends up shows the transform."""
    image = Image.new("RGB", (width, height), (255, 255, 255))
    image.paste((255, 0, 0), (0, 0, width // 2, height // 2))
    image.paste((0, 255, 0), (width // 2, 0, width, height // 2))
    image.paste((0, 0, 255), (0, height // 2, width // 2, height))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    return encode(image, fmt, exif=exif.tobytes(), **({"quality": 90} if fmt == "JPEG" else {}))


def colours_at_quadrants(image: Image.Image) -> list[tuple[int, ...]]:
    rgb = image.convert("RGB")
    w, h = rgb.size
    return [
        tuple(round(v / 85) for v in rgb.getpixel((x, y)))
        for x, y in ((w // 4, h // 4), (3 * w // 4, h // 4), (w // 4, 3 * h // 4), (3 * w // 4, 3 * h // 4))
    ]


FORMATS = {"JPEG": ("jpg", "image/jpeg"), "PNG": ("png", "image/png"), "TIFF": ("tif", "image/tiff")}


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_orientation_of_a_camera_sized_photo_is_made_upright(studio, gallery, fmt, orientation):
    """Before, orientations 3 and 4 (upside down, flipped) of a 3000x2000
    photo failed as "damaged" and lost the original: sequential decoding
    cannot read a file bottom-up. The suite's 300x200 sample hid it."""
    data = quadrants(3000, 2000, fmt, orientation)
    extension, content_type = FORMATS[fmt]
    asset = process(
        studio, stored_asset(studio, gallery, data, name=f"o{orientation}.{extension}", content_type=content_type)
    )

    assert asset.status == AssetStatus.READY, asset.failure_reason
    expected = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    assert (asset.width, asset.height) == expected.size
    with default_storage.open(asset.derivatives["large"]["key"]) as fh, Image.open(fh) as large:
        assert colours_at_quadrants(large) == colours_at_quadrants(expected)
        assert large.size == ((2048, 1365) if expected.width > expected.height else (1365, 2048))


@pytest.mark.parametrize("orientation", [3, 6])
def test_a_24_megapixel_photo_turned_upside_down_or_sideways(studio, gallery, orientation):
    data = quadrants(6000, 4000, "JPEG", orientation)
    asset = process(studio, stored_asset(studio, gallery, data, name="big.jpg"))
    assert asset.status == AssetStatus.READY, asset.failure_reason
    assert asset.derivatives["large"]["width"] == (2048 if orientation == 3 else 1365)


def raw_exif(
    ifd0: list[tuple[int, int, int, bytes]],
    exif_ifd: list[tuple[int, int, int, bytes]] = (),
    interop: list[tuple[int, int, int, bytes]] = (),
) -> bytes:  # noqa: E501
    """EXIF bytes written by hand (big-endian TIFF), for values Pillow will
    not write: a text Orientation, an Interop IFD. Entries are (tag, type,
    count, value of at most 4 bytes)."""

    def ifd(entries: list[tuple[int, int, int, bytes]], offset: int, pointers: dict[int, int]) -> bytes:
        body = struct.pack(">H", len(entries))
        for tag, kind, count, value in entries:
            if tag in pointers:
                value = struct.pack(">I", pointers[tag])
            body += struct.pack(">HHI", tag, kind, count) + value.ljust(4, b"\0")
        return body + struct.pack(">I", 0)

    size = lambda entries: 2 + 12 * len(entries) + 4  # noqa: E731
    exif_entries = list(exif_ifd) + ([(0xA005, 4, 1, b"")] if interop else [])
    ifd0_entries = list(ifd0) + ([(0x8769, 4, 1, b"")] if exif_entries else [])
    exif_at = 8 + size(ifd0_entries)
    interop_at = exif_at + size(exif_entries)
    data = b"MM\0*" + struct.pack(">I", 8)
    data += ifd(ifd0_entries, 8, {0x8769: exif_at})
    if exif_entries:
        data += ifd(exif_entries, exif_at, {0xA005: interop_at})
    if interop:
        data += ifd(list(interop), interop_at, {})
    return b"Exif\0\0" + data


SHORT, ASCII = 3, 2


@pytest.mark.parametrize(
    "entry",
    [
        (ASCII, 2, b"6\0"),
        (ASCII, 4, b"up\0\0"),
        (SHORT, 1, struct.pack(">H", 0)),
        (SHORT, 1, struct.pack(">H", 9)),
        (SHORT, 1, struct.pack(">H", 65535)),
    ],
    ids=["text-6", "text", "zero", "nine", "65535"],
)
def test_odd_exif_orientation_values_give_an_upright_ready_photo(studio, gallery, entry):
    """Text raised ValueError outside the guard (stuck processing), and 65535
    overflowed the column on PostgreSQL after the derivatives were written."""
    image = Image.new("RGB", (640, 480), (20, 120, 220))
    exif = raw_exif([(0x0112, *entry)])
    asset = process(studio, stored_asset(studio, gallery, encode(image, "JPEG", exif=exif)))
    assert asset.status == AssetStatus.READY, asset.failure_reason
    assert (asset.width, asset.height, asset.orientation) == (640, 480, 1)


# --- headers that lie, and memory -----------------------------------------------------------------------


def liar(width: int, height: int, *, progressive: bool) -> bytes:
    """A 64x64 JPEG whose frame header claims width x height."""
    image = Image.new("RGB", (64, 64), (200, 30, 30))
    for x in range(0, 64, 8):
        image.paste((x * 4, 255 - x * 4, 100), (x, 0, x + 4, 64))
    data = encode(image, "JPEG", quality=85, progressive=progressive)
    sof = data.find(b"\xff\xc2" if progressive else b"\xff\xc0")
    return data[: sof + 5] + struct.pack(">HH", height, width) + data[sof + 9 :]


def decode_in_a_fresh_process(path: Path, **limits: int) -> dict[str, Any]:
    """make_derivatives in a new Python process: its peak memory is its own.
    (VmHWM, not ru_maxrss: that one carries the forking parent's peak over.)"""
    script = f"""
import json, re, sys
sys.path.insert(0, {str(ROOT)!r})
from galleries import imaging
try:
    info, derivatives = imaging.make_derivatives(
        {str(path)!r}, filename={path.name!r}, max_pixels=100_000_000, **{limits!r}
    )
    outcome = {{"ready": [d.width for d in derivatives]}}
except imaging.ImageRejected as exc:
    outcome = {{"rejected": exc.reason}}
status = open("/proc/self/status").read()
outcome["peak_mb"] = int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) / 1024
print(json.dumps(outcome))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
def test_a_jpeg_whose_header_lies_is_refused_before_it_costs_memory(tmp_path, progressive):
    """Before: accepted as a flat grey 10000x10000 photo, and the 2 KB
    progressive one took about 0.9 GB to decode."""
    path = tmp_path / "liar.jpg"
    path.write_bytes(liar(10_000, 10_000, progressive=progressive))
    assert path.stat().st_size < 2048
    outcome = decode_in_a_fresh_process(path)
    assert "too small" in outcome.get("rejected", ""), outcome
    assert outcome["peak_mb"] < 150, outcome  # Python, Pillow and libvips loaded, nothing decoded


def test_data_that_ends_before_the_frame_does_is_refused_even_when_the_header_is_plausible(studio, gallery):
    """A claim small enough to pass the size bound still ends early: the
    decoder's "premature end" is a refusal, not grey padding."""
    asset = process(studio, stored_asset(studio, gallery, liar(300, 300, progressive=False), name="short.jpg"))
    assert asset.status == AssetStatus.FAILED
    assert "truncated" in asset.failure_reason


def test_decode_memory_is_capped_per_photo(tmp_path, settings):
    path = tmp_path / "big.png"
    Image.new("RGB", (4000, 3000), (1, 2, 3)).save(path)  # 36 MB decoded
    outcome = decode_in_a_fresh_process(path, max_decode_bytes=20 * 2**20)
    assert "needs about 34 MB" in outcome["rejected"] and "20 MB allowed" in outcome["rejected"]
    assert decode_in_a_fresh_process(path, max_decode_bytes=64 * 2**20)["ready"] == [2048, 1024, 400]


def test_the_decode_memory_estimate_of_a_progressive_jpeg_is_its_coefficients():
    frame = imaging.JpegFrame(6000, 4000, progressive=True, arithmetic=False, components=((2, 2), (1, 1), (1, 1)))
    assert frame.blocks == 750 * 500 + 2 * 375 * 250  # 4:2:0
    info = imaging.ImageInfo("JPEG", 6000, 4000, 1, None)
    assert imaging.decode_bytes(info, frame=frame) == frame.blocks * 128


def test_the_web_process_never_decodes_when_a_broker_takes_the_work(
    studio, gallery, owner, client_for, settings, monkeypatch
):
    """With a broker (not the embedded default's eager tasks), complete only
    sniffs 16 bytes: decoding happens in workers."""
    from tests.gallery_helpers import jpeg, upload

    def no_decoding(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("decoded in the web process")

    monkeypatch.setattr(imaging, "make_derivatives", no_decoding)
    monkeypatch.setattr(imaging, "decode", no_decoding)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = "memory://"
    from tests.test_side_effects import _reset_broker_pools

    _reset_broker_pools()
    try:
        done = upload(client_for(owner), studio, gallery, [("a.jpg", jpeg(), "image/jpeg")])
    finally:
        _reset_broker_pools()
    assert len(done["processing"]) == 1


# --- every error ends as failed, with a reason ------------------------------------------------------------


def test_an_error_of_ours_fails_the_photo_with_a_reason_and_keeps_the_original(studio, gallery, monkeypatch):
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(imaging, "make_derivatives", broken)
    asset = process(studio, stored_asset(studio, gallery, quadrants(640, 480, "JPEG", 1)))
    assert asset.status == AssetStatus.FAILED
    assert "on our side" in asset.failure_reason and str(asset.pk) in asset.failure_reason
    assert default_storage.exists(asset.storage_key)


def test_running_out_of_time_fails_the_photo(studio, gallery, monkeypatch):
    from celery.exceptions import SoftTimeLimitExceeded

    def slow(*args: Any, **kwargs: Any) -> None:
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(imaging, "make_derivatives", slow)
    asset = process(studio, stored_asset(studio, gallery, quadrants(640, 480, "JPEG", 1)))
    assert (asset.status, "too long" in asset.failure_reason) == (AssetStatus.FAILED, True)


def test_a_database_error_after_the_derivatives_were_written_leaves_no_orphans(
    studio, gallery, monkeypatch, django_capture_on_commit_callbacks
):
    """The orientation overflow on PostgreSQL happened here: derivatives
    written, then the save refused. Any such error now fails the photo and
    deletes what was written."""
    from django.db import DataError

    real_save = Asset.save

    def refused(self: Asset, *args: Any, **kwargs: Any) -> None:
        if self.status == AssetStatus.READY:
            raise DataError("smallint out of range")
        real_save(self, *args, **kwargs)

    monkeypatch.setattr(Asset, "save", refused)
    asset = stored_asset(studio, gallery, quadrants(640, 480, "JPEG", 1))
    with django_capture_on_commit_callbacks(execute=True):
        asset = process(studio, asset)
    assert asset.status == AssetStatus.FAILED
    derivatives = f"studios/{studio.pk}/galleries/{gallery.pk}/derivatives/{asset.pk}"
    assert not default_storage.exists(f"{derivatives}/large.webp")
    assert default_storage.exists(asset.storage_key)


def test_complete_answers_200_on_the_embedded_default_when_the_task_fails_after_commit(
    studio, gallery, owner, client_for, monkeypatch
):
    """Eager tasks run on commit in the web process: an exception there used
    to turn a committed complete into a 500."""
    from tests.gallery_helpers import jpeg, upload

    def explode(*args: Any, **kwargs: Any) -> None:
        raise KeyError("unexpected")

    monkeypatch.setattr(services, "asset_process", explode)
    monkeypatch.setattr(tasks.services, "asset_process", explode)
    done = upload(client_for(owner), studio, gallery, [("a.jpg", jpeg(), "image/jpeg")])
    assert len(done["processing"]) == 1


# --- the sweeper ----------------------------------------------------------------------------------------


def _processing(studio: Any, gallery: Any, **fields: Any) -> Asset:
    asset = stored_asset(studio, gallery, quadrants(320, 240, "JPEG", 1), name=f"{len(fields)}-{id(fields)}.jpg")
    with studio_scope(studio):
        Asset.objects.filter(pk=asset.pk).update(**fields)
    return reload(studio, asset)


def test_the_sweeper_finds_lost_and_dead_jobs_but_not_waiting_or_running_ones(studio, gallery, settings):
    now = timezone.now()
    hour = timedelta(seconds=settings.DERIVATIVES_STUCK_AFTER_SECONDS)
    limit = timedelta(seconds=settings.DERIVATIVE_TIME_LIMIT)
    never_queued = _processing(studio, gallery, derivatives_queued_at=None, updated_at=now - timedelta(minutes=5))
    lost = _processing(studio, gallery, derivatives_queued_at=now - hour - timedelta(minutes=1))
    died = _processing(
        studio,
        gallery,
        derivatives_queued_at=now - limit - timedelta(minutes=5),
        processing_started_at=now - limit - timedelta(minutes=4),
    )
    waiting = _processing(studio, gallery, derivatives_queued_at=now - timedelta(minutes=20))
    running = _processing(
        studio,
        gallery,
        derivatives_queued_at=now - timedelta(minutes=3),
        processing_started_at=now - timedelta(minutes=2),
    )
    fresh = _processing(studio, gallery, derivatives_queued_at=None, updated_at=now)
    found = {pk for _, pk, _ in selectors.stuck_assets()}
    assert found == {never_queued.pk, lost.pk, died.pk}
    assert not found & {waiting.pk, running.pk, fresh.pk}


def test_the_sweeper_gives_up_after_its_limit_with_the_reason(studio, gallery, settings, monkeypatch):
    """A photo whose worker dies every time (out of memory, say) is queued
    again DERIVATIVE_MAX_SWEEPS times, then failed: never processing for ever."""
    queued: list[str] = []
    monkeypatch.setattr(tasks, "enqueue", lambda task, *args, **kw: queued.append(args[1]) or True)
    long_ago = timezone.now() - timedelta(hours=3)
    asset = _processing(
        studio, gallery, derivatives_queued_at=long_ago, updated_at=long_ago, failure_reason="Waiting for storage: x"
    )
    for sweep in range(settings.DERIVATIVE_MAX_SWEEPS):
        assert tasks.sweep_stuck_assets() == 1
        with studio_scope(studio):
            Asset.objects.filter(pk=asset.pk).update(derivatives_queued_at=long_ago)  # lost again
        assert reload(studio, asset).sweeps == sweep + 1
    assert tasks.sweep_stuck_assets() == 0
    failed = reload(studio, asset)
    assert failed.status == AssetStatus.FAILED
    assert "did not finish after 4 attempts" in failed.failure_reason and "Waiting for storage" in failed.failure_reason
    assert queued == [str(asset.pk)] * settings.DERIVATIVE_MAX_SWEEPS


# --- what was checked is what gets processed ------------------------------------------------------------------


def test_a_file_that_is_not_the_announced_one_fails_on_its_checksum(
    studio, gallery, owner, client_for, django_capture_on_commit_callbacks
):
    import hashlib

    from tests.gallery_helpers import gallery_url, jpeg, post_to_target

    announced = jpeg(320, 240)
    middle = len(announced) // 2
    sent = announced[:middle] + bytes([announced[middle] ^ 0x01]) + announced[middle + 1 :]  # same size
    staff = client_for(owner)
    body = staff.post(
        gallery_url(studio, gallery, "uploads/"),
        {
            "files": [
                {
                    "filename": "a.jpg",
                    "size": len(sent),
                    "content_type": "image/jpeg",
                    "sha256": hashlib.sha256(announced).hexdigest(),
                }
            ]
        },
        format="json",
    ).json()
    post_to_target(body["targets"][0], sent)
    with django_capture_on_commit_callbacks(execute=True):
        staff.post(gallery_url(studio, gallery, f"uploads/{body['batch']}/complete/"), {}, format="json")
    asset = reload(studio, Asset(pk=body["targets"][0]["asset"]))
    assert asset.status == AssetStatus.FAILED and "SHA-256" in asset.failure_reason


def test_an_original_changed_in_storage_after_processing_is_not_reprocessed(studio, gallery):
    asset = process(studio, stored_asset(studio, gallery, quadrants(320, 240, "JPEG", 1)))
    assert asset.status == AssetStatus.READY
    with in_studio(studio):
        media_store().put(asset.storage_key, quadrants(320, 240, "JPEG", 3), "image/jpeg")
    again = process(studio, asset, force=True)
    assert again.status == AssetStatus.FAILED and "changed in storage" in again.failure_reason


# --- colour ----------------------------------------------------------------------------------------------


def _adobe_to_srgb(rgb: tuple[int, int, int]) -> tuple[int, ...]:
    """Independent of our ICC profile: the published matrices (Lindbloom)."""
    to_xyz = [[0.5767309, 0.1855540, 0.1881852], [0.2973769, 0.6273491, 0.0752741], [0.0270343, 0.0706872, 0.9911085]]
    to_srgb = [
        [3.2404542, -1.5371385, -0.4985314],
        [-0.9692660, 1.8760108, 0.0415560],
        [0.0556434, -0.2040259, 1.0572252],
    ]
    linear = [(v / 255) ** (563 / 256) for v in rgb]
    xyz = [sum(to_xyz[i][k] * linear[k] for k in range(3)) for i in range(3)]
    out = [sum(to_srgb[i][k] * xyz[k] for k in range(3)) for i in range(3)]

    def encode_srgb(v: float) -> int:
        v = min(max(v, 0.0), 1.0)
        return round(255 * (12.92 * v if v <= 0.0031308 else 1.055 * v ** (1 / 2.4) - 0.055))

    return tuple(encode_srgb(v) for v in out)


def _adobe_in_exif_only(rgb: tuple[int, int, int], *, marked: bool) -> bytes:
    """ColorSpace (0xA001) uncalibrated and InteroperabilityIndex "R03", no
    ICC profile: how DCF cameras mark Adobe RGB."""
    colour_space = struct.pack(">H", 0xFFFF if marked else 1)
    exif = raw_exif([], [(0xA001, SHORT, 1, colour_space)], [(0x0001, ASCII, 4, b"R03\0" if marked else b"R98\0")])
    return encode(Image.new("RGB", (600, 400), rgb), "JPEG", quality=98, subsampling=0, exif=exif)


def test_adobe_rgb_marked_only_in_exif_is_converted_to_srgb(studio, gallery):
    """As many cameras write it: ColorSpace uncalibrated, interop index R03,
    no profile. Before, read as sRGB: up to about 50 levels off."""
    colour = (100, 150, 200)
    expected = _adobe_to_srgb(colour)
    assert max(abs(a - b) for a, b in zip(expected, colour, strict=True)) > 30  # the difference is visible
    marked = process(studio, stored_asset(studio, gallery, _adobe_in_exif_only(colour, marked=True), name="a.jpg"))
    plain = process(
        studio, stored_asset(studio, factories.gallery(studio), _adobe_in_exif_only(colour, marked=False), name="b.jpg")
    )
    for asset, want in ((marked, expected), (plain, colour)):
        with default_storage.open(asset.derivatives["medium"]["key"]) as fh, Image.open(fh) as image:
            got = image.convert("RGB").getpixel((300, 200))
        assert max(abs(a - b) for a, b in zip(got, want, strict=True)) <= 3, (asset.original_filename, got, want)


def test_the_adobe_rgb_profile_agrees_with_the_published_matrices():
    from PIL import ImageCms

    from galleries.colour import adobe_rgb_profile

    profile = ImageCms.ImageCmsProfile(io.BytesIO(adobe_rgb_profile()))
    transform = ImageCms.buildTransform(profile, ImageCms.createProfile("sRGB"), "RGB", "RGB", renderingIntent=1)
    for colour in ((100, 150, 200), (30, 200, 60), (240, 20, 20), (128, 128, 128)):
        got = ImageCms.applyTransform(Image.new("RGB", (1, 1), colour), transform).getpixel((0, 0))
        assert max(abs(a - b) for a, b in zip(got, _adobe_to_srgb(colour), strict=True)) <= 2, colour
    assert math.isclose(563 / 256, 2.19921875)


# --- HEIC from phones, TIFFs we cannot read ----------------------------------------------------------------------


def heic(width: int, height: int, *, orientation: int = 1) -> bytes:
    image = Image.new("RGB", (width, height), (200, 40, 40))
    image.paste((20, 200, 20), (0, 0, width // 2, height // 2))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    out = io.BytesIO()
    pillow_heif.from_pillow(image).save(out, quality=80, exif=exif.tobytes())
    return out.getvalue()


def test_heic_from_a_phone_is_accepted_and_processed(
    studio, gallery, owner, client_for, django_capture_on_commit_callbacks
):
    """Before, HEIC was refused at upload. The bundled libvips has no HEVC
    decoder; pillow-heif (libheif with libde265) decodes it."""
    from tests.gallery_helpers import upload

    data = heic(1200, 900, orientation=6)
    with django_capture_on_commit_callbacks(execute=True):
        done = upload(client_for(owner), studio, gallery, [("IMG_0042.HEIC", data, "image/heic")])
    assert len(done["processing"]) == 1, done
    asset = reload(studio, Asset(pk=done["processing"][0]))
    assert asset.status == AssetStatus.READY, asset.failure_reason
    with default_storage.open(asset.derivatives["large"]["key"]) as fh, Image.open(fh) as large:
        assert large.size == (asset.width, asset.height)
        # libheif applies the file's rotation; the green corner says where "up" is.
        reference = pillow_heif.open_heif(io.BytesIO(data)).to_pillow()
        assert colours_at_quadrants(large) == colours_at_quadrants(reference)


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (
            lambda path: __import__("pyvips").Image.black(300, 200, bands=3).cast("float").tiffsave(path),
            "Floating-point",
        ),
        (
            lambda path: (__import__("pyvips").Image.black(300, 200, bands=5) + 9).cast("uchar").tiffsave(path),
            "5 channels",
        ),
    ],
    ids=["float", "five-channel"],
)
def test_tiffs_we_cannot_read_say_unsupported_not_damaged(studio, gallery, tmp_path, make, words):
    path = tmp_path / "scan.tif"
    make(str(path))
    asset = process(
        studio, stored_asset(studio, gallery, path.read_bytes(), name="scan.tif", content_type="image/tiff")
    )
    assert asset.status == AssetStatus.FAILED
    assert words in asset.failure_reason and "not supported" in asset.failure_reason
    assert "damaged" not in asset.failure_reason


def test_heic_can_be_turned_off_and_then_says_so_at_upload(studio, gallery, owner, client_for, settings):
    from tests.gallery_helpers import gallery_url

    settings.UPLOAD_ACCEPT_HEIC = False
    body = (
        client_for(owner)
        .post(
            gallery_url(studio, gallery, "uploads/"),
            {"files": [{"filename": "IMG_1.HEIC", "size": 1000, "content_type": "image/heic"}]},
            format="json",
        )
        .json()
    )
    assert body["targets"] == []
    assert "HEIC photos are not supported here" in body["rejected"][0]["reason"]
