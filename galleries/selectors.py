"""Reads for galleries: storage use, upload progress, the live selection,
what a selection would contain, and the shapes of the hot lists. Views,
the admin, exports and services call these; writes are in services."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import (
    Avg,
    BigIntegerField,
    BooleanField,
    Count,
    ExpressionWrapper,
    F,
    FloatField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce, Least
from django.utils import timezone

from galleries.models import (
    Asset,
    AssetStatus,
    Folder,
    Gallery,
    PendingDeletion,
    Placement,
    Rating,
    Selection,
    SelectionStatus,
    UploadBatch,
    Visitor,
)
from studio.models import Studio
from studio.sql_templates import Templates
from studio.tenancy import studio_id_scope, unscoped


def derivative_estimate(size: int) -> int:
    """What a photo's derivatives will take before they exist: at most
    DERIVATIVE_ESTIMATE_BYTES (three WebP sizes of a 24 MP photo measure
    about 0.4 MB), and no more than the original itself."""
    return min(size, settings.DERIVATIVE_ESTIMATE_BYTES)


def _usage_totals(*, now: datetime) -> dict[str, Any]:
    """The parts of what a studio stores, or has been promised room for, as
    aggregates over its photos (the bin included: its bytes are stored until
    purged). Both storage_usage and storage_report add up these, so the
    figure enforced and the figure shown cannot drift apart:

    - a ready or failed photo: its original and its derivatives, as measured
      (a failed one's original is kept until the cleanup's retention);
    - a photo processing: its original and an estimate of its derivatives;
    - an upload target handed out: the file and the estimate, reserved until
      UPLOAD_RESERVATION_SECONDS after it was given, then released (a target
      never used stops counting)."""
    estimate = Least(F("size"), Value(settings.DERIVATIVE_ESTIMATE_BYTES))
    reserved_since = now - timedelta(seconds=settings.UPLOAD_RESERVATION_SECONDS)
    stored = Q(status__in=[AssetStatus.READY, AssetStatus.PROCESSING, AssetStatus.FAILED])
    measured = Q(status__in=[AssetStatus.READY, AssetStatus.FAILED])
    waiting = Q(status=AssetStatus.AWAITING_UPLOAD, created_at__gte=reserved_since)
    big = BigIntegerField()
    return {
        "originals": Coalesce(Sum("size", filter=stored), 0, output_field=big),
        "derivatives": Coalesce(Sum("derivative_bytes", filter=measured), 0, output_field=big),
        "coming": Coalesce(Sum(estimate, filter=Q(status=AssetStatus.PROCESSING)), 0, output_field=big),
        "targets": Coalesce(Sum(F("size") + estimate, filter=waiting), 0, output_field=big),
    }


_USAGE_PARTS = ("originals", "derivatives", "coming", "targets")


def storage_usage(studio: Studio, *, now: datetime | None = None) -> int:
    """Bytes the studio stores, or has been promised room for (_usage_totals):
    what uploads are checked against."""
    totals = Asset.with_deleted.filter(studio=studio).aggregate(**_usage_totals(now=now or timezone.now()))
    return int(sum(totals[part] for part in _USAGE_PARTS))


# Where the studio admin and the API start warning, as fractions of the quota.
STORAGE_WARNING_LEVELS = ((0.95, "critical"), (0.80, "warning"))


def storage_report(studio: Studio, *, now: datetime | None = None) -> dict[str, Any]:
    """The studio's storage, as its owner reads it: bytes of originals and
    of derivatives (measured), bytes reserved for uploads and derivatives on
    their way (estimates), photos stored, the quota and how full it is.
    ``used_bytes`` is storage_usage's figure, from the same aggregates."""
    stored = Q(status__in=[AssetStatus.READY, AssetStatus.PROCESSING, AssetStatus.FAILED])
    big = BigIntegerField()
    totals = Asset.with_deleted.filter(studio=studio).aggregate(
        **_usage_totals(now=now or timezone.now()),
        photos=Count("pk", filter=stored),
        ready=Count("pk", filter=Q(status=AssetStatus.READY, deleted_at=None)),
        in_bin=Count("pk", filter=Q(deleted_at__isnull=False)),
        bin_bytes=Coalesce(
            Sum(F("size") + F("derivative_bytes"), filter=Q(deleted_at__isnull=False)), 0, output_field=big
        ),
    )
    used = int(sum(totals[part] for part in _USAGE_PARTS))
    quota = studio.storage_quota_bytes
    fraction = used / quota if quota else 1.0
    level = next((name for threshold, name in STORAGE_WARNING_LEVELS if fraction >= threshold), "ok")
    return {
        "quota_bytes": quota,
        "used_bytes": used,
        "free_bytes": max(quota - used, 0),
        "used_fraction": round(fraction, 4),
        "originals_bytes": int(totals["originals"]),
        "derivatives_bytes": int(totals["derivatives"]),
        "reserved_bytes": int(totals["coming"] + totals["targets"]),
        "photos": totals["photos"],
        "photos_ready": totals["ready"],
        # Photos staff deleted, still stored (and counted) until purged.
        "photos_in_bin": totals["in_bin"],
        "bin_bytes": int(totals["bin_bytes"]),
        "level": level,
    }


def batch_progress(batch: UploadBatch) -> dict[str, int]:
    counts = dict.fromkeys(AssetStatus.values, 0)
    for row in Asset.objects.filter(batch=batch).values("status").annotate(n=Count("pk")):
        counts[row["status"]] = row["n"]
    return counts


def live_selection(gallery: Gallery) -> Selection | None:
    return Selection.objects.filter(gallery=gallery, status=SelectionStatus.FINALIZED).first()


def chosen_assets(gallery: Gallery) -> Any:
    """What a selection contains: ready photos, not in the trash, that a
    client rated or put in one of their folders. The studio's own folders
    (read-only to clients) are its curation, not the client's choice."""
    return (
        Asset.objects.filter(gallery=gallery, status=AssetStatus.READY, trashed_at=None)
        .filter(Q(ratings__isnull=False) | Q(placements__folder__created_by_visitor__isnull=False))
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

# The hot lists' compiled queries (studio.sql_templates), per process: one
# per filter shape, cursor direction and page size (1-200: clients choose).
LIST_TEMPLATES = Templates(size=2048)

# Counting through a relation bypasses Asset.objects: photos in the staff bin
# must be left out by hand.
IN_FOLDER_NOT_BINNED = Q(placements__asset__deleted_at=None)


def galleries_with_counts(galleries: QuerySet[Gallery]) -> QuerySet[Gallery]:
    return galleries.annotate(asset_count=Count("assets", filter=Q(assets__deleted_at=None))).prefetch_related(
        "assigned_members"
    )


def assets_with_rating_summary(assets: QuerySet[Asset]) -> QuerySet[Asset]:
    """Each photo's average stars (null: none) and rating count. Correlated
    subqueries, not a join with GROUP BY: grouping had the database
    aggregate every photo of the gallery before the page's LIMIT (78 ms of
    SQL for a 100-photo page of 10,000, bench/gallery_list.py); per row, it
    reads only that photo's ratings.

    Unscoped: the photo is the scoped query's, so its ratings are its
    studio's; a studio_id test in the subquery led SQLite to scan the
    studio's ratings by that index, once per photo."""
    with unscoped():
        ratings = Rating.objects.filter(asset=OuterRef("pk")).order_by().values("asset")
    return assets.annotate(
        average_stars=Subquery(ratings.annotate(avg=Avg("stars")).values("avg"), output_field=FloatField()),
        rating_count=Coalesce(Subquery(ratings.annotate(n=Count("pk")).values("n")), 0),
    )


def assets_with_ratings(assets: QuerySet[Asset]) -> QuerySet[Asset]:
    """The summary plus every visitor's rating, in one extra query per page."""
    return assets_with_rating_summary(assets).prefetch_related(
        Prefetch("ratings", queryset=Rating.objects.select_related("visitor").order_by("created_at"))
    )


def folders_with_counts(folders: QuerySet[Folder]) -> QuerySet[Folder]:
    return folders.annotate(asset_count=Count("placements", filter=IN_FOLDER_NOT_BINNED))


def portal_assets(assets: QuerySet[Asset], *, visitor: Visitor) -> QuerySet[Asset]:
    """What a client sees: ready photos, each with the visitor's own stars."""
    my_stars = Subquery(Rating.objects.filter(asset=OuterRef("pk"), visitor=visitor).values("stars")[:1])
    return assets.filter(status=AssetStatus.READY).annotate(my_stars=my_stars)


def portal_filter(
    assets: QuerySet[Asset],
    *,
    gallery: Gallery,
    visitor: Visitor,
    min_stars: Any = None,
    unrated: bool | None = None,
    folder: Any = None,
    trashed: bool | None = None,
) -> QuerySet[Asset]:
    """The portal list's filters on portal_assets (PortalAssetFilterSet's
    meaning): the visitor's stars at least ``min_stars``, (not) rated by
    them, in ``folder`` (only among the folders they see: another visitor's
    private folder must not be probed through its photos; each photo then
    carries its position in the folder, the order reorder-assets sets), in
    the trash or (the default) not."""
    if min_stars is not None:
        assets = assets.filter(my_stars__gte=min_stars)
    if unrated is not None:
        assets = assets.filter(my_stars__isnull=unrated)
    if folder is not None:
        folders = visible_folders(Folder.objects.filter(gallery=gallery), gallery=gallery, visitor=visitor)
        position = Placement.objects.filter(folder_id=folder, asset=OuterRef("pk")).values("sort_order")[:1]
        assets = (
            assets.filter(placements__folder__in=folders.filter(pk=folder))
            .distinct()
            .annotate(folder_position=Subquery(position))
        )
    return assets.filter(trashed_at__isnull=not trashed)


def portal_asset_list(
    values: Mapping[str, Any], *, shared_selection: bool, unrated: bool | None, trashed: bool | None
) -> QuerySet[Any]:
    """The portal's photo list as rows (portal_asset_rows of portal_filter),
    built from ids and filter values alone, so a compiled template of it
    holds for every gallery (studio.sql_templates): ``values`` has studio,
    gallery and visitor ids, and min_stars and folder when filtered on.
    Stand-in instances carry the ids: every query is built in that studio's
    scope, as the view's would be."""
    with studio_id_scope(values["studio"]) as studio:
        gallery = Gallery(pk=values["gallery"], studio=studio, shared_selection=shared_selection)
        visitor = Visitor(pk=values["visitor"], studio=studio, gallery=gallery)
        assets = portal_filter(
            portal_assets(Asset.objects.filter(gallery=gallery), visitor=visitor),
            gallery=gallery,
            visitor=visitor,
            min_stars=values.get("min_stars"),
            unrated=unrated,
            folder=values.get("folder"),
            trashed=trashed,
        )
        return portal_asset_rows(assets)


# The columns the hot lists read (galleries.api.serializers.*_asset_dicts),
# besides the queryset's annotations; sort_order is the cursor's position.
PORTAL_ASSET_COLUMNS = ("id", "original_filename", "width", "height", "captured_at", "trashed_at", "derivatives")
# Which previews a photo has, as booleans the database computes (has_thumb,
# ...): the staff list needs no more of the derivatives JSON, whose parsing
# (~300 bytes a photo) was a tenth of its page.
DERIVATIVE_FLAGS = {
    f"has_{variant}": ExpressionWrapper(Q(derivatives__has_key=variant), output_field=BooleanField())
    for variant in ("thumb", "medium", "large")
}
STAFF_ASSET_COLUMNS = (
    *(column for column in PORTAL_ASSET_COLUMNS if column != "derivatives"),
    "status",
    "failure_reason",
    "size",
    "content_type",
    "sha256",
    "sort_order",
    "created_at",
)


def portal_asset_rows(assets: QuerySet[Asset]) -> QuerySet[Any]:
    """A shaped, filtered portal_assets queryset as plain rows: building a
    model instance per photo cost more than the SQL that fetched it
    (bench/gallery_list.py). Annotations (my_stars, a folder's position)
    come along, so the cursor can page on them."""
    return assets.values(*PORTAL_ASSET_COLUMNS, "sort_order", *assets.query.annotations)


def staff_asset_rows(assets: QuerySet[Asset]) -> QuerySet[Any]:
    """The staff list's rows (assets_with_rating_summary), as portal_asset_rows,
    with DERIVATIVE_FLAGS for the derivatives."""
    assets = assets.annotate(**DERIVATIVE_FLAGS)
    return assets.values(*STAFF_ASSET_COLUMNS, *assets.query.annotations)


def staff_assets(assets: QuerySet[Asset], *, in_bin: bool) -> QuerySet[Asset]:
    """The staff list's photos of an already-scoped queryset (from
    Asset.with_deleted when ``in_bin``: the bin and only the bin), with
    their rating summary."""
    if in_bin:
        assets = assets.filter(deleted_at__isnull=False)
    return assets_with_rating_summary(assets)


def staff_filter(assets: QuerySet[Asset], *, status: list[str] | None = None, trashed: bool | None = None) -> Any:
    """StaffAssetFilterSet's status and trashed: any of these statuses; in
    the client's trash or not."""
    if status:
        assets = assets.filter(status__in=status)
    if trashed is not None:
        assets = assets.filter(trashed_at__isnull=not trashed)
    return assets


def staff_asset_list(values: Mapping[str, Any], *, in_bin: bool, trashed: bool | None) -> QuerySet[Any]:
    """The staff asset list as rows, built from ids and filter values alone
    (as portal_asset_list): studio and gallery ids, and the statuses when
    filtered on."""
    with studio_id_scope(values["studio"]) as studio:
        gallery = Gallery(pk=values["gallery"], studio=studio)
        manager = Asset.with_deleted if in_bin else Asset.objects
        assets = staff_assets(manager.filter(studio=studio, gallery=gallery), in_bin=in_bin)
        return staff_asset_rows(staff_filter(assets, status=values.get("status"), trashed=trashed))


def folder_placements(assets: Iterable[Any], *, visible: QuerySet[Folder] | None = None) -> QuerySet[Any]:
    """(asset_id, folder_id) rows of these photos' folders, in the folders'
    order. ``visible`` limits them to the folders a visitor may see."""
    rows = Placement.objects.filter(asset__in=assets).order_by("folder__sort_order")
    if visible is not None:
        rows = rows.filter(folder__in=visible)
    return rows.values("asset_id", "folder_id")


def portal_folder_placements(values: Mapping[str, Any], *, shared_selection: bool) -> QuerySet[Any]:
    """folder_placements of a portal page (``values``: studio, gallery,
    visitor and the page's asset ids), from ids alone as portal_asset_list."""
    with studio_id_scope(values["studio"]) as studio:
        gallery = Gallery(pk=values["gallery"], studio=studio, shared_selection=shared_selection)
        visitor = Visitor(pk=values["visitor"], studio=studio, gallery=gallery)
        folders = visible_folders(Folder.objects.filter(gallery=gallery), gallery=gallery, visitor=visitor)
        return folder_placements(values["assets"], visible=folders)


def folder_ids_by_asset(rows: Iterable[Mapping[str, Any]]) -> dict[Any, list[str]]:
    """folder_placements' rows by photo: one flat query for a page, where
    prefetching Placement models cost more than the rest of the request
    (bench/gallery_list.py)."""
    folders: dict[Any, list[str]] = {}
    for row in rows:
        folders.setdefault(row["asset_id"], []).append(str(row["folder_id"]))
    return folders


def ready_assets_by_id(gallery: Gallery, ids: Iterable[Any]) -> dict[Any, Asset]:
    return {a.pk: a for a in Asset.objects.filter(gallery=gallery, status=AssetStatus.READY, pk__in=list(ids))}


def asset_counts_by_status(gallery: Gallery) -> dict[str, int]:
    return dict(Asset.objects.filter(gallery=gallery).values_list("status").annotate(n=Count("pk")))


def stuck_assets(*, now: datetime | None = None, limit: int = 1000) -> list[tuple[Any, Any, int]]:
    """(studio id, asset id, sweeps so far) of photos still processing whose
    job never reached the broker (for a minute), reached it longer ago than
    DERIVATIVE_STUCK_AFTER_SECONDS and never started (the message was lost),
    or started longer ago than its hard time limit and never ended (the
    worker died). Across studios: which studios have work is the question."""
    now = now or timezone.now()
    never_queued = Q(derivatives_queued_at__isnull=True, updated_at__lt=now - timedelta(minutes=1))
    lost = Q(derivatives_queued_at__lt=now - timedelta(seconds=settings.DERIVATIVES_STUCK_AFTER_SECONDS)) & (
        Q(processing_started_at__isnull=True) | Q(processing_started_at__lt=F("derivatives_queued_at"))
    )
    died = Q(
        processing_started_at__gte=F("derivatives_queued_at"),
        processing_started_at__lt=now - timedelta(seconds=settings.DERIVATIVE_TIME_LIMIT + 60),
    )
    with unscoped():
        return list(
            # Photos in the bin too: a restored photo must be a finished one.
            Asset.with_deleted.filter(never_queued | lost | died, status=AssetStatus.PROCESSING, studio__is_active=True)
            .order_by("updated_at")
            .values_list("studio_id", "pk", "sweeps")[:limit]
        )


def deletions_due(*, now: datetime | None = None, limit: int = 1000) -> list[tuple[Any, Any]]:
    """(studio id, PendingDeletion id) of deletions whose task never reached
    the broker (for a minute: the on-commit hand-over may still be under
    way), or reached it longer ago than DELETIONS_STUCK_AFTER_SECONDS (the
    task's limits with all its storage retries) and the row is still there.
    Across studios; inactive studios' tasks would be skipped, so are not
    queued."""
    now = now or timezone.now()
    never_queued = Q(queued_at__isnull=True, created_at__lt=now - timedelta(minutes=1))
    lost = Q(queued_at__lt=now - timedelta(seconds=settings.DELETIONS_STUCK_AFTER_SECONDS))
    with unscoped():
        return list(
            PendingDeletion.objects.filter(never_queued | lost, studio__is_active=True)
            .order_by("created_at")
            .values_list("studio_id", "pk")[:limit]
        )


def visible_folders(folders: QuerySet[Folder], *, gallery: Gallery, visitor: Visitor) -> QuerySet[Folder]:
    """The folders a visitor sees: the studio's, their own, and with a shared
    selection the other visitors' too."""
    if gallery.shared_selection:
        return folders
    return folders.filter(Q(created_by_visitor=None) | Q(created_by_visitor=visitor))


# --- the staff's view of a client's selection ----------------------------------------------------


def selection_overview(gallery: Gallery, *, limit: int = 60) -> dict[str, Any]:
    """What the clients chose so far, for the gallery page in the admin: the
    counts (rated, filed in a client folder, chosen against the limit), the
    clients' folders with their sizes, the finalised selection if there is
    one, and the first ``limit`` chosen photos, each with every visitor's
    stars and the client folders it is in."""
    ready = Asset.objects.filter(gallery=gallery, status=AssetStatus.READY, trashed_at=None)
    client_placements = Placement.objects.filter(folder__created_by_visitor__isnull=False)
    chosen = chosen_assets(gallery)
    photos = list(
        chosen.select_related("studio").prefetch_related(
            Prefetch("ratings", queryset=Rating.objects.select_related("visitor").order_by("created_at")),
            Prefetch(
                "placements",
                queryset=client_placements.select_related("folder").order_by("folder__sort_order", "folder__name"),
                to_attr="client_placements",
            ),
        )[:limit]
    )
    folders = list(
        Folder.objects.filter(gallery=gallery, created_by_visitor__isnull=False)
        .select_related("created_by_visitor")
        .annotate(asset_count=Count("placements", filter=IN_FOLDER_NOT_BINNED))
        .order_by("sort_order", "created_at")
    )
    return {
        "rated": ready.filter(ratings__isnull=False).distinct().count(),
        "filed": ready.filter(placements__in=client_placements).distinct().count(),
        "chosen": chosen.count(),
        "limit": gallery.selection_limit,
        "visitors": Visitor.objects.filter(gallery=gallery).count(),
        "folders": folders,
        "photos": photos,
        "finalized": live_selection(gallery),
        "last_reopened": Selection.objects.filter(gallery=gallery, status=SelectionStatus.REOPENED)
        .order_by("-reopened_at")
        .first(),
    }


def portal_counts(gallery: Gallery, visitor: Visitor) -> dict[str, int]:
    """The gallery header's figures, in four queries whatever the gallery's size."""
    ready = Asset.objects.filter(gallery=gallery, status=AssetStatus.READY)
    folders = visible_folders(Folder.objects.filter(gallery=gallery), gallery=gallery, visitor=visitor)
    totals = ready.aggregate(
        photos=Count("pk", filter=Q(trashed_at=None)),
        trashed=Count("pk", filter=Q(trashed_at__isnull=False)),
    )
    live = ready.filter(trashed_at=None)
    return {
        "photos": totals["photos"],
        "rated": live.filter(ratings__visitor=visitor).count(),
        "in_folders": live.filter(placements__folder__in=folders).distinct().count(),
        "selected": chosen_assets(gallery).count(),
        "trashed": totals["trashed"],
    }
