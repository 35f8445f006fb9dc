"""Reads for galleries: storage use, upload progress, the live selection,
what a selection would contain, and the shapes of the hot lists. Views,
the admin, exports and services call these; writes are in services."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Avg, Count, F, OuterRef, Prefetch, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from galleries.models import (
    Asset,
    AssetStatus,
    Folder,
    Gallery,
    Placement,
    Rating,
    Selection,
    SelectionStatus,
    UploadBatch,
    Visitor,
)
from studio.models import Studio
from studio.tenancy import unscoped


def storage_usage(studio: Studio) -> int:
    """Bytes held for the studio: originals and derivatives of every asset that
    is not failed (failed uploads are deleted from storage)."""
    totals = (
        Asset.objects.filter(studio=studio)
        .exclude(status=AssetStatus.FAILED)
        .aggregate(total=Coalesce(Sum(F("size") + F("derivative_bytes")), 0))
    )
    return int(totals["total"])


def batch_progress(batch: UploadBatch) -> dict[str, int]:
    counts = dict.fromkeys(AssetStatus.values, 0)
    for row in Asset.objects.filter(batch=batch).values("status").annotate(n=Count("pk")):
        counts[row["status"]] = row["n"]
    return counts


def live_selection(gallery: Gallery) -> Selection | None:
    return Selection.objects.filter(gallery=gallery, status=SelectionStatus.FINALIZED).first()


def chosen_assets(gallery: Gallery) -> Any:
    """What a selection contains: ready photos, not in the trash, that were
    rated or put in a folder."""
    return (
        Asset.objects.filter(gallery=gallery, status=AssetStatus.READY, trashed_at=None)
        .filter(Q(ratings__isnull=False) | Q(placements__isnull=False))
        .distinct()
        .order_by("sort_order", "created_at")
    )


def upload_batch_progress(batch: UploadBatch) -> dict[str, Any]:
    """Counts by status, the failures with their reasons, and whether nothing
    is left to arrive or to process."""
    counts = batch_progress(batch)
    failed = Asset.objects.filter(batch=batch, status=AssetStatus.FAILED).values_list(
        "pk", "original_filename", "failure_reason"
    )
    return {
        "counts": counts,
        "failed": [{"asset": pk, "filename": name, "reason": reason} for pk, name, reason in failed],
        "done": counts[AssetStatus.AWAITING_UPLOAD] == 0 and counts[AssetStatus.PROCESSING] == 0,
    }


# --- list shapes: each takes an already-scoped queryset and shapes it -------------------------------


def galleries_with_counts(galleries: QuerySet[Gallery]) -> QuerySet[Gallery]:
    return galleries.annotate(asset_count=Count("assets")).prefetch_related("assigned_members")


def assets_with_rating_summary(assets: QuerySet[Asset]) -> QuerySet[Asset]:
    return assets.annotate(average_stars=Avg("ratings__stars"), rating_count=Count("ratings"))


def assets_with_ratings(assets: QuerySet[Asset]) -> QuerySet[Asset]:
    """The summary plus every visitor's rating, in one extra query per page."""
    return assets_with_rating_summary(assets).prefetch_related(
        Prefetch("ratings", queryset=Rating.objects.select_related("visitor").order_by("created_at"))
    )


def folders_with_counts(folders: QuerySet[Folder]) -> QuerySet[Folder]:
    return folders.annotate(asset_count=Count("placements"))


def portal_assets(assets: QuerySet[Asset], *, visitor: Visitor) -> QuerySet[Asset]:
    """What a client sees: ready photos, each with the visitor's own stars."""
    my_stars = Subquery(Rating.objects.filter(asset=OuterRef("pk"), visitor=visitor).values("stars")[:1])
    return assets.filter(status=AssetStatus.READY).annotate(my_stars=my_stars)


def folder_ids_by_asset(assets: list[Asset]) -> dict[Any, list[str]]:
    """The folders of a page of photos in one flat query: prefetching
    Placement models cost more than the rest of the request
    (bench/gallery_list.py)."""
    folders: dict[Any, list[str]] = {}
    rows = Placement.objects.filter(asset__in=assets).order_by("folder__sort_order")
    for asset_id, folder_id in rows.values_list("asset_id", "folder_id"):
        folders.setdefault(asset_id, []).append(str(folder_id))
    return folders


def ready_assets_by_id(gallery: Gallery, ids: Iterable[Any]) -> dict[Any, Asset]:
    return {a.pk: a for a in Asset.objects.filter(gallery=gallery, status=AssetStatus.READY, pk__in=list(ids))}


def asset_counts_by_status(gallery: Gallery) -> dict[str, int]:
    return dict(Asset.objects.filter(gallery=gallery).values_list("status").annotate(n=Count("pk")))


def stuck_assets(*, now: datetime | None = None, limit: int = 1000) -> list[tuple[Any, Any]]:
    """(studio id, asset id) of photos still processing whose job never
    reached the broker (for longer than a minute), or reached it longer ago
    than DERIVATIVES_STUCK_AFTER_SECONDS (the message or the worker was lost).
    Across studios: which studios have work is the question."""
    now = now or timezone.now()
    never_queued = Q(derivatives_queued_at__isnull=True, updated_at__lt=now - timedelta(minutes=1))
    lost = Q(derivatives_queued_at__lt=now - timedelta(seconds=settings.DERIVATIVES_STUCK_AFTER_SECONDS))
    with unscoped():
        return list(
            Asset.objects.filter(never_queued | lost, status=AssetStatus.PROCESSING, studio__is_active=True)
            .order_by("updated_at")
            .values_list("studio_id", "pk")[:limit]
        )
