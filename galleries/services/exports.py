"""The export queue: Export rows, run by a Celery task on the exports queue.

- ``export_request`` records the row (or returns the identical one still
  queued or running: a partial unique constraint decides races) and queues
  ``exports.run`` after commit;
- ``export_run`` is the task's body: it claims the row with one conditional
  UPDATE (a duplicate or late task does nothing), builds the file straight
  into storage, and ends done, failed (with a reason a person can act on) or
  cancelled, never leaving partial output behind;
- ``export_cancel`` stops a queued export at once and flags a running one:
  the runner looks between members, stops, and deletes what it wrote;
- ``export_download`` checks the file is there to hand out and audits it;
- ``exports_expire`` (beat) deletes files past their life, fails runs whose
  worker died, and lists queued exports whose task never reached the broker.

The renderers of the CSV, the Lightroom list and the contact sheet are in
``galleries.formats``; which photos a scope holds is ``formats.scope_assets``.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from galleries.models import (
    EXPORT_ACTIVE,
    DownloadPermission,
    Export,
    ExportKind,
    ExportScope,
    ExportSize,
    ExportStatus,
    Folder,
    Gallery,
    Visitor,
)
from galleries.services.export_runner import EXTENSIONS, ExportCancelled, ExportProblem, export_run
from galleries.storage import media_store
from studio.auditing import Action, audit_record, snapshot
from studio.errors import Conflict, DomainError
from studio.tasks import enqueue
from studio.tenancy import current_studio, studio_scope, unscoped

logger = logging.getLogger(__name__)

__all__ = [
    "ExportCancelled",
    "ExportProblem",
    "export_cancel",
    "export_download",
    "export_request",
    "export_run",
    "exports_expire",
    "exports_lost",
]

AUDITED_FIELDS = ("kind", "scope", "folder", "size", "status", "filename")
# A queued export whose task has not reached the broker this long after the
# request is queued again by exports.expire (the broker was down).
LOST_AFTER_SECONDS = 60
# --- requesting -----------------------------------------------------------------------------------


def export_request(
    *,
    gallery: Gallery,
    kind: str,
    scope: str = ExportScope.GALLERY,
    folder: Folder | None = None,
    size: str = ExportSize.WEB,
    user: Any = None,
    visitor: Visitor | None = None,
) -> tuple[Export, bool]:
    """Ask for an export; returns ``(export, created)``. Asking again while an
    identical one (same gallery, kind, scope, folder, size and requester) is
    queued or running returns that one with ``created`` False. Visitors may
    ask for ZIPs only, in the sizes the gallery's download permission allows."""
    kind, scope = ExportKind(kind), ExportScope(scope)
    size = ExportSize(size) if kind == ExportKind.ZIP else ""
    if visitor is not None:
        _check_visitor_may_download(gallery, kind, size)
    _check_scope(gallery, scope, folder)
    if scope != ExportScope.FOLDER:
        folder = None
    requester = f"u:{user.pk}" if user is not None else f"v:{visitor.pk}" if visitor is not None else "system"
    dedupe_key = f"{kind}|{scope}|{folder.pk if folder else '-'}|{size or '-'}|{requester}"
    for _ in range(3):  # an identical export may end between our insert and our read
        existing = _active(gallery, dedupe_key)
        if existing is not None:
            return existing, False
        export = Export(
            studio=gallery.studio,
            gallery=gallery,
            kind=kind,
            scope=scope,
            folder=folder,
            size=size,
            requested_by_user=user,
            requested_by_visitor=visitor,
            dedupe_key=dedupe_key,
            filename=_filename(gallery, kind, scope, folder, size),
        )
        try:
            with transaction.atomic():
                export.save(force_insert=True)
                audit_record(action=Action.EXPORT_REQUESTED, target=export, after=snapshot(export, AUDITED_FIELDS))
                _queue_run_on_commit(export)
        except IntegrityError:
            continue  # an identical request won the race: return its row
        return export, True
    raise Conflict("The same export was asked for and ended several times at once: ask again.")


def _active(gallery: Gallery, dedupe_key: str) -> Export | None:
    return Export.objects.filter(gallery=gallery, dedupe_key=dedupe_key, status__in=EXPORT_ACTIVE).first()


def _check_visitor_may_download(gallery: Gallery, kind: str, size: str) -> None:
    allowed = gallery.download_permission
    if kind != ExportKind.ZIP:
        raise DomainError("Clients can download photos only.", code="DOWNLOAD_NOT_ALLOWED", status_code=403)
    if allowed == DownloadPermission.NONE:
        raise DomainError("The studio has not allowed downloads.", code="DOWNLOAD_NOT_ALLOWED", status_code=403)
    if size == ExportSize.ORIGINAL and allowed != DownloadPermission.ORIGINALS:
        raise DomainError("The studio has not made originals available.", code="DOWNLOAD_NOT_ALLOWED", status_code=403)


def _check_scope(gallery: Gallery, scope: str, folder: Folder | None) -> None:
    if scope == ExportScope.FOLDER and folder is None:
        raise DomainError("Choose the folder to export.", code="VALIDATION_ERROR", fields={"folder": ["Required."]})
    if scope != ExportScope.FOLDER and folder is not None:
        raise DomainError(
            "A folder is only given with scope folder.",
            code="VALIDATION_ERROR",
            fields={"folder": ["Only with scope folder."]},
        )
    if folder is not None and folder.gallery_id != gallery.pk:
        raise DomainError("The folder is not in this gallery.", code="INVALID_FOLDER", fields={"folder": ["Unknown."]})


def _filename(gallery: Gallery, kind: str, scope: str, folder: Folder | None, size: str) -> str:
    parts = [slugify(gallery.title)[:60] or "gallery"]
    if scope == ExportScope.FOLDER and folder is not None:
        parts.append(slugify(folder.name)[:40] or "folder")
    elif scope == ExportScope.SELECTION:
        parts.append("selection")
    if kind == ExportKind.ZIP:
        parts.append("originals" if size == ExportSize.ORIGINAL else "web")
    elif kind == ExportKind.LIGHTROOM:
        parts.append("lightroom")
    elif kind == ExportKind.CONTACT_SHEET:
        parts.append("contact-sheet")
    return f"{'-'.join(parts)}.{EXTENSIONS[ExportKind(kind)]}"


def _queue_run_on_commit(export: Export) -> None:
    """Queue the run once the request commits. The row is stamped
    ``enqueued_at`` when the broker took the task; if it refused, the row
    waits unstamped, and exports.expire (beat) queues it again."""
    from galleries.tasks import run_export

    studio = current_studio()
    export_id = str(export.pk)

    def send() -> None:
        if enqueue(run_export, str(studio.pk), export_id):
            with studio_scope(studio):
                Export.objects.filter(pk=export_id).update(enqueued_at=timezone.now())

    transaction.on_commit(send, robust=True)


# --- cancelling ------------------------------------------------------------------------------------


def export_cancel(*, export: Export) -> Export:
    """Queued: cancelled at once. Running: flagged; the runner stops before
    its next member and deletes its partial output. Anything else has ended:
    409 EXPORT_FINISHED."""
    with transaction.atomic():
        row = Export.objects.select_for_update().get(pk=export.pk)
        before = snapshot(row, AUDITED_FIELDS)
        if row.status == ExportStatus.QUEUED:
            row.status = ExportStatus.CANCELLED
            row.finished_at = timezone.now()
            row.save(update_fields=["status", "finished_at", "updated_at"])
        elif row.status == ExportStatus.RUNNING:
            if row.cancel_requested_at is not None:
                return row  # asked already; nothing changes
            row.cancel_requested_at = timezone.now()
            row.save(update_fields=["cancel_requested_at", "updated_at"])
        else:
            raise Conflict(f"The export is {row.status} already.", code="EXPORT_FINISHED")
        after = {**snapshot(row, AUDITED_FIELDS), "cancel_requested": row.cancel_requested_at is not None}
        audit_record(action=Action.EXPORT_CANCELLED, target=row, before=before, after=after)
    return row


# --- downloading -----------------------------------------------------------------------------------


def export_download(*, export: Export, visitor: Visitor | None = None, now: datetime | None = None) -> Export:
    """Check the file may be handed out now, and audit that it was. The
    caller turns it into a response (a presigned link, or the file)."""
    now = now or timezone.now()
    if export.status == ExportStatus.EXPIRED or (
        export.status == ExportStatus.DONE and export.expires_at is not None and export.expires_at <= now
    ):
        raise DomainError(
            "The file was deleted after its expiry: ask for it again.", code="EXPORT_EXPIRED", status_code=410
        )
    if export.status != ExportStatus.DONE:
        raise Conflict(f"The export is {export.status}, not done.", code="EXPORT_NOT_READY")
    if visitor is not None:
        # The studio may have narrowed downloads since the export was asked for.
        _check_visitor_may_download(export.gallery, export.kind, export.size)
    audit_record(
        action=Action.EXPORT_DOWNLOADED,
        target=export,
        after={"kind": export.kind, "size": export.size, "filename": export.filename, "file_size": export.file_size},
    )
    return export


# --- expiry and the lost (the exports.expire beat job) ---------------------------------------------------


def exports_expire(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Delete the files of exports past their expiry and mark them expired;
    fail runs whose worker died (still running past the hard time limit).
    Across studios: the beat job's unit of work is the platform. Returns how
    many expired."""
    now = now or timezone.now()
    with unscoped():  # the beat job looks at every studio's exports
        ended = [ExportStatus.DONE, ExportStatus.FAILED]
        due = list(Export.objects.filter(status__in=ended, expires_at__lte=now).values_list("pk", "file_key")[:limit])
        keys = [key for _, key in due if key]
        # Files first: if deleting fails, the rows stay due and the next run tries again.
        media_store().delete(keys)
        expired = Export.objects.filter(pk__in=[pk for pk, _ in due], status__in=ended).update(
            status=ExportStatus.EXPIRED, file_key="", updated_at=now
        )
        dead_before = now - timedelta(seconds=settings.EXPORT_TIME_LIMIT + 300)
        Export.objects.filter(status=ExportStatus.RUNNING, started_at__lte=dead_before).update(
            status=ExportStatus.FAILED,
            failure_reason="The worker building this export stopped before it finished: ask for it again.",
            finished_at=now,
            expires_at=now + timedelta(hours=settings.EXPORT_TTL_HOURS),
            updated_at=now,
        )
    return expired


def exports_lost(*, now: datetime | None = None, limit: int = 500) -> list[tuple[Any, Any]]:
    """(studio id, export id) of queued exports whose task never reached
    the broker, LOST_AFTER_SECONDS after they were asked for."""
    now = now or timezone.now()
    with unscoped():  # the beat job looks at every studio's exports
        return list(
            Export.objects.filter(
                status=ExportStatus.QUEUED,
                enqueued_at=None,
                created_at__lte=now - timedelta(seconds=LOST_AFTER_SECONDS),
            ).values_list("studio_id", "pk")[:limit]
        )
