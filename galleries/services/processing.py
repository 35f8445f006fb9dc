"""Derivatives: the body of the Celery task, and asking for them again."""

from __future__ import annotations

import tempfile
from datetime import UTC
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from galleries import imaging
from galleries.models import Asset, AssetStatus, Gallery
from galleries.services.effects import asset_keys, delete_objects_on_commit, queue_derivatives
from galleries.storage import derivative_key, media_store
from studio.auditing import Action, audit_record


def _fail(asset: Asset, reason: str) -> None:
    asset.status, asset.failure_reason = AssetStatus.FAILED, reason[:300]
    asset.save(update_fields=["status", "failure_reason", "updated_at"])
    audit_record(action=Action.ASSET_FAILED, target=asset, after={"reason": asset.failure_reason})
    delete_objects_on_commit(asset_keys([asset]))


def asset_process(*, asset_id: Any, force: bool = False) -> Asset | None:
    """Make the derivatives of one asset. Idempotent: a ready asset is left
    alone unless ``force``; keys are fixed, so a rerun overwrites, never adds.
    Storage errors propagate (StorageError) for the task to retry; bad
    input marks the asset failed with a reason a person understands."""
    asset = Asset.objects.filter(pk=asset_id).select_related("gallery").first()
    if asset is None or asset.status not in (AssetStatus.PROCESSING, AssetStatus.READY):
        return asset
    if asset.status == AssetStatus.READY and not force:
        return asset
    store = media_store()
    with tempfile.NamedTemporaryFile(suffix="." + asset.storage_key.rsplit(".", 1)[-1]) as tmp:
        try:
            digest = store.download(asset.storage_key, tmp)
        except FileNotFoundError:
            with transaction.atomic():
                _fail(asset, "The uploaded file is missing from storage. Upload it again.")
            return asset
        tmp.flush()
        duplicate = (
            Asset.objects.filter(gallery_id=asset.gallery_id, sha256=digest)
            .exclude(pk=asset.pk)
            .exclude(status=AssetStatus.FAILED)
            .first()
        )
        if duplicate is not None:
            with transaction.atomic():
                _fail(asset, f"Duplicate of {duplicate.original_filename}, already in this gallery.")
            return asset
        try:
            info, derivatives = imaging.make_derivatives(
                tmp.name,
                filename=asset.original_filename,
                max_pixels=settings.DERIVATIVE_MAX_PIXELS,
                quality=settings.DERIVATIVE_WEBP_QUALITY,
                method=settings.DERIVATIVE_WEBP_METHOD,
            )
        except imaging.ImageRejected as exc:
            asset.sha256 = ""
            with transaction.atomic():
                _fail(asset, exc.reason)
            return asset
    stored = {}
    for derivative in derivatives:
        key = derivative_key(asset, derivative.name)
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
            asset.save()
            audit_record(
                action=Action.ASSET_PROCESSED,
                target=asset,
                after={"width": asset.width, "height": asset.height, "derivative_bytes": asset.derivative_bytes},
            )
    except IntegrityError:  # a twin finished first (unique sha256 per gallery)
        with transaction.atomic():
            asset.refresh_from_db()
            asset.derivatives = stored  # so _fail deletes what we just wrote too
            _fail(asset, "Duplicate of a photo already in this gallery.")
    return asset


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
