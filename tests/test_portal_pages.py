"""The client gallery page (galleries/portal_page.py) and the portal API
fields it reads: header counts, derivative sizes for srcset, which folders
the client may change, and a folder's own order."""

from __future__ import annotations

import json
import random
import re
from typing import Any

import pytest
from django.test import Client

from galleries import services
from galleries.models import Gallery
from studio import context
from studio.tenancy import studio_scope
from tests import factories

pytestmark = pytest.mark.django_db

PORTAL = "/api/v1/portal"


def _client() -> Client:
    return Client(REMOTE_ADDR=f"10.7.{random.randint(0, 255)}.{random.randint(1, 254)}")


def _published(studio: Any, **fields: Any) -> Gallery:
    gallery = factories.gallery(studio, **fields)
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        services.gallery_publish(gallery=gallery)
    return gallery


def _open(client: Client, gallery: Gallery) -> dict[str, Any]:
    response = client.post(
        f"{PORTAL}/access/",
        {"studio": gallery.studio.slug, "code": gallery.access_code},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    return response.json()


def _page_data(html: str) -> dict[str, Any]:
    match = re.search(r'<script id="portal-data" type="application/json">(.*?)</script>', html, re.S)
    assert match, "the page hands its data to the modules through json_script"
    return json.loads(match.group(1))


def test_the_gallery_page_is_a_shell_for_the_modules(studio: Any) -> None:
    gallery = _published(studio, title="Summer <b>party</b>")
    client = _client()
    _open(client, gallery)
    response = client.get(f"/g/{gallery.access_code.lower()}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Summer &lt;b&gt;party&lt;/b&gt;" in html
    data = _page_data(html)
    assert data["gallery"] == str(gallery.pk)
    assert data["api"] == f"{PORTAL}/galleries/{gallery.pk}/"
    assert data["assets"] == f"{PORTAL}/galleries/{gallery.pk}/assets/"
    assert data["folders"] == f"{PORTAL}/galleries/{gallery.pk}/folders/"
    assert data["selection"] == f"{PORTAL}/galleries/{gallery.pk}/selection/"
    # Modules only; no inline script or style attribute for the CSP to refuse.
    assert '<script type="module" src="/static/portal/app.js">' in html
    assert not re.search(r"<script(?![^>]*(src=|application/json))", html)
    assert "style=" not in html
    assert "csrftoken" in response.cookies
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]


def test_the_page_needs_that_galleries_session(studio: Any) -> None:
    gallery = _published(studio)
    other = _published(studio)
    client = _client()
    _open(client, other)
    # A session for another gallery, or none: whatever the entry page
    # answers (galleries/pages.py), never this gallery's photos.
    for visitor in (client, _client()):
        response = visitor.get(f"/g/{gallery.access_code}/")
        assert "portal-data" not in response.content.decode()


def test_header_counts_follow_what_the_client_does(studio: Any) -> None:
    gallery = _published(studio, selection_limit=10)
    assets = [factories.ready_asset(studio, gallery) for _ in range(4)]
    client = _client()
    opened = _open(client, gallery)
    assert opened["counts"] == {"photos": 4, "rated": 0, "in_folders": 0, "selected": 0, "trashed": 0}
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        staff = services.folder_create(gallery=gallery, name="Studio picks")
        services.placements_add(folder=staff, assets=[assets[3]])
    base = f"{PORTAL}/galleries/{gallery.pk}"
    assert (
        client.put(f"{base}/assets/{assets[0].pk}/rating/", {"stars": 4}, content_type="application/json").status_code
        == 204
    )
    folder = client.post(f"{base}/folders/", {"name": "Mine"}, content_type="application/json").json()
    assert (
        client.post(
            f"{base}/folders/{folder['id']}/add/", {"assets": [str(assets[1].pk)]}, content_type="application/json"
        ).status_code
        == 204
    )
    assert (
        client.post(
            f"{base}/assets/trash/", {"assets": [str(assets[2].pk)]}, content_type="application/json"
        ).status_code
        == 204
    )
    body = client.get(f"{base}/").json()
    # The studio's folder counts as "in folders" but is not the client's choice.
    assert body["counts"] == {"photos": 3, "rated": 1, "in_folders": 2, "selected": 2, "trashed": 1}
    assert body["selection"] == "open" and body["finalized_at"] is None

    assert client.post(f"{base}/selection/").status_code == 201
    body = client.get(f"{base}/").json()
    assert body["selection"] == "finalized" and body["finalized_at"]


def test_assets_carry_derivative_sizes_for_srcset(studio: Any) -> None:
    gallery = _published(studio)
    asset = factories.ready_asset(studio, gallery)
    client = _client()
    _open(client, gallery)
    item = client.get(f"{PORTAL}/galleries/{gallery.pk}/assets/").json()["results"][0]
    assert item["id"] == str(asset.pk)
    assert set(item["sizes"]) == {"thumb", "medium", "large"}
    for variant, size in item["sizes"].items():
        assert size == {"width": asset.derivatives[variant]["width"], "height": asset.derivatives[variant]["height"]}
        assert item["urls"][variant]


def test_folders_say_which_the_client_may_change(studio: Any) -> None:
    gallery = _published(studio)
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        services.folder_create(gallery=gallery, name="Studio picks")
    client = _client()
    _open(client, gallery)
    base = f"{PORTAL}/galleries/{gallery.pk}/folders/"
    client.post(base, {"name": "Mine"}, content_type="application/json")
    folders = {f["name"]: f for f in client.get(base).json()["results"]}
    assert folders["Studio picks"]["editable"] is False
    assert folders["Mine"]["editable"] is True


def test_a_folder_lists_its_photos_in_the_folders_order(studio: Any) -> None:
    gallery = _published(studio)
    assets = [factories.ready_asset(studio, gallery) for _ in range(5)]
    client = _client()
    _open(client, gallery)
    base = f"{PORTAL}/galleries/{gallery.pk}"
    folder = client.post(f"{base}/folders/", {"name": "Album"}, content_type="application/json").json()["id"]
    ids = [str(a.pk) for a in assets]
    client.post(f"{base}/folders/{folder}/add/", {"assets": ids}, content_type="application/json")
    wanted = [ids[3], ids[0], ids[4], ids[2], ids[1]]
    response = client.post(
        f"{base}/folders/{folder}/reorder-assets/", {"assets": wanted}, content_type="application/json"
    )
    assert response.status_code == 204
    # Paged two by two: the cursor follows the folder's order too.
    seen, url = [], f"{base}/assets/?folder={folder}&page_size=2"
    while url:
        page = client.get(url).json()
        seen += [item["id"] for item in page["results"]]
        url = page["next"]
    assert seen == wanted
    # The gallery's own order is untouched elsewhere.
    assert [i["id"] for i in client.get(f"{base}/assets/").json()["results"]] == ids
