"""The portal's entry pages, the public studio page and the booking page, in
a real browser under the real Content-Security-Policy: every page here fails
its test on a console error or a CSP violation (tests/browser/conftest.py).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time
from typing import Any

import pytest
from playwright.sync_api import expect

from galleries import services
from galleries.models import Gallery, Visibility
from studio import context
from studio.tenancy import studio_scope
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)


def _gallery(studio: Any, **fields: Any) -> Gallery:
    gallery = factories.gallery(studio, **fields)
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        services.gallery_publish(gallery=gallery)
    return gallery


def _session_opened(page: Any, live_server: Any, gallery: Gallery) -> bool:
    """The portal API answers for this gallery only with an open session."""
    response = page.request.get(f"{live_server.url}/api/v1/portal/galleries/{gallery.pk}/")
    return response.status == 200


def _no_serious_violations(axe: Any, page: Any) -> None:
    violations = axe(page)
    assert violations == [], violations


@pytest.fixture
def studio(db: Any) -> Any:
    return factories.studio(name="Lumen Studio")


@pytest.mark.parametrize("viewport", ["page", "mobile_page"])
def test_code_then_pin_lands_on_the_gallery(request, viewport, live_server, studio, shot, axe):
    page = request.getfixturevalue(viewport)
    gallery = _gallery(studio, access_code="GARDEN24", pin="2468", title="Garden wedding")
    response = page.goto(f"{live_server.url}/g/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    expect(page.get_by_role("heading", name="Open your gallery")).to_be_visible()
    _no_serious_violations(axe, page)
    shot(page, "portal-entry")

    page.get_by_label("Gallery code", exact=True).fill("garden-24")
    page.get_by_role("button", name="Open gallery").click()
    expect(page.get_by_label("PIN", exact=True)).to_be_visible()
    _no_serious_violations(axe, page)
    shot(page, "portal-pin")

    page.get_by_label("PIN", exact=True).fill("2468")
    page.get_by_role("button", name="Open gallery").click()
    page.wait_for_url(re.compile(r"/g/GARDEN24/$"))
    assert _session_opened(page, live_server, gallery)


def test_a_wrong_code_then_a_wrong_pin_say_so(page, live_server, studio, axe):
    _gallery(studio, access_code="RIGHT001", pin="1357")
    page.goto(f"{live_server.url}/g/")
    page.expect_console_errors(r"status of 403")  # the refused guesses answer 403, on purpose
    page.get_by_label("Gallery code", exact=True).fill("WRONG001")
    page.get_by_role("button", name="Open gallery").click()
    expect(page.get_by_role("alert")).to_contain_text("That gallery code is not right")
    expect(page.get_by_label("Gallery code", exact=True)).to_be_focused()
    _no_serious_violations(axe, page)

    page.get_by_label("Gallery code", exact=True).fill("RIGHT001")
    page.get_by_role("button", name="Open gallery").click()
    page.get_by_label("PIN", exact=True).fill("0000")
    page.get_by_role("button", name="Open gallery").click()
    expect(page.get_by_text("That PIN is not right")).to_be_visible()


def test_too_many_guesses_show_when_to_try_again(page, live_server, studio, settings, axe):
    settings.PORTAL_FAILURES_PER_IP = 2
    page.expect_console_errors(r"status of (403|429)")
    page.goto(f"{live_server.url}/g/")
    for guess in ("GUESS001", "GUESS002", "GUESS003"):
        page.get_by_label("Gallery code", exact=True).fill(guess)
        page.get_by_role("button", name="Open gallery").click()
        if page.get_by_role("heading", name="Too many attempts").count():
            break
        page.goto(f"{live_server.url}/g/")
    expect(page.get_by_role("heading", name="Too many attempts")).to_be_visible()
    expect(page.locator("#refusal-message")).to_contain_text(
        re.compile(r"try again in \d+ minutes \(after \d\d:\d\d\)")
    )
    _no_serious_violations(axe, page)


@pytest.mark.parametrize("viewport", ["page", "mobile_page"])
def test_an_expired_gallery_says_since_when(request, viewport, live_server, studio, shot, axe):
    page = request.getfixturevalue(viewport)
    _gallery(studio, access_code="OLDONE01", expires_at=datetime(2024, 3, 15, 12, tzinfo=UTC))
    page.expect_console_errors(r"status of 410")
    response = page.goto(f"{live_server.url}/g/OLDONE01/")
    assert response.status == 410
    expect(page.get_by_role("heading", name="This gallery has expired")).to_be_visible()
    expect(page.locator("#refusal-message")).to_contain_text("15 March 2024")
    _no_serious_violations(axe, page)
    shot(page, "portal-expired")


def test_name_and_email_step(page, live_server, studio, axe):
    gallery = _gallery(studio, access_code="FAMILY01", ask_visitor_identity=True)
    page.goto(f"{live_server.url}/g/FAMILY01/")
    expect(page.get_by_label("Your name", exact=True)).to_be_visible()
    _no_serious_violations(axe, page)
    page.get_by_label("Your name", exact=True).fill("Jo Client")
    page.get_by_label("Email", exact=True).fill("jo@example.com")
    page.get_by_role("button", name="Open gallery").click()
    page.wait_for_url(re.compile(r"/g/FAMILY01/$"))
    assert _session_opened(page, live_server, gallery)


@pytest.mark.parametrize("viewport", ["page", "mobile_page"])
def test_public_studio_page_lists_covers_and_opens_a_gallery(request, viewport, live_server, studio, shot, axe):
    page = request.getfixturevalue(viewport)
    listed = _gallery(studio, title="Summer portraits", visibility=Visibility.PUBLIC, access_code="SUMMER01")
    factories.ready_asset(studio, listed)
    _gallery(studio, title="Secret session")
    page.goto(f"{live_server.url}/s/{studio.slug}/")
    expect(page.get_by_role("heading", name="Lumen Studio")).to_be_visible()
    link = page.get_by_role("link", name=re.compile("Summer portraits"))
    expect(link).to_be_visible()
    expect(page.get_by_text("Secret session")).to_have_count(0)
    cover = page.locator(".card-cover").first
    expect(cover).to_have_js_property("complete", True)
    assert cover.evaluate("img => img.naturalWidth") > 0
    _no_serious_violations(axe, page)
    # No horizontal scrolling, whatever the width.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shot(page, "portal-studio")

    link.click()
    page.wait_for_url(re.compile(rf"/s/{studio.slug}/g/SUMMER01/$"))
    assert _session_opened(page, live_server, listed)


def test_booking_page_books_a_slot_under_the_policy(page, live_server, studio, settings):
    from bookings.models import Booking, WorkingHours
    from studio.tenancy import unscoped

    settings.SITE_URL = live_server.url
    with studio_scope(studio):
        WorkingHours.objects.bulk_create(
            [WorkingHours(studio=studio, weekday=d, start_time=time(8), end_time=time(20)) for d in range(7)]
        )
    factories.service(studio, name="Headshots")
    page.goto(f"{live_server.url}/book/{studio.slug}/")
    first_slot = page.locator("#slots button").first
    expect(first_slot).to_be_visible()
    first_slot.click()
    expect(first_slot).to_have_attribute("aria-pressed", "true")
    page.get_by_label("Your name", exact=True).fill("Casey Client")
    page.get_by_label("Email", exact=True).fill("casey@example.com")
    page.get_by_role("button", name="Book this time").click()
    page.wait_for_url(re.compile(r"/book/manage/"))
    expect(page.locator("#status")).to_contain_text("confirmed")
    with unscoped():
        assert Booking.objects.filter(studio=studio, client_email="casey@example.com").exists()


def test_unknown_direct_link_is_a_clear_page(page, live_server, axe):
    page.expect_console_errors(r"status of 404")
    response = page.goto(f"{live_server.url}/g/NOSUCH99/")
    assert response.status == 404
    expect(page.get_by_role("alert")).to_contain_text("We could not find a gallery for that link")
    _no_serious_violations(axe, page)


# --- the rest of the site under the same policy -------------------------------------------------------


def _sign_in(page: Any, live_server: Any, user: Any) -> None:
    from django.conf import settings as django_settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    cookie = client.cookies[django_settings.SESSION_COOKIE_NAME].value
    page.context.add_cookies([{"name": django_settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}])


def test_sign_in_admin_and_api_docs_report_no_csp_violation(page, live_server, studio):
    for path in ("/", "/accounts/login/", "/admin/login/"):
        response = page.goto(f"{live_server.url}{path}")
        assert "script-src 'self'" in response.headers["content-security-policy"], path
        page.wait_for_load_state("networkidle")

    owner = factories.owner_membership(studio)
    other = factories.studio(name="Second Studio")
    factories.member(other, user_=owner.user)  # two studios: the switcher shows
    _sign_in(page, live_server, owner.user)
    for path in ("/", "/admin/", f"/admin/studio/studio/{studio.pk}/change/", "/api/docs/"):
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == 200, path
        page.wait_for_load_state("networkidle")
    expect(page.locator(".swagger-ui")).to_be_visible()

    # The studio switcher (a module now, not an inline handler) still switches.
    page.goto(f"{live_server.url}/admin/")
    page.get_by_label("Studio", exact=True).select_option(label="Second Studio")
    page.wait_for_load_state("networkidle")
    expect(page.locator("#site-name")).to_contain_text("Second Studio")
