"""Work a gallery change leaves for after commit: derivative jobs and the
deletion of stored objects. Queued only once the transaction commits, so a
rolled-back change queues nothing."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from galleries.models import Asset, Face, PendingDeletion
from studio.tasks import enqueue, enqueue_on_commit
from studio.tenancy import current_studio, studio_scope, unscoped


def asset_keys(assets: Iterable[Asset]) -> list[str]:
    """Every object a photo may have in storage: its original, its one-time
    upload key (empty once moved, unless a late POST reused it), its
    derivatives and its face crops."""
    keys = []
    ids = []
    for asset in assets:
        ids.append(asset.pk)
        keys.append(asset.storage_key)
        if asset.upload_key:
            keys.append(asset.upload_key)
        keys.extend(d["key"] for d in (asset.derivatives or {}).values())
    # The crops of the faces found in them (people in photos), which go
    # with the rows by cascade and must not stay behind as orphans.
    for start in range(0, len(ids), 500):  # SQLite caps the parameters of one query
        # The base manager: the caller holds the photos, whatever the scope
        # (the deletion sweeper runs across studios).
        faces = Face._base_manager.filter(asset__in=ids[start : start + 500]).exclude(thumb_key="")
        keys.extend(faces.values_list("thumb_key", flat=True))
    return keys


def delete_objects_on_commit(keys: list[str]) -> None:
    """Delete ``keys`` from storage once the transaction commits. The keys
    are written down in the same transaction (PendingDeletion): if the broker
    refuses the task, or loses it, the row stays and the sweeper
    (galleries.tasks.sweep_pending_deletions) queues it again, so no object
    outlives its row unnoticed. A rolled-back change deletes nothing."""
    if not keys:
        return
    from galleries.tasks import delete_objects

    studio = current_studio()
    deletion = PendingDeletion.objects.create(studio=studio, keys=sorted(set(keys)))

    def queued() -> None:
        with unscoped():  # after commit, outside whatever scope wrote the row
            PendingDeletion.objects.filter(pk=deletion.pk).update(queued_at=timezone.now())

    enqueue_on_commit(delete_objects, str(studio.pk), str(deletion.pk), on_queued=queued)


def queue_derivatives(asset_ids: list[Any], *, force: bool = False) -> None:
    """Ask for each photo's derivatives once the transaction commits. A
    photo whose job reached the broker is stamped ``derivatives_queued_at``;
    if the broker refuses, the rest wait unstamped, still ``processing``,
    for the sweeper (galleries.tasks.sweep_stuck_assets) to queue again. The
    request that asked for them commits and answers as usual either way."""
    if not asset_ids:
        return
    from galleries.tasks import make_derivatives

    studio = current_studio()
    ids = [str(pk) for pk in asset_ids]

    def send() -> None:
        queued = []
        for pk in ids:
            if not enqueue(make_derivatives, str(studio.pk), pk, force=force):
                break  # the broker is down: do not wait on it once per photo
            queued.append(pk)
        with studio_scope(studio):
            Asset.with_deleted.filter(pk__in=queued).update(derivatives_queued_at=timezone.now())

    transaction.on_commit(send, robust=True)
