"""Uploads straight to storage: targets for a batch (under the studio's
quota), checking what arrived, and cleaning up what never did."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from galleries import imaging
from galleries.models import Asset, AssetStatus, Gallery, UploadBatch
from galleries.selectors import derivative_estimate, storage_usage
from galleries.services.effects import asset_keys, delete_objects_on_commit, queue_derivatives
from galleries.services.processing import tell_uploader_when_batch_settles
from galleries.storage import ObjectChanged, media_store, original_key, upload_key
from studio.auditing import Action, audit_record
from studio.errors import DomainError
from studio.models import Studio


class QuotaExceeded(DomainError):
    code = "STORAGE_QUOTA_EXCEEDED"
    status_code = 413
    default_message = "This upload would exceed the studio's storage quota."


@dataclass
class FileRequest:
    filename: str
    size: int
    content_type: str
    sha256: str = ""


@dataclass
class PresignResult:
    batch: UploadBatch
    accepted: list[tuple[Asset, Any]] = field(default_factory=list)  # (asset, UploadTarget)
    rejected: list[dict[str, Any]] = field(default_factory=list)  # {"filename", "reason"}


def _reject_reason(file: FileRequest) -> str | None:
    fmt = imaging.MIME_TO_FORMAT.get(file.content_type)
    if fmt is None:
        return f"{file.content_type or 'This type'} is not accepted: upload JPEG, PNG, WebP, TIFF or HEIC images."
    if fmt == "HEIF" and not (settings.UPLOAD_ACCEPT_HEIC and imaging.pillow_heif is not None):
        return imaging.HEIC_UNSUPPORTED
    ext = file.filename.rsplit(".", 1)[-1].lower() if "." in file.filename else ""
    if ext not in imaging.FORMATS[fmt][1]:
        return f"The name ends in .{ext or '(nothing)'} but the type is {file.content_type}."
    if file.size <= 0:
        return "The file is empty."
    if file.size > settings.UPLOAD_MAX_BYTES:
        return f"The file is larger than {filesizeformat(settings.UPLOAD_MAX_BYTES)}."
    return None


@transaction.atomic
def upload_presign(*, gallery: Gallery, files: list[FileRequest], user: Any) -> PresignResult:
    """Upload targets for a batch of files, straight to storage.

    The studio row is locked while the quota is checked, so two batches
    cannot both squeeze under it."""
    studio = Studio.objects.select_for_update().get(pk=gallery.studio_id)
    known = dict(
        Asset.objects.filter(gallery=gallery)
        .exclude(sha256="")
        .exclude(status=AssetStatus.FAILED)
        .values_list("sha256", "original_filename")
    )
    wanted: list[FileRequest] = []
    rejected: list[dict[str, Any]] = []
    for file in files:
        reason = _reject_reason(file)
        if reason is None and file.sha256 and file.sha256 in known:
            reason = f"Already in this gallery as {known[file.sha256]}."
        if reason:
            rejected.append({"filename": file.filename, "reason": reason})
        else:
            if file.sha256:
                known[file.sha256] = file.filename
            wanted.append(file)
    # Reserved now with an estimate of the derivatives (settled when the
    # photo is ready, released when the target expires unused).
    requested = sum(f.size + derivative_estimate(f.size) for f in wanted)
    usage = storage_usage(studio)
    if usage + requested > studio.storage_quota_bytes:
        raise QuotaExceeded(
            details={"usage_bytes": usage, "quota_bytes": studio.storage_quota_bytes, "requested_bytes": requested}
        )
    batch = UploadBatch.objects.create(studio=studio, gallery=gallery, created_by=user)
    next_order = (Asset.objects.filter(gallery=gallery).aggregate(m=Max("sort_order"))["m"] or 0) + 1
    assets = []
    for index, file in enumerate(wanted):
        asset = Asset(
            studio=studio,
            gallery=gallery,
            batch=batch,
            original_filename=file.filename[:255],
            content_type=file.content_type,
            size=file.size,
            expected_sha256=file.sha256.lower(),
            sort_order=next_order + index,
        )
        extension = imaging.FORMATS[imaging.MIME_TO_FORMAT[file.content_type]][1][0]
        asset.storage_key = original_key(asset, extension)
        asset.upload_key = upload_key(asset, extension)
        assets.append(asset)
    Asset.objects.bulk_create(assets)
    store = media_store()
    ttl = settings.UPLOAD_URL_TTL_SECONDS
    result = PresignResult(batch=batch, rejected=rejected)
    for asset in assets:
        target = store.presigned_upload(asset.upload_key, size=asset.size, content_type=asset.content_type, ttl=ttl)
        result.accepted.append((asset, target))
    audit_record(
        action=Action.UPLOAD_REQUESTED,
        target=gallery,
        after={
            "batch": str(batch.pk),
            "files": len(assets),
            "bytes": sum(a.size for a in assets),
            "reserved_bytes": requested,
            "rejected": len(rejected),
        },
    )
    return result


@dataclass
class CompleteResult:
    processing: list[Asset] = field(default_factory=list)
    failed: list[tuple[Asset, str]] = field(default_factory=list)
    missing: list[Asset] = field(default_factory=list)


def _check_uploaded(store: Any, asset: Asset) -> tuple[str | None, str]:
    """(None, its ETag) when the object is there and keeps the rules; else
    (why not, ""). One ranged GET: the copy of a good file to the original's
    key is the derivatives job's, naming that ETag (processing._take_upload),
    so what was checked is what gets processed and complete does not wait
    on 500 copies. A rule breaker is copied here, as before: it is kept, as
    a failed photo, until the cleanup's retention ends, like every failed
    photo."""
    peeked = store.peek(asset.upload_key, 16)
    if peeked is None:
        return "missing", ""
    info, head = peeked
    problem = _problem(asset, info, head)
    if problem is None:
        return None, info.etag
    try:
        store.copy(asset.upload_key, asset.storage_key, if_match=info.etag)
    except ObjectChanged:
        return "The file was replaced while it was being checked: upload it again.", ""
    return problem, ""


def _problem(asset: Asset, info: Any, head: bytes) -> str | None:
    if info.size != asset.size:
        return f"The file is {info.size} bytes, not the {asset.size} bytes announced."
    if info.content_type and info.content_type != asset.content_type:
        return f"The file was stored as {info.content_type}, not {asset.content_type}."
    sniffed = imaging.sniff_format(head)
    if sniffed is None:
        return "This is not a JPEG, PNG, WebP, TIFF or HEIC image."
    if asset.content_type not in imaging.FORMATS[sniffed][0]:
        return f"The file is a {sniffed} image, not {asset.content_type}."
    return None


# Storage checks run side by side: each is one round trip (the first bytes
# with the size, type and ETag). Never more than the S3 client's
# connection pool (botocore's default is 10): a thread beyond it would open
# a connection per call and throw it away.
CHECK_CONCURRENCY = 8


def _check_concurrency(store: Any, files: int) -> int:
    client = getattr(store, "client", None)  # S3: one boto3 client, thread-safe, shared by the threads
    pool = client.meta.config.max_pool_connections if client is not None else CHECK_CONCURRENCY
    return max(1, min(CHECK_CONCURRENCY, pool, files))


def _check_all(store: Any, assets: list[Asset]) -> dict[Any, tuple[str | None, str]]:
    """Each asset's (problem, ETag): None, "missing" or why not; the checks run
    side by side. The first check to raise (storage down) cancels those not
    started and is raised: one at a time, the first failure ended the call
    too, and 500 files must not each wait out the timeouts before the 503."""
    problems: dict[Any, tuple[str | None, str]] = {}
    pool = ThreadPoolExecutor(max_workers=_check_concurrency(store, len(assets)), thread_name_prefix="upload-check")
    try:
        futures = {pool.submit(_check_uploaded, store, asset): asset.pk for asset in assets}
        for future in as_completed(futures):
            problems[futures[future]] = future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return problems


def upload_complete(*, batch: UploadBatch, asset_ids: list[Any] | None = None) -> CompleteResult:
    """Check each uploaded object (its size, type and first bytes in one
    ranged GET); fail the ones that break the rules; queue derivatives for
    the rest, whose job copies each checked object (by its ETag) to the
    original's key.

    The storage checks run first, side by side (_check_all) and outside any
    transaction: no row is locked while we wait on the network. The results
    are then recorded in one short transaction, for the photos still awaiting
    upload (a racing call to complete may have recorded some meanwhile: it
    wins, ours are skipped)."""
    candidates = Asset.objects.filter(batch=batch, status=AssetStatus.AWAITING_UPLOAD)
    if asset_ids is not None:
        candidates = candidates.filter(pk__in=asset_ids)
    candidates = list(candidates)
    problems = _check_all(media_store(), candidates)
    with transaction.atomic():
        result = _record_completion(batch, problems)
        # The rule breakers' one-time keys were copied: they go after commit,
        # in bulk (the good ones' go once their job has copied them).
        delete_objects_on_commit([asset.upload_key for asset, _ in result.failed])
    return result


def _record_completion(batch: UploadBatch, problems: dict[Any, tuple[str | None, str]]) -> CompleteResult:
    result = CompleteResult()
    for asset in Asset.objects.select_for_update().filter(pk__in=list(problems), status=AssetStatus.AWAITING_UPLOAD):
        problem, asset.upload_etag = problems[asset.pk]
        if problem == "missing":
            result.missing.append(asset)
        elif problem:
            asset.status, asset.failure_reason = AssetStatus.FAILED, problem[:300]
            result.failed.append((asset, problem))
        else:
            asset.status = AssetStatus.PROCESSING
            result.processing.append(asset)
    # One plain UPDATE for what all the good ones share and a CASE over
    # their ETags alone: bulk_update over four fields builds 2,000 CASE arms
    # for a batch of 500, which cost complete more than its storage checks.
    if result.processing:
        Asset.objects.filter(pk__in=[a.pk for a in result.processing]).update(
            status=AssetStatus.PROCESSING, updated_at=timezone.now()
        )
        Asset.objects.bulk_update(result.processing, ["upload_etag"])
    Asset.objects.bulk_update([a for a, _ in result.failed], ["status", "failure_reason", "updated_at"])
    audit_record(
        action=Action.UPLOAD_COMPLETED,
        target=batch.gallery,
        after={
            "batch": str(batch.pk),
            "processing": [str(a.pk) for a in result.processing],
            "failed": {str(a.pk): reason for a, reason in result.failed},
            "missing": [str(a.pk) for a in result.missing],
        },
    )
    queue_derivatives([a.pk for a in result.processing])
    if result.failed and not result.processing:
        # The batch's last files failed their checks: nothing will process,
        # so the uploader hears now (if nothing else is still on its way).
        tell_uploader_when_batch_settles(batch.pk)
    return result


@transaction.atomic
def uploads_cleanup(*, older_than: Any) -> int:
    """Forget uploads that never completed (and failed ones) older than
    ``older_than``: their rows go, and any bytes a client did send are
    deleted (the original, its one-time upload key, partial derivatives).
    This is the only place a failed photo's original is deleted, after the
    retention. The one-time keys of the other photos go too, once their job
    has copied them (a target stays valid for 15 minutes after complete, and
    a late POST to it is stored there, unused); a key whose copy is pending
    stays. Runs in the current studio's scope."""
    stale = list(
        Asset.with_deleted.filter(created_at__lt=older_than)  # in the bin or not
        .filter(Q(status=AssetStatus.AWAITING_UPLOAD) | Q(status=AssetStatus.FAILED))
        .only("pk", "storage_key", "upload_key", "derivatives", "gallery_id")
    )
    done_with = Asset.with_deleted.filter(
        created_at__lt=older_than, status__in=[AssetStatus.READY, AssetStatus.PROCESSING]
    )
    # Not a key whose job has yet to copy it (upload_etag still set: a queue
    # stalled past the retention must not lose the photo).
    late = done_with.exclude(upload_key="").filter(upload_etag="")
    late_keys = list(late.values_list("upload_key", flat=True))
    if late_keys:
        late.update(upload_key="")
        delete_objects_on_commit(late_keys)
    if not stale:
        return 0
    Gallery.objects.filter(cover__in=stale).update(cover=None)
    Asset.with_deleted.filter(pk__in=[a.pk for a in stale]).delete()
    audit_record(
        action=Action.UPLOADS_CLEANED_UP,
        target_type="galleries.asset",
        after={"assets": len(stale), "older_than": older_than.isoformat()},
    )
    delete_objects_on_commit(asset_keys(stale))
    return len(stale)
