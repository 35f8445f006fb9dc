"""The exports.run task's body: claim the row, build the file straight into
storage, end done, failed (with a reason a person can act on) or cancelled,
and never leave partial output behind. Asking, cancelling, downloading and
expiry are in galleries.services.exports, which re-exports ``export_run``."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import IO, Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from galleries import formats, notifications
from galleries.models import Asset, Export, ExportKind, ExportScope, ExportSize, ExportStatus
from galleries.storage import StorageError, export_key, media_store
from galleries.zips import ZipMember, unique_safe_names, zip_chunks
from studio.errors import DomainError

logger = logging.getLogger(__name__)

EXTENSIONS = {
    ExportKind.CSV: "csv",
    ExportKind.LIGHTROOM: "txt",
    ExportKind.CONTACT_SHEET: "pdf",
    ExportKind.ZIP: "zip",
}
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
    "pdf": "application/pdf",
    "zip": "application/zip",
}
# Progress is written at most this often: a row UPDATE per chunk would cost
# more than the copy.
PROGRESS_INTERVAL_SECONDS = 1.0
# Small outputs (CSV, lists, PDFs) are built in memory up to this, on disk beyond.
SPOOL_MAX_BYTES = 16 * 1024 * 1024


# One exception for "someone cancelled": the renderers raise it mid-sheet,
# the runner between ZIP members.
ExportCancelled = formats.ExportCancelled


class ExportProblem(Exception):
    """The export cannot be built; the message says why, to a person."""


# --- running (the exports.run task's body) ----------------------------------------------------------------


def export_run(*, export_id: Any) -> Export | None:
    """Build the export's file. Returns None when there was nothing to do:
    the row is gone, or another task claimed it, or it was cancelled first."""
    now = timezone.now()
    claimed = Export.objects.filter(pk=export_id, status=ExportStatus.QUEUED).update(
        status=ExportStatus.RUNNING, started_at=now, progress=0, updated_at=now
    )
    if not claimed:
        return None
    export = Export.objects.select_related("gallery", "folder").get(pk=export_id)
    key = export_key(export, EXTENSIONS[ExportKind(export.kind)])
    watch = _Watch(export)
    try:
        file_size = _BUILDERS[ExportKind(export.kind)](export, key, watch)
        if _finish_done(export, key, file_size):
            return export
        raise ExportCancelled  # asked after the last member: honour it
    except ExportCancelled:
        _remove(key)
        _finish(export, ExportStatus.CANCELLED)
    except Exception as exc:  # noqa: BLE001 - any failure ends the export, with the reason
        logger.exception("export %s failed", export.pk)
        _remove(key)
        _finish(export, ExportStatus.FAILED, reason=_reason(exc, export))
    return export


class _Watch:
    """Progress (written at most every PROGRESS_INTERVAL_SECONDS) and the
    cancellation flag (read between members)."""

    def __init__(self, export: Export) -> None:
        self.export = export
        self.total = 0
        self.done = 0
        self.written_at = time.monotonic()
        self.checked_at = 0.0
        self.stopped: bool | None = None  # not read yet

    def advance(self, amount: int) -> None:
        self.done += amount
        self.report(self.done, self.total)

    def report(self, done: int, total: int) -> None:
        if total <= 0 or time.monotonic() - self.written_at < PROGRESS_INTERVAL_SECONDS:
            return
        self.written_at = time.monotonic()
        # 99 at most: 100 is "done", set with the file.
        progress = min(99, done * 100 // total)
        Export.objects.filter(pk=self.export.pk, status=ExportStatus.RUNNING).update(progress=progress)

    def cancelled(self) -> bool:
        return not Export.objects.filter(
            pk=self.export.pk, status=ExportStatus.RUNNING, cancel_requested_at__isnull=True
        ).exists()

    def cancelled_lately(self) -> bool:
        """cancelled(), read at most every PROGRESS_INTERVAL_SECONDS: the
        contact sheet asks before every photo, and a query per photo would
        cost more than drawing it (a cancel waits a second at most). Between
        ZIP members, which are large, check() reads every time."""
        now = time.monotonic()
        if self.stopped is None or now - self.checked_at >= PROGRESS_INTERVAL_SECONDS:
            self.checked_at = now
            self.stopped = self.cancelled()
        return self.stopped

    def check(self) -> None:
        if self.cancelled():
            raise ExportCancelled


def _scope(export: Export) -> formats.Scope:
    if export.scope == ExportScope.FOLDER and export.folder_id is None:
        raise ExportProblem("The folder was deleted before the export ran: choose another folder.")
    return formats.Scope(export.scope, export.folder_id)


def _zip_members(export: Export, watch: _Watch) -> list[ZipMember]:
    assets: list[Asset] = list(formats.scope_assets(export.gallery, _scope(export)))
    if not assets:
        raise ExportProblem(f"There are no photos to export in this {export.get_scope_display().lower()}.")
    store = media_store()
    originals = export.size == ExportSize.ORIGINAL
    files = []
    for asset in assets:
        if originals:
            files.append((asset.original_filename, asset.storage_key, asset.size))
            continue
        large = (asset.derivatives or {}).get("large")
        if large is None:
            raise ExportProblem(
                f"{asset.original_filename} has no web-size version: regenerate its derivatives, then ask again."
            )
        stem = asset.original_filename.rsplit(".", 1)[0]
        extension = large["key"].rsplit(".", 1)[-1]
        files.append((f"{stem}.{extension}", large["key"], large.get("bytes") or 0))
    watch.total = sum(size for _, _, size in files) or 1
    names = unique_safe_names(name for name, _, _ in files)

    def opener(name: str, key: str) -> Callable[[], Iterator[bytes]]:
        def read() -> Iterator[bytes]:
            watch.check()  # between members: stop before opening the next one
            try:
                for chunk in store.iter_chunks(key):
                    watch.advance(len(chunk))
                    yield chunk
            except FileNotFoundError as exc:
                raise ExportProblem(
                    f"The file of {name} is missing from storage: upload it again, then ask again."
                ) from exc

        return read

    return [ZipMember(name, size, None, opener(name, key)) for name, (_, key, size) in zip(names, files, strict=True)]


def _build_zip(export: Export, key: str, watch: _Watch) -> int:
    members = _zip_members(export, watch)
    return media_store().write_stream(key, zip_chunks(members), CONTENT_TYPES["zip"])


def _build_spooled(export: Export, key: str, watch: _Watch) -> int:
    scope = _scope(export)
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX_BYTES) as out:
        if export.kind == ExportKind.CSV:
            formats.write_selection_csv(export.gallery, out, scope=scope)
        elif export.kind == ExportKind.LIGHTROOM:
            out.write(formats.lightroom_text(export.gallery, scope=scope).encode("utf-8"))
        else:
            formats.write_contact_sheet(
                export.gallery, out, scope=scope, progress=watch.report, cancelled=watch.cancelled_lately
            )
        watch.check()  # the renderer stops early when cancelled: do not store what it left
        out.seek(0)
        extension = EXTENSIONS[ExportKind(export.kind)]
        return media_store().write_stream(key, _read_chunks(out), CONTENT_TYPES[extension])


def _read_chunks(handle: IO[bytes], size: int = 1024 * 1024) -> Iterator[bytes]:
    while chunk := handle.read(size):
        yield chunk


_BUILDERS: dict[str, Callable[[Export, str, _Watch], int]] = {
    ExportKind.ZIP: _build_zip,
    ExportKind.CSV: _build_spooled,
    ExportKind.LIGHTROOM: _build_spooled,
    ExportKind.CONTACT_SHEET: _build_spooled,
}


def _finish_done(export: Export, key: str, file_size: int) -> bool:
    """Done, with the file, unless cancelled meanwhile (False). The email
    goes in the same transaction: no "ready" mail for a row not marked done."""
    now = timezone.now()
    with transaction.atomic():
        marked = Export.objects.filter(
            pk=export.pk, status=ExportStatus.RUNNING, cancel_requested_at__isnull=True
        ).update(
            status=ExportStatus.DONE,
            progress=100,
            file_key=key,
            file_size=file_size,
            finished_at=now,
            expires_at=now + timedelta(hours=settings.EXPORT_TTL_HOURS),
            updated_at=now,
        )
        if not marked:
            return False
        export.refresh_from_db()
        notifications.export_ready(export)
    return True


def _finish(export: Export, status: str, reason: str = "") -> None:
    now = timezone.now()
    # A failed row stays listed (with its reason) as long as a file would, then expires.
    expires_at = now + timedelta(hours=settings.EXPORT_TTL_HOURS) if status == ExportStatus.FAILED else None
    Export.objects.filter(pk=export.pk, status=ExportStatus.RUNNING).update(
        status=status, failure_reason=reason[:300], finished_at=now, expires_at=expires_at, updated_at=now
    )
    export.refresh_from_db()


def _remove(key: str) -> None:
    """The writers leave nothing behind on error; this covers a file that
    was stored whole before a later step failed."""
    try:
        media_store().delete([key])
    except Exception:  # noqa: BLE001 - expiry retries; the export's own error matters more
        logger.warning("could not delete %s after the export stopped", key, exc_info=True)


def _reason(exc: BaseException, export: Export) -> str:
    if isinstance(exc, ExportProblem):
        return str(exc)
    if isinstance(exc, DomainError):  # the renderers' own refusals (a folder deleted since)
        return exc.message
    if isinstance(exc, SoftTimeLimitExceeded):
        hours = settings.EXPORT_SOFT_TIME_LIMIT / 3600
        return (
            f"The export took longer than {hours:g} hours: export a folder or the selection, "
            "or web size, instead of the whole gallery."
        )
    if isinstance(exc, StorageError):
        return "Storage could not be reached while the file was written: ask for the export again in a few minutes."
    if isinstance(exc, FileNotFoundError):
        return "A photo's file is missing from storage: upload it again, then ask again."
    return f"The file could not be built: ask again, and contact support if it fails again (export {export.pk})."
