"""The portal's "Find me" (issue 13) in a real browser: the consent dialog, a
selfie picked as a file, the grid narrowed to the photos she is in, "Not me",
Clear, the errors a client can meet, the phone's camera input, and a gallery
that does not offer it.

The photos are real: scikit-image's astronaut pasted into photo-sized JPEGs
(tests/test_faces.py), run through the real pipeline and face detector
(Celery is eager in tests)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from audit.models import AuditEvent
from galleries import services
from galleries.models import Asset, Face
from studio.tenancy import studio_scope, unscoped
from tests import factories
from tests.browser.test_portal_gallery import COLOURS, Portal, _open, _staff, _until
from tests.gallery_helpers import jpeg
from tests.test_faces import astronaut_photo, selfie_jpeg

pytestmark = pytest.mark.django_db(transaction=True)

CONSENT = "We compare your selfie with the faces in this gallery, then forget it."
FIND_ME = "/find-me/$"


def _portal(live_server: Any, *, find_me: bool = True, astronauts: bool = True) -> Portal:
    """A published gallery with people in photos on: two photos of the
    astronaut (one flipped and moved) and two without a face."""
    studio = factories.studio(name="Lumen Studio")
    gallery = factories.gallery(studio, title="Space Camp")
    with _staff(studio):
        services.studio_faces_enable(studio=studio, consent_text=CONSENT)
        services.gallery_faces_set(gallery=gallery, faces_enabled=True, find_me_enabled=find_me)
    photos = [("IMG_0001.jpg", jpeg(900, 600, colour=COLOURS[0])), ("IMG_0003.jpg", jpeg(900, 600, colour=COLOURS[1]))]
    if astronauts:
        photos += [("ASTRO_1.jpg", astronaut_photo()), ("ASTRO_2.jpg", astronaut_photo(left=1100, flip=True))]
    assets = [factories.ready_asset(studio, gallery, name=name, data=data) for name, data in sorted(photos)]
    with _staff(studio):
        services.gallery_publish(gallery=gallery)
        gallery.refresh_from_db()
    if astronauts:
        with studio_scope(studio):
            # The pipeline ran: her face is in both (detection itself is tests/test_faces.py's).
            assert Face.objects.filter(asset__original_filename__startswith="ASTRO").exists()
    return Portal(gallery=gallery, assets=assets, url=f"{live_server.url}/g/{gallery.access_code}/", staff_folder=None)


def _ids(portal: Portal, prefix: str) -> set[str]:
    return {str(a.pk) for a in portal.assets if a.original_filename.startswith(prefix)}


def _tile_ids(page: Any) -> set[str]:
    return set(page.evaluate("[...document.querySelectorAll('#photos .tile')].map((t) => t.dataset.id)"))


def _pick(page: Any, button: str, data: bytes, *, name: str = "me.jpg") -> Any:
    """Click one of the dialog's buttons and choose a file in the chooser it opens."""
    with page.expect_file_chooser() as chooser:
        page.locator("[data-role='findme-dialog']").get_by_role("button", name=button).click()
    chooser.value.set_files(files=[{"name": name, "mimeType": "image/jpeg", "buffer": data}])


def _open_dialog(page: Any) -> Any:
    page.get_by_role("button", name="Find me").click()
    dialog = page.get_by_role("dialog", name="Find photos of me")
    dialog.wait_for()
    return dialog


def _actions(portal: Portal) -> list[str]:
    with unscoped():
        return list(AuditEvent.objects.filter(studio=portal.gallery.studio).values_list("action", flat=True))


def test_find_me_narrows_the_grid_to_her_photos(
    page: Any, live_server: Any, settings: Any, shot: Callable, axe: Callable
) -> None:
    settings.FACES_FIND_ME_PER_HOUR = 3
    portal = _portal(live_server)
    her = _ids(portal, "ASTRO")
    _open(page, portal, live_server)
    assert _tile_ids(page) == {str(a.pk) for a in portal.assets}

    # The dialog: labelled, the studio's consent first, Esc closes it.
    button = page.get_by_role("button", name="Find me")
    button.wait_for()
    dialog = _open_dialog(page)
    assert CONSENT in dialog.inner_text()
    assert "not stored" in dialog.inner_text()
    page.keyboard.press("Escape")
    assert not dialog.is_visible()
    assert page.evaluate("document.activeElement.dataset.role") == "findme-button"

    # Tab goes round the dialog, not out of it.
    dialog = _open_dialog(page)
    dialog.get_by_role("button", name="Close").focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.closest('dialog')?.dataset.role") == "findme-dialog"
    shot(page, "portal-find-me-dialog")
    assert axe(page) == []

    # A photo without a face: the reason, in the dialog, which stays open.
    page.expect_console_errors(r"status of 400")
    with page.expect_response(re.compile(FIND_ME)) as refused:
        _pick(page, "Upload a photo", jpeg(400, 300))
    assert refused.value.status == 400
    error = dialog.locator("[data-role='findme-error']")
    error.wait_for()
    assert "could not see a face" in error.inner_text()

    # Her selfie: a spinner while the server looks, then only her photos.
    with page.expect_response(re.compile(FIND_ME)) as found:
        _pick(page, "Upload a photo", selfie_jpeg())
    assert found.value.status == 200
    assert {m["asset"] for m in found.value.json()["matches"]} == her
    page.wait_for_selector("[data-role='findme-bar']:not([hidden])")
    _until(page, "document.querySelectorAll('#photos .tile').length === 2")
    assert _tile_ids(page) == her
    assert not dialog.is_visible()
    assert page.locator("[data-role='findme-summary']").inner_text() == "Showing photos of you (2)"
    assert page.locator("[data-role='view-title']").inner_text() == "Photos of you"
    assert page.evaluate("location.hash") == "#find-me"
    # Nothing of the selfie is kept on the device.
    assert page.evaluate("Object.keys(localStorage).filter((k) => !k.startsWith('portal-view'))") == []
    page.locator(".toast-close").click()
    shot(page, "portal-find-me-results")
    assert axe(page) == []

    # "Not me" on one: it leaves the view (and the server's results for this session).
    wrong = next(a for a in portal.assets if a.original_filename == "ASTRO_2.jpg")
    with page.expect_response(re.compile(r"/find-me/not-me/$")) as not_me:
        page.get_by_role("button", name="Not me: remove ASTRO_2.jpg from your photos").click()
    assert not_me.value.status == 204
    _until(page, "document.querySelectorAll('#photos .tile').length === 1")
    assert str(wrong.pk) not in _tile_ids(page)
    assert page.locator("[data-role='findme-summary']").inner_text() == "Showing photos of you (1)"
    assert "find_me.not_me" in _actions(portal)

    # Clear: every photo again, no bar, no "Not me".
    page.get_by_role("button", name="Clear: show all photos").click()
    _until(page, "document.querySelectorAll('#photos .tile').length === 4")
    assert page.locator("[data-role='findme-bar']").is_hidden()
    assert page.locator(".tile-notme").count() == 0
    assert page.locator("[data-role='view-title']").inner_text() == "All photos"

    # Again: "not me" holds for the session.
    _open_dialog(page)
    with page.expect_response(re.compile(FIND_ME)):
        _pick(page, "Upload a photo", selfie_jpeg())
    _until(page, "document.querySelectorAll('#photos .tile').length === 1")
    assert _tile_ids(page) == her - {str(wrong.pk)}

    # A fourth search in the hour: throttled, with the time to wait.
    page.expect_console_errors(r"status of 429")
    dialog = _open_dialog(page)
    with page.expect_response(re.compile(FIND_ME)) as throttled:
        _pick(page, "Upload a photo", selfie_jpeg())
    assert throttled.value.status == 429
    error = dialog.locator("[data-role='findme-error']")
    error.wait_for()
    assert re.search(r"Too many searches for now: try again in \d+ minutes?\.", error.inner_text())
    with unscoped():
        assert not Asset.objects.filter(gallery=portal.gallery, original_filename="me.jpg").exists()
    # Audited: the two searches that ran; not the refused selfie, not the throttled one.
    assert _actions(portal).count("find_me.searched") == 2


def test_a_phone_takes_the_selfie_with_its_camera(mobile_page: Any, live_server: Any, shot: Callable) -> None:
    portal = _portal(live_server)
    _open(mobile_page, portal, live_server)
    dialog = _open_dialog(mobile_page)
    # A touch screen: the front camera through the file input, no getUserMedia.
    capture = dialog.locator("input[capture='user']")
    assert capture.get_attribute("accept") == "image/*"
    shot(mobile_page, "portal-find-me-dialog")
    with mobile_page.expect_response(re.compile(FIND_ME)):
        _pick(mobile_page, "Take a selfie", selfie_jpeg())
    _until(mobile_page, "document.querySelectorAll('#photos .tile').length === 2")
    assert _tile_ids(mobile_page) == _ids(portal, "ASTRO")
    assert mobile_page.locator(".tile-notme").count() == 2
    mobile_page.locator(".toast-close").click()
    shot(mobile_page, "portal-find-me-results")


def test_a_computer_takes_the_selfie_with_its_webcam(browser: Any, live_server: Any) -> None:
    """getUserMedia in the dialog, on Chromium's fake camera (a test pattern,
    no face): the frame taken goes to the server, which says so."""
    from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, DESKTOP, WatchedPage

    portal = _portal(live_server, astronauts=False)
    fake_camera = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
    webcam = browser.browser_type.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + fake_camera)
    try:
        context = webcam.new_context(viewport=DESKTOP)
        context.grant_permissions(["camera"], origin=live_server.url)
        page = WatchedPage(context.new_page())
        page.expect_console_errors(r"status of 400")
        _open(page, portal, live_server)
        dialog = _open_dialog(page)
        dialog.get_by_role("button", name="Take a selfie").click()
        _until(page, "document.querySelector('[data-role=findme-video]').videoWidth > 0")
        with page.expect_response(re.compile(FIND_ME)) as sent:
            dialog.get_by_role("button", name="Take the photo").click()
        assert sent.value.status == 400
        assert sent.value.request.headers["content-type"].startswith("multipart/form-data")
        dialog.locator("[data-role='findme-error']").wait_for()
        # The camera is off once the frame is taken.
        assert page.evaluate("document.querySelector('[data-role=findme-video]').srcObject") is None
        assert dialog.locator("[data-role='findme-camera']").is_hidden()
        assert page.unexpected() == []
    finally:
        webcam.close()


def test_a_gallery_without_find_me_shows_no_button(page: Any, live_server: Any, axe: Callable) -> None:
    portal = _portal(live_server, find_me=False, astronauts=False)
    with page.expect_response(re.compile(FIND_ME)) as info:
        _open(page, portal, live_server)
    assert info.value.json() == {"enabled": False, "consent_text": ""}
    assert page.locator("[data-role='findme-button']").is_hidden()
    assert page.get_by_role("button", name="Find me").count() == 0
    # Someone typing the address of the results gets the whole gallery.
    page.goto(portal.url + "#find-me")
    page.wait_for_selector(".pg[data-state='ready'] .tile img")
    assert page.locator("[data-role='findme-bar']").is_hidden()
    assert page.locator(".tile").count() == 2
    assert axe(page) == []
