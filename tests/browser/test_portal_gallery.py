"""The client gallery page (/g/<code>/) in a real browser, end to end: real
photos through the real pipeline, the live server, the portal API.

What the client does is checked in the database, not only on the screen.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from galleries import services
from galleries.models import Asset, Folder, Gallery, Placement, Rating, Selection, SelectionStatus, Visitor
from studio import context
from studio.tenancy import studio_scope, unscoped
from tests import factories
from tests.gallery_helpers import jpeg

pytestmark = pytest.mark.django_db(transaction=True)

COLOURS = [(200, 80, 40), (40, 120, 200), (60, 160, 90), (220, 190, 60), (120, 60, 160), (30, 30, 30)]


@dataclass
class Portal:
    gallery: Gallery
    assets: list[Asset]
    url: str
    staff_folder: Folder | None

    def visitor(self) -> Visitor:
        with unscoped():
            return Visitor.objects.filter(gallery=self.gallery).latest("created_at")

    def stars(self, asset: Asset) -> int | None:
        with unscoped():
            rating = Rating.objects.filter(asset=asset).first()
            return rating.stars if rating else None

    def trashed(self) -> set[str]:
        with unscoped():
            return {
                str(pk)
                for pk in Asset.objects.filter(gallery=self.gallery)
                .exclude(trashed_at=None)
                .values_list("pk", flat=True)
            }


@contextmanager
def _staff(studio: Any) -> Iterator[None]:
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        yield


@pytest.fixture
def portal(live_server: Any) -> Portal:
    """A published gallery of 8 real photos (a staff folder holding one), with
    a selection limit of 5."""
    studio = factories.studio(name="Lumen Studio")
    studio.accent_color = "#8a3ffc"
    studio.save(update_fields=["accent_color"])
    gallery = factories.gallery(
        studio, title="Anna & Ben — Wedding", selection_limit=5, client_name="Anna Smith", event_date=date(2026, 6, 14)
    )
    assets = [
        factories.ready_asset(
            studio,
            gallery,
            name=f"IMG_{i:04d}.jpg",
            data=jpeg(560 + 40 * i if i % 3 else 600, 600, colour=COLOURS[i % 6]),
        )
        for i in range(1, 9)
    ]
    with _staff(studio):
        services.gallery_publish(gallery=gallery)
        services.gallery_set_cover(gallery=gallery, asset=assets[0])
        staff_folder = services.folder_create(gallery=gallery, name="Studio picks")
        services.placements_add(folder=staff_folder, assets=[assets[1]])
    return Portal(
        gallery=gallery, assets=assets, url=f"{live_server.url}/g/{gallery.access_code}/", staff_folder=staff_folder
    )


def _open(page: Any, portal: Portal, live_server: Any, hash_: str = "", *, wait: bool = True) -> None:
    """Open a portal session as the entry page would (the access API), hand
    its cookie to the browser and load the gallery page."""
    client = Client(REMOTE_ADDR=f"10.9.{random.randint(0, 255)}.{random.randint(1, 254)}")
    response = client.post(
        "/api/v1/portal/access/",
        {"studio": portal.gallery.studio.slug, "code": portal.gallery.access_code},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    page.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}])
    page.goto(portal.url + hash_)
    if wait:
        _wait_ready(page)


def _wait_ready(page: Any) -> None:
    """The first photos and the header (counts, folders) are in."""
    page.wait_for_selector(".pg[data-state='ready'] .tile img")
    page.wait_for_selector(".pg-counts [data-count='photos']:not(:text-is('–'))")
    page.wait_for_selector(".pg-folders .pg-folder, .pg-folders .pg-folders-empty")
    _until(page, "document.querySelector('#photos').getAttribute('aria-busy') === 'false'")


def _until(page: Any, expression: str, timeout: float = 10.0) -> None:
    """Wait until a JavaScript expression is true. Playwright's
    wait_for_function polls with eval(), which the page's CSP refuses; a
    DevTools evaluate is not subject to it."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout}s: {expression}")
        page.wait_for_timeout(50)


def _tile(page: Any, index: int) -> Any:
    return page.locator(f".tile[data-index='{index}']")


def test_grid_shows_the_gallery_with_counts(
    page: Any, portal: Portal, live_server: Any, shot: Callable, axe: Callable
) -> None:
    _open(page, portal, live_server)
    response = page.request.get(portal.url)
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert page.locator("h1").inner_text() == "Anna & Ben — Wedding"
    assert page.locator(".pg-counts [data-count='photos']").inner_text() == "8"
    assert page.locator(".pg-counts [data-count='selected']").inner_text() == "0 of 5"
    assert page.locator(".tile").count() == 8
    img = page.locator(".tile img").first
    assert img.get_attribute("loading") == "lazy"
    assert re.search(r"/thumb/ \d+w, .*/medium/ \d+w", img.get_attribute("srcset"))
    assert page.locator(".pg-meta time").inner_text() == "14 June 2026"
    # Downloads as the studio allows: web size (the large derivative) here.
    download = _tile(page, 0).locator("a.tile-download")
    href = download.get_attribute("href")
    assert re.search(r"/media/large/\?download=1$", href), href
    response = page.request.get(live_server.url + href)
    assert response.status == 200
    assert "attachment" in response.headers["content-disposition"]
    shot(page, "portal-grid")
    assert axe(page) == []


def test_an_empty_gallery_says_so(page: Any, live_server: Any) -> None:
    studio = factories.studio()
    gallery = factories.gallery(studio, title="Coming soon")
    with _staff(studio):
        services.gallery_publish(gallery=gallery)
    empty = Portal(gallery=gallery, assets=[], url=f"{live_server.url}/g/{gallery.access_code}/", staff_folder=None)
    _open(page, empty, live_server, wait=False)
    page.wait_for_selector("[data-role='empty']:not([hidden])")
    assert page.locator("[data-role='empty-title']").inner_text() == "No photos yet"
    assert page.locator("[data-action='finalise']").is_disabled()


def test_rate_by_click_and_by_keyboard(page: Any, portal: Portal, live_server: Any) -> None:
    _open(page, portal, live_server)
    first, second = portal.assets[0], portal.assets[1]
    with page.expect_response(re.compile(r"/rating/$")) as put:
        _tile(page, 0).locator("label.star").nth(3).click()
    assert put.value.status == 204
    assert portal.stars(first) == 4
    assert _tile(page, 0).locator(".stars").get_attribute("data-stars") == "4"

    # The radio group is labelled for assistive technology.
    group = page.get_by_role("group", name=f"Rating for {first.original_filename}")
    assert group.get_by_role("radio", name="4 stars").is_checked()

    # Keyboard: focus the second photo with the arrow key, then 2, then 0 clears.
    _tile(page, 0).locator(".tile-photo").focus()
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.closest('.tile').dataset.index") == "1"
    with page.expect_response(re.compile(r"/rating/$")):
        page.keyboard.press("2")
    assert portal.stars(second) == 2
    with page.expect_response(lambda r: r.request.method == "DELETE" and r.url.endswith("/rating/")):
        page.keyboard.press("0")
    assert portal.stars(second) is None
    # The header follows.
    _until(page, "document.querySelector(\".pg-counts [data-count='rated']\").textContent === '1'")


def test_shift_select_and_drag_to_a_folder(page: Any, portal: Portal, live_server: Any, shot: Callable) -> None:
    _open(page, portal, live_server)
    page.fill("#new-folder-name", "Album")
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/folders/")):
        page.click(".pg-new-folder button")
    folder_link = page.locator(".pg-folder", has_text="Album")
    folder_link.wait_for()

    _tile(page, 1).locator(".tile-photo").click()
    _tile(page, 3).locator(".tile-photo").click(modifiers=["Shift"])
    assert page.locator(".tile.is-selected").count() == 3
    assert page.locator("[data-role='selected-count']").inner_text() == "3 photos selected"

    # Drag one of the selected photos onto the folder: the whole selection goes.
    source = _tile(page, 2).locator(".tile-photo").bounding_box()
    target = folder_link.bounding_box()
    with page.expect_response(re.compile(r"/folders/[^/]+/add/$")) as added:
        page.mouse.move(source["x"] + source["width"] / 2, source["y"] + source["height"] / 2)
        page.mouse.down()
        page.mouse.move(source["x"] + 30, source["y"] + 30, steps=5)
        page.mouse.move(target["x"] + target["width"] / 2, target["y"] + target["height"] / 2, steps=15)
        page.mouse.move(target["x"] + target["width"] / 2 + 2, target["y"] + target["height"] / 2, steps=2)
        # SortableJS samples the pointer every 50 ms: drop once it has seen the folder.
        _until(page, "document.querySelector('.pg-folder.is-drop-target .tile') !== null")
        page.mouse.up()
    assert added.value.status == 204
    with unscoped():
        album = Folder.objects.get(gallery=portal.gallery, name="Album")
        placed = set(Placement.objects.filter(folder=album).values_list("asset_id", flat=True))
    assert placed == {a.pk for a in portal.assets[1:4]}

    # The folder view lists them; reorder by dragging inside it, remove one.
    folder_link.locator("a").click()
    _until(
        page, "document.querySelectorAll('.tile').length === 3 && !document.querySelector('.pg[data-state=loading]')"
    )
    assert page.locator("[data-role='view-title']").inner_text() == "Album"
    page.reload()  # the folder view is an address of its own (#folder-<id>)
    _wait_ready(page)
    assert page.locator(".tile").count() == 3
    first = _tile(page, 0).locator(".tile-photo").bounding_box()
    third = _tile(page, 2).locator(".tile-photo").bounding_box()
    with page.expect_response(re.compile(r"/reorder-assets/$")):
        page.mouse.move(first["x"] + 20, first["y"] + 20)
        page.mouse.down()
        page.mouse.move(first["x"] + 40, first["y"] + 40, steps=5)
        page.mouse.move(third["x"] + third["width"] - 10, third["y"] + third["height"] / 2, steps=15)
        _until(page, "document.querySelector('#photos').lastElementChild.classList.contains('tile-chosen')")
        page.mouse.up()
    with unscoped():
        order = list(Placement.objects.filter(folder=album).order_by("sort_order").values_list("asset_id", flat=True))
    assert order[-1] == portal.assets[1].pk
    shot(page, "portal-folder")

    _tile(page, 0).locator(".tile-photo").click()
    with page.expect_response(re.compile(r"/remove/$")):
        page.click("[data-action='remove-from-folder']")
    with unscoped():
        assert Placement.objects.filter(folder=album).count() == 2


def test_staff_folder_is_read_only(page: Any, portal: Portal, live_server: Any, axe: Callable) -> None:
    _open(page, portal, live_server, f"#folder-{portal.staff_folder.pk}")
    assert page.locator("[data-role='view-title']").inner_text() == "Studio picks"
    assert page.locator(".tile").count() == 1
    assert page.locator("[data-role='folder-actions']").is_hidden()
    _tile(page, 0).locator(".tile-photo").click()
    assert page.locator("[data-action='remove-from-folder']").is_hidden()
    assert axe(page) == []


def test_rename_and_delete_an_own_folder(page: Any, portal: Portal, live_server: Any) -> None:
    _open(page, portal, live_server)
    page.fill("#new-folder-name", "Maybe")
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/folders/")):
        page.press("#new-folder-name", "Enter")
    page.locator(".pg-folder a", has_text="Maybe").click()
    page.wait_for_selector("[data-role='empty']:not([hidden])")
    assert page.locator("[data-role='empty-title']").inner_text() == "This folder is empty"
    page.click("[data-action='rename-folder']")
    page.fill("#prompt-input", "Definitely")
    with page.expect_response(lambda r: r.request.method == "PATCH"):
        page.click("[data-role='prompt-ok']")
    page.wait_for_selector(".pg-folder a:has-text('Definitely')")
    assert page.locator("[data-role='view-title']").inner_text() == "Definitely"
    page.click("[data-action='delete-folder']")
    with page.expect_response(lambda r: r.request.method == "DELETE"):
        page.click("[data-role='prompt-ok']")
    page.wait_for_selector(".pg-folder a:has-text('Definitely')", state="detached")
    with unscoped():
        assert list(Folder.objects.filter(gallery=portal.gallery).values_list("name", flat=True)) == ["Studio picks"]


def test_trash_and_restore(page: Any, portal: Portal, live_server: Any, axe: Callable) -> None:
    _open(page, portal, live_server)
    doomed = str(portal.assets[0].pk)
    _tile(page, 0).locator(".tile-photo").click()
    with page.expect_response(re.compile(r"/assets/trash/$")):
        page.keyboard.press("Delete")
    assert portal.trashed() == {doomed}
    assert page.locator(".tile").count() == 7
    _until(page, "document.querySelector(\".pg-place[data-place='trash'] [data-count]\").textContent === '1'")

    page.click(".pg-place[data-place='trash']")
    page.wait_for_selector(f".tile[data-id='{doomed}']")
    _tile(page, 0).locator(".tile-photo").click()
    with page.expect_response(re.compile(r"/assets/restore/$")):
        page.click("[data-action='restore']")
    assert portal.trashed() == set()
    page.wait_for_selector("[data-role='empty']:not([hidden])")
    assert page.locator("[data-role='empty-title']").inner_text() == "The trash is empty"
    assert axe(page) == []


def test_views_are_remembered_and_the_viewer_moves_with_arrows(
    page: Any, portal: Portal, live_server: Any, shot: Callable, axe: Callable
) -> None:
    _open(page, portal, live_server)
    page.click("[data-view='list']")
    assert "is-list" in page.locator("#photos").get_attribute("class")
    assert _tile(page, 0).locator(".tile-name").inner_text() == "IMG_0001.jpg"
    shot(page, "portal-list")
    assert axe(page) == []
    page.reload()
    _wait_ready(page)
    assert page.locator("[data-view='list']").get_attribute("aria-checked") == "true"
    assert "is-list" in page.locator("#photos").get_attribute("class")

    page.click("[data-view='grid']")
    _tile(page, 0).locator(".tile-photo").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector(".pswp--open .pswp__img:not(.pswp__img--placeholder)")
    caption = page.locator(".pswp-caption")
    assert caption.inner_text().startswith("IMG_0001.jpg · 1 of 8")
    assert axe(page) == []
    page.keyboard.press("ArrowRight")
    _until(page, "document.querySelector('.pswp-caption').textContent.startsWith('IMG_0002.jpg')")
    with page.expect_response(re.compile(r"/rating/$")):
        page.keyboard.press("5")
    assert portal.stars(portal.assets[1]) == 5
    shot(page, "portal-viewer")
    page.keyboard.press("Escape")
    page.wait_for_selector(".pswp", state="detached")
    assert page.evaluate("document.activeElement.closest('.tile').dataset.index") == "1"

    # The carousel is remembered too: a reload opens it again.
    page.click("[data-view='carousel']")
    page.wait_for_selector(".pswp--open")
    page.reload()
    page.wait_for_selector(".pswp--open")


def test_finalise_locks_and_a_reopened_selection_unlocks(
    page: Any, portal: Portal, live_server: Any, shot: Callable, axe: Callable
) -> None:
    _open(page, portal, live_server)
    for index in (0, 2):
        with page.expect_response(re.compile(r"/rating/$")):
            _tile(page, index).locator("label.star").nth(4).click()
    finalise = page.locator("[data-action='finalise']")
    _until(page, "document.querySelector(\"[data-action='finalise']\").textContent.includes('2 of 5')")
    finalise.click()
    assert "You chose 2 photos of the 5" in page.locator("[data-role='finalise-text']").inner_text()
    with page.expect_response(re.compile(r"/selection/$")):
        page.click("[data-role='finalise-confirm']")
    page.wait_for_selector("[data-role='locked-note']:not([hidden])")
    assert page.locator("body.is-locked").count() == 1
    assert _tile(page, 1).locator("input.star-input").first.is_disabled()
    with unscoped():
        assert Selection.objects.get(gallery=portal.gallery).asset_count == 2
    shot(page, "portal-finalised")
    assert axe(page) == []

    with _staff(portal.gallery.studio):
        services.selection_reopen(gallery=portal.gallery, user=None)
    page.reload()
    _wait_ready(page)
    assert page.locator("body.is-locked").count() == 0
    assert not _tile(page, 1).locator("input.star-input").first.is_disabled()
    with unscoped():
        assert Selection.objects.get(gallery=portal.gallery).status == SelectionStatus.REOPENED


def test_a_refused_write_rolls_back_with_a_toast(page: Any, portal: Portal, live_server: Any) -> None:
    _open(page, portal, live_server)
    page.expect_console_errors(r"409")
    # The selection is finalised behind the client's back (another visitor, say).
    with _staff(portal.gallery.studio):
        services.ratings_set(gallery=portal.gallery, visitor=portal.visitor(), ratings=[(portal.assets[5], 3)])
        services.selection_finalize(gallery=portal.gallery, visitor=portal.visitor())
    with page.expect_response(re.compile(r"/rating/$")) as put:
        _tile(page, 0).locator("label.star").nth(2).click()
    assert put.value.status == 409
    toast = page.locator(".toast-error")
    toast.wait_for()
    assert "finalised" in toast.inner_text()
    _until(page, "document.querySelector(\".tile[data-index='0'] .stars\").dataset.stars === '0'")
    assert portal.stars(portal.assets[0]) is None
    page.wait_for_selector("body.is-locked")


def test_a_network_failure_keeps_the_change_and_retries(page: Any, portal: Portal, live_server: Any) -> None:
    _open(page, portal, live_server)
    page.expect_console_errors(r"Failed to load resource|ERR_FAILED|net::")
    page.route(re.compile(r"/rating/$"), lambda route: route.abort())
    _tile(page, 0).locator("label.star").nth(2).click()
    toast = page.locator(".toast[data-toast-id='offline']")
    toast.wait_for()
    assert "waiting" in toast.inner_text()
    assert _tile(page, 0).locator(".stars").get_attribute("data-stars") == "3"  # not rolled back
    page.unroute(re.compile(r"/rating/$"))
    with page.expect_response(re.compile(r"/rating/$")):
        toast.get_by_role("button", name="Retry now").click()
    assert portal.stars(portal.assets[0]) == 3


def test_a_page_that_fails_to_load_offers_a_retry(page: Any, portal: Portal, live_server: Any) -> None:
    page.expect_console_errors(r"Failed to load resource|net::")
    pattern = re.compile(r"/assets/\?")
    page.route(pattern, lambda route: route.abort())
    _open(page, portal, live_server, wait=False)
    error = page.locator("[data-role='error']")
    error.wait_for()
    assert "Nothing you did is lost" in error.inner_text()
    page.unroute(pattern)
    error.get_by_role("button", name="Try again").click()
    _wait_ready(page)
    assert page.locator(".tile").count() == 8
    assert error.is_hidden()


def test_keyboard_shortcuts_dialog_and_selection_keys(page: Any, portal: Portal, live_server: Any) -> None:
    _open(page, portal, live_server)
    _tile(page, 0).locator(".tile-photo").focus()
    page.keyboard.press(" ")
    page.keyboard.press("Shift+ArrowRight")
    page.keyboard.press("Shift+ArrowRight")
    assert page.locator(".tile.is-selected").count() == 3
    page.keyboard.press("Escape")
    assert page.locator(".tile.is-selected").count() == 0
    _tile(page, 4).locator(".tile-photo").click(modifiers=["ControlOrMeta"])
    _tile(page, 6).locator(".tile-photo").click(modifiers=["ControlOrMeta"])
    assert page.locator(".tile.is-selected").count() == 2
    page.click("[data-action='select-all']")
    assert page.locator(".tile.is-selected").count() == 8
    page.click("[data-action='clear-selection']")
    assert page.locator(".tile.is-selected").count() == 0
    page.keyboard.press("?")
    dialog = page.locator("[data-role='shortcuts-dialog']")
    assert dialog.is_visible()
    page.keyboard.press("Escape")
    assert not dialog.is_visible()


def test_mobile_layout(mobile_page: Any, portal: Portal, live_server: Any, shot: Callable, axe: Callable) -> None:
    page = mobile_page
    _open(page, portal, live_server)
    assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    assert axe(page) == []
    shot(page, "portal-grid")
    # Tap selects (and a second tap adds to the selection).
    _tile(page, 0).locator(".tile-photo").tap()
    _tile(page, 1).locator(".tile-photo").tap()
    assert page.locator(".tile.is-selected").count() == 2
    page.click("[data-action='clear-selection']")

    page.click("[data-view='list']")
    assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    shot(page, "portal-list")
    page.click("[data-view='grid']")

    page.goto(f"{portal.url}#folder-{portal.staff_folder.pk}")
    _wait_ready(page)
    shot(page, "portal-folder")
    page.goto(portal.url)
    _wait_ready(page)

    _tile(page, 0).locator(".tile-open").tap()
    page.wait_for_selector(".pswp--open .pswp__img:not(.pswp__img--placeholder)")
    shot(page, "portal-viewer")
    page.keyboard.press("Escape")
    page.wait_for_selector(".pswp", state="detached")

    with page.expect_response(re.compile(r"/rating/$")):
        _tile(page, 0).locator("label.star").nth(4).tap()
    _until(page, "!document.querySelector(\"[data-action='finalise']\").disabled")
    page.click("[data-action='finalise']")
    with page.expect_response(re.compile(r"/selection/$")):
        page.click("[data-role='finalise-confirm']")
    page.wait_for_selector("[data-role='locked-note']:not([hidden])")
    assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    shot(page, "portal-finalised")
    assert axe(page) == []


def _copies(template: Asset, count: int) -> None:
    """``count`` more photos of the template's gallery that share its files:
    rows are cheap, the pipeline is not."""
    rows = [
        Asset(
            studio=template.studio,
            gallery=template.gallery,
            original_filename=f"BULK_{i:05d}.jpg",
            storage_key=f"{template.storage_key}.copy-{i}",  # unique; only the derivatives are shown
            content_type=template.content_type,
            size=template.size,
            width=template.width,
            height=template.height,
            status=template.status,
            derivatives=template.derivatives,
            derivative_bytes=template.derivative_bytes,
            sort_order=10_000 + i,
        )
        for i in range(count)
    ]
    with studio_scope(template.studio):
        Asset.objects.bulk_create(rows)


def test_a_big_gallery_loads_as_the_client_scrolls_and_the_dom_stays_bounded(
    page: Any, portal: Portal, live_server: Any
) -> None:
    _copies(portal.assets[0], 992)  # 1,000 photos
    pages: list[str] = []
    page.on("request", lambda r: pages.append(r.url) if "/assets/?" in r.url else None)
    _open(page, portal, live_server)
    assert page.locator(".pg-counts [data-count='photos']").inner_text() == "1,000"
    assert len(pages) <= 2, pages  # a page or two for the first screen, not the gallery
    assert all("page_size=100" in url for url in pages)

    most = 0
    for _ in range(200):
        page.mouse.wheel(0, 4000)
        _until(page, "document.querySelector('#photos').getAttribute('aria-busy') === 'false'")
        most = max(most, page.locator("#photos .tile").count())
        if page.evaluate("document.querySelector('.tile:last-child')?.dataset.index") == "999":
            break
    assert page.evaluate("document.querySelector('.tile:last-child').dataset.index") == "999"
    assert len(pages) == 10
    assert most < 150, f"{most} tiles in the DOM at once"

    # The keyboard reaches photos far from the window: End, then Home.
    page.locator("#photos .tile-photo").first.focus()
    page.keyboard.press("Home")
    assert page.evaluate("document.activeElement.closest('.tile').dataset.index") == "0"
    page.keyboard.press("End")
    assert page.evaluate("document.activeElement.closest('.tile').dataset.index") == "999"
    # Let the thumbnails in flight finish: the live server's threads share
    # the test's SQLite connection and complain when cut off at teardown.
    page.wait_for_load_state("networkidle")
