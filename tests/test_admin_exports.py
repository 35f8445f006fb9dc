"""Exports and "Send to client" in the admin, through Django's test client:
who may send a gallery to its client (and what a refusal looks like), the
Exports panel on the gallery's page, the changelist's export actions, and
the read-only Export admin, scoped to the admin's studio like every other."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from galleries import services
from galleries.models import Export, ExportKind, ExportStatus, Gallery
from galleries.notifications import GALLERY_READY
from galleries.services.exports import export_request
from studio import context
from studio.models import EmailLog, Studio
from studio.roles import Role
from studio.tenancy import studio_scope, unscoped
from tests import factories

# The same two-studio world and helpers as the staff pages' tests; only the
# galleries differ (published, with client emails, so they can be sent).
from tests.test_staff_pages import World, _change_url, _client


def _published(studio: Studio, **fields: Any) -> Gallery:
    gallery = factories.gallery(studio, **fields)
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        services.gallery_publish(gallery=gallery)
    return gallery


@pytest.fixture
def world(db) -> World:
    alpha = factories.studio("Alpha Studio")
    bravo = factories.studio("Bravo Studio")
    return World(
        alpha=alpha,
        bravo=bravo,
        gallery=_published(alpha, title="Ann's Wedding", client_name="Ann Alpha", client_email="ann@example.com"),
        bravo_gallery=_published(bravo, title="Bravo Secret", client_email="bob@example.com"),
        owner=factories.owner_membership(alpha),
        assistant=factories.member(alpha, Role.ASSISTANT),
        viewer=factories.member(alpha, Role.VIEWER),
    )


def _send_url(gallery: Gallery) -> str:
    return reverse("admin:galleries_gallery_send", args=[gallery.pk])


def _messages(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def _sent(gallery: Gallery) -> list[EmailLog]:
    with unscoped():  # proving what was (not) written, in any studio
        return list(EmailLog.objects.filter(kind=GALLERY_READY, target_id=str(gallery.pk)))


# --- send to client ----------------------------------------------------------------------------


def test_send_to_client_queues_the_email_and_says_so(world: World) -> None:
    response = _client(world.assistant).post(_send_url(world.gallery), {"note": "See you at the album meeting!"})
    assert response.status_code == 302
    assert response["Location"] == _change_url(world.gallery) + "#share-panel"
    assert _messages(response) == ["Sent “Ann's Wedding” to ann@example.com."]
    [log] = _sent(world.gallery)
    assert log.recipient == "ann@example.com" and log.studio_id == world.alpha.pk
    assert "See you at the album meeting!" in log.body


def test_the_share_panel_has_a_send_button_outside_the_gallery_form(world: World) -> None:
    html = _client(world.assistant).get(_change_url(world.gallery)).content.decode()
    # A form cannot nest in the gallery's form: the button names its own form, which sits outside.
    assert re.search(
        r'<button type="submit" class="button default" form="share-send-form">Send to client</button>', html
    )
    gallery_form_end = html.index("</form>", html.index('id="gallery_form"'))
    send_form = html.index('<form id="share-send-form" method="post" action="' + _send_url(world.gallery) + '">')
    assert send_form > gallery_form_end
    assert 'name="note" form="share-send-form"' in html
    assert "ann@example.com" in html
    assert "Copy message for the client" in html  # the copyable message stays, as a second way


def test_a_viewer_may_not_send_nor_see_the_button(world: World) -> None:
    viewer = _client(world.viewer)
    assert viewer.post(_send_url(world.gallery)).status_code == 403
    html = viewer.get(_change_url(world.gallery)).content.decode()
    assert "Send to client" not in html and "share-send-form" not in html
    assert world.gallery.access_code not in html
    assert _sent(world.gallery) == []


def test_another_studios_gallery_is_not_found(world: World) -> None:
    owner = _client(world.owner)
    assert owner.post(_send_url(world.bravo_gallery)).status_code == 404
    assert _sent(world.bravo_gallery) == []


def test_send_answers_post_only(world: World) -> None:
    assert _client(world.owner).get(_send_url(world.gallery)).status_code == 405
    assert _sent(world.gallery) == []


def test_a_draft_is_not_sent_and_the_reason_is_shown(world: World) -> None:
    draft = factories.gallery(world.alpha, title="Not yet", client_email="c@example.com")
    client = _client(world.owner)
    html = client.get(_change_url(draft)).content.decode()
    assert "Publish the gallery first" in html
    assert re.search(r'form="share-send-form" disabled', html)  # said before the click
    response = client.post(_send_url(draft))
    assert response.status_code == 302
    [message] = _messages(response)
    assert message.startswith("Not sent: Publish the gallery before sending it")
    assert _sent(draft) == []


def test_a_gallery_without_client_email_is_not_sent(world: World) -> None:
    nobody = _published(world.alpha, title="No address")
    client = _client(world.owner)
    assert "Add the client&#x27;s email" in client.get(_change_url(nobody)).content.decode()
    [message] = _messages(client.post(_send_url(nobody)))
    assert message.startswith("Not sent: The gallery has no client email address")
    assert _sent(nobody) == []


# --- the Exports panel ------------------------------------------------------------------------------


def _exports_data(html: str) -> dict[str, Any]:
    match = re.search(r'<script id="exports-data" type="application/json">(.*?)</script>', html)
    assert match, "the panel hands its module the data as json_script"
    return json.loads(match.group(1))


def test_the_exports_panel_for_a_member_who_may_write(world: World) -> None:
    with context.acting_as(factories.TEST_ACTOR), studio_scope(world.alpha):
        album = services.folder_create(gallery=world.gallery, name="Album")
    response = _client(world.assistant).get(_change_url(world.gallery))
    html = response.content.decode()
    assert 'id="exports-panel"' in html and "staff/exports.js" in html
    for label in ("Selection CSV", "Lightroom list", "Contact sheet (PDF)", "ZIP, web size", "ZIP, originals"):
        assert f">{label}</button>" in html
    assert f'<option value="folder:{album.pk}">Album (0)</option>' in html
    # Nothing chosen yet: "the selection" is offered but not choosable.
    assert re.search(r'<option value="selection" disabled>', html)
    data = _exports_data(html)
    kwargs = {"studio_slug": world.alpha.slug, "gallery_pk": world.gallery.pk}
    assert data["exports"] == reverse("api:gallery-export-list", kwargs=kwargs)
    assert data["csrfToken"] and data["folders"] == {str(album.pk): "Album"}
    for tag in re.findall(r"<script\b[^>]*>", html):  # nothing the CSP would refuse
        assert "src=" in tag or 'type="application/json"' in tag, tag


def test_a_viewer_gets_no_exports_panel(world: World) -> None:
    html = _client(world.viewer).get(_change_url(world.gallery)).content.decode()
    assert 'id="exports-panel"' not in html and "exports-data" not in html


def test_the_changelist_action_asks_for_a_selection_csv(world: World, django_capture_on_commit_callbacks) -> None:
    client = _client(world.assistant)
    with django_capture_on_commit_callbacks(execute=True):  # the run is queued after commit
        response = client.post(
            reverse("admin:galleries_gallery_changelist"),
            {"action": "export_selection_csv", "_selected_action": [str(world.gallery.pk)]},
        )
    assert response.status_code == 302
    [message] = _messages(response)
    assert message.startswith("Asked for 1 selection CSV")
    with studio_scope(world.alpha):
        [export] = Export.objects.filter(gallery=world.gallery)
    assert export.kind == ExportKind.CSV and export.scope == "selection"
    assert export.requested_by_user == world.assistant.user
    assert export.status == ExportStatus.DONE  # Celery is eager in tests
    assert export.filename == "anns-wedding-selection.csv"


def test_a_viewer_has_no_export_actions(world: World) -> None:
    response = _client(world.viewer).get(reverse("admin:galleries_gallery_changelist"))
    assert response.status_code == 200
    assert response.context["action_form"] is None  # no action the viewer may take, exports included
    refused = _client(world.viewer).post(
        reverse("admin:galleries_gallery_changelist"),
        {"action": "export_selection_csv", "_selected_action": [str(world.gallery.pk)]},
    )
    assert refused.status_code in (200, 302)
    with studio_scope(world.alpha):
        assert not Export.objects.filter(gallery=world.gallery).exists()


# --- the Export admin --------------------------------------------------------------------------------


@pytest.fixture
def export_of(django_capture_on_commit_callbacks: Any) -> Any:
    """export_of(gallery, user): a CSV export, run (eager Celery, after the commit)."""

    def make(gallery: Gallery, user: Any, kind: str = ExportKind.CSV) -> Export:
        with (
            django_capture_on_commit_callbacks(execute=True),
            context.acting_as(factories.TEST_ACTOR),
            studio_scope(gallery.studio),
        ):
            export, _ = export_request(gallery=gallery, kind=kind, user=user)
        with studio_scope(gallery.studio):
            return Export.objects.get(pk=export.pk)

    return make


def test_the_export_admin_lists_the_admin_studios_exports_only(world: World, export_of: Any) -> None:
    ours = export_of(world.gallery, world.owner.user)
    theirs = export_of(world.bravo_gallery, None)
    assert ours.status == ExportStatus.DONE
    client = _client(world.viewer)  # gallery:read is enough to see them
    response = client.get(reverse("admin:galleries_export_changelist"))
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [ours]
    html = response.content.decode()
    download = reverse(
        "api:gallery-export-download",
        kwargs={"studio_slug": world.alpha.slug, "gallery_pk": world.gallery.pk, "pk": ours.pk},
    )
    assert f'<a href="{download}" download>Download {ours.filename}</a>' in html
    assert world.owner.user.email in html  # requested by
    assert str(theirs.pk) not in html and "Bravo Secret" not in html
    # Another studio's export is not there: the admin sends you back, it shows nothing.
    other = client.get(reverse("admin:galleries_export_change", args=[theirs.pk]))
    assert other.status_code == 302 and "Bravo Secret" not in other.content.decode()
    assert client.get(reverse("admin:galleries_export_change", args=[ours.pk])).status_code == 200


def test_the_export_admin_is_read_only(world: World, export_of: Any) -> None:
    export = export_of(world.gallery, world.owner.user)
    client = _client(world.owner)
    assert client.get(reverse("admin:galleries_export_add")).status_code == 403
    assert client.post(reverse("admin:galleries_export_delete", args=[export.pk]), {"post": "yes"}).status_code == 403
    client.post(reverse("admin:galleries_export_change", args=[export.pk]), {"status": "failed", "progress": 3})
    with studio_scope(world.alpha):
        assert Export.objects.get(pk=export.pk).status == ExportStatus.DONE


def test_the_gallery_filter_link_of_the_panel_works(world: World, export_of: Any) -> None:
    ours = export_of(world.gallery, world.owner.user)
    other = export_of(_published(world.alpha, title="Other"), world.owner.user)
    response = _client(world.owner).get(
        reverse("admin:galleries_export_changelist") + f"?gallery__id__exact={world.gallery.pk}"
    )
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [ours]
    assert other not in response.context["cl"].result_list
