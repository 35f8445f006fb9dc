"""The staff uploader and the gallery page's panels, in a real browser.

Fifty camera-like JPEGs (1600x1067, grain over gradients, EXIF with a camera
and some rotated by their orientation tag) and one broken JPEG go through
Uppy to the embedded default's presigned-POST stand-in, then `complete`, then
real derivatives (Celery is eager in tests). One file's upload is cut off
by the network until the test lets it through, and is retried from Uppy's
Dashboard. The page must report every photo ready and the broken one failed
with its reason; the database must agree."""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from PIL import Image, ImageDraw

from galleries import services
from galleries.models import Asset, AssetStatus, Gallery
from studio import context
from studio.models import Membership
from studio.roles import Role
from studio.tenancy import studio_scope
from tests import factories

PHOTOS = 50
CUT_OFF = "IMG_0007.jpg"  # its upload fails until the test retries it
BROKEN = "DSC_BROKEN.jpg"
ORIENTATION = 0x0112


def _camera_jpeg(n: int) -> bytes:
    """A photo-like JPEG: a gradient sky and ground, shapes, sensor grain, and
    the EXIF a camera writes (every fifth one rotated by its orientation tag)."""
    rng = random.Random(n)
    width, height = 1600, 1067
    top = tuple(rng.randrange(40, 200) for _ in range(3))
    bottom = tuple(rng.randrange(20, 160) for _ in range(3))
    ramp = Image.linear_gradient("L").resize((width, height))
    image = Image.composite(Image.new("RGB", (width, height), top), Image.new("RGB", (width, height), bottom), ramp)
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y, r = rng.randrange(width), rng.randrange(height), rng.randrange(40, 260)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.randrange(256) for _ in range(3)))
    grain = Image.effect_noise((width, height), 24).convert("RGB")
    image = Image.blend(image, grain, 0.18)
    exif = Image.Exif()
    exif[0x010F] = "Fujifilm"  # Make
    exif[0x0110] = "X-T5"  # Model
    exif[0x0132] = f"2026:05:{1 + n % 28:02d} 14:{n % 60:02d}:00"  # DateTime
    if n % 5 == 0:
        exif[ORIENTATION] = 6  # shot in portrait: rotate 90° clockwise to view
    out = io.BytesIO()
    image.save(out, "JPEG", quality=88, exif=exif.tobytes())
    return out.getvalue()


def _broken_jpeg() -> bytes:
    """Starts like a JPEG (it passes the upload checks) and then stops."""
    return _camera_jpeg(999)[:4096]


@pytest.fixture(scope="module")
def photo_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("card") / "DCIM"
    folder.mkdir()
    paths = []
    for n in range(1, PHOTOS + 1):
        path = folder / f"IMG_{n:04d}.jpg"
        path.write_bytes(_camera_jpeg(n))
        paths.append(path)
    broken = folder / BROKEN
    broken.write_bytes(_broken_jpeg())
    return [*paths, broken]


@pytest.fixture
def staff(transactional_db: Any, settings: Any, live_server: Any) -> Membership:
    # Local upload targets follow the host the page was served from, not
    # SITE_URL: a SITE_URL on another origin must not break the uploader.
    settings.SITE_URL = "http://elsewhere.invalid"
    studio = factories.studio("Lumen Studio")
    return factories.member(studio, Role.ASSISTANT)


def _sign_in(page: Any, membership: Membership, live_server: Any) -> None:
    client = Client()
    client.force_login(membership.user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    page.context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": live_server.url}])


def _upload_url(live_server: Any, gallery: Gallery) -> str:
    return live_server.url + reverse("admin:galleries_gallery_upload", args=[gallery.pk])


def _assets(gallery: Gallery) -> list[Asset]:
    with studio_scope(gallery.studio):
        return list(Asset.objects.filter(gallery=gallery))


def test_staff_upload_of_fifty_photos_until_ready(
    page: Any, live_server: Any, staff: Membership, photo_files: list[Path], shot: Callable, axe: Callable
) -> None:
    gallery = factories.gallery(staff.studio, title="Harbour Wedding", client_name="Mia")
    _sign_in(page, staff, live_server)

    # The network drops one file's upload until the test lets it through.
    cut_off = {"active": True, "attempts": 0}

    def storage(route: Any) -> None:
        if cut_off["active"] and f'filename="{CUT_OFF}"'.encode() in (route.request.post_data_buffer or b""):
            cut_off["attempts"] += 1
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/uploads/local/**", storage)
    # Expected while the file is cut off: the browser's failed request and Uppy's log of it.
    page.expect_console_errors(r"net::ERR_CONNECTION_RESET|network error")

    page.goto(_upload_url(live_server, gallery))
    page.locator(".uppy-Dashboard-inner").wait_for()
    assert page.title().startswith("Harbour Wedding")
    assert not axe(page), axe(page)

    page.locator("input.uppy-Dashboard-input").first.set_input_files([str(p) for p in photo_files])
    page.get_by_role("button", name=f"Upload {PHOTOS + 1} files").click()

    # Uploads run a few at a time with per-file progress; the cut-off file
    # fails after Uppy's own retries and is offered a retry.
    retry = page.locator(".uppy-StatusBar-actionBtn--retry")
    retry.wait_for(timeout=120_000)
    assert cut_off["attempts"] >= 2  # Uppy retried network errors by itself first
    with studio_scope(gallery.studio):
        waiting = Asset.objects.get(gallery=gallery, original_filename=CUT_OFF)
    assert waiting.status == AssetStatus.AWAITING_UPLOAD
    shot(page, "staff-upload-retry")

    cut_off["active"] = False
    retry.click()

    status = page.locator("#processing-status")
    page.locator('#processing[data-state="done"]').wait_for(timeout=180_000)
    assert status.inner_text() == f"Done: {PHOTOS} photos ready, 1 could not be used (reasons below)."
    failed = page.locator("#processing-failed-list li")
    assert failed.count() == 1
    assert failed.first.inner_text().startswith(f"{BROKEN}: ")

    assets = _assets(gallery)
    ready = [a for a in assets if a.status == AssetStatus.READY]
    broken = [a for a in assets if a.status == AssetStatus.FAILED]
    assert len(ready) == PHOTOS and len(assets) == PHOTOS + 1
    assert {a.original_filename for a in ready} == {p.name for p in photo_files if p.name != BROKEN}
    assert all({"thumb", "medium", "large"} <= set(a.derivatives) for a in ready)
    assert [a.original_filename for a in broken] == [BROKEN]
    assert broken[0].failure_reason and broken[0].failure_reason in failed.first.inner_text()
    rotated = next(a for a in ready if a.original_filename == "IMG_0005.jpg")
    assert (rotated.width, rotated.height) == (1067, 1600)  # the orientation tag was applied

    page.locator("#processing").scroll_into_view_if_needed()
    shot(page, "staff-upload")
    assert not axe(page), axe(page)


def test_upload_warns_before_leaving_while_files_are_on_their_way(
    page: Any, live_server: Any, staff: Membership, photo_files: list[Path]
) -> None:
    gallery = factories.gallery(staff.studio, title="Slow Line")
    _sign_in(page, staff, live_server)
    held: list[Any] = []
    page.route("**/uploads/local/**", lambda route: held.append(route))  # never answered: uploads stay running
    page.goto(_upload_url(live_server, gallery))
    page.locator("input.uppy-Dashboard-input").first.set_input_files([str(photo_files[0])])
    page.get_by_role("button", name="Upload 1 file").click()
    page.wait_for_function("() => Object.keys(window.galleryUploader.getState().currentUploads).length > 0")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.type), dialog.dismiss()))
    page.evaluate("() => { window.location.href = '/admin/'; }")
    page.wait_for_timeout(500)
    assert dialogs == ["beforeunload"]
    assert page.url.endswith("/upload/")


def test_upload_page_on_a_phone(
    mobile_page: Any, live_server: Any, staff: Membership, shot: Callable, axe: Callable
) -> None:
    gallery = factories.gallery(staff.studio, title="Beach Portraits")
    _sign_in(mobile_page, staff, live_server)
    mobile_page.goto(_upload_url(live_server, gallery))
    mobile_page.locator(".uppy-Dashboard-inner").wait_for()
    width = mobile_page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 375, f"the page scrolls sideways ({width}px)"
    shot(mobile_page, "staff-upload")
    assert not axe(mobile_page), axe(mobile_page)


# Records the page's own CSP violations, to tell them from those of tools run later.
VIOLATIONS = (
    "window.cspViolations = [];"
    "document.addEventListener('securitypolicyviolation',"
    " (e) => window.cspViolations.push(`${e.violatedDirective} ${e.sourceFile}:${e.lineNumber}`));"
)


def _chosen_gallery(staff: Membership) -> Gallery:
    studio = staff.studio
    gallery = factories.gallery(studio, title="Autumn Family", client_name="The Novaks", pin="2468", selection_limit=10)
    photos = [factories.ready_asset(studio, gallery, name=f"IMG_{n:04d}.jpg") for n in range(1, 9)]
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        services.gallery_publish(gallery=gallery)
        visitor = factories.visitor(studio, gallery)
        services.ratings_set(
            gallery=gallery, visitor=visitor, ratings=[(p, 1 + i % 5) for i, p in enumerate(photos[:6])]
        )
        album = services.folder_create(gallery=gallery, name="Album", visitor=visitor)
        services.placements_add(folder=album, assets=photos[2:7], visitor=visitor)
        services.selection_finalize(gallery=gallery, visitor=visitor)
    return gallery


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_share_and_selection_panels(
    request: Any, size: str, live_server: Any, staff: Membership, shot: Callable, axe: Callable, settings: Any
) -> None:
    page = request.getfixturevalue("page" if size == "desktop" else "mobile_page")
    gallery = _chosen_gallery(staff)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page.add_init_script(VIOLATIONS)
    _sign_in(page, staff, live_server)
    page.goto(live_server.url + reverse("admin:galleries_gallery_change", args=[gallery.pk]))

    share = page.locator("#share-panel")
    share.scroll_into_view_if_needed()
    assert gallery.access_code in share.locator("#share-code").inner_text()
    link = share.locator("#share-link").inner_text()
    # The link is for the client: on SITE_URL, the site's public address.
    assert link == f"{settings.SITE_URL.rstrip('/')}/s/{staff.studio.slug}/g/{gallery.access_code}/"
    page.get_by_role("button", name="Copy message for the client").click()
    page.get_by_text("Copied: paste it into your email or chat.").wait_for()
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert copied.startswith("Hello The Novaks,") and link in copied and "PIN" in copied
    shot(page, "staff-share")

    selection = page.locator("#selection-panel")
    selection.scroll_into_view_if_needed()
    assert "Finalised" in selection.locator(".staff-selection-state").inner_text()
    assert selection.locator(".staff-chosen-photo").count() == 7
    thumbs = selection.locator("img.admin-thumb")
    assert thumbs.count() == 7
    thumbs.last.scroll_into_view_if_needed()
    page.wait_for_function(
        "() => [...document.querySelectorAll('#selection-panel img.admin-thumb')]"
        ".every((img) => img.complete && img.naturalWidth > 0)"
    )
    selection.scroll_into_view_if_needed()
    shot(page, "staff-selection")
    assert page.evaluate("window.cspViolations") == [], "the page itself broke its CSP"
    # axe-core's own checks add <style> elements on this page (the admin's
    # form); the CSP refuses them and Chrome says so on the console. They
    # are axe's, not the page's: the page was checked clean just above.
    page.expect_console_errors(r"Applying inline style violates .*'style-src 'self''")
    assert not axe(page), axe(page)
    assert page.get_by_role("link", name="Upload photos").is_visible()
