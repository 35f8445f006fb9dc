"""The client's work: ratings, folders and placements, trash, and the
finalised selection. Bulk operations take hundreds of ids and run a
constant number of queries: they read what exists in one query, then
bulk_create / bulk_update / one DELETE, and record one audit event."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from galleries import notifications
from galleries.models import Asset, Folder, Gallery, Placement, Rating, Selection, SelectionStatus, Visitor
from galleries.selectors import chosen_assets, live_selection
from studio.auditing import Action, audit_record
from studio.errors import Conflict, DomainError, Forbidden, save_or_conflict


class SelectionLocked(Conflict):
    code = "SELECTION_FINALIZED"
    default_message = "The selection is finalised: ratings and folders are read-only until the studio reopens it."


def _ensure_open(gallery: Gallery) -> None:
    if live_selection(gallery) is not None:
        raise SelectionLocked()


def _require_editable(folder: Folder, visitor: Visitor | None) -> None:
    """What a visitor may change (the actor rule, for clients): their own
    folders, and with a shared selection the other visitors' too; never
    the studio's, which they only view. Staff (no visitor) change any.
    The portal never shows a visitor folders they cannot see, so this is
    the second line: a refusal here says what the folder is."""
    if visitor is None:
        return
    _ensure_open(folder.gallery)
    if folder.created_by_visitor_id is None:
        raise Forbidden("This folder is the studio's: you can view it, not change it.", code="PERMISSION_DENIED")
    if folder.created_by_visitor_id != visitor.pk and not folder.gallery.shared_selection:
        raise Forbidden("This is another visitor's folder.", code="PERMISSION_DENIED")


def _ids(objects: Iterable[Any]) -> list[str]:
    return [str(o.pk) for o in objects]


@transaction.atomic
def ratings_set(*, gallery: Gallery, visitor: Visitor, ratings: list[tuple[Asset, int | None]]) -> None:
    """Set (1-5) or clear (None) the visitor's stars on many assets at once."""
    _ensure_open(gallery)
    wanted = {asset.pk: stars for asset, stars in ratings}
    for stars in wanted.values():
        if stars is not None and not 1 <= stars <= 5:
            raise DomainError("Stars go from 1 to 5.", code="INVALID_STARS", fields={"stars": ["Use 1 to 5."]})
    existing = {r.asset_id: r for r in Rating.objects.filter(visitor=visitor, asset_id__in=list(wanted))}
    now = timezone.now()
    to_create, to_update, to_clear = [], [], []
    for asset_id, stars in wanted.items():
        current = existing.get(asset_id)
        if stars is None:
            if current is not None:
                to_clear.append(current.pk)
        elif current is None:
            to_create.append(Rating(studio=gallery.studio, asset_id=asset_id, visitor=visitor, stars=stars))
        elif current.stars != stars:
            current.stars, current.updated_at = stars, now
            to_update.append(current)
    Rating.objects.bulk_create(to_create)
    Rating.objects.bulk_update(to_update, ["stars", "updated_at"])
    if to_clear:
        Rating.objects.filter(pk__in=to_clear).delete()
    set_ = {str(k): v for k, v in wanted.items() if v is not None}
    cleared = [str(k) for k, v in wanted.items() if v is None]
    if set_:
        audit_record(action=Action.RATINGS_SET, target=gallery, after={"visitor": str(visitor.pk), "stars": set_})
    if cleared:
        audit_record(
            action=Action.RATINGS_CLEARED, target=gallery, after={"visitor": str(visitor.pk), "assets": cleared}
        )


def _save_folder(folder: Folder) -> None:
    conflict = Conflict(
        f"There is already a folder named '{folder.name}'.", code="DUPLICATE_NAME", fields={"name": ["Already in use."]}
    )
    save_or_conflict(folder, conflict)


@transaction.atomic
def folder_create(*, gallery: Gallery, name: str, visitor: Visitor | None = None) -> Folder:
    if visitor is not None:
        _ensure_open(gallery)
    last = Folder.objects.filter(gallery=gallery).aggregate(m=Max("sort_order"))["m"]
    folder = Folder(
        studio=gallery.studio, gallery=gallery, name=name, created_by_visitor=visitor, sort_order=(last or 0) + 1
    )
    _save_folder(folder)
    audit_record(action=Action.FOLDER_CREATED, target=folder, after={"name": name, "gallery": str(gallery.pk)})
    return folder


@transaction.atomic
def folder_rename(*, folder: Folder, name: str, visitor: Visitor | None = None) -> Folder:
    _require_editable(folder, visitor)
    before = {"name": folder.name}
    folder.name = name
    _save_folder(folder)
    audit_record(action=Action.FOLDER_UPDATED, target=folder, before=before, after={"name": name})
    return folder


@transaction.atomic
def folder_delete(*, folder: Folder, visitor: Visitor | None = None) -> None:
    _require_editable(folder, visitor)
    audit_record(
        action=Action.FOLDER_DELETED,
        target=folder,
        before={
            "name": folder.name,
            "assets": [str(pk) for pk in folder.placements.values_list("asset_id", flat=True)],
        },
    )
    folder.delete()


@transaction.atomic
def folders_reorder(*, gallery: Gallery, folders: list[Folder], visitor: Visitor | None = None) -> None:
    """Staff list every folder of the gallery once. A visitor lists every
    folder they may change, once: those take the places they held between
    themselves, and everyone else's folders keep theirs."""
    if visitor is not None:
        _ensure_open(gallery)
    movable = Folder.objects.filter(gallery=gallery)
    if visitor is not None:
        movable = movable.exclude(created_by_visitor=None)
        if not gallery.shared_selection:
            movable = movable.filter(created_by_visitor=visitor)
    current = {f.pk: f.sort_order for f in movable}
    if sorted(str(f.pk) for f in folders) != sorted(str(pk) for pk in current):
        what = "every folder of the gallery" if visitor is None else "every folder of yours"
        raise DomainError(
            f"List {what} exactly once.", code="INCOMPLETE_ORDER", fields={"folders": [f"Must list {what} once."]}
        )
    places = sorted(current.values()) if visitor is not None else list(range(1, len(folders) + 1))
    for folder, place in zip(folders, places, strict=True):
        folder.sort_order = place
    Folder.objects.bulk_update(folders, ["sort_order"])
    audit_record(action=Action.FOLDERS_REORDERED, target=gallery, after={"folders": _ids(folders)})


def _append(folder: Folder, assets: list[Asset]) -> list[Asset]:
    present = set(Placement.objects.filter(folder=folder, asset__in=assets).values_list("asset_id", flat=True))
    last = Placement.objects.filter(folder=folder).aggregate(m=Max("sort_order"))["m"] or 0
    new = [a for a in assets if a.pk not in present]
    Placement.objects.bulk_create(
        [
            Placement(studio=folder.studio, folder=folder, asset=a, sort_order=last + i)
            for i, a in enumerate(new, start=1)
        ]
    )
    return new


@transaction.atomic
def placements_add(*, folder: Folder, assets: list[Asset], visitor: Visitor | None = None) -> None:
    _require_editable(folder, visitor)
    added = _append(folder, assets)
    audit_record(action=Action.PLACEMENTS_ADDED, target=folder, after={"assets": _ids(added)})


@transaction.atomic
def placements_remove(*, folder: Folder, assets: list[Asset], visitor: Visitor | None = None) -> None:
    _require_editable(folder, visitor)
    Placement.objects.filter(folder=folder, asset__in=assets).delete()
    audit_record(action=Action.PLACEMENTS_REMOVED, target=folder, after={"assets": _ids(assets)})


@transaction.atomic
def placements_move(*, source: Folder, target: Folder, assets: list[Asset], visitor: Visitor | None = None) -> None:
    if source.gallery_id != target.gallery_id:
        raise DomainError("Both folders must be in the same gallery.", code="INVALID_FOLDER")
    _require_editable(source, visitor)
    _require_editable(target, visitor)
    present = set(Placement.objects.filter(folder=source, asset__in=assets).values_list("asset_id", flat=True))
    outside = [a for a in assets if a.pk not in present]
    if outside:
        raise DomainError(
            "Some photos are not in the folder they would move from.",
            code="NOT_IN_FOLDER",
            fields={"assets": [f"Not in this folder: {a.pk}." for a in outside]},
        )
    Placement.objects.filter(folder=source, asset__in=assets).delete()
    _append(target, assets)
    audit_record(action=Action.PLACEMENTS_MOVED, target=source, after={"to": str(target.pk), "assets": _ids(assets)})


@transaction.atomic
def placements_reorder(*, folder: Folder, assets: list[Asset], visitor: Visitor | None = None) -> None:
    """Put the listed assets first, in this order; the others keep theirs after."""
    _require_editable(folder, visitor)
    placements = {p.asset_id: p for p in Placement.objects.filter(folder=folder)}
    unknown = [a for a in assets if a.pk not in placements]
    if unknown:
        raise DomainError("Some photos are not in this folder.", code="NOT_IN_FOLDER", fields={"assets": _ids(unknown)})
    listed = [placements[a.pk] for a in assets]
    rest = sorted((p for pk, p in placements.items() if pk not in {a.pk for a in assets}), key=lambda p: p.sort_order)
    for index, placement in enumerate([*listed, *rest], start=1):
        placement.sort_order = index
    Placement.objects.bulk_update(list(placements.values()), ["sort_order"])
    audit_record(action=Action.PLACEMENTS_REORDERED, target=folder, after={"assets": _ids(assets)})


@transaction.atomic
def assets_trash(*, gallery: Gallery, assets: list[Asset], restore: bool = False) -> int:
    """The client's trash: hidden from the default view, kept, restorable."""
    _ensure_open(gallery)
    ids = [a.pk for a in assets]
    queryset = Asset.objects.filter(gallery=gallery, pk__in=ids)
    if restore:
        changed = queryset.exclude(trashed_at=None).update(trashed_at=None)
        action = Action.ASSETS_RESTORED
    else:
        changed = queryset.filter(trashed_at=None).update(trashed_at=timezone.now())
        action = Action.ASSETS_TRASHED
    audit_record(action=action, target=gallery, after={"assets": [str(pk) for pk in ids]})
    return changed


def _selection_snapshot(gallery: Gallery, assets: list[Asset]) -> list[dict[str, Any]]:
    ids = [a.pk for a in assets]
    # Keyed by visitor id: labels repeat ("Anonymous visitor", same names).
    stars: dict[Any, list[dict[str, Any]]] = {}
    for rating in Rating.objects.filter(asset_id__in=ids).select_related("visitor").order_by("created_at"):
        stars.setdefault(rating.asset_id, []).append(
            {"visitor": str(rating.visitor_id), "label": str(rating.visitor), "stars": rating.stars}
        )
    folders: dict[Any, list[str]] = {}
    for placement in Placement.objects.filter(asset_id__in=ids).select_related("folder").order_by("folder__sort_order"):
        folders.setdefault(placement.asset_id, []).append(placement.folder.name)
    rows = []
    for asset in assets:
        given = stars.get(asset.pk, [])
        rows.append(
            {
                "asset": str(asset.pk),
                "filename": asset.original_filename,
                "stars": given,
                "average": round(sum(r["stars"] for r in given) / len(given), 2) if given else None,
                "folders": folders.get(asset.pk, []),
            }
        )
    return rows


@transaction.atomic
def selection_finalize(*, gallery: Gallery, visitor: Visitor) -> Selection:
    """Freeze the choice. Finalising again returns the same selection."""
    Gallery.objects.select_for_update().filter(pk=gallery.pk).first()  # one finaliser at a time
    existing = live_selection(gallery)
    if existing is not None:
        return existing
    assets = list(chosen_assets(gallery))
    if not assets:
        raise DomainError("Rate or file at least one photo before finalising.", code="EMPTY_SELECTION")
    if gallery.selection_limit and len(assets) > gallery.selection_limit:
        raise DomainError(
            f"You chose {len(assets)} photos; this gallery allows up to {gallery.selection_limit}. "
            f"Remove {len(assets) - gallery.selection_limit} and finalise again.",
            code="SELECTION_LIMIT_EXCEEDED",
            details={"limit": gallery.selection_limit, "chosen": len(assets)},
        )
    selection = Selection.objects.create(
        studio=gallery.studio,
        gallery=gallery,
        finalized_by=visitor,
        finalized_by_label=str(visitor),
        asset_count=len(assets),
        snapshot=_selection_snapshot(gallery, assets),
    )
    audit_record(
        action=Action.SELECTION_FINALIZED, target=selection, after={"gallery": str(gallery.pk), "assets": len(assets)}
    )
    notifications.selection_finalised(selection)
    return selection


@transaction.atomic
def selection_reopen(*, gallery: Gallery, user: Any) -> Selection:
    selection = Selection.objects.select_for_update().filter(gallery=gallery, status=SelectionStatus.FINALIZED).first()
    if selection is None:
        raise Conflict("There is no finalised selection to reopen.", code="NO_FINALIZED_SELECTION")
    selection.status = SelectionStatus.REOPENED
    selection.reopened_at = timezone.now()
    selection.reopened_by = user
    selection.save(update_fields=["status", "reopened_at", "reopened_by", "updated_at"])
    audit_record(
        action=Action.SELECTION_REOPENED, target=selection, before={"status": "finalized"}, after={"status": "reopened"}
    )
    return selection
