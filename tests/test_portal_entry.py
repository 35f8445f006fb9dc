"""The portal's entry pages (/g/, /g/<code>/, /s/<studio>/g/<code>/), the
public studio page (/s/<studio>/) and the pages that explain a refusal.

Every client gets a fresh REMOTE_ADDR: the portal's throttle counters live in
the cache (see tests/test_portal.py).
"""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone
from PIL import Image

from audit.models import AuditEvent
from galleries import access, services
from galleries.models import Gallery, Visibility, Visitor
from studio import context
from studio import services as studio_services
from studio.auditing import Action
from studio.models import Studio
from studio.tenancy import studio_scope, unscoped
from tests import factories

pytestmark = pytest.mark.django_db


def _client() -> Client:
    ip = f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
    return Client(REMOTE_ADDR=ip)


@contextmanager
def _staff(studio: Studio) -> Iterator[None]:
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        yield


def _gallery(studio: Studio, *, publish: bool = True, **fields: Any) -> Gallery:
    gallery = factories.gallery(studio, **fields)
    if publish:
        with _staff(studio):
            services.gallery_publish(gallery=gallery)
    return gallery


def _session_gallery(client: Client) -> str | None:
    return (client.session.get(access.SESSION_KEY) or {}).get("gallery")


def _text(response: Any) -> str:
    return response.content.decode()


# --- /g/: typing the code ---------------------------------------------------------------------------


def test_entry_form_asks_for_the_code_and_sets_the_csrf_cookie():
    response = _client().get("/g/")
    assert response.status_code == 200
    html = _text(response)
    assert '<label for="code">Gallery code</label>' in html
    assert "Open gallery" in html
    assert "csrftoken" in response.cookies
    assert "no-store" in response["Cache-Control"]


def test_right_code_without_pin_opens_the_gallery_and_redirects_to_it(studio):
    gallery = _gallery(studio, access_code="SMITH2025")
    client = _client()
    response = client.post("/g/", {"code": "smith-2025"})
    assert response.status_code == 302
    assert response["Location"] == "/g/SMITH2025/"
    assert _session_gallery(client) == str(gallery.pk)
    with unscoped():
        assert AuditEvent.objects.filter(action=Action.GALLERY_OPENED, target_id=str(gallery.pk)).exists()


def test_code_then_pin_then_the_gallery(studio):
    gallery = _gallery(studio, access_code="PINNED01", pin="4321")
    client = _client()
    response = client.post("/g/", {"code": "PINNED01"})
    assert response.status_code == 200
    html = _text(response)
    assert '<label for="pin">PIN</label>' in html
    assert 'name="code" value="PINNED01"' in html
    assert f'name="studio" value="{studio.slug}"' in html
    assert _session_gallery(client) is None

    response = client.post("/g/", {"code": "PINNED01", "studio": studio.slug, "pin": "0000"})
    assert response.status_code == 403
    assert "That PIN is not right" in _text(response)
    assert _session_gallery(client) is None

    response = client.post("/g/", {"code": "PINNED01", "studio": studio.slug, "pin": ""})
    assert response.status_code == 400
    assert "Enter the PIN." in _text(response)

    response = client.post("/g/", {"code": "PINNED01", "studio": studio.slug, "pin": "4321"})
    assert response.status_code == 302
    assert _session_gallery(client) == str(gallery.pk)


def test_wrong_code_is_403_with_the_form_again(studio):
    _gallery(studio, access_code="REAL0001")
    response = _client().post("/g/", {"code": "WRONG001"})
    assert response.status_code == 403
    html = _text(response)
    assert "That gallery code is not right" in html
    assert '<label for="code">Gallery code</label>' in html


def test_empty_code_is_a_form_error_not_a_counted_guess(settings):
    settings.PORTAL_FAILURES_PER_IP = 1
    client = _client()
    for _ in range(3):
        response = client.post("/g/", {"code": "  "})
        assert response.status_code == 400
        assert "Enter the gallery code" in _text(response)


def test_name_and_email_step_when_the_gallery_asks(studio):
    gallery = _gallery(studio, access_code="WHOAREU1", pin="1111", ask_visitor_identity=True)
    client = _client()
    response = client.post("/g/", {"code": "WHOAREU1", "studio": studio.slug, "pin": "1111"})
    assert response.status_code == 200
    html = _text(response)
    assert '<label for="name">Your name</label>' in html
    assert '<label for="email">Email</label>' in html
    assert _session_gallery(client) is None

    response = client.post("/g/", {"code": "WHOAREU1", "studio": studio.slug, "pin": "1111", "name": "Jo"})
    assert response.status_code == 400
    assert "Your email address" in _text(response)

    data = {"code": "WHOAREU1", "studio": studio.slug, "pin": "1111", "name": "Jo", "email": "jo@example.com"}
    response = client.post("/g/", data)
    assert response.status_code == 302
    with unscoped():
        visitor = Visitor.objects.get(gallery=gallery)
    assert (visitor.name, visitor.email) == ("Jo", "jo@example.com")


def test_a_code_two_studios_use_asks_which_studio(studio, other_studio):
    mine = _gallery(studio, access_code="SHARED01")
    _gallery(other_studio, access_code="SHARED01")
    client = _client()
    response = client.post("/g/", {"code": "shared01"})
    assert response.status_code == 200
    html = _text(response)
    assert "Which studio?" in html
    assert f'value="{studio.slug}"' in html and f'value="{other_studio.slug}"' in html
    assert _session_gallery(client) is None

    response = client.post("/g/", {"code": "SHARED01", "studio": studio.slug})
    assert response.status_code == 302
    # The studio stays in the link: /g/SHARED01/ alone names two galleries.
    assert response["Location"] == f"/s/{studio.slug}/g/SHARED01/"
    assert _session_gallery(client) == str(mine.pk)


def test_a_code_of_an_inactive_studio_does_not_count(studio, other_studio):
    _gallery(studio, access_code="SHARED02")
    _gallery(other_studio, access_code="SHARED02")
    Studio.objects.filter(pk=other_studio.pk).update(is_active=False)
    response = _client().post("/g/", {"code": "SHARED02"})
    assert response.status_code == 302


# --- direct links -----------------------------------------------------------------------------------


def test_direct_link_opens_a_gallery_that_needs_nothing_more(studio):
    gallery = _gallery(studio, access_code="DIRECT01")
    client = _client()
    response = client.get("/g/direct01/")
    assert response.status_code == 302
    assert response["Location"] == "/g/direct01/"
    assert _session_gallery(client) == str(gallery.pk)


def test_direct_link_with_pin_asks_for_it_with_the_code_filled_in(studio):
    gallery = _gallery(studio, access_code="DIRECT02", pin="2468")
    client = _client()
    response = client.get("/g/DIRECT02/")
    assert response.status_code == 200
    html = _text(response)
    assert '<label for="pin">PIN</label>' in html
    assert 'name="code" value="DIRECT02"' in html
    assert "csrftoken" in response.cookies

    response = client.post("/g/DIRECT02/", {"code": "DIRECT02", "studio": studio.slug, "pin": "2468"})
    assert response.status_code == 302
    assert response["Location"] == "/g/DIRECT02/"
    assert _session_gallery(client) == str(gallery.pk)


def test_direct_link_with_an_unknown_code_is_404_with_the_form(studio):
    response = _client().get("/g/NOPE0001/")
    assert response.status_code == 404
    html = _text(response)
    assert "We could not find a gallery for that link" in html
    assert 'action="/g/"' in html


def test_direct_link_of_a_shared_code_asks_which_studio_and_the_studio_link_does_not(studio, other_studio):
    _gallery(studio, access_code="SHARED03")
    theirs = _gallery(other_studio, access_code="SHARED03")
    response = _client().get("/g/SHARED03/")
    assert response.status_code == 200
    assert "Which studio?" in _text(response)

    client = _client()
    response = client.get(f"/s/{other_studio.slug}/g/SHARED03/")
    assert response.status_code == 302
    assert response["Location"] == f"/s/{other_studio.slug}/g/SHARED03/"
    assert _session_gallery(client) == str(theirs.pk)


def test_head_of_a_direct_link_opens_nothing(studio):
    gallery = _gallery(studio, access_code="PREVIEW1")
    client = _client()
    response = client.head("/g/PREVIEW1/")
    assert response.status_code == 200
    assert _session_gallery(client) is None
    with unscoped():
        assert not Visitor.objects.filter(gallery=gallery).exists()


@pytest.mark.parametrize("visibility", [Visibility.UNLISTED, Visibility.PUBLIC])
def test_unlisted_and_public_galleries_open_from_their_link(studio, visibility):
    gallery = _gallery(studio, access_code="LINKED01", visibility=visibility)
    client = _client()
    assert client.get(f"/s/{studio.slug}/g/LINKED01/").status_code == 302
    assert _session_gallery(client) == str(gallery.pk)


# --- refusals -----------------------------------------------------------------------------------------


def test_expired_gallery_is_410_with_its_date(studio):
    _gallery(studio, access_code="OLD00001", expires_at=datetime(2024, 3, 15, 12, 0, tzinfo=UTC))
    client = _client()
    response = client.get("/g/OLD00001/")
    assert response.status_code == 410
    html = _text(response)
    assert "This gallery has expired" in html
    assert "15 March 2024" in html
    assert _session_gallery(client) is None


def test_unpublished_gallery_is_403(studio):
    _gallery(studio, access_code="DRAFT001", publish=False)
    response = _client().post("/g/", {"code": "DRAFT001"})
    assert response.status_code == 403
    assert "This gallery is not available" in _text(response)


def test_throttled_page_says_when_to_try_again_and_sends_retry_after(studio, settings):
    settings.PORTAL_FAILURES_PER_IP = 2
    _gallery(studio, access_code="REAL0002")
    client = _client()
    for _ in range(2):
        assert client.post("/g/", {"code": "GUESS001"}).status_code == 403
    response = client.post("/g/", {"code": "REAL0002"})
    assert response.status_code == 429
    seconds = int(response["Retry-After"])
    assert 0 < seconds <= settings.PORTAL_FAILURE_WINDOW_SECONDS
    html = _text(response)
    assert "Too many attempts" in html
    assert f"try again in {-(-seconds // 60)} minutes" in html
    when = timezone.localtime(timezone.now() + timedelta(seconds=seconds))
    assert f"after {when:%H:%M}" in html or "after " in html
    assert _session_gallery(client) is None


def test_a_direct_link_is_throttled_too(studio, settings):
    settings.PORTAL_FAILURES_PER_IP = 1
    client = _client()
    assert client.get("/g/GUESS002/").status_code == 404
    response = client.get("/g/GUESS003/")
    assert response.status_code == 429
    assert response["Retry-After"]


# --- branding -----------------------------------------------------------------------------------------


def _png(size: tuple[int, int] = (60, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(out, "PNG")
    return out.getvalue()


def _brand(studio: Studio, **changes: Any) -> Studio:
    with context.acting_as(factories.TEST_ACTOR):
        return studio_services.studio_update(studio=Studio.objects.get(pk=studio.pk), **changes)


def test_studio_name_logo_and_accent_brand_the_entry_steps(studio):
    _brand(studio, accent_color="#aa3300", logo=SimpleUploadedFile("logo.png", _png(), "image/png"))
    _gallery(studio, access_code="BRAND001", pin="1234")
    client = _client()
    response = client.get("/g/BRAND001/")
    html = _text(response)
    assert "--accent: #aa3300;" in html
    assert f'src="/s/{studio.slug}/logo/?v=' in html
    assert f'alt="{studio.name}"' in html
    nonce = response.wsgi_request.csp_nonce
    assert f'<style nonce="{nonce}">' in html
    assert f"'nonce-{nonce}'" in response["Content-Security-Policy"]

    logo = client.get(f"/s/{studio.slug}/logo/")
    assert logo.status_code == 200
    assert b"".join(logo.streaming_content)[:8] == b"\x89PNG\r\n\x1a\n"


def test_entry_page_without_a_studio_uses_the_default_look():
    html = _text(_client().get("/g/"))
    assert "--accent: #1f5f8b;" in html
    assert "Client gallery" in html


def test_no_logo_is_404(studio):
    assert _client().get(f"/s/{studio.slug}/logo/").status_code == 404


# --- the public studio page -----------------------------------------------------------------------------


def test_studio_page_lists_only_listed_published_unexpired_galleries(studio, other_studio):
    listed = _gallery(studio, title="Spring weddings", visibility=Visibility.PUBLIC)
    _gallery(studio, title="Draft listed", visibility=Visibility.PUBLIC, publish=False)
    _gallery(studio, title="Unlisted one", visibility=Visibility.UNLISTED)
    _gallery(studio, title="Private one")
    _gallery(
        studio, title="Expired listed", visibility=Visibility.PUBLIC, expires_at=timezone.now() - timedelta(days=1)
    )
    _gallery(other_studio, title="Other studio listed", visibility=Visibility.PUBLIC)
    response = _client().get(f"/s/{studio.slug}/")
    assert response.status_code == 200
    html = _text(response)
    assert "Spring weddings" in html
    assert f'href="/s/{studio.slug}/g/{listed.access_code}/"' in html
    for hidden in ("Draft listed", "Unlisted one", "Private one", "Expired listed", "Other studio listed"):
        assert hidden not in html
    assert "csrftoken" in response.cookies


def test_studio_page_of_an_unknown_or_inactive_studio_is_404(studio):
    assert _client().get("/s/no-such-studio/").status_code == 404
    Studio.objects.filter(pk=studio.pk).update(is_active=False)
    assert _client().get(f"/s/{studio.slug}/").status_code == 404


def test_studio_page_without_listed_galleries_says_so(studio):
    response = _client().get(f"/s/{studio.slug}/")
    assert "has no public galleries right now" in _text(response)


def test_listed_galleries_show_their_cover_thumbnail_and_nothing_else_is_served(studio):
    gallery = _gallery(studio, visibility=Visibility.PUBLIC)
    asset = factories.ready_asset(studio, gallery)
    private = _gallery(studio)
    factories.ready_asset(studio, private)
    client = _client()
    html = _text(client.get(f"/s/{studio.slug}/"))
    cover = f"/s/{studio.slug}/covers/{gallery.pk}/"
    assert f'src="{cover}"' in html

    response = client.get(cover)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/webp"
    with unscoped():
        thumb_key = asset.derivatives["thumb"]["key"]
    from galleries.storage import media_store

    with media_store().open(thumb_key) as handle:
        assert b"".join(response.streaming_content) == handle.read()

    # Private galleries, other studios and unpublished galleries have no public cover.
    assert client.get(f"/s/{studio.slug}/covers/{private.pk}/").status_code == 404
    other = factories.studio()
    assert client.get(f"/s/{other.slug}/covers/{gallery.pk}/").status_code == 404
    with _staff(studio):
        services.gallery_unpublish(gallery=gallery)
    assert client.get(cover).status_code == 404


def test_an_explicit_cover_wins_and_a_trashed_one_falls_back(studio):
    gallery = _gallery(studio, visibility=Visibility.PUBLIC)
    first = factories.ready_asset(studio, gallery)
    chosen = factories.ready_asset(studio, gallery)
    with unscoped():
        Gallery.objects.filter(pk=gallery.pk).update(cover=chosen)
    client = _client()

    def served() -> bytes:
        return b"".join(client.get(f"/s/{studio.slug}/covers/{gallery.pk}/").streaming_content)

    from galleries.storage import media_store

    def thumb(asset: Any) -> bytes:
        with unscoped(), media_store().open(type(asset).objects.get(pk=asset.pk).derivatives["thumb"]["key"]) as h:
            return h.read()

    assert served() == thumb(chosen)
    with unscoped():
        type(chosen).objects.filter(pk=chosen.pk).update(trashed_at=timezone.now())
    assert served() == thumb(first)


def test_a_listed_gallery_without_photos_has_no_cover(studio):
    gallery = _gallery(studio, visibility=Visibility.PUBLIC)
    html = _text(_client().get(f"/s/{studio.slug}/"))
    assert "card-cover-empty" in html
    assert _client().get(f"/s/{studio.slug}/covers/{gallery.pk}/").status_code == 404


# --- editing the branding -------------------------------------------------------------------------------


def _image(fmt: str, size: tuple[int, int] = (40, 20)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (10, 120, 90)).save(out, fmt)
    return out.getvalue()


@pytest.mark.parametrize(("fmt", "name"), [("PNG", "l.png"), ("JPEG", "l.jpg"), ("WEBP", "l.webp")])
def test_png_jpeg_and_webp_logos_are_accepted_and_audited_by_name(studio, fmt, name):
    updated = _brand(studio, logo=SimpleUploadedFile(name, _image(fmt), "image/x"))
    assert updated.logo.name.startswith(f"studios/{studio.pk}/branding/logo-")
    with unscoped():
        event = AuditEvent.objects.filter(action=Action.STUDIO_UPDATED, target_id=str(studio.pk)).latest("created_at")
    assert event.before["logo"] == ""
    assert event.after["logo"] == updated.logo.name


@pytest.mark.parametrize(
    ("upload", "message"),
    [
        (SimpleUploadedFile("l.gif", b"", "image/gif"), "not a readable image"),
        (SimpleUploadedFile("l.png", b"\x89PNG\r\n\x1a\nnot really", "image/png"), "not a readable image"),
        (SimpleUploadedFile("l.png", b"x" * (1024 * 1024 + 1), "image/png"), "larger than 1 MB"),
    ],
)
def test_logos_that_are_not_small_real_images_are_refused(studio, upload, message):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match=message):
        _brand(studio, logo=upload)


def test_a_gif_logo_is_refused(studio):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="PNG, JPEG or WebP"):
        _brand(studio, logo=SimpleUploadedFile("l.gif", _image("GIF"), "image/gif"))


def test_accent_colour_must_be_rrggbb(studio):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        _brand(studio, accent_color="red; } body { display: none")


def test_owner_sets_branding_in_the_admin(studio):
    owner = factories.owner_membership(studio)
    client = Client()
    client.force_login(owner.user)
    url = f"/admin/studio/studio/{studio.pk}/change/"
    page = client.get(url)
    assert page.status_code == 200
    html = _text(page)
    assert 'name="accent_color"' in html and 'name="logo"' in html and 'enctype="multipart/form-data"' in html
    data = {
        "name": studio.name,
        "timezone": studio.timezone,
        "contact_email": studio.contact_email,
        "booking_cancellation_hours": studio.booking_cancellation_hours,
        "gallery_expiry_notice_days": studio.gallery_expiry_notice_days,
        "payment_instructions": "",
        "accent_color": "#123456",
        "logo": SimpleUploadedFile("logo.webp", _image("WEBP"), "image/webp"),
    }
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    studio.refresh_from_db()
    assert studio.accent_color == "#123456"
    assert studio.logo.name.endswith(".webp")

    bad = {**data, "logo": SimpleUploadedFile("logo.png", b"nope", "image/png")}
    response = client.post(url, bad)
    assert response.status_code == 200  # the form again, with the error
    assert "logo" in response.context["adminform"].form.errors

    cleared = {k: v for k, v in data.items() if k != "logo"} | {"logo-clear": "on"}
    assert client.post(url, cleared).status_code == 302
    studio.refresh_from_db()
    assert not studio.logo


def test_owner_sets_the_accent_colour_through_the_api(studio, client_for):
    owner = factories.owner_membership(studio)
    api = client_for(owner)
    response = api.patch(f"/api/v1/studios/{studio.slug}/", {"accent_color": "#abcdef"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["accent_color"] == "#abcdef"
    assert response.json()["logo"] is None
    bad = api.patch(f"/api/v1/studios/{studio.slug}/", {"accent_color": "blue"}, format="json")
    assert bad.status_code == 400
    _brand(studio, logo=SimpleUploadedFile("l.png", _image("PNG"), "image/png"))
    assert api.get(f"/api/v1/studios/{studio.slug}/").json()["logo"] == f"/s/{studio.slug}/logo/"
