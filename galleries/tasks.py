"""Celery tasks for galleries: thin wrappers over services, idempotent,
arguments are ids. acks_late with reject-on-worker-lost (studio_task's
defaults) means a worker that dies mid-task leaves the job for another."""

from __future__ import annotations

from typing import Any

from galleries import services
from galleries.storage import StorageError, media_store
from studio.tasks import studio_task

_RETRY = {
    "autoretry_for": (StorageError,),
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 8,
}


@studio_task(name="galleries.make_derivatives", **_RETRY)
def make_derivatives(studio: Any, asset_id: str, force: bool = False) -> str | None:
    asset = services.asset_process(asset_id=asset_id, force=force)
    return asset.status if asset is not None else None


@studio_task(name="galleries.delete_objects", **_RETRY)
def delete_objects(studio: Any, keys: list[str]) -> int:
    prefix = f"studios/{studio.pk}/"
    # A task may only touch its own studio's keys, whatever it was sent.
    own = [key for key in keys if key.startswith(prefix)]
    media_store().delete(own)
    return len(own)
