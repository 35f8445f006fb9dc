"""The galleries' emails (HTML + plain text on the shared email templates,
studio.email_templates), queued through studio.emails inside the caller's
transaction: a rolled-back change sends nothing, and each email goes once
per idempotency key.

Called by the services: export_ready(export) when an export is done;
batch_processed(batch) when the last photo of an upload batch is ready or
failed; selection_finalised(selection) when a client finalises;
gallery_ready(gallery) from the "send to client" service
(galleries.services.sharing); galleries_expiring(now) from the beat job."""

from __future__ import annotations

import io
import logging
import math
import zoneinfo
from datetime import date, datetime, timedelta
from typing import Any

from django.urls import NoReverseMatch, reverse
from django.utils import dateformat

from galleries.models import Asset, AssetStatus, Gallery, GalleryStatus
from studio.email_templates import absolute_url, render_email
from studio.emails import Attachment, email_queue, studio_recipients
from studio.models import EmailLog, Studio
from studio.tenancy import studio_scope, unscoped

logger = logging.getLogger(__name__)

GALLERY_READY = "gallery.ready"
GALLERY_EXPIRING = "gallery.expiring"
SELECTION_FINALISED = "selection.finalised"
EXPORT_READY = "export.ready"
BATCH_PROCESSED = "upload.batch_processed"


# --- links and dates ---------------------------------------------------------------------------------


def gallery_link(gallery: Gallery) -> str:
    """The portal's direct link. Codes are unique per studio only, so the
    link names the studio too."""
    return absolute_url(
        reverse("portal:studio-gallery", kwargs={"slug": gallery.studio.slug, "code": gallery.access_code})
    )


def admin_gallery_link(gallery: Gallery) -> str:
    return absolute_url(reverse("admin:galleries_gallery_change", args=[gallery.pk]))


def _local(studio: Studio, value: datetime) -> datetime:
    return value.astimezone(zoneinfo.ZoneInfo(studio.timezone))


def _day(studio: Studio, value: datetime) -> str:
    return dateformat.format(_local(studio, value), "l j F Y")


def _queue(
    *, kind: str, to: list[str], subject: str, template: str, context: dict[str, Any], key: str, **extra: Any
) -> list[EmailLog]:
    text, html = render_email(f"emails/{template}", {"subject": subject, **context})
    return email_queue(kind=kind, to=to, subject=subject, body=text, html_body=html, key=key, **extra)


# --- to the client ------------------------------------------------------------------------------------


def _gallery_context(gallery: Gallery) -> dict[str, Any]:
    studio = gallery.studio
    return {
        "studio": studio,
        "gallery": gallery,
        "link": gallery_link(gallery),
        "code": gallery.access_code,
        "expires": _day(studio, gallery.expires_at) if gallery.expires_at else "",
    }


def gallery_ready(gallery: Gallery, *, note: str = "", send: int = 1) -> list[EmailLog]:
    """The gallery's link, code and expiry, to its client. Returns the EmailLog
    rows queued. ``send`` counts the sends of this gallery: each is a new email."""
    return _queue(
        kind=GALLERY_READY,
        to=[gallery.client_email],
        subject=f"Your photos are ready: {gallery.title}",
        template="gallery_ready",
        context={**_gallery_context(gallery), "note": note.strip()},
        key=f"gallery:{gallery.pk}:ready:{send}",
        # The link and code open the gallery: kept out of the log once sent.
        sensitive=True,
        target=gallery,
        meta={"send": send},
    )


def gallery_expiring(gallery: Gallery, *, now: datetime) -> list[EmailLog]:
    """Once per gallery and expiry date: moving the expiry makes a new notice."""
    studio = gallery.studio
    days = max(1, math.ceil((gallery.expires_at - now) / timedelta(days=1)))
    expiry_day: date = _local(studio, gallery.expires_at).date()
    return _queue(
        kind=GALLERY_EXPIRING,
        to=[gallery.client_email],
        subject=f"{gallery.title}: your gallery closes in {days} day{'s' if days != 1 else ''}",
        template="gallery_expiring",
        context={**_gallery_context(gallery), "days": days},
        key=f"gallery:{gallery.pk}:expiring:{expiry_day.isoformat()}",
        sensitive=True,
        target=gallery,
        meta={"expires_at": gallery.expires_at.isoformat(), "days": days},
    )


def galleries_expiring(*, now: datetime) -> int:
    """Queue the expiry notices due at ``now``: published galleries with a
    client address whose expiry falls within their studio's
    gallery_expiry_notice_days (0: the studio sends none). Returns how many
    were queued now (a gallery already told about this expiry is skipped)."""
    with unscoped():  # the beat job serves every studio
        studios = list(Studio.objects.filter(is_active=True, gallery_expiry_notice_days__gt=0))
    queued = 0
    for studio in studios:
        with studio_scope(studio):
            due = (
                Gallery.objects.filter(
                    status=GalleryStatus.PUBLISHED,
                    expires_at__gt=now,
                    expires_at__lte=now + timedelta(days=studio.gallery_expiry_notice_days),
                )
                .exclude(client_email="")
                .select_related("studio")
            )
            for gallery in due:
                queued += len(gallery_expiring(gallery, now=now))
    return queued


# --- to the studio ------------------------------------------------------------------------------------


def _assigned(gallery: Gallery) -> list[str]:
    members = gallery.assigned_members.filter(user__is_active=True)
    return list(members.values_list("user__email", flat=True))


def _selection_files(gallery: Gallery) -> list[Attachment]:
    # Imported here: the formats pull in the PDF library, which the rest of
    # the emails do not need.
    from galleries.formats import Scope, lightroom_text, write_selection_csv

    scope = Scope("selection")
    out = io.BytesIO()
    try:
        write_selection_csv(gallery, out, scope=scope)
        lightroom = lightroom_text(gallery, scope=scope)
    except Exception:  # noqa: BLE001 - a broken export must not stop a client finalising
        logger.exception("gallery %s: the selection's files could not be attached", gallery.pk)
        return []
    return [
        Attachment("selection.csv", out.getvalue().decode("utf-8"), "text/csv"),
        Attachment("lightroom.txt", lightroom, "text/plain"),
    ]


def _visitor_email(visitor: Any) -> str | None:
    return (visitor.email if visitor is not None else "") or None


def selection_finalised(selection: Any) -> list[EmailLog]:
    """Tell the studio and the gallery's assigned members, CSV and Lightroom list attached."""
    gallery = selection.gallery
    studio = gallery.studio
    context = {
        "studio": studio,
        "gallery": gallery,
        "selection": selection,
        "finalised_at": dateformat.format(_local(studio, selection.finalized_at), "l j F Y, H:i T"),
        "admin_link": admin_gallery_link(gallery),
    }
    attachments = _selection_files(gallery)
    context["attached"] = bool(attachments)
    return _queue(
        kind=SELECTION_FINALISED,
        to=[*studio_recipients(studio), *_assigned(gallery)],
        subject=f"Selection finalised: {gallery.title} ({selection.asset_count} photos)",
        template="selection_finalised",
        context=context,
        # A reopened and finalised-again selection is a new row: a new email.
        key=f"selection:{selection.pk}:finalised",
        attachments=attachments,
        target=selection,
        # An answer goes to the client who chose, when they said who they are.
        reply_to=_visitor_email(selection.finalized_by),
    )


def batch_processed(batch: Any) -> list[EmailLog]:
    """Tell the uploader how their batch ended: ready and failed, with reasons.
    Nothing while a photo of it is still awaiting upload or processing; the
    key makes the last two photos finishing together one email."""
    uploader = batch.created_by
    if uploader is None or not uploader.is_active:
        return []
    # Asked after every photo of the batch: while any is unsettled, answer
    # with one indexed EXISTS, not by loading the whole batch each time.
    if Asset.objects.filter(batch=batch, status__in=(AssetStatus.AWAITING_UPLOAD, AssetStatus.PROCESSING)).exists():
        return []
    assets = list(
        Asset.objects.filter(batch=batch).only("status", "original_filename", "failure_reason").order_by("created_at")
    )
    if not assets:
        return []
    ready = sum(1 for a in assets if a.status == AssetStatus.READY)
    failed = [a for a in assets if a.status == AssetStatus.FAILED]
    gallery = batch.gallery
    subject = f"Upload to {gallery.title}: {ready} ready" + (f", {len(failed)} failed" if failed else "")
    return _queue(
        kind=BATCH_PROCESSED,
        to=[uploader.email],
        subject=subject,
        template="batch_processed",
        context={
            "studio": gallery.studio,
            "gallery": gallery,
            "ready": ready,
            "failed": failed,
            "admin_link": admin_gallery_link(gallery),
        },
        key=f"batch:{batch.pk}:processed",
        target=batch,
        meta={"ready": ready, "failed": len(failed)},
    )


# --- exports ---------------------------------------------------------------------------------------------


def _export_link(export: Any, *, for_visitor: bool) -> str:
    if for_visitor:
        # The file is the visitor's through their portal session: the
        # gallery page offers it, no link in an email can sign them in.
        return gallery_link(export.gallery)
    try:
        path = reverse(
            "api:gallery-export-download",
            kwargs={"studio_slug": export.studio.slug, "gallery_pk": export.gallery_id, "pk": export.pk},
        )
    except NoReverseMatch:  # the exports API's route; the admin page always works
        return admin_gallery_link(export.gallery)
    return absolute_url(path)


def export_ready(export: Any) -> list[EmailLog]:
    """Tell whoever asked that their export can be downloaded: the staff
    member, or the visitor if they gave an address; nobody else."""
    user = getattr(export, "requested_by_user", None)
    visitor = getattr(export, "requested_by_visitor", None)
    if user is not None and user.is_active:
        to, for_visitor = user.email, False
    elif visitor is not None and visitor.email:
        to, for_visitor = visitor.email, True
    else:
        return []
    gallery = export.gallery
    studio = gallery.studio
    what = export.get_kind_display()
    expires_at = getattr(export, "expires_at", None)
    return _queue(
        kind=EXPORT_READY,
        to=[to],
        subject=f"Your download is ready: {what}, {gallery.title}",
        template="export_ready",
        context={
            "studio": studio,
            "gallery": gallery,
            "export": export,
            "what": what,
            "for_visitor": for_visitor,
            "link": _export_link(export, for_visitor=for_visitor),
            "expires": dateformat.format(_local(studio, expires_at), "l j F Y, H:i T") if expires_at else "",
        },
        key=f"export:{export.pk}:ready",
        # A visitor's link opens the gallery (its code is in it).
        sensitive=for_visitor,
        target=export,
    )
