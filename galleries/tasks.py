"""Celery tasks for galleries: thin wrappers over services, idempotent,
arguments are ids. acks_late with reject-on-worker-lost (studio_task's
defaults) means a worker that dies mid-task leaves the job for another."""

from __future__ import annotations

import random
from typing import Any

from celery import Task, shared_task
from django.conf import settings
from django.db.models import F
from django.utils import timezone

from galleries import selectors, services
from galleries.models import Asset, PendingDeletion
from galleries.storage import StorageError, media_store
from studio import context
from studio.models import Studio
from studio.tasks import enqueue, studio_task
from studio.tenancy import studio_scope, unscoped

SWEEPER = "task:galleries.sweep_stuck_assets"


class StorageRetryTask(Task):
    """Retries storage errors with a floor: Celery's autoretry passes
    countdown = min(cap, floor * 2**n) (its full jitter is off, since it
    may draw 0 s and spend every retry within a minute of an outage), and a
    jitter of up to one floor is added here, so photos that failed together
    do not all come back together."""

    def retry(self, *args: Any, countdown: float | None = None, **kwargs: Any) -> Any:
        if countdown is not None:
            countdown += random.uniform(0, float(self.retry_backoff))
        return super().retry(*args, countdown=countdown, **kwargs)


_RETRY = {
    "base": StorageRetryTask,
    "autoretry_for": (StorageError,),
    "retry_backoff": settings.STORAGE_RETRY_MIN_SECONDS,
    "retry_backoff_max": settings.STORAGE_RETRY_MAX_SECONDS,
    "retry_jitter": False,
    "max_retries": settings.STORAGE_RETRIES,
}


@studio_task(
    name="galleries.make_derivatives",
    soft_time_limit=settings.DERIVATIVE_SOFT_TIME_LIMIT,
    time_limit=settings.DERIVATIVE_TIME_LIMIT,
    **_RETRY,
)
def make_derivatives(studio: Any, asset_id: str, force: bool = False) -> str | None:
    asset = services.asset_process(asset_id=asset_id, force=force)
    return asset.status if asset is not None else None


@studio_task(name="galleries.delete_objects", soft_time_limit=120, time_limit=150, **_RETRY)
def delete_objects(studio: Any, deletion: str | list[str]) -> int:
    """Delete one PendingDeletion's objects, then the row. Idempotent: a
    duplicate finds the row gone (or deletes keys already gone, which S3
    and the file store accept). A list of keys is a message queued before
    the rows existed, still honoured."""
    row = None
    if isinstance(deletion, list):
        keys = deletion
    else:
        row = PendingDeletion.objects.filter(pk=deletion).first()
        if row is None:
            return 0
        keys = row.keys
    prefix = f"studios/{studio.pk}/"
    # A task may only touch its own studio's keys, whatever it was sent.
    own = [key for key in keys if key.startswith(prefix)]
    media_store().delete(own)
    if row is not None:
        row.delete()
    return len(own)


@shared_task(name="galleries.sweep_pending_deletions", soft_time_limit=60, time_limit=90)
def sweep_pending_deletions() -> int:
    """Celery beat, every minute: deletions of stored objects whose task
    never reached the broker, or reached it and did not finish in time (lost
    message, dead worker, storage retries spent), are queued again, until
    the objects are gone. Returns how many were queued again."""
    queued = []
    for studio_id, deletion_id in selectors.deletions_due():
        if not enqueue(delete_objects, str(studio_id), str(deletion_id)):
            break  # the broker is down: the next sweep tries again
        queued.append(deletion_id)
    with unscoped():  # the ids came from every studio's deletions
        PendingDeletion.objects.filter(pk__in=queued).update(queued_at=timezone.now(), attempts=F("attempts") + 1)
    return len(queued)


@shared_task(name="galleries.sweep_stuck_assets", soft_time_limit=60, time_limit=90)
def sweep_stuck_assets() -> int:
    """Celery beat, every minute: photos still processing whose job never
    reached the broker, was lost on the way, or whose worker died are queued
    again, at most DERIVATIVE_MAX_SWEEPS times; then they are failed, with
    the reason. Returns how many were queued again."""
    stuck = selectors.stuck_assets()
    spent: dict[Any, list[Any]] = {}
    queued = []
    for studio_id, asset_id, sweeps in stuck:
        if sweeps >= settings.DERIVATIVE_MAX_SWEEPS:
            spent.setdefault(studio_id, []).append(asset_id)
        elif not enqueue(make_derivatives, str(studio_id), str(asset_id)):
            break  # the broker is down: the next sweep tries again
        else:
            queued.append(asset_id)
    with unscoped():  # the ids came from every studio's stuck photos
        Asset.with_deleted.filter(pk__in=queued).update(derivatives_queued_at=timezone.now(), sweeps=F("sweeps") + 1)
        studios = Studio.objects.in_bulk(list(spent))
    for studio_id, asset_ids in spent.items():
        with studio_scope(studios[studio_id]), context.acting_as(context.Actor.system(SWEEPER)):
            services.assets_give_up(asset_ids=asset_ids)
    return len(queued)


@studio_task(
    name="galleries.detect_faces",
    soft_time_limit=settings.FACES_SOFT_TIME_LIMIT,
    time_limit=settings.FACES_TIME_LIMIT,
    **_RETRY,
)
def detect_faces(studio: Any, asset_id: str) -> str | None:
    """People in photos: one photo's faces (galleries.services.faces)."""
    from galleries.services.faces import asset_detect_faces

    scan = asset_detect_faces(asset_id=asset_id)
    return scan.status if scan is not None else None


@shared_task(name="galleries.sweep_face_scans", soft_time_limit=60, time_limit=90)
def sweep_face_scans() -> int:
    """Celery beat: face scans still pending after FACES_STUCK_AFTER_SECONDS
    (job refused by the broker, lost, or its worker died) are queued again,
    at most FACES_MAX_SWEEPS times; then failed, with the reason."""
    from galleries.face_search import stuck_face_scans
    from galleries.models import FaceScan
    from galleries.services.faces import scans_give_up

    spent: dict[Any, list[Any]] = {}
    queued = []
    for studio_id, asset_id, sweeps in stuck_face_scans():
        if sweeps >= settings.FACES_MAX_SWEEPS:
            spent.setdefault(studio_id, []).append(asset_id)
        elif not enqueue(detect_faces, str(studio_id), str(asset_id)):
            break  # the broker is down: the next sweep tries again
        else:
            queued.append(asset_id)
    with unscoped():  # the ids came from every studio's scans
        FaceScan.objects.filter(asset_id__in=queued).update(queued_at=timezone.now(), sweeps=F("sweeps") + 1)
        studios = Studio.objects.in_bulk(list(spent))
    actor = context.Actor.system("task:galleries.sweep_face_scans")
    for studio_id, asset_ids in spent.items():
        with studio_scope(studios[studio_id]), context.acting_as(actor):
            scans_give_up(asset_ids=asset_ids)
    return len(queued)


@studio_task(
    name="exports.run",
    soft_time_limit=settings.EXPORT_SOFT_TIME_LIMIT,
    time_limit=settings.EXPORT_TIME_LIMIT,
    # No automatic retry: the runner ends every error as "failed" with the
    # reason, and the person asks again; a dead worker's job comes back
    # through acks_late, and exports.expire fails runs that never end.
    max_retries=0,
)
def run_export(studio: Any, export_id: str) -> str | None:
    from galleries.services.exports import export_run

    export = export_run(export_id=export_id)
    return export.status if export is not None else None


@shared_task(name="exports.expire", soft_time_limit=300, time_limit=330)
def expire_exports() -> int:
    """Celery beat, every 15 minutes: files of exports past their expiry are
    deleted and the rows marked expired; runs whose worker died are failed;
    queued exports whose run task never reached the broker (down when they
    were asked for) are queued again. Returns how many expired."""
    from galleries.models import Export
    from galleries.services.exports import exports_expire, exports_lost

    with context.acting_as(context.Actor.system("task:exports.expire")):
        expired = exports_expire(now=timezone.now())
    queued = []
    for studio_id, export_id in exports_lost(now=timezone.now()):
        if not enqueue(run_export, str(studio_id), str(export_id)):
            break  # the broker is down: the next run tries again
        queued.append(export_id)
    with unscoped():  # the ids came from every studio's exports
        Export.objects.filter(pk__in=queued).update(enqueued_at=timezone.now())
    return expired


@shared_task(name="galleries.notify_expiring", soft_time_limit=300, time_limit=330)
def notify_expiring() -> int:
    """Celery beat, hourly: "your gallery expires in N days" to each client
    whose gallery enters its studio's notice window; once per gallery and
    expiry date (the email's idempotency key). Returns how many were queued."""
    from galleries import notifications

    with context.acting_as(context.Actor.system("task:galleries.notify_expiring")):
        return notifications.galleries_expiring(now=timezone.now())
