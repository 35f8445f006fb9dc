"""The gallery's admin page in a real browser: the Exports panel (a CSV and a
PDF contact sheet of the client's selection, asked for, followed and
downloaded) and "Send to client" (the admin's message, and the email row it
queued). Celery is eager in tests: the answer to the POST is already done,
which is what the panel must handle without polling."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from galleries import services
from galleries.models import Export, ExportStatus, Gallery
from galleries.notifications import GALLERY_READY
from studio import context
from studio.models import EmailLog, Membership
from studio.roles import Role
from studio.tenancy import studio_scope
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff(live_server: Any) -> Membership:
    return factories.member(factories.studio("Lumen Studio"), Role.ASSISTANT)


def _chosen_gallery(staff: Membership) -> Gallery:
    """Published, with a client email and a finalised selection of 4 of 6 photos."""
    studio = staff.studio
    gallery = factories.gallery(
        studio, title="Autumn Family", client_name="The Novaks", client_email="novak@example.com", selection_limit=10
    )
    photos = [factories.ready_asset(studio, gallery, name=f"IMG_{n:04d}.jpg") for n in range(1, 7)]
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        services.gallery_publish(gallery=gallery)
        visitor = factories.visitor(studio, gallery)
        services.ratings_set(gallery=gallery, visitor=visitor, ratings=[(p, 5) for p in photos[:4]])
        services.selection_finalize(gallery=gallery, visitor=visitor)
    return gallery


def _sign_in(page: Any, membership: Membership, live_server: Any) -> None:
    client = Client()
    client.force_login(membership.user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    page.context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": live_server.url}])


def _download(page: Any, link: Any) -> bytes:
    with page.expect_download() as info:
        link.click()
    with open(info.value.path(), "rb") as handle:
        return handle.read()


def test_staff_export_a_csv_and_a_contact_sheet_then_send_to_the_client(
    page: Any, live_server: Any, staff: Membership, shot: Callable, axe: Callable, mailoutbox: list[Any]
) -> None:
    gallery = _chosen_gallery(staff)
    _sign_in(page, staff, live_server)
    page.goto(live_server.url + reverse("admin:galleries_gallery_change", args=[gallery.pk]))
    panel = page.locator("#exports-panel")
    panel.scroll_into_view_if_needed()
    # The finalised selection is what is offered first.
    assert "The finalised selection (4 photos)" in panel.get_by_label("Photos").locator("option:checked").inner_text()

    panel.get_by_role("button", name="Selection CSV").click()
    csv_link = panel.get_by_role("link", name="Download autumn-family-selection.csv")
    csv_link.wait_for()
    data = _download(page, csv_link)
    assert data.startswith(b"\xef\xbb\xbf")  # Excel reads UTF-8 only with the BOM
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0][:2] == ["filename", "average stars"] and "folders" in rows[0]
    assert sorted(row[0] for row in rows[1:]) == [f"IMG_{n:04d}.jpg" for n in range(1, 5)]

    panel.get_by_role("button", name="Contact sheet (PDF)").click()
    pdf_link = panel.get_by_role("link", name="Download autumn-family-selection-contact-sheet.pdf")
    pdf_link.wait_for()
    assert _download(page, pdf_link).startswith(b"%PDF")

    with studio_scope(gallery.studio):
        exports = list(Export.objects.filter(gallery=gallery).order_by("created_at"))
    assert [(e.kind, e.scope, e.status) for e in exports] == [
        ("csv", "selection", ExportStatus.DONE),
        ("contact_sheet", "selection", ExportStatus.DONE),
    ]
    assert all(e.requested_by_user_id == staff.user_id for e in exports)
    assert panel.locator("#exports-status").inner_text().endswith("is ready to download.")
    panel.scroll_into_view_if_needed()
    shot(page, "staff-exports")
    # axe-core's own checks add <style> elements on the admin's form; the CSP
    # refuses them and Chrome says so (see test_staff_upload.py).
    page.expect_console_errors(r"Applying inline style violates .*'style-src 'self''")
    assert not axe(page), axe(page)

    # Send to client: a real POST of the share panel's own form.
    share = page.locator("#share-panel")
    share.scroll_into_view_if_needed()
    share.get_by_label("Personal note (optional)").fill("Looking forward to the album meeting.")
    share.get_by_role("button", name="Send to client").click()
    page.locator(".messagelist .success", has_text="Sent “Autumn Family” to novak@example.com.").wait_for()
    with studio_scope(gallery.studio):
        [email] = EmailLog.objects.filter(kind=GALLERY_READY, target_id=str(gallery.pk))
    assert email.recipient == "novak@example.com"
    # The row's body is cleared once sent (it carries the code): look at what left.
    [sent] = [m for m in mailoutbox if m.to == ["novak@example.com"]]
    assert "Looking forward to the album meeting." in sent.body and gallery.access_code in sent.body
    assert page.url.endswith("#share-panel")


def test_the_exports_panel_on_a_phone(
    mobile_page: Any, live_server: Any, staff: Membership, shot: Callable, axe: Callable
) -> None:
    gallery = _chosen_gallery(staff)
    _sign_in(mobile_page, staff, live_server)
    mobile_page.goto(live_server.url + reverse("admin:galleries_gallery_change", args=[gallery.pk]))
    panel = mobile_page.locator("#exports-panel")
    panel.get_by_role("button", name="Lightroom list").click()
    link = panel.get_by_role("link", name="Download autumn-family-selection-lightroom.txt")
    link.wait_for()
    text = _download(mobile_page, link).decode("utf-8-sig")
    assert "IMG_0001" in text and "IMG_0005" not in text
    panel.scroll_into_view_if_needed()
    shot(mobile_page, "staff-exports")
    mobile_page.expect_console_errors(r"Applying inline style violates .*'style-src 'self''")
    assert not axe(mobile_page), axe(mobile_page)
