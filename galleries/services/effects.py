"""Work a gallery change leaves for after commit: derivative jobs and the
deletion of stored objects. Queued only once the transaction commits, so a
rolled-back change queues nothing."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction

from galleries.models import Asset
from studio.tenancy import current_studio


def asset_keys(assets: Iterable[Asset]) -> list[str]:
    keys = []
    for asset in assets:
        keys.append(asset.storage_key)
        keys.extend(d["key"] for d in (asset.derivatives or {}).values())
    return keys


def delete_objects_on_commit(keys: list[str]) -> None:
    if keys:
        from galleries.tasks import delete_objects

        studio_id = str(current_studio().pk)
        transaction.on_commit(lambda: delete_objects.delay(studio_id, keys))


def queue_derivatives(asset_ids: list[Any], *, force: bool = False) -> None:
    if not asset_ids:
        return
    from galleries.tasks import make_derivatives

    studio_id = str(current_studio().pk)
    ids = [str(pk) for pk in asset_ids]
    transaction.on_commit(lambda: [make_derivatives.delay(studio_id, pk, force=force) for pk in ids])
