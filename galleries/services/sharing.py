"""Sending a gallery to its client: the "send to client" of the admin and
the API's galleries/{id}/send/."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from galleries import notifications
from galleries.models import Gallery, GalleryStatus
from studio.auditing import Action, audit_record
from studio.errors import DomainError
from studio.models import EmailLog, Membership
from studio.roles import require_scope

# A second send this soon after the last one is the same click twice (or a
# retried request): it returns the email already queued, never a new one.
DOUBLE_SEND_SECONDS = 10


def _sends(gallery: Gallery) -> list[EmailLog]:
    return list(
        EmailLog.objects.filter(
            kind=notifications.GALLERY_READY, target_type=Gallery._meta.label_lower, target_id=str(gallery.pk)
        ).order_by("-created_at")
    )


@transaction.atomic
def gallery_send(*, gallery: Gallery, actor: Membership | None, note: str = "") -> list[EmailLog]:
    """Email the gallery's link, code and expiry (and ``note``) to its client.

    Each send is a new email; a second send within DOUBLE_SEND_SECONDS
    returns the first one's rows. Returns the EmailLog rows."""
    require_scope(actor, "gallery:write", "Sending a gallery to its client needs the gallery:write scope.")
    # One sender at a time per gallery, so two clicks cannot both count as first.
    gallery = Gallery.objects.select_for_update().select_related("studio").get(pk=gallery.pk)
    if gallery.status != GalleryStatus.PUBLISHED:
        raise DomainError(
            "Publish the gallery before sending it: the client could not open a draft.", code="GALLERY_NOT_PUBLISHED"
        )
    if not gallery.client_email:
        raise DomainError(
            "The gallery has no client email address: add one, then send.",
            code="NO_CLIENT_EMAIL",
            fields={"client_email": ["Needed to send the gallery."]},
        )
    if gallery.is_expired:
        raise DomainError(
            "The gallery has expired: move its expiry date, then send.",
            code="GALLERY_EXPIRED",
            fields={"expires_at": ["In the past."]},
        )
    previous = _sends(gallery)
    if previous and previous[0].created_at > timezone.now() - timedelta(seconds=DOUBLE_SEND_SECONDS):
        last_send = previous[0].meta.get("send")
        return [row for row in previous if row.meta.get("send") == last_send]
    send = 1 + max((row.meta.get("send", 0) for row in previous), default=0)
    rows = notifications.gallery_ready(gallery, note=note, send=send)
    audit_record(
        action=Action.GALLERY_SENT,
        target=gallery,
        after={"to": [row.recipient for row in rows], "send": send, "with_note": bool(note.strip())},
    )
    return rows
