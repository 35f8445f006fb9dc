"""Staff pages in the admin: the upload page (who may open it, for which
gallery, what it hands its module), the share panel (link, code, PIN state,
the message to copy; viewers never see a code) and the selection panel
(what the clients rated, filed and finalised)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from galleries import services
from galleries.models import Gallery
from studio import context
from studio.models import Membership, Studio
from studio.roles import Role
from studio.tenancy import studio_scope
from tests import factories


@dataclass
class World:
    alpha: Studio
    bravo: Studio
    gallery: Gallery
    bravo_gallery: Gallery
    owner: Membership
    assistant: Membership
    viewer: Membership


@pytest.fixture
def world(db) -> World:
    alpha = factories.studio("Alpha Studio")
    bravo = factories.studio("Bravo Studio")
    return World(
        alpha=alpha,
        bravo=bravo,
        gallery=factories.gallery(alpha, title="Ann's Wedding", client_name="Ann Alpha", pin="4711"),
        bravo_gallery=factories.gallery(bravo, title="Bravo Secret"),
        owner=factories.owner_membership(alpha),
        assistant=factories.member(alpha, Role.ASSISTANT),
        viewer=factories.member(alpha, Role.VIEWER),
    )


def _client(membership: Membership) -> Client:
    client = Client()
    client.force_login(membership.user)
    return client


def _upload_url(gallery: Gallery) -> str:
    return reverse("admin:galleries_gallery_upload", args=[gallery.pk])


def _change_url(gallery: Gallery) -> str:
    return reverse("admin:galleries_gallery_change", args=[gallery.pk])


def _page_data(response: Any) -> dict[str, Any]:
    match = re.search(r'<script id="upload-data" type="application/json">(.*?)</script>', response.content.decode())
    assert match, "the page hands its module the data as json_script"
    return json.loads(match.group(1))


def _assert_csp_clean(html: str) -> None:
    """No inline script and no style attribute: the CSP would refuse both."""
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag or 'type="application/json"' in tag, tag
    assert " style=" not in html
    assert re.search(r"\son[a-z]+=", html) is None, "inline event handler"


# --- the upload page ----------------------------------------------------------------------------


def test_upload_page_for_a_member_who_may_write(world: World) -> None:
    response = _client(world.assistant).get(_upload_url(world.gallery))
    assert response.status_code == 200
    html = response.content.decode()
    _assert_csp_clean(html)
    assert 'type="module"' in html and "staff/upload.js" in html
    assert "vendor/uppy-6.0.1/uppy.min.css" in html
    data = _page_data(response)
    kwargs = {"studio_slug": world.alpha.slug, "gallery_pk": world.gallery.pk}
    assert data["presign"] == reverse("api:gallery-upload-list", kwargs=kwargs)
    assert data["gallery"] == str(world.gallery.pk)
    assert data["csrfToken"]
    assert "image/jpeg" in data["accept"] and ".jpg" in data["accept"]
    # The API's writes need the CSRF cookie the page sets.
    assert "csrftoken" in response.cookies


def test_upload_page_refuses_a_viewer(world: World) -> None:
    assert _client(world.viewer).get(_upload_url(world.gallery)).status_code == 403


def test_upload_page_of_another_studio_is_not_found(world: World) -> None:
    assert _client(world.owner).get(_upload_url(world.bravo_gallery)).status_code == 404
    assert (
        _client(world.owner)
        .get(_upload_url(world.bravo_gallery).replace(str(world.bravo_gallery.pk), "nope"))
        .status_code
        == 404
    )


def test_upload_page_needs_sign_in(world: World) -> None:
    response = Client().get(_upload_url(world.gallery))
    assert response.status_code == 302
    assert "login" in response["Location"]


def test_upload_api_accepts_the_pages_session_and_csrf_header(world: World) -> None:
    """What the module does first: ask for targets with the session cookie
    and the X-CSRFToken header (a real CSRF check, as in the browser)."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.assistant.user)
    data = _page_data(client.get(_upload_url(world.gallery)))
    body = {"files": [{"filename": "IMG_0001.jpg", "size": 1234, "content_type": "image/jpeg"}]}
    refused = client.post(data["presign"], body, content_type="application/json")
    assert refused.status_code == 403
    answer = client.post(
        data["presign"],
        body,
        content_type="application/json",
        headers={"X-CSRFToken": client.cookies["csrftoken"].value},
    )
    assert answer.status_code == 201, answer.content
    target = answer.json()["targets"][0]
    assert target["method"] == "POST" and target["fields"]["Content-Type"] == "image/jpeg"


def test_gallery_page_and_list_link_to_the_upload_page(world: World) -> None:
    writer = _client(world.assistant)
    assert _upload_url(world.gallery) in writer.get(_change_url(world.gallery)).content.decode()
    assert _upload_url(world.gallery) in writer.get(reverse("admin:galleries_gallery_changelist")).content.decode()
    reader = _client(world.viewer)
    assert _upload_url(world.gallery) not in reader.get(_change_url(world.gallery)).content.decode()
    assert _upload_url(world.gallery) not in reader.get(reverse("admin:galleries_gallery_changelist")).content.decode()


# --- the share panel ----------------------------------------------------------------------------


def test_share_panel_shows_link_code_pin_state_and_a_message(world: World) -> None:
    response = _client(world.assistant).get(_change_url(world.gallery))
    html = response.content.decode()
    _assert_csp_clean(html)
    code = world.gallery.access_code
    link = f"/s/{world.alpha.slug}/g/{code}/"
    assert 'id="share-panel"' in html
    assert f'<code id="share-code">{code}</code>' in html
    assert link in html
    assert "Set: give it to the client separately" in html  # the PIN, never its value
    assert "4711" not in html
    assert "is a draft" in html  # the link does not work yet: say so
    message = re.search(r'<textarea id="share-message"[^>]*>(.*?)</textarea>', html, re.S).group(1)
    assert "Hello Ann Alpha," in message and link in message and code in message
    assert "PIN we give you separately" in message
    assert "Copy message for the client" in html  # the copyable message stays beside "Send to client"
    assert "staff/share.js" in html


def test_share_panel_link_of_a_published_gallery_without_pin(world: World) -> None:
    with context.acting_as(factories.TEST_ACTOR), studio_scope(world.alpha):
        gallery = factories.gallery(world.alpha, title="Open Day")
        services.gallery_publish(gallery=gallery)
    html = _client(world.owner).get(_change_url(gallery)).content.decode()
    assert "is a draft" not in html
    assert '<dd id="share-pin">Not set</dd>' in html


def test_viewer_never_sees_the_code_or_the_link(world: World) -> None:
    html = _client(world.viewer).get(_change_url(world.gallery)).content.decode()
    assert 'id="share-panel"' in html
    assert world.gallery.access_code not in html
    assert "share-message" not in html
    assert f"/g/{world.gallery.access_code}" not in html
    assert "shown to members who may share galleries" in html


# --- the selection panel ------------------------------------------------------------------------


def _selection_world(world: World) -> dict[str, Any]:
    studio, gallery = world.alpha, world.gallery
    photos = [factories.ready_asset(studio, gallery, name=f"IMG_{n}.jpg") for n in range(1, 5)]
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        services.gallery_publish(gallery=gallery)
        ann = factories.visitor(studio, gallery)
        services.ratings_set(gallery=gallery, visitor=ann, ratings=[(photos[0], 5), (photos[1], 3)])
        favourites = services.folder_create(gallery=gallery, name="Album picks", visitor=ann)
        services.placements_add(folder=favourites, assets=[photos[1], photos[2]], visitor=ann)
        studio_folder = services.folder_create(gallery=gallery, name="Studio edits")
        services.placements_add(folder=studio_folder, assets=[photos[3]])
    return {"photos": photos, "visitor": ann}


def test_selection_panel_shows_ratings_folders_and_thumbnails(world: World) -> None:
    _selection_world(world)
    html = _client(world.viewer).get(_change_url(world.gallery)).content.decode()
    _assert_csp_clean(html)
    panel = html[html.index('id="selection-panel"') :]
    assert "Open: the client has not finalised" in panel
    assert "<strong>3</strong> chosen" in panel  # rated or in a client folder; the studio's folder is not a choice
    assert "<strong>2</strong> rated" in panel
    assert "<strong>2</strong> in client folders" in panel
    assert 'aria-label="5 of 5 stars">★★★★★<' in panel
    assert 'aria-label="3 of 5 stars">★★★☆☆<' in panel
    assert "Album picks" in panel and "(2 photos, by Jo Client)" in panel
    assert "Studio edits" not in panel
    assert "IMG_1.jpg" in panel and "IMG_3.jpg" in panel and "IMG_4.jpg" not in panel
    assert panel.count('class="admin-thumb admin-thumb-80"') == 3


def test_selection_panel_shows_the_finalised_selection(world: World) -> None:
    made = _selection_world(world)
    with context.acting_as(factories.TEST_ACTOR), studio_scope(world.alpha):
        services.selection_finalize(gallery=world.gallery, visitor=made["visitor"])
    panel = _client(world.assistant).get(_change_url(world.gallery)).content.decode()
    panel = panel[panel.index('id="selection-panel"') :]
    assert "<strong>Finalised</strong> by Jo Client" in panel
    assert ": 3 photos." in panel


def test_selection_panel_queries_do_not_grow_with_the_photos(world: World, django_assert_max_num_queries) -> None:
    _selection_world(world)
    client = _client(world.assistant)
    client.get(_change_url(world.gallery))  # warm the session and the storage notice
    with django_assert_max_num_queries(40):
        client.get(_change_url(world.gallery))
