"""The gallery admin: members see their studio's galleries only, with
thumbnails, asset status counts and the client's selection; writes and
actions go through services (audited) and follow the member's role."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from galleries import services
from galleries.models import Asset, AssetStatus, Gallery, GalleryStatus, Selection, Visitor
from galleries.services.galleries import CODE_ALPHABET
from galleries.storage import original_key
from studio import context
from studio.auditing import Action
from studio.errors import Forbidden
from studio.models import Membership, Studio, User
from studio.roles import Role
from studio.tenancy import studio_scope, unscoped
from tests import factories


@dataclass
class World:
    alpha: Studio
    bravo: Studio
    alpha_gallery: Gallery
    alpha_draft: Gallery
    bravo_gallery: Gallery
    photographer: Membership
    assistant: Membership
    viewer: Membership


@pytest.fixture
def world(db) -> World:
    """Two studios; names sort Alpha < Bravo, so Alpha is a member's default."""
    alpha = factories.studio("Alpha Studio")
    bravo = factories.studio("Bravo Studio")
    return World(
        alpha=alpha,
        bravo=bravo,
        alpha_gallery=factories.gallery(alpha, title="Alpha Wedding", client_name="Ann Alpha"),
        alpha_draft=factories.gallery(alpha, title="Alpha Portraits"),
        bravo_gallery=factories.gallery(bravo, title="Bravo Secret Shoot", client_name="Bob Bravo"),
        photographer=factories.member(alpha, Role.PHOTOGRAPHER),
        assistant=factories.member(alpha, Role.ASSISTANT),
        viewer=factories.member(alpha, Role.VIEWER),
    )


def _url(model: type, view: str = "changelist", *args: object) -> str:
    meta = model._meta
    return reverse(f"admin:{meta.app_label}_{meta.model_name}_{view}", args=args)


def _signed_in(membership_or_user: Any) -> Client:
    client = Client()
    client.force_login(getattr(membership_or_user, "user", membership_or_user))
    return client


def _rows(response) -> list:
    assert response.status_code == 200, response.status_code
    return list(response.context["cl"].result_list)


def _messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def _events(studio: Studio, action: str, target: Any = None) -> list[AuditEvent]:
    with studio_scope(studio):
        queryset = AuditEvent.objects.filter(action=action)
        if target is not None:
            queryset = queryset.filter(target_id=str(target.pk))
        return list(queryset.order_by("seq"))


def _fresh(studio: Studio, obj: Any) -> Any:
    with studio_scope(studio):
        return type(obj).objects.get(pk=obj.pk)


def _action_names(response) -> set[str]:
    assert response.status_code == 200
    form = response.context["action_form"]
    if form is None:  # no action at all
        return set()
    return {name for name, _ in form.fields["action"].choices if name}


def _run_action(client: Client, model: type, action: str, objects: list, **extra: Any) -> Any:
    data = {"action": action, "_selected_action": [str(o.pk) for o in objects], "index": 0, **extra}
    return client.post(_url(model), data, follow=True)


def _form_data(gallery: Gallery | None = None, **overrides: Any) -> dict[str, Any]:
    data = {
        "title": gallery.title if gallery else "",
        "client_name": gallery.client_name if gallery else "",
        "client_email": "",
        "event_date": "",
        "access_code": gallery.access_code if gallery else "",
        "expires_at_0": "",
        "expires_at_1": "",
        "visibility": "private",
        "download_permission": "web",
        "selection_limit": "",
        "assigned_team": "",
        "pin": "",
    }
    data.update(overrides)
    return data


def _fake_asset(studio: Studio, gallery: Gallery, name: str, status: str) -> Asset:
    with studio_scope(studio):
        asset = Asset(
            studio=studio,
            gallery=gallery,
            original_filename=name,
            content_type="image/jpeg",
            size=123,
            status=status,
            failure_reason="This is not a JPEG, PNG, WebP or TIFF image." if status == AssetStatus.FAILED else "",
        )
        asset.storage_key = original_key(asset, "jpg")
        asset.save()
        return asset


def _finalised(studio: Studio, gallery: Gallery, assets: list[Asset]) -> Selection:
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        visitor = Visitor.objects.create(studio=studio, gallery=gallery, name="Jo Client", email="jo@example.com")
        services.ratings_set(gallery=gallery, visitor=visitor, ratings=[(a, 4) for a in assets])
        return services.selection_finalize(gallery=gallery, visitor=visitor)


# --- what a member sees --------------------------------------------------------------------------


def test_member_sees_only_their_studios_galleries(world):
    assert not world.photographer.user.is_staff and not world.photographer.user.is_superuser
    client = _signed_in(world.photographer)
    response = client.get(_url(Gallery))
    assert {g.pk for g in _rows(response)} == {world.alpha_gallery.pk, world.alpha_draft.pk}
    page = response.content.decode()
    assert "Alpha Wedding" in page and "Bravo Secret Shoot" not in page
    assert response.context["admin_studio"] == world.alpha

    searched = client.get(_url(Gallery) + "?q=Secret")
    assert _rows(searched) == []
    assert client.get(_url(Gallery) + f"?q={world.bravo_gallery.access_code}").context["cl"].result_count == 0

    # Another studio's gallery is "missing": the admin redirects to its index.
    response = client.get(_url(Gallery, "change", world.bravo_gallery.pk))
    assert response.status_code in (302, 404)
    if response.status_code == 302:
        assert response["Location"] == reverse("admin:index")
    index = client.get(reverse("admin:index"))
    models = {m["object_name"] for app in index.context["app_list"] for m in app["models"]}
    assert {"Gallery", "Asset", "Selection"} <= models


def test_change_page_shows_thumbnails_status_counts_and_selection(world):
    studio, gallery = world.alpha, world.alpha_gallery
    first = factories.ready_asset(studio, gallery, name="first.jpg")
    second = factories.ready_asset(studio, gallery, name="second.jpg")
    _fake_asset(studio, gallery, "broken.jpg", AssetStatus.FAILED)
    _fake_asset(studio, gallery, "late.jpg", AssetStatus.AWAITING_UPLOAD)
    client = _signed_in(world.viewer)  # read access is enough to look

    open_page = client.get(_url(Gallery, "change", gallery.pk))
    assert open_page.status_code == 200
    assert "Open: the client has not finalised." in open_page.content.decode()

    _finalised(studio, gallery, [first, second])
    response = client.get(_url(Gallery, "change", gallery.pk))
    assert response.status_code == 200
    page = html.unescape(response.content.decode())
    for asset in (first, second):
        src = f"/api/v1/studios/{studio.slug}/galleries/{gallery.pk}/assets/{asset.pk}/media/thumb/"
        assert f'<img src="{src}"' in page
    for label, count in [("Awaiting upload", 1), ("Processing", 0), ("Ready", 2), ("Failed", 1)]:
        assert f"{label}: {count}" in page, label
    assert f"?gallery__id__exact={gallery.pk}" in page
    assert "Finalised</strong> by Jo Client (jo@example.com)" in page
    assert "2 photos (first.jpg, second.jpg)" in page
    assert "This is not a JPEG" in page  # a failed photo shows why instead of a thumbnail

    # The thumbnails load for the signed-in member (session authentication).
    thumb = client.get(f"/api/v1/studios/{studio.slug}/galleries/{gallery.pk}/assets/{first.pk}/media/thumb/")
    assert thumb.status_code == 200 and thumb["Content-Type"] == "image/webp"
    assert b"".join(thumb.streaming_content)[8:12] == b"WEBP"  # consuming it closes it


def test_changelist_shows_the_cover_thumbnail(world):
    studio, gallery = world.alpha, world.alpha_gallery
    cover = factories.ready_asset(studio, gallery)
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        services.gallery_set_cover(gallery=gallery, asset=cover)
    page = _signed_in(world.viewer).get(_url(Gallery)).content.decode()
    assert f"/galleries/{gallery.pk}/assets/{cover.pk}/media/thumb/" in page


def test_superuser_sees_galleries_of_every_studio(world):
    factories.ready_asset(world.bravo, world.bravo_gallery)
    client = _signed_in(User.objects.create_superuser("root@example.com", "x-very-long-password"))
    assert {g.pk for g in _rows(client.get(_url(Gallery)))} == {
        world.alpha_gallery.pk,
        world.alpha_draft.pk,
        world.bravo_gallery.pk,
    }
    assert client.get(_url(Gallery, "change", world.bravo_gallery.pk)).status_code == 200
    with unscoped():
        assert {a.studio_id for a in _rows(client.get(_url(Asset)))} == {world.bravo.pk}
    filtered = client.get(_url(Gallery) + f"?studio__id__exact={world.bravo.pk}")
    assert [g.pk for g in _rows(filtered)] == [world.bravo_gallery.pk]


# --- writes through the forms ------------------------------------------------------------------------


def test_adding_a_gallery_generates_a_code_and_is_audited(world):
    client = _signed_in(world.assistant)  # gallery:write may add
    response = client.post(_url(Gallery, "add"), _form_data(title="Admin Made", client_name="Cleo"))
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    with studio_scope(world.alpha):
        gallery = Gallery.objects.get(title="Admin Made")
    assert gallery.studio_id == world.alpha.pk
    assert len(gallery.access_code) == 8 and set(gallery.access_code) <= set(CODE_ALPHABET)
    assert gallery.client_name == "Cleo" and gallery.status == GalleryStatus.DRAFT
    [event] = _events(world.alpha, Action.GALLERY_CREATED, gallery)
    assert event.actor_user_id == world.assistant.user_id
    assert event.after["title"] == "Admin Made" and event.after["access_code"] == gallery.access_code
    assert event.request_id
    with unscoped():
        assert not Gallery.objects.filter(studio=world.bravo, title="Admin Made").exists()


def test_adding_a_gallery_with_a_code_and_pin(world):
    client = _signed_in(world.photographer)
    response = client.post(_url(Gallery, "add"), _form_data(title="Coded", access_code="smith-2025", pin="2468"))
    assert response.status_code == 302
    with studio_scope(world.alpha):
        gallery = Gallery.objects.get(title="Coded")
    assert gallery.access_code == "SMITH2025"
    assert gallery.check_pin("2468") and gallery.pin_hash != "2468"
    assert "2468" not in str(_events(world.alpha, Action.GALLERY_CREATED, gallery)[0].after)


def test_adding_a_gallery_with_a_taken_code_says_so(world):
    client = _signed_in(world.photographer)
    taken = world.alpha_gallery.access_code
    response = client.post(_url(Gallery, "add"), _form_data(title="Clash", access_code=taken), follow=True)
    with studio_scope(world.alpha):
        assert not Gallery.objects.filter(title="Clash").exists()
    # A form error on the field, the form shown again; no "added" message.
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert any(taken in message for message in errors["access_code"]), errors
    assert not any("added successfully" in m for m in _messages(response))


def test_editing_a_gallery_is_audited(world):
    client = _signed_in(world.assistant)
    gallery = world.alpha_gallery
    response = client.post(
        _url(Gallery, "change", gallery.pk), _form_data(gallery, title="Alpha Wedding (final)", selection_limit="30")
    )
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    fresh = _fresh(world.alpha, gallery)
    assert (fresh.title, fresh.selection_limit) == ("Alpha Wedding (final)", 30)
    [event] = _events(world.alpha, Action.GALLERY_UPDATED, gallery)
    assert event.before["title"] == "Alpha Wedding" and event.after["title"] == "Alpha Wedding (final)"
    assert event.actor_user_id == world.assistant.user_id


def test_changing_the_code_in_the_admin_rotates_it(world):
    client = _signed_in(world.photographer)
    gallery = world.alpha_gallery
    old = gallery.access_code
    response = client.post(_url(Gallery, "change", gallery.pk), _form_data(gallery, access_code="new-code-7"))
    assert response.status_code == 302
    fresh = _fresh(world.alpha, gallery)
    assert fresh.access_code == "NEWCODE7"
    assert fresh.access_version == gallery.access_version + 1
    [event] = _events(world.alpha, Action.GALLERY_CODE_ROTATED, gallery)
    assert (event.before, event.after) == ({"access_code": old}, {"access_code": "NEWCODE7"})


def test_assistant_cannot_rotate_the_code_in_the_admin(world):
    client = _signed_in(world.assistant)
    gallery = world.alpha_gallery
    client.post(_url(Gallery, "change", gallery.pk), _form_data(gallery, access_code="ASSIST99"))
    assert _fresh(world.alpha, gallery).access_code == gallery.access_code


def test_viewer_cannot_add_change_or_delete(world):
    client = _signed_in(world.viewer)
    assert client.get(_url(Gallery)).status_code == 200
    assert client.get(_url(Gallery, "add")).status_code == 403
    assert client.post(_url(Gallery, "add"), _form_data(title="Nope")).status_code == 403
    gallery = world.alpha_gallery
    assert client.post(_url(Gallery, "change", gallery.pk), _form_data(gallery, title="Changed")).status_code == 403
    assert client.post(_url(Gallery, "delete", gallery.pk), {"post": "yes"}).status_code == 403
    assert _action_names(client.get(_url(Gallery))) == set()
    assert _fresh(world.alpha, gallery).title == "Alpha Wedding"
    with studio_scope(world.alpha):
        assert not Gallery.objects.filter(title="Nope").exists()


def test_deleting_needs_gallery_admin(world, django_capture_on_commit_callbacks):
    gallery = world.alpha_gallery
    asset = factories.ready_asset(world.alpha, gallery)
    original = Path(settings.MEDIA_ROOT) / asset.storage_key
    assert original.is_file()
    assistant = _signed_in(world.assistant)
    assert assistant.post(_url(Gallery, "delete", gallery.pk), {"post": "yes"}).status_code == 403
    assert "delete_selected" not in _action_names(assistant.get(_url(Gallery)))

    with django_capture_on_commit_callbacks(execute=True):
        response = _signed_in(world.photographer).post(_url(Gallery, "delete", gallery.pk), {"post": "yes"})
    assert response.status_code == 302
    with unscoped():
        assert not Gallery.objects.filter(pk=gallery.pk).exists()
        assert not Asset.objects.filter(pk=asset.pk).exists()
    assert not original.exists()
    [event] = _events(world.alpha, Action.GALLERY_DELETED, gallery)
    assert event.actor_user_id == world.photographer.user_id


# --- actions -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.PHOTOGRAPHER, Role.ADMIN, Role.OWNER], ids=str)
def test_publish_and_unpublish_actions(world, role):
    member = factories.owner_membership(world.alpha) if role == Role.OWNER else factories.member(world.alpha, role)
    client = _signed_in(member)
    galleries = [world.alpha_gallery, world.alpha_draft]
    assert {"publish", "unpublish", "regenerate_derivatives"} <= _action_names(client.get(_url(Gallery)))

    response = _run_action(client, Gallery, "publish", galleries)
    assert response.status_code == 200
    assert "Published 2 galleries." in _messages(response)
    assert {_fresh(world.alpha, g).status for g in galleries} == {GalleryStatus.PUBLISHED}
    for gallery in galleries:
        [event] = _events(world.alpha, Action.GALLERY_PUBLISHED, gallery)
        assert event.actor_user_id == member.user_id

    response = _run_action(client, Gallery, "unpublish", [world.alpha_gallery])
    assert "Unpublished 1 galleries." in _messages(response)
    fresh = _fresh(world.alpha, world.alpha_gallery)
    assert fresh.status == GalleryStatus.DRAFT
    assert fresh.access_version == world.alpha_gallery.access_version + 1
    assert len(_events(world.alpha, Action.GALLERY_UNPUBLISHED, world.alpha_gallery)) == 1
    assert _fresh(world.alpha, world.alpha_draft).status == GalleryStatus.PUBLISHED


def test_publish_actions_are_not_offered_to_an_assistant(world):
    client = _signed_in(world.assistant)
    names = _action_names(client.get(_url(Gallery)))
    assert "publish" not in names and "unpublish" not in names
    assert "regenerate_derivatives" in names
    response = _run_action(client, Gallery, "publish", [world.alpha_gallery])
    assert response.status_code == 200
    assert _fresh(world.alpha, world.alpha_gallery).status == GalleryStatus.DRAFT
    assert _events(world.alpha, Action.GALLERY_PUBLISHED) == []


def test_actions_cannot_reach_another_studios_gallery(world):
    client = _signed_in(world.photographer)
    _run_action(client, Gallery, "publish", [world.bravo_gallery])
    with unscoped():
        assert Gallery.objects.get(pk=world.bravo_gallery.pk).status == GalleryStatus.DRAFT
    assert _events(world.bravo, Action.GALLERY_PUBLISHED) == []


def test_regenerate_action_queues_ready_photos(world, django_capture_on_commit_callbacks):
    studio, gallery = world.alpha, world.alpha_gallery
    first = factories.ready_asset(studio, gallery)
    second = factories.ready_asset(studio, gallery)
    _fake_asset(studio, gallery, "broken.jpg", AssetStatus.FAILED)
    thumb = Path(settings.MEDIA_ROOT) / first.derivatives["thumb"]["key"]
    thumb.unlink()
    client = _signed_in(world.assistant)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = _run_action(client, Gallery, "regenerate_derivatives", [gallery, world.alpha_draft])
    assert "Queued 2 photos for new derivatives." in _messages(response)
    assert callbacks
    [event] = _events(studio, Action.ASSET_REGENERATE_REQUESTED, gallery)
    assert set(event.after["assets"]) == {str(first.pk), str(second.pk)}
    assert event.actor_user_id == world.assistant.user_id
    assert thumb.is_file()  # made again
    assert _events(studio, Action.ASSET_REGENERATE_REQUESTED, world.alpha_draft) == []


def test_asset_regenerate_action(world, django_capture_on_commit_callbacks):
    studio, gallery = world.alpha, world.alpha_gallery
    first = factories.ready_asset(studio, gallery)
    factories.ready_asset(studio, gallery)
    client = _signed_in(world.assistant)
    with django_capture_on_commit_callbacks() as callbacks:
        response = _run_action(client, Asset, "regenerate_derivatives", [first])
    assert "Queued 1 photos for new derivatives." in _messages(response)
    assert len(callbacks) == 1
    [event] = _events(studio, Action.ASSET_REGENERATE_REQUESTED, gallery)
    assert event.after == {"assets": [str(first.pk)]}


def test_admin_delete_bins_then_the_bin_filter_restores_and_purges(world, django_capture_on_commit_callbacks):
    studio, gallery = world.alpha, world.alpha_gallery
    doomed, restored, live = (factories.ready_asset(studio, gallery) for _ in range(3))
    files = [
        Path(settings.MEDIA_ROOT) / k for k in [doomed.storage_key, *(d["key"] for d in doomed.derivatives.values())]
    ]
    client = _signed_in(world.assistant)
    response = client.post(_url(Asset, "delete", doomed.pk), {"post": "yes"}, follow=True)
    assert response.status_code == 200
    _run_action(client, Asset, "delete_selected", [restored], post="yes")
    with studio_scope(studio):
        assert set(Asset.objects.filter(gallery=gallery)) == {live}
    assert all(p.is_file() for p in files)  # in the bin, bytes kept

    listed = client.get(_url(Asset))
    assert live.original_filename in listed.content.decode()
    assert doomed.original_filename not in listed.content.decode()
    in_bin = client.get(_url(Asset) + "?bin=in").content.decode()
    assert doomed.original_filename in in_bin and restored.original_filename in in_bin
    assert live.original_filename not in in_bin

    def bin_action(action: str, assets: list) -> Any:
        # Posted from the bin's list, as the admin's form does: the action
        # acts on the selected rows of the list shown.
        data = {"action": action, "_selected_action": [str(a.pk) for a in assets], "index": 0}
        return client.post(_url(Asset) + "?bin=in", data, follow=True)

    assert "Restored 1 photo(s) from the bin." in _messages(bin_action("restore_from_bin", [restored]))
    with django_capture_on_commit_callbacks(execute=True):
        response = bin_action("purge_from_bin", [doomed, live])  # live is not in the bin: not touched
    assert "Deleted 1 photo(s) and their files for good." in _messages(response)
    # From the ordinary list, the purge never reaches a live photo.
    _run_action(client, Asset, "purge_from_bin", [live])
    assert not any(p.exists() for p in files)
    with studio_scope(studio):
        assert set(Asset.with_deleted.filter(gallery=gallery)) == {live, restored}
    assert _events(studio, Action.ASSET_PURGED, doomed) and _events(studio, Action.ASSET_RESTORED_FROM_BIN, restored)


# --- assets and selections ------------------------------------------------------------------------------


def test_asset_changelist_filtered_by_gallery(world):
    studio = world.alpha
    mine = [factories.ready_asset(studio, world.alpha_gallery) for _ in range(2)]
    factories.ready_asset(studio, world.alpha_draft)
    factories.ready_asset(world.bravo, world.bravo_gallery)
    client = _signed_in(world.viewer)

    everything = _rows(client.get(_url(Asset)))
    assert {a.studio_id for a in everything} == {studio.pk} and len(everything) == 3

    response = client.get(_url(Asset) + f"?gallery__id__exact={world.alpha_gallery.pk}")
    assert response.status_code == 200
    assert {a.pk for a in _rows(response)} == {a.pk for a in mine}
    assert "/media/thumb/" in response.content.decode()
    # The gallery page's own link leads there.
    change = html.unescape(client.get(_url(Gallery, "change", world.alpha_gallery.pk)).content.decode())
    assert f"href='{_url(Asset)}?gallery__id__exact={world.alpha_gallery.pk}'" in change
    # Another studio's gallery id filters down to nothing.
    assert _rows(client.get(_url(Asset) + f"?gallery__id__exact={world.bravo_gallery.pk}")) == []


def test_assets_and_selections_are_read_only(world):
    studio, gallery = world.alpha, world.alpha_gallery
    asset = factories.ready_asset(studio, gallery)
    selection = _finalised(studio, gallery, [asset])
    client = _signed_in(world.photographer)

    assert client.get(_url(Asset, "add")).status_code == 403
    assert client.get(_url(Selection, "add")).status_code == 403
    page = client.get(_url(Asset, "change", asset.pk))
    assert page.status_code == 200
    assert "original_filename" not in page.context["adminform"].form.fields  # every field read-only
    client.post(_url(Asset, "change", asset.pk), {"original_filename": "renamed.jpg", "status": "failed"})
    fresh = _fresh(studio, asset)
    assert (fresh.original_filename, fresh.status) == (asset.original_filename, AssetStatus.READY)

    selections = _rows(client.get(_url(Selection)))
    assert selections == [selection]
    view = client.get(_url(Selection, "change", selection.pk))
    assert view.status_code == 200
    assert view.context["has_change_permission"] is False
    assert view.context["has_delete_permission"] is False
    assert client.post(_url(Selection, "change", selection.pk), {"status": "reopened"}).status_code == 403
    assert client.post(_url(Selection, "delete", selection.pk), {"post": "yes"}).status_code == 403
    assert _fresh(studio, selection).status == selection.status


# --- each field once, and the actor rule in the service ------------------------------------------------


@pytest.mark.parametrize("view", ["add", "change"])
def test_each_gallery_field_is_rendered_once(world, view):
    """Before, the PIN and "Remove pin" boxes appeared twice; the browser sent
    both and the empty second one won, so a PIN typed on "add" was lost."""
    client = _signed_in(world.photographer)
    args = [world.alpha_gallery.pk] if view == "change" else []
    page = client.get(_url(Gallery, view, *args)).content.decode()
    for name in ("pin", "title", "access_code", "visibility"):
        assert page.count(f'name="{name}"') == 1, name
    assert page.count('name="remove_pin"') == (1 if view == "change" else 0)


def test_a_pin_typed_when_adding_a_gallery_is_kept(world):
    client = _signed_in(world.photographer)
    response = client.post(_url(Gallery, "add"), _form_data(title="With PIN", pin="4826"), follow=True)
    assert response.status_code == 200
    with studio_scope(world.alpha):
        assert Gallery.objects.get(title="With PIN").check_pin("4826")


def test_an_assistant_cannot_set_a_pin_or_open_a_gallery_in_the_admin(world):
    """The API refused these with 403 while the admin let them through: the
    rule now lives in the service, whoever calls it."""
    client = _signed_in(world.assistant)
    gallery = world.alpha_gallery
    page = client.get(_url(Gallery, "change", gallery.pk)).content.decode()
    assert 'name="pin"' not in page and 'name="visibility"' not in page and 'name="access_code"' not in page
    # A crafted POST: the service refuses it, so nothing of it is saved.
    response = client.post(
        _url(Gallery, "change", gallery.pk),
        _form_data(gallery, title="Renamed", pin="1357", visibility="public", access_code="STOLEN1"),
        follow=True,
    )
    assert "needs the gallery:admin scope" in str(response.context["adminform"].form.errors)
    assert not any("successfully" in m for m in _messages(response))
    fresh = _fresh(world.alpha, gallery)
    assert (fresh.title, fresh.has_pin, fresh.visibility) == (gallery.title, False, "private")
    assert fresh.access_code == gallery.access_code
    # What an assistant may change, changes.
    client.post(_url(Gallery, "change", gallery.pk), _form_data(gallery, title="Renamed"), follow=True)
    assert _fresh(world.alpha, gallery).title == "Renamed"


def test_the_gallery_service_refuses_an_assistant_whoever_calls_it(world):
    with context.acting_as(factories.TEST_ACTOR), studio_scope(world.alpha):
        gallery = Gallery.objects.get(pk=world.alpha_gallery.pk)
        for change in ({"pin": "1234"}, {"visibility": "public"}, {"access_code": "NEWCODE1"}):
            with pytest.raises(Forbidden, match="gallery:admin"):
                services.gallery_update(actor=world.assistant, gallery=gallery, **change)
        with pytest.raises(Forbidden, match="gallery:admin"):
            services.gallery_rotate_code(actor=world.assistant, gallery=gallery)
        # The same changes by a photographer, or a platform operator (None).
        services.gallery_update(actor=world.photographer, gallery=gallery, pin="1234")
        services.gallery_update(actor=None, gallery=gallery, visibility="unlisted")
        # A no-op PIN removal is not a change: an assistant may send it.
        plain = Gallery.objects.get(pk=world.alpha_draft.pk)
        services.gallery_update(actor=world.assistant, gallery=plain, pin="", title="Same rules")
    fresh = _fresh(world.alpha, world.alpha_gallery)
    assert fresh.check_pin("1234") and fresh.visibility == "unlisted"


def test_a_refused_admin_change_shows_no_success_message(world):
    client = _signed_in(world.photographer)
    taken = world.alpha_draft.access_code
    response = client.post(
        _url(Gallery, "change", world.alpha_gallery.pk), _form_data(world.alpha_gallery, access_code=taken), follow=True
    )
    assert response.status_code == 200
    assert not any("successfully" in m for m in _messages(response))
    assert taken in " ".join(response.context["adminform"].form.errors["access_code"])
    assert _fresh(world.alpha, world.alpha_gallery).access_code != taken


def test_face_switches_in_the_admin_follow_the_roles(world, django_capture_on_commit_callbacks):
    """Gallery admins switch a gallery; only an owner switches the studio
    (its consent text is theirs); viewers are not offered the actions."""
    studio, gallery = world.alpha, world.alpha_gallery
    assert "faces_on" not in _action_names(_signed_in(world.viewer).get(_url(Gallery)))
    photographer = _signed_in(world.photographer)
    response = _run_action(photographer, Gallery, "faces_on", [gallery])
    assert "Only an owner" in " ".join(_messages(response))
    studio.refresh_from_db()
    assert not studio.faces_enabled

    owner = _signed_in(factories.member(studio, Role.OWNER))
    with django_capture_on_commit_callbacks(execute=True):
        _run_action(owner, Gallery, "faces_on", [gallery])
    studio.refresh_from_db()
    assert studio.faces_enabled and _fresh(studio, gallery).faces_enabled
    response = _run_action(photographer, Gallery, "faces_off_studio", [gallery])
    assert "Only an owner" in " ".join(_messages(response))
    _run_action(owner, Gallery, "faces_off_studio", [gallery])
    studio.refresh_from_db()
    assert not studio.faces_enabled and not _fresh(studio, gallery).faces_enabled
