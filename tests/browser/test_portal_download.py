"""The portal's Download button in a real browser: the client asks for a ZIP,
follows it being prepared, downloads it, cancels one, and finds a running
one again after a reload; the sizes offered follow the gallery's download
permission, and a gallery without downloads shows no button.

Celery is eager in tests, so an export would be built inside the request
that asks for it. To see the queue move on screen, some tests hold the run
back (as if the broker had not picked it up yet) and then run it themselves
while the page polls."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable
from typing import Any

import pytest

from galleries import services
from galleries.models import Export, ExportStatus, Gallery
from galleries.services import exports as export_services
from studio.tenancy import studio_scope
from tests import factories
from tests.browser.test_portal_gallery import COLOURS, Portal, _open, _staff, _until
from tests.gallery_helpers import jpeg

pytestmark = pytest.mark.django_db(transaction=True)

PHOTOS = 4


def _portal(live_server: Any, download_permission: str) -> Portal:
    studio = factories.studio(name="Lumen Studio")
    gallery = factories.gallery(
        studio, title="Harbour Wedding", client_name="Mia", download_permission=download_permission
    )
    assets = [
        factories.ready_asset(studio, gallery, name=f"IMG_{i:04d}.jpg", data=jpeg(640, 480, colour=COLOURS[i % 6]))
        for i in range(1, PHOTOS + 1)
    ]
    with _staff(studio):
        services.gallery_publish(gallery=gallery)
        folder = services.folder_create(gallery=gallery, name="Ceremony")
        services.placements_add(folder=folder, assets=assets[:2])
    return Portal(
        gallery=gallery, assets=assets, url=f"{live_server.url}/g/{gallery.access_code}/", staff_folder=folder
    )


@pytest.fixture
def web_portal(live_server: Any) -> Portal:
    return _portal(live_server, "web")


@pytest.fixture
def held_runs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Exports asked for stay queued (the broker "did not take" the run);
    the test runs them with run()."""
    held: list[str] = []

    def hold(task: Any, studio_id: str, export_id: str) -> bool:
        held.append(export_id)
        return False

    monkeypatch.setattr(export_services, "enqueue", hold)
    return held


def _exports(gallery: Gallery) -> list[Export]:
    with studio_scope(gallery.studio):
        return list(Export.objects.filter(gallery=gallery).order_by("created_at"))


def _run(gallery: Gallery, export_id: str) -> Export:
    with studio_scope(gallery.studio):
        export_services.export_run(export_id=export_id)
        return Export.objects.get(pk=export_id)


def _open_dialog(page: Any) -> Any:
    page.get_by_role("button", name="Download photos").click()
    dialog = page.get_by_role("dialog", name="Download photos")
    dialog.wait_for()
    return dialog


def test_a_zip_of_the_gallery_is_prepared_followed_and_downloaded(
    page: Any, web_portal: Portal, live_server: Any, held_runs: list[str], shot: Callable, axe: Callable
) -> None:
    _open(page, web_portal, live_server)
    dialog = _open_dialog(page)
    # Web-only gallery: the size is offered, originals are not.
    assert dialog.get_by_role("radio", name="Web size").is_checked()
    assert dialog.get_by_role("radio", name="Originals").count() == 0
    assert dialog.get_by_role("radio", name="The whole gallery").is_checked()
    # Focus moved into the dialog.
    assert page.evaluate("document.activeElement.closest('dialog') !== null")

    dialog.get_by_role("button", name="Prepare ZIP").click()
    item = dialog.locator(".pg-download").first
    item.locator(".pg-download-status", has_text="Waiting to start").wait_for()
    [export] = _exports(web_portal.gallery)
    assert (export.kind, export.scope, export.size, export.status) == ("zip", "gallery", "web", "queued")
    assert export.requested_by_visitor == web_portal.visitor()
    assert held_runs == [str(export.pk)]

    # The worker picks it up and reports progress: the page follows by polling.
    with studio_scope(web_portal.gallery.studio):
        Export.objects.filter(pk=export.pk).update(status=ExportStatus.RUNNING, progress=40)
    item.locator(".pg-download-status", has_text="Preparing… 40%").wait_for()
    assert item.locator("progress").get_attribute("value") == "40"
    with studio_scope(web_portal.gallery.studio):
        Export.objects.filter(pk=export.pk).update(status=ExportStatus.QUEUED, progress=0)  # let run() claim it
    assert _run(web_portal.gallery, str(export.pk)).status == ExportStatus.DONE

    link = dialog.get_by_role("link", name=re.compile(r"^Download ZIP .*: the whole gallery \(web size\)$"))
    link.wait_for()
    assert link.get_attribute("download") == "harbour-wedding-web.zip"
    _until(page, "document.querySelector('[data-role=download-status]').textContent.includes('ready to download')")
    assert page.get_by_role("button", name="Download photos").locator(".pg-download-badge").is_hidden()
    shot(page, "portal-download")
    assert not axe(page), axe(page)

    with page.expect_download() as info:
        link.click()
    download = info.value
    assert download.suggested_filename == "harbour-wedding-web.zip"
    with zipfile.ZipFile(download.path()) as archive:
        names = sorted(archive.namelist())
        assert names == [f"IMG_{i:04d}.webp" for i in range(1, PHOTOS + 1)]
        assert all(archive.read(name)[8:12] == b"WEBP" for name in names)  # the 2048 px derivatives

    # Closing gives focus back to the button that opened the dialog.
    dialog.get_by_role("button", name="Close").click()
    assert page.evaluate("document.activeElement.dataset.role") == "download-button"


def test_an_export_done_within_the_request_shows_its_link_at_once(
    page: Any, web_portal: Portal, live_server: Any
) -> None:
    """Eager Celery (the embedded default): the POST answers "done"."""
    _open(page, web_portal, live_server, "#folder-" + str(web_portal.staff_folder.pk))
    page.locator(".pg-view-title", has_text="Ceremony").wait_for()
    dialog = _open_dialog(page)
    # In a folder, that folder is what is offered first.
    assert dialog.get_by_role("radio", name="This folder: Ceremony").is_checked()
    dialog.get_by_role("button", name="Prepare ZIP").click()
    link = dialog.get_by_role("link", name=re.compile(r"^Download ZIP .*: the folder “Ceremony” \(web size\)$"))
    link.wait_for()
    with page.expect_download() as info:
        link.click()
    with zipfile.ZipFile(info.value.path()) as archive:
        assert sorted(archive.namelist()) == ["IMG_0001.webp", "IMG_0002.webp"]
    [export] = _exports(web_portal.gallery)
    assert export.scope == "folder" and export.folder_id == web_portal.staff_folder.pk


def test_cancel_and_a_reload_keeps_the_running_one(
    page: Any, web_portal: Portal, live_server: Any, held_runs: list[str]
) -> None:
    _open(page, web_portal, live_server)
    dialog = _open_dialog(page)
    dialog.get_by_role("button", name="Prepare ZIP").click()
    dialog.locator(".pg-download-status", has_text="Waiting to start").wait_for()
    [export] = _exports(web_portal.gallery)

    # A reload does not lose it: the list comes back, still being prepared.
    page.reload()
    page.get_by_role("button", name="Download photos").locator(".pg-download-badge").wait_for()
    assert "1 being prepared" in page.get_by_role("button", name="Download photos").inner_text()
    dialog = _open_dialog(page)
    item = dialog.locator(f".pg-download[data-id='{export.pk}']")
    item.locator(".pg-download-status", has_text="Waiting to start").wait_for()

    item.get_by_role("button", name="Cancel the whole gallery (web size)").click()
    item_cancelled = dialog.locator(f".pg-download[data-id='{export.pk}'][data-status='cancelled']")
    item_cancelled.wait_for()
    assert item_cancelled.get_by_role("button").count() == 0 and item_cancelled.get_by_role("link").count() == 0
    with studio_scope(web_portal.gallery.studio):
        assert Export.objects.get(pk=export.pk).status == ExportStatus.CANCELLED
    # The run the broker delivers late finds it cancelled and builds nothing.
    assert _run(web_portal.gallery, str(export.pk)).status == ExportStatus.CANCELLED


def test_a_failed_export_shows_its_reason(page: Any, web_portal: Portal, live_server: Any) -> None:
    # An empty folder: the export fails with a reason the client can act on.
    with _staff(web_portal.gallery.studio):
        empty = services.folder_create(gallery=web_portal.gallery, name="Empty")
    _open(page, web_portal, live_server, f"#folder-{empty.pk}", wait=False)
    page.get_by_text("This folder is empty").wait_for()
    page.locator(".pg-view-title", has_text="Empty").wait_for()
    dialog = _open_dialog(page)
    dialog.get_by_role("button", name="Prepare ZIP").click()
    reason = dialog.locator(".pg-download[data-status='failed'] .pg-download-reason")
    reason.wait_for()
    assert "no photos to export" in reason.inner_text()


def test_originals_are_offered_when_the_gallery_allows_them(page: Any, live_server: Any) -> None:
    portal = _portal(live_server, "originals")
    _open(page, portal, live_server)
    dialog = _open_dialog(page)
    dialog.get_by_role("radio", name="Originals").check()
    dialog.get_by_role("button", name="Prepare ZIP").click()
    link = dialog.get_by_role("link", name=re.compile(r"^Download ZIP .*: the whole gallery \(originals\)$"))
    link.wait_for()
    with page.expect_download() as info:
        link.click()
    with zipfile.ZipFile(info.value.path()) as archive:
        assert sorted(archive.namelist()) == [f"IMG_{i:04d}.jpg" for i in range(1, PHOTOS + 1)]
        assert archive.read("IMG_0001.jpg")[:2] == b"\xff\xd8"  # the original JPEG itself


def test_no_download_button_when_the_gallery_allows_none(page: Any, live_server: Any) -> None:
    portal = _portal(live_server, "none")
    _open(page, portal, live_server)
    assert page.locator("[data-role=download-button]").is_hidden()
    assert page.locator("a.tile-download").count() == 0  # nor per photo
    assert page.get_by_role("button", name="Download photos").count() == 0


def test_the_per_photo_download_still_works(page: Any, web_portal: Portal, live_server: Any) -> None:
    _open(page, web_portal, live_server)
    link = page.locator(".tile[data-index='0'] a.tile-download")
    with page.expect_download() as info:
        link.click(force=True)  # shown on hover; the link itself is what matters
    with open(info.value.path(), "rb") as photo:
        assert photo.read(12)[8:12] == b"WEBP"


def test_download_on_a_phone(
    mobile_page: Any, web_portal: Portal, live_server: Any, shot: Callable, axe: Callable
) -> None:
    _open(mobile_page, web_portal, live_server)
    button = mobile_page.get_by_role("button", name="Download photos")
    assert button.is_visible()
    dialog = _open_dialog(mobile_page)
    dialog.get_by_role("button", name="Prepare ZIP").click()
    dialog.get_by_role("link", name=re.compile(r"^Download ZIP .*: the whole gallery \(web size\)$")).wait_for()
    width = mobile_page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 375, f"the page scrolls sideways ({width}px)"
    box = dialog.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 375
    shot(mobile_page, "portal-download")
    assert not axe(mobile_page), axe(mobile_page)
