"""Housekeeping writes for ``cleanup_galleries``, each in the current
studio's scope and audited (the command acts as the system actor): empty
upload batches, archiving long-expired galleries, and the bucket's orphans.

The finders (``*_due``) only read, so ``--dry-run`` reports exactly what the
writers would act on."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction

from galleries.models import Asset, AssetStatus, Export, Gallery, GalleryStatus, UploadBatch
from galleries.services.effects import delete_objects_on_commit
from galleries.services.galleries import gallery_unpublish
from galleries.services.processing import assets_regenerate as regenerate
from galleries.storage import MediaStore
from studio.auditing import Action, audit_record
from studio.tenancy import current_studio

# studios/<studio>/galleries/<gallery>/<kind>/<rest>
# Longer than any write runs (derivatives, exports), so one in progress is
# never taken for a dead one's leftover.
PARTIAL_WRITE_GRACE = timedelta(hours=24)
_KEY = re.compile(r"^studios/(?P<studio>[^/]+)/galleries/(?P<gallery>[^/]+)/(?P<kind>[a-z]+)/(?P<rest>.+)$")


def empty_batches_due(*, older_than: datetime) -> list[Any]:
    # Older than the upload window only: a batch just presigned has its
    # assets, but one whose assets the cleanup just forgot may be reused by
    # nobody, and a fresh empty one may still be in a request.
    return list(UploadBatch.objects.filter(created_at__lt=older_than, assets__isnull=True).values_list("pk", flat=True))


@transaction.atomic
def upload_batches_cleanup(*, older_than: datetime) -> int:
    """Delete upload batches left with no photo (every file rejected, or
    forgotten by uploads_cleanup)."""
    ids = empty_batches_due(older_than=older_than)
    if not ids:
        return 0
    UploadBatch.objects.filter(pk__in=ids, assets__isnull=True).delete()
    audit_record(
        action=Action.UPLOAD_BATCHES_CLEANED_UP,
        target_type="galleries.uploadbatch",
        after={"batches": len(ids), "older_than": older_than.isoformat()},
    )
    return len(ids)


def expired_galleries_due(*, now: datetime) -> list[Gallery]:
    days = current_studio().archive_expired_after_days
    if days is None:
        return []
    return list(
        Gallery.objects.filter(expires_at__lt=now - timedelta(days=days)).exclude(status=GalleryStatus.ARCHIVED)
    )


def galleries_archive_expired(*, now: datetime) -> int:
    """Archive (never delete) galleries expired longer than the studio's
    archive_expired_after_days, through the same transition as staff use:
    audited, every client link cut."""
    due = expired_galleries_due(now=now)
    for gallery in due:
        gallery_unpublish(gallery=gallery, archive=True)
    return len(due)


def orphan_keys(store: MediaStore) -> list[str]:
    """Objects under the current studio's prefix that no row accounts for.

    An object counts as referenced when its owner row exists, not only when
    the row names it: derivatives and exports are written before their row
    records the key, so a photo being processed or an export being built
    must not lose its files to a concurrent cleanup. One-time upload keys
    are the exception: one not named by its photo's ``upload_key`` is a late
    POST nobody will read.

    The rows are read again after the listing, and a key they account for
    then is kept: a photo created while the bucket was being listed (its
    upload key, the only copy until its job copies it) is no orphan."""
    studio = current_studio()
    named, owned = _references()
    orphans, partial = [], []
    for key in store.list_keys(f"studios/{studio.pk}/"):
        if key in named:
            continue
        if store.abandoned_partial(key, older_than=PARTIAL_WRITE_GRACE):
            # A write killed before its rename, next to a live photo's files:
            # its owner exists, but nothing will ever read or finish it.
            partial.append(key)
            continue
        if not owned(key):
            orphans.append(key)
    if orphans:
        named, owned = _references()
        orphans = [key for key in orphans if key not in named and not owned(key)]
    return sorted([*partial, *orphans])


def _references() -> tuple[set[str], Any]:
    """The keys the current studio's rows name, as they are now, and whether
    a key belongs to a row that exists (orphan_keys)."""
    studio_id = str(current_studio().pk)
    # Photos in the bin are referenced: their bytes wait for the purge.
    asset_gallery = {str(pk): str(gallery) for pk, gallery in Asset.with_deleted.values_list("pk", "gallery_id")}
    live_keys = set(Asset.with_deleted.exclude(upload_key="").values_list("upload_key", flat=True))
    live_keys |= set(Asset.with_deleted.values_list("storage_key", flat=True))
    export_ids = {str(pk) for pk in Export.objects.values_list("pk", flat=True)}
    live_keys |= set(Export.objects.exclude(file_key="").values_list("file_key", flat=True))

    def owned(key: str) -> bool:
        match = _KEY.match(key)
        if match is None or match["studio"] != studio_id:
            return False
        kind, rest, gallery = match["kind"], match["rest"], match["gallery"]
        owner = rest.split("/", 1)[0].split(".", 1)[0]
        if kind in ("derivatives", "originals"):
            # An original is named by its row once its extension is known.
            return asset_gallery.get(owner) == gallery
        return kind == "exports" and owner in export_ids

    return live_keys, owned


@transaction.atomic
def orphans_delete(*, keys: list[str]) -> int:
    """Delete objects ``orphan_keys`` found, through the same after-commit
    deletion as every other removal; audited with a sample of the keys."""
    prefix = f"studios/{current_studio().pk}/"
    own = [key for key in keys if key.startswith(prefix)]
    if not own:
        return 0
    audit_record(
        action=Action.STORAGE_ORPHANS_DELETED,
        target_type="galleries.storage",
        after={"objects": len(own), "keys": own[:50]},
    )
    delete_objects_on_commit(own)
    return len(own)


def _original_stored(asset: Asset, store: MediaStore) -> bool:
    """A checked upload the job never copied (storage down past the retries)
    is still at its one-time key, unless it was replaced since (its ETag
    differs: a retry would fail the same way)."""
    if not asset.upload_etag:
        return store.head(asset.storage_key) is not None
    upload = store.head(asset.upload_key)
    return upload is not None and upload.etag == asset.upload_etag


@transaction.atomic
def assets_retry_failed(*, gallery: Gallery, store: MediaStore) -> list[Asset]:
    """Failed photos of ``gallery`` whose original is stored go back to
    processing and are queued again (regenerate_derivatives --failed-only):
    after a fix to the pipeline, or storage that was down past the retries.
    A photo whose original never arrived has nothing to process: left failed
    for the cleanup. services.assets_regenerate takes ready and processing
    photos only, so the failed ones are first put back in processing here."""
    failed = [
        asset
        for asset in Asset.objects.filter(gallery=gallery, status=AssetStatus.FAILED)
        if _original_stored(asset, store)
    ]
    if not failed:
        return []
    Asset.objects.filter(pk__in=[a.pk for a in failed]).update(
        status=AssetStatus.PROCESSING, failure_reason="", sweeps=0, derivatives_queued_at=None
    )
    return regenerate(gallery=gallery, assets=failed)
