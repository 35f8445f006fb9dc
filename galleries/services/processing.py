"""Derivatives: the body of the Celery task, and asking for them again."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable
from datetime import UTC
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from galleries import imaging
from galleries.models import Asset, AssetStatus, Gallery, UploadBatch
from galleries.services.effects import delete_objects_on_commit, queue_derivatives
from galleries.services.faces import faces_after_derivatives
from galleries.storage import ObjectChanged, StorageError, derivative_key, media_store
from studio.auditing import Action, audit_record
from studio.tenancy import current_studio, studio_scope

logger = logging.getLogger(__name__)


def _fail(asset: Asset, reason: str, *, written: Iterable[str] = ()) -> None:
    """Failed, with a reason a person can act on. The original stays (the
    studio may want it, or a fixed pipeline may succeed later): only the
    cleanup deletes it, after its retention. Partial derivatives go."""
    keys = sorted({*(d["key"] for d in (asset.derivatives or {}).values()), *written})
    asset.status, asset.failure_reason = AssetStatus.FAILED, reason[:300]
    asset.derivatives, asset.derivative_bytes = {}, 0
    with transaction.atomic():
        Asset.with_deleted.filter(pk=asset.pk).update(
            status=asset.status,
            failure_reason=asset.failure_reason,
            derivatives={},
            derivative_bytes=0,
            updated_at=timezone.now(),
        )
        audit_record(action=Action.ASSET_FAILED, target=asset, after={"reason": asset.failure_reason})
        delete_objects_on_commit(keys)


def asset_process(*, asset_id: Any, force: bool = False) -> Asset | None:
    """Make the derivatives of one asset: the body of the Celery task.

    Idempotent: a ready asset is left alone unless ``force``; keys are fixed,
    so a rerun overwrites, never adds. Storage errors propagate
    (StorageError) for the task to retry. Anything else ends here, as failed
    with a reason (bad input says what is wrong with the file; an error of
    ours says so, and is logged with its traceback): a photo is never left
    processing because of an exception."""
    asset = Asset.with_deleted.filter(pk=asset_id).select_related("gallery").first()
    if asset is None or asset.status not in (AssetStatus.PROCESSING, AssetStatus.READY):
        return asset
    if asset.status == AssetStatus.READY and not force:
        return asset
    Asset.with_deleted.filter(pk=asset.pk).update(processing_started_at=timezone.now())
    # Regenerating a ready photo is no news for the uploader: only the first
    # processing counts towards "your upload is processed".
    first_processing = asset.status == AssetStatus.PROCESSING
    written: list[str] = []
    try:
        asset = _process(asset, written)
    except StorageError as exc:
        # Retried by the task; meanwhile staff see why it is still processing.
        Asset.with_deleted.filter(pk=asset.pk).update(failure_reason=f"Waiting for storage: {exc}"[:300])
        raise
    except SoftTimeLimitExceeded:
        _fail(
            asset,
            "Making the previews took too long. Try regenerating; if it fails again, export the photo smaller.",
            written=written,
        )
    except Exception:  # noqa: BLE001 - the task boundary: the photo must not stay processing
        logger.exception("asset %s: derivatives failed", asset.pk)
        _fail(
            asset,
            f"Something went wrong on our side while making the previews (reference {asset.pk}). "
            "Try regenerating them later.",
            written=written,
        )
    if first_processing:
        tell_uploader_when_batch_settles(asset.batch_id)
    return asset


def tell_uploader_when_batch_settles(batch_id: Any) -> None:
    """After this photo's outcome commits, email the uploader if it was the
    last of its batch still processing. Asked after commit, not inside the
    transaction: two workers finishing a batch's last two photos at once
    would each see the other's still processing and neither would send; after
    commit both may see the batch settled, and the email's key makes it one.
    A photo still processing (storage retries) makes the check a no-op."""
    if batch_id is None:
        return
    from galleries import notifications

    studio = current_studio()

    def check() -> None:
        with studio_scope(studio):
            batch = UploadBatch.objects.filter(pk=batch_id).select_related("gallery__studio", "created_by").first()
            if batch is not None:
                notifications.batch_processed(batch)

    transaction.on_commit(check, robust=True)


def _check_digest(asset: Asset, digest: str) -> str | None:
    """What was checked is what gets processed: the announced checksum, and
    the one recorded when the photo was first processed."""
    if asset.expected_sha256 and digest != asset.expected_sha256:
        return "The stored file is not the one announced for this upload (its SHA-256 differs). Upload it again."
    if asset.sha256 and digest != asset.sha256:
        return "The original changed in storage since it was first processed; upload it again."
    return None


def _copied_meanwhile(asset: Asset) -> bool:
    """A twin delivery of this job (or a regeneration queued meanwhile) may
    have copied the upload first, deleted its key, and a late POST written
    there since: the row as it is now says so, and the original stands. Not
    only a refused copy tells: an endpoint that ignores the copy's condition
    would copy the late bytes over the original, then delete it."""
    return not Asset.with_deleted.filter(pk=asset.pk).values_list("upload_etag", flat=True).first()


def _take_upload(asset: Asset, store: Any) -> str | None:
    """Copy the object complete checked from the one-time upload key to the
    original's key, naming its ETag: a second POST to the still-valid target
    since then makes the copy fail, so unchecked bytes never become the
    original. Then the upload key goes (the row keeps its name for the
    cleanup: a later POST there is deleted after the retention). None, or why
    the photo fails. A rerun after a crash copies again: the same object."""
    if not asset.upload_etag or _copied_meanwhile(asset):
        asset.upload_etag = ""
        return None  # copied already, or never uploaded through a target
    try:
        store.copy(asset.upload_key, asset.storage_key, if_match=asset.upload_etag)
    except (ObjectChanged, FileNotFoundError) as exc:
        # Or the twin copied while we were on our way.
        if _copied_meanwhile(asset) and store.head(asset.storage_key) is not None:
            asset.upload_etag = ""
            return None
        if isinstance(exc, ObjectChanged):
            return "The file was replaced after it was checked (uploaded again to the same target). Upload it again."
        return "The uploaded file is missing from storage. Upload it again."
    with transaction.atomic():
        Asset.with_deleted.filter(pk=asset.pk).update(upload_etag="")
        delete_objects_on_commit([asset.upload_key])
    asset.upload_etag = ""
    return None


def _process(asset: Asset, written: list[str]) -> Asset:
    store = media_store()
    problem = _take_upload(asset, store)
    if problem:
        _fail(asset, problem)
        return asset
    with tempfile.NamedTemporaryFile(suffix="." + asset.storage_key.rsplit(".", 1)[-1]) as tmp:
        try:
            digest = store.download(asset.storage_key, tmp)
        except FileNotFoundError:
            _fail(asset, "The uploaded file is missing from storage. Upload it again.")
            return asset
        tmp.flush()
        problem = _check_digest(asset, digest)
        if problem:
            _fail(asset, problem)
            return asset
        duplicate = (
            Asset.objects.filter(gallery_id=asset.gallery_id, sha256=digest)
            .exclude(pk=asset.pk)
            .exclude(status=AssetStatus.FAILED)
            .first()
        )
        if duplicate is not None:
            _fail(asset, f"Duplicate of {duplicate.original_filename}, already in this gallery.")
            return asset
        try:
            info, derivatives = imaging.make_derivatives(
                tmp.name,
                filename=asset.original_filename,
                max_pixels=settings.DERIVATIVE_MAX_PIXELS,
                max_decode_bytes=settings.DERIVATIVE_MAX_DECODE_BYTES,
                quality=settings.DERIVATIVE_WEBP_QUALITY,
                method=settings.DERIVATIVE_WEBP_METHOD,
            )
        except imaging.ImageRejected as exc:
            _fail(asset, exc.reason)
            return asset
    stored = {}
    for derivative in derivatives:
        key = derivative_key(asset, derivative.name)
        written.append(key)
        store.put(key, derivative.data, "image/webp")
        stored[derivative.name] = {
            "key": key,
            "width": derivative.width,
            "height": derivative.height,
            "bytes": len(derivative.data),
        }
    asset.sha256 = digest
    asset.width, asset.height = info.width, info.height
    asset.orientation = info.orientation
    asset.captured_at = info.captured_at.replace(tzinfo=UTC) if info.captured_at else None
    asset.derivatives = stored
    asset.derivative_bytes = sum(d["bytes"] for d in stored.values())
    asset.status, asset.failure_reason = AssetStatus.READY, ""
    try:
        with transaction.atomic():
            # Only what processing owns: the row was read before the job ran,
            # and meanwhile staff may have put the photo in the bin, the
            # client trashed or reordered it, or the sweeper counted a sweep.
            asset.save(
                update_fields=[
                    "sha256",
                    "width",
                    "height",
                    "orientation",
                    "captured_at",
                    "derivatives",
                    "derivative_bytes",
                    "status",
                    "failure_reason",
                    "updated_at",
                ]
            )
            audit_record(
                action=Action.ASSET_PROCESSED,
                target=asset,
                after={"width": asset.width, "height": asset.height, "derivative_bytes": asset.derivative_bytes},
            )
            # New previews, new faces (when the studio and gallery have them on).
            faces_after_derivatives(asset=asset)
    except IntegrityError:  # a twin finished first (unique sha256 per gallery)
        asset.refresh_from_db()
        _fail(asset, "Duplicate of a photo already in this gallery.", written=written)
    return asset


def assets_give_up(*, asset_ids: list[Any]) -> int:
    """The sweeper queued these photos' jobs DERIVATIVE_MAX_SWEEPS times and
    none finished: failed, with the last reason known, never processing for
    ever."""
    stuck = list(Asset.with_deleted.filter(pk__in=asset_ids, status=AssetStatus.PROCESSING))
    for asset in stuck:
        last = f" The last error: {asset.failure_reason}" if asset.failure_reason else ""
        _fail(
            asset,
            f"Making the previews did not finish after {settings.DERIVATIVE_MAX_SWEEPS + 1} attempts.{last} "
            "Try regenerating them.",
        )
    for batch_id in {asset.batch_id for asset in stuck}:  # once per batch, not per photo
        tell_uploader_when_batch_settles(batch_id)
    return len(stuck)


@transaction.atomic
def assets_regenerate(*, gallery: Gallery, assets: list[Asset] | None = None) -> list[Asset]:
    # PROCESSING too: a photo whose task gave up (storage down past its
    # retries) is otherwise stuck; re-running it is harmless (same keys).
    queryset = Asset.objects.filter(gallery=gallery, status__in=[AssetStatus.READY, AssetStatus.PROCESSING])
    if assets is not None:
        queryset = queryset.filter(pk__in=[a.pk for a in assets])
    chosen = list(queryset)
    if chosen:
        audit_record(
            action=Action.ASSET_REGENERATE_REQUESTED, target=gallery, after={"assets": [str(a.pk) for a in chosen]}
        )
        queue_derivatives([a.pk for a in chosen], force=True)
    return chosen
