"""The Content-Security-Policy: every page is served with it, and no template
of ours needs what it forbids (inline scripts, inline event handlers, style
attributes, a <style> without the request's nonce).

The meta-test walks every template directory of the project and its apps,
so a new template cannot slip an inline script past review; the browser
tests (tests/browser/) then watch the console for violations.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.test import Client

from galleries import services
from galleries.models import Visibility
from studio import context
from studio.tenancy import studio_scope
from tests import factories

ROOT = Path(settings.BASE_DIR).resolve()

SCRIPT = re.compile(r"<script\b([^>]*)>", re.IGNORECASE)
STYLE = re.compile(r"<style\b([^>]*)>", re.IGNORECASE)
STYLE_ATTRIBUTE = re.compile(r"<[a-zA-Z][^>]*\sstyle\s*=", re.IGNORECASE)
EVENT_HANDLER = re.compile(r"<[a-zA-Z][^>]*\son[a-z]+\s*=", re.IGNORECASE)
JAVASCRIPT_URL = re.compile(r"""(href|src|action)\s*=\s*["']?\s*javascript:""", re.IGNORECASE)


def _template_dirs() -> list[Path]:
    dirs = [Path(d) for engine in settings.TEMPLATES for d in engine.get("DIRS", [])]
    dirs += [Path(app.path) / "templates" for app in apps.get_app_configs()]
    # Ours only: third-party packages' templates are checked where we render
    # them (test_rendered_pages_are_clean), and overridden when they are not.
    return [d.resolve() for d in dirs if d.is_dir() and ROOT in d.resolve().parents and ".venv" not in d.parts]


def _templates() -> list[Path]:
    # Emails are read in mail clients, never served under the CSP, and need inline styles.
    return sorted(p for d in _template_dirs() for p in d.rglob("*.html") if "emails" not in p.relative_to(d).parts)


def problems(html: str) -> list[str]:
    found = []
    for match in SCRIPT.finditer(html):
        attrs = match.group(1)
        if "src=" in attrs:
            continue
        if re.search(r"""type\s*=\s*["']application/(ld\+)?json["']""", attrs):
            continue  # json_script's data, never executed
        found.append(f"inline script: {match.group(0)}")
    for match in STYLE.finditer(html):
        if "nonce=" not in match.group(1):
            found.append(f"<style> without a nonce: {match.group(0)}")
    found += [f"style attribute: {m.group(0)[:80]}" for m in STYLE_ATTRIBUTE.finditer(html)]
    found += [f"inline event handler: {m.group(0)[:80]}" for m in EVENT_HANDLER.finditer(html)]
    found += [f"javascript: URL: {m.group(0)}" for m in JAVASCRIPT_URL.finditer(html)]
    return found


def test_the_meta_test_sees_the_templates_and_catches_what_it_should():
    names = {p.relative_to(ROOT).as_posix() for p in _templates()}
    for expected in ("templates/base.html", "templates/bookings/book.html", "templates/galleries/portal/entry.html"):
        assert expected in names
    bad = (
        '<script>alert(1)</script><style>p{}</style><p style="color:red">'
        '<button onclick="go()"><a href="javascript:go()">'
    )
    assert len(problems(bad)) == 5
    good = (
        '<script type="module" src="/static/x.js"></script><script id="d" type="application/json">{}</script>'
        '<style nonce="{{ request.csp_nonce }}">:root{}</style><p data-style="x" class="onward">'
    )
    assert problems(good) == []


@pytest.mark.parametrize("template", _templates(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_template_has_no_inline_script_or_style(template: Path):
    assert problems(template.read_text()) == []


# --- served pages ------------------------------------------------------------------------------------


@pytest.fixture
def world(db):
    studio = factories.studio()
    gallery = factories.gallery(studio, access_code="CSPTEST1", visibility=Visibility.PUBLIC, pin="1234")
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        services.gallery_publish(gallery=gallery)
    factories.service(studio)
    booking = factories.booking(studio)
    return {"studio": studio, "gallery": gallery, "booking": booking}


def _pages(world) -> dict[str, str]:
    slug = world["studio"].slug
    return {
        "home": "/",
        "portal entry": "/g/",
        "portal direct link (PIN step)": "/g/CSPTEST1/",
        "portal unknown code": "/g/NOSUCH99/",
        "public studio page": f"/s/{slug}/",
        "booking page": f"/book/{slug}/",
        "contact page": f"/contact/{slug}/",
        "sign in": "/accounts/login/",
        "admin login": "/admin/login/",
        "API docs": "/api/docs/",
        "not found": "/no-such-page/",
    }


def _signed_in_admin(client: Client, world) -> None:
    owner = factories.owner_membership(world["studio"])
    client.force_login(owner.user)


def test_every_page_is_served_with_the_policy(world):
    client = Client()
    for name, url in _pages(world).items():
        response = client.get(url)
        assert response.status_code in (200, 302, 403, 404), (name, response.status_code)
        policy = response.get("Content-Security-Policy", "")
        assert "script-src 'self'" in policy, name
        assert "'unsafe-inline'" not in policy, name
        assert "object-src 'none'" in policy, name


def test_rendered_pages_are_clean(world, settings):
    settings.DEBUG = False
    client = Client()
    for name, url in _pages(world).items():
        response = client.get(url, follow=True)
        assert problems(response.content.decode()) == [], name


def test_admin_pages_are_served_with_the_policy_and_clean(world):
    client = Client()
    _signed_in_admin(client, world)
    for url in ("/admin/", f"/admin/studio/studio/{world['studio'].pk}/change/"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert "script-src 'self'" in response["Content-Security-Policy"], url
        assert problems(response.content.decode()) == [], url


def test_booking_manage_page_is_served_with_the_policy_and_clean(world):
    from bookings.links import manage_token
    from bookings.models import Booking
    from studio.models import hash_token
    from studio.tenancy import unscoped

    booking = world["booking"]
    raw = manage_token(booking)
    with unscoped():
        Booking.objects.filter(pk=booking.pk).update(token_hash=hash_token(raw))
    response = Client().get(f"/book/manage/{raw}/")
    assert response.status_code == 200
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert problems(response.content.decode()) == []


def test_the_studio_colour_is_the_only_inline_style_and_it_carries_the_nonce(world):
    response = Client().get(f"/s/{world['studio'].slug}/")
    nonce = response.wsgi_request.csp_nonce
    html = response.content.decode()
    assert html.count("<style") == 1
    assert f'<style nonce="{nonce}">' in html
    assert f"'nonce-{nonce}'" in response["Content-Security-Policy"]
