"""The rules of the studio's emails, through the services and the API: who
is told what, when, and how often (the email log's rows, one per
recipient and key). What the messages look like when they arrive is
tests/test_emails_smtp.py's business."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone

from audit.models import AuditEvent
from galleries import notifications, services
from galleries.models import Asset, AssetStatus, UploadBatch
from galleries.services.sharing import DOUBLE_SEND_SECONDS, gallery_send
from galleries.tasks import notify_expiring
from studio import context, emails
from studio.auditing import Action
from studio.email_templates import render_email
from studio.errors import DomainError
from studio.models import EmailLog
from studio.roles import Role
from studio.tenancy import studio_scope, unscoped
from tests import factories
from tests.helpers import assert_api_error

pytestmark = pytest.mark.django_db


def _published(studio: Any, **fields: Any) -> Any:
    fields.setdefault("client_email", "jo@client.example")
    gallery = factories.gallery(studio, **fields)
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        return services.gallery_publish(gallery=gallery)


def _rows(studio: Any, kind: str) -> list[EmailLog]:
    with studio_scope(studio):
        return list(EmailLog.objects.filter(kind=kind).order_by("created_at"))


def _send_url(studio: Any, gallery: Any) -> str:
    return f"/api/v1/studios/{studio.slug}/galleries/{gallery.pk}/send/"


# --- sending a gallery to its client --------------------------------------------------------------------


def test_send_queues_one_email_to_the_client_and_audits_it(studio, owner, client_for):
    gallery = _published(studio, title="Smith Wedding")

    response = client_for(owner).post(_send_url(studio, gallery), {"note": "  See you soon  "}, format="json")

    assert response.status_code == 202, response.content
    assert response.json() == {"sent_to": ["jo@client.example"]}
    (row,) = _rows(studio, notifications.GALLERY_READY)
    assert row.recipient == "jo@client.example" and row.sensitive and row.meta == {"send": 1}
    assert "See you soon" in row.body and gallery.access_code in row.body and row.html_body
    with studio_scope(studio):
        event = AuditEvent.objects.get(action=Action.GALLERY_SENT)
    assert event.target_id == str(gallery.pk)
    assert event.after == {"to": ["jo@client.example"], "send": 1, "with_note": True}


def test_a_double_click_sends_once_and_a_later_send_is_a_new_email(studio, owner, client_for):
    gallery = _published(studio)
    api = client_for(owner)

    first = api.post(_send_url(studio, gallery), {}, format="json")
    second = api.post(_send_url(studio, gallery), {}, format="json")

    assert first.status_code == second.status_code == 202
    assert first.json() == second.json() == {"sent_to": ["jo@client.example"]}
    (row,) = _rows(studio, notifications.GALLERY_READY)
    with studio_scope(studio):
        assert AuditEvent.objects.filter(action=Action.GALLERY_SENT).count() == 1
        # A minute later the studio sends it again on purpose: a new email.
        EmailLog.objects.filter(pk=row.pk).update(
            created_at=timezone.now() - timedelta(seconds=DOUBLE_SEND_SECONDS + 1)
        )
    assert api.post(_send_url(studio, gallery), {}, format="json").status_code == 202
    assert [r.meta["send"] for r in _rows(studio, notifications.GALLERY_READY)] == [1, 2]


def test_send_refuses_a_draft_a_gallery_without_client_email_and_an_expired_one(studio, owner, client_for):
    api = client_for(owner)
    draft = factories.gallery(studio, client_email="jo@client.example")
    nobody = _published(studio)
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        services.gallery_update(actor=None, gallery=nobody, client_email="")
    expired = _published(studio, expires_at=timezone.now() + timedelta(days=1))
    with studio_scope(studio):
        type(expired).objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(hours=1))

    assert_api_error(api.post(_send_url(studio, draft), {}, format="json"), 400, "GALLERY_NOT_PUBLISHED")
    error = assert_api_error(api.post(_send_url(studio, nobody), {}, format="json"), 400, "NO_CLIENT_EMAIL")
    assert "client_email" in error["fields"]
    assert_api_error(api.post(_send_url(studio, expired), {}, format="json"), 400, "GALLERY_EXPIRED")
    assert _rows(studio, notifications.GALLERY_READY) == []
    with studio_scope(studio):
        assert not AuditEvent.objects.filter(action=Action.GALLERY_SENT).exists()


def test_sending_needs_gallery_write(studio, make_member, client_for):
    gallery = _published(studio)
    viewer = make_member(Role.VIEWER)

    assert_api_error(client_for(viewer).post(_send_url(studio, gallery), {}, format="json"), 403, "PERMISSION_DENIED")
    # The service says the same to whoever calls it (the admin's button).
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio), pytest.raises(DomainError) as refused:
        gallery_send(gallery=gallery, actor=viewer)
    assert refused.value.code == "PERMISSION_DENIED"
    assert _rows(studio, notifications.GALLERY_READY) == []


def test_another_studios_gallery_cannot_be_sent(studio, other_studio, owner, client_for):
    theirs = _published(other_studio)
    assert_api_error(client_for(owner).post(_send_url(studio, theirs), {}, format="json"), 404, "NOT_FOUND")


def test_a_rolled_back_send_leaves_no_email(studio):
    gallery = _published(studio)
    with (
        context.acting_as(factories.TEST_ACTOR),
        studio_scope(studio),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        gallery_send(gallery=gallery, actor=None)
        raise RuntimeError("the request failed after the send")
    assert _rows(studio, notifications.GALLERY_READY) == []


# --- expiry notices -------------------------------------------------------------------------------------


def test_expiry_notices_go_once_per_gallery_and_expiry_date(studio):
    now = timezone.now()
    due = _published(studio, title="Due", expires_at=now + timedelta(days=6))
    _published(studio, title="Later", expires_at=now + timedelta(days=8))
    _published(studio, title="Never expires")
    factories.gallery(studio, title="Draft", client_email="d@client.example", expires_at=now + timedelta(days=2))
    _published(studio, title="Nobody to tell", client_email="", expires_at=now + timedelta(days=2))

    assert notify_expiring.delay().get() == 1
    assert notify_expiring.delay().get() == 0  # the task runs hourly: still one email
    (row,) = _rows(studio, notifications.GALLERY_EXPIRING)
    assert row.recipient == "jo@client.example" and row.target_id == str(due.pk)
    assert "closes in 6 days" in row.subject

    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        services.gallery_update(actor=None, gallery=due, expires_at=now + timedelta(days=4))
    assert notify_expiring.delay().get() == 1  # a new expiry date is news
    assert notify_expiring.delay().get() == 0
    assert len(_rows(studio, notifications.GALLERY_EXPIRING)) == 2


def test_the_notice_window_is_the_studios_setting_and_zero_means_never(studio, other_studio, owner, client_for):
    now = timezone.now()
    _published(studio, expires_at=now + timedelta(days=2))
    _published(other_studio, expires_at=now + timedelta(days=20))
    api = client_for(owner)
    url = f"/api/v1/studios/{studio.slug}/"

    assert api.patch(url, {"gallery_expiry_notice_days": 0}, format="json").status_code == 200
    assert_api_error(api.patch(url, {"gallery_expiry_notice_days": 91}, format="json"), 400, "VALIDATION_ERROR")
    assert api.get(url).json()["gallery_expiry_notice_days"] == 0
    with studio_scope(other_studio):
        other_studio.gallery_expiry_notice_days = 21
        other_studio.save()

    assert notifications.galleries_expiring(now=now) == 1
    assert _rows(studio, notifications.GALLERY_EXPIRING) == []
    assert len(_rows(other_studio, notifications.GALLERY_EXPIRING)) == 1


# --- upload batch processed ---------------------------------------------------------------------------


def _batch_with(studio: Any, user: Any, statuses: list[str]) -> UploadBatch:
    gallery = factories.gallery(studio, title="Batch gallery")
    with studio_scope(studio):
        batch = UploadBatch.objects.create(studio=studio, gallery=gallery, created_by=user)
        for n, status in enumerate(statuses):
            Asset.objects.create(
                studio=studio,
                gallery=gallery,
                batch=batch,
                original_filename=f"IMG_{n}.jpg",
                storage_key=f"studios/{studio.pk}/t/{batch.pk}/{n}",
                content_type="image/jpeg",
                size=1,
                status=status,
                failure_reason="Broken beyond repair." if status == AssetStatus.FAILED else "",
            )
    return batch


def test_batch_processed_waits_for_the_last_photo_and_goes_once(studio, owner):
    batch = _batch_with(studio, owner.user, [AssetStatus.READY, AssetStatus.FAILED, AssetStatus.PROCESSING])
    with studio_scope(studio):
        assert notifications.batch_processed(batch) == []  # one photo still processing
        Asset.objects.filter(batch=batch, status=AssetStatus.PROCESSING).update(status=AssetStatus.READY)
        # The last two photos finishing together: both workers ask, one email.
        (row,) = notifications.batch_processed(batch)
        assert notifications.batch_processed(batch) == []
    assert row.recipient == owner.user.email
    assert row.subject == "Upload to Batch gallery: 2 ready, 1 failed"
    assert "IMG_1.jpg: Broken beyond repair." in row.body
    assert row.meta == {"ready": 2, "failed": 1}


def test_batch_processed_tells_nobody_when_the_uploader_is_gone(studio):
    batch = _batch_with(studio, None, [AssetStatus.READY])
    with studio_scope(studio):
        assert notifications.batch_processed(batch) == []


# --- export ready, to nobody ---------------------------------------------------------------------------


def test_export_ready_without_anyone_to_tell_sends_nothing(studio):
    from galleries.models import Visitor
    from galleries.services.exports import export_request, export_run

    gallery = factories.ready_asset(studio).gallery
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        services.gallery_publish(gallery=gallery)
        anonymous = Visitor.objects.create(studio=studio, gallery=gallery)
        made, _ = export_request(gallery=gallery, visitor=anonymous, kind="zip")
        export_run(export_id=made.pk)
        made.refresh_from_db()
    assert made.status == "done"
    assert _rows(studio, notifications.EXPORT_READY) == []


# --- Reply-To and the templates ---------------------------------------------------------------------------


def test_reply_to_is_the_studio_contact_else_the_owner_and_can_be_the_client(studio, owner):
    with studio_scope(studio):
        (to_owner,) = emails.email_queue(kind="t", to=["a@example.com"], subject="s", body="b", key="k1")
        studio.contact_email = "desk@studio.example"
        studio.save()
        (to_desk,) = emails.email_queue(kind="t", to=["a@example.com"], subject="s", body="b", key="k2")
        (to_client,) = emails.email_queue(
            kind="t", to=["a@example.com"], subject="s", body="b", key="k3", reply_to="client@example.com"
        )
    with unscoped():
        (platform,) = emails.email_queue(kind="t", to=["a@example.com"], subject="s", body="b", key="k4", platform=True)
    assert to_owner.reply_to == owner.user.email
    assert to_desk.reply_to == "desk@studio.example"
    assert to_client.reply_to == "client@example.com"
    assert platform.reply_to == ""
    assert emails._message(to_client).reply_to == ["client@example.com"]


def test_what_staff_and_clients_type_is_escaped_in_the_html(studio):
    gallery = _published(studio, title='<img src="https://evil.example/x.png">', client_name="<b>Jo</b>")

    with studio_scope(studio):
        text, html = render_email(
            "emails/gallery_ready",
            {
                **notifications._gallery_context(gallery),
                "note": "<script>alert(1)</script>",
            },
        )

    assert '<img src="https://evil.example' not in html and "&lt;img src=&quot;https://evil.example" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    # The plain text is plain: nothing to escape, so nothing is.
    assert "<script>alert(1)</script>" in text and "<b>Jo</b>" in text


def test_every_message_has_both_parts_in_the_studios_branding(studio, owner):
    """The new messages and the ones that moved onto the shared templates."""
    gallery = _published(studio)
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        gallery_send(gallery=gallery, actor=None)
        from teams import services as team_services

        team_services.invitation_create(actor=None, email="new@example.com", role=Role.VIEWER)
    for kind in (notifications.GALLERY_READY, "member.invitation"):
        (row,) = _rows(studio, kind)
        assert row.body and row.html_body and studio.name in row.body, kind
        assert studio.accent_color in row.html_body and "<table" in row.html_body
    assert mail.outbox == []  # locmem: nothing sent without the commit


def test_a_broken_export_never_stops_a_client_finalising(studio, monkeypatch):
    from galleries import formats
    from galleries.models import Visitor

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug in the CSV writer")

    monkeypatch.setattr(formats, "write_selection_csv", broken)
    gallery = factories.gallery(studio)
    asset = factories.ready_asset(studio, gallery)
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        studio.contact_email = "desk@studio.example"
        studio.save()
        visitor = Visitor.objects.create(studio=studio, gallery=gallery)
        services.ratings_set(gallery=gallery, visitor=visitor, ratings=[(asset, 4)])
        selection = services.selection_finalize(gallery=gallery, visitor=visitor)

    assert selection.asset_count == 1
    (row,) = _rows(studio, notifications.SELECTION_FINALISED)
    assert row.recipient == "desk@studio.example" and row.attachments == []
    assert "could not be attached" in row.body
    # An anonymous visitor leaves no address: answers go to the studio.
    assert row.reply_to == "desk@studio.example"
