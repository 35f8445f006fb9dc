"""People in photos (issue 13): turning it on and off, detecting a photo's
faces (the Celery task's body), and grouping faces into persons.

Faces and descriptors are biometric data, so the feature is opt-in twice
(the studio, then each gallery) and turning either off deletes what it
stored, crops included, in the same transaction (audited with counts).
Staff curation of persons (rename, merge, split, hide) is in
``galleries.services.persons``; the math is ``galleries.faces``.
"""

from __future__ import annotations

import io
import logging
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from galleries import face_search, faces
from galleries.models import Asset, AssetStatus, Face, FaceScan, FaceScanStatus, Gallery, Person
from galleries.services.effects import delete_objects_on_commit
from galleries.storage import derivative_key, media_store
from studio.auditing import Action, audit_record
from studio.errors import DomainError
from studio.models import Studio
from studio.tasks import enqueue
from studio.tenancy import current_studio, studio_scope

logger = logging.getLogger(__name__)


class FacesDisabled(DomainError):
    code = "FACES_DISABLED"
    status_code = 409
    default_message = "Turn on people in photos for the studio first."


def faces_active(gallery: Gallery) -> bool:
    return bool(gallery.faces_enabled and gallery.studio.faces_enabled)


def find_me_active(gallery: Gallery) -> bool:
    """Whether the gallery offers "find me" to its clients now."""
    return bool(gallery.find_me_enabled and faces_active(gallery))


def face_thumb_key(asset: Asset, index: int) -> str:
    # Under the photo's derivatives: the bucket's reconciliation
    # (maintenance.orphan_keys) counts it referenced while the photo exists.
    return derivative_key(asset, f"face-{index}")


def bump_version(gallery_ids: Any) -> None:
    """Invalidate the search matrices cached for these galleries (face_search)."""
    Gallery.objects.filter(pk__in=list(gallery_ids)).update(faces_version=F("faces_version") + 1)


def _delete_faces(face_rows: QuerySet, persons: QuerySet, scans: QuerySet) -> dict[str, int]:
    keys = [key for key in face_rows.values_list("thumb_key", flat=True) if key]
    counts = {"faces": face_rows.count(), "persons": persons.count(), "scans": scans.count()}
    persons.update(cover=None)  # Person.cover -> Face: let go before the faces go
    face_rows.delete()
    persons.delete()
    scans.delete()
    delete_objects_on_commit(keys)
    return counts


# --- switches ----------------------------------------------------------------------------------


@transaction.atomic
def studio_faces_enable(*, studio: Studio, consent_text: str) -> Studio:
    before = {"faces_enabled": studio.faces_enabled, "faces_consent_text": studio.faces_consent_text}
    studio.faces_enabled, studio.faces_consent_text = True, consent_text.strip()
    studio.save(update_fields=["faces_enabled", "faces_consent_text", "updated_at"])
    audit_record(
        action=Action.FACES_ENABLED,
        target=studio,
        before=before,
        after={"faces_enabled": True, "faces_consent_text": studio.faces_consent_text},
    )
    return studio


@transaction.atomic
def studio_faces_disable(*, studio: Studio) -> dict[str, int]:
    """Off, and every face, descriptor, crop, person and scan of the studio
    deleted; every gallery's switches off too, so turning the studio on
    again starts from nothing rather than silently re-scanning."""
    counts = _delete_faces(Face.objects.all(), Person.objects.all(), FaceScan.objects.all())
    galleries = Gallery.objects.filter(faces_enabled=True) | Gallery.objects.filter(find_me_enabled=True)
    counts["galleries"] = galleries.update(
        faces_enabled=False, find_me_enabled=False, faces_version=F("faces_version") + 1
    )
    studio.faces_enabled = False
    studio.save(update_fields=["faces_enabled", "updated_at"])
    audit_record(action=Action.FACES_DISABLED, target=studio, before={"faces_enabled": True}, after=counts)
    return counts


@transaction.atomic
def gallery_faces_set(
    *, gallery: Gallery, faces_enabled: bool | None = None, find_me_enabled: bool | None = None
) -> Gallery:
    """Per-gallery switches. On: every ready photo is scanned. Off: the
    gallery's faces are deleted. "Find me" needs faces on."""
    before = {"faces_enabled": gallery.faces_enabled, "find_me_enabled": gallery.find_me_enabled}
    want_faces = gallery.faces_enabled if faces_enabled is None else faces_enabled
    want_find_me = (gallery.find_me_enabled if find_me_enabled is None else find_me_enabled) and want_faces
    if want_faces and not gallery.studio.faces_enabled:
        raise FacesDisabled()
    after: dict[str, Any] = {"faces_enabled": want_faces, "find_me_enabled": want_find_me}
    if before == after:
        return gallery
    gallery.faces_enabled, gallery.find_me_enabled = want_faces, want_find_me
    gallery.save(update_fields=["faces_enabled", "find_me_enabled", "updated_at"])
    if want_faces and not before["faces_enabled"]:
        after["queued"] = faces_queue(
            assets=list(Asset.objects.filter(gallery=gallery, status=AssetStatus.READY).only("pk"))
        )
    elif not want_faces and before["faces_enabled"]:
        after.update(
            _delete_faces(
                Face.objects.filter(gallery=gallery),
                Person.objects.filter(gallery=gallery),
                FaceScan.objects.filter(asset__gallery=gallery),
            )
        )
    bump_version([gallery.pk])
    audit_record(action=Action.GALLERY_FACES_CHANGED, target=gallery, before=before, after=after)
    return gallery


# --- the pipeline -------------------------------------------------------------------------------


def faces_queue(*, assets: list[Asset]) -> int:
    """Mark the photos' scans pending and queue their jobs once the
    transaction commits. A job the broker refused waits, pending and
    unstamped, for galleries.sweep_face_scans."""
    if not assets:
        return 0
    from galleries.tasks import detect_faces

    studio = current_studio()
    ids = [asset.pk for asset in assets]
    existing = set(FaceScan.objects.filter(asset_id__in=ids).values_list("asset_id", flat=True))
    FaceScan.objects.filter(asset_id__in=existing).update(
        status=FaceScanStatus.PENDING, reason="", queued_at=None, sweeps=0, updated_at=timezone.now()
    )
    FaceScan.objects.bulk_create([FaceScan(studio=studio, asset_id=pk) for pk in ids if pk not in existing])

    def send() -> None:
        queued = []
        for pk in ids:
            if not enqueue(detect_faces, str(studio.pk), str(pk)):
                break  # the broker is down: do not wait on it once per photo
            queued.append(pk)
        with studio_scope(studio):
            FaceScan.objects.filter(asset_id__in=queued, status=FaceScanStatus.PENDING).update(queued_at=timezone.now())

    transaction.on_commit(send, robust=True)
    return len(ids)


def faces_after_derivatives(*, asset: Asset) -> None:
    """Called where a photo's derivatives were (re)made: its faces follow,
    when the studio and the gallery have them on."""
    if faces_active(asset.gallery):
        faces_queue(assets=[asset])


def _fail(scan: FaceScan, reason: str) -> FaceScan:
    with transaction.atomic():
        updated = FaceScan.objects.filter(pk=scan.pk, status=FaceScanStatus.PENDING).update(
            status=FaceScanStatus.FAILED, reason=reason[:300], updated_at=timezone.now()
        )
        if updated:
            audit_record(action=Action.ASSET_FACES_FAILED, target=scan.asset, after={"reason": reason[:300]})
    scan.status, scan.reason = FaceScanStatus.FAILED, reason[:300]
    return scan


_REASONS = {
    "decode": "The 2048 px preview could not be read: regenerate the previews.",
    "blank": "The preview is a flat colour: regenerate the previews.",
    "too_small": "The photo is too small to look for faces.",
    "too_large": "The preview is larger than the face detector accepts.",
}


def asset_detect_faces(*, asset_id: Any) -> FaceScan | None:
    """Find, describe and store one photo's faces: the body of the Celery task.

    Idempotent: a scan not pending is left alone; a rerun replaces the
    photo's faces, and the crops' keys are fixed per face index so they are
    overwritten, never added. Storage errors propagate for the task to
    retry (the scan stays pending); anything else ends as failed with a
    reason: a photo is never left pending because of an exception."""
    scan = FaceScan.objects.filter(asset_id=asset_id).select_related("asset__gallery__studio").first()
    if scan is None or scan.status != FaceScanStatus.PENDING:
        return scan
    asset = scan.asset
    if not faces_active(asset.gallery) or asset.status != AssetStatus.READY:
        return _fail(scan, "People in photos is off, or the photo has no previews.")
    large = (asset.derivatives or {}).get("large")
    if not large:
        return _fail(scan, "The photo has no 2048 px preview: regenerate the previews.")
    buffer = io.BytesIO()
    try:
        media_store().download(large["key"], buffer)
    except FileNotFoundError:
        return _fail(scan, "The 2048 px preview is missing from storage: regenerate the previews.")
    try:
        found = faces.detect(buffer.getvalue(), min_size=settings.FACES_MIN_FACE_PX)
    except faces.FaceError as exc:
        return _fail(scan, _REASONS.get(exc.reason, f"Face detection failed: {exc.detail}"))
    except SoftTimeLimitExceeded:
        return _fail(scan, "Face detection took too long.")
    except Exception:  # noqa: BLE001 - the task boundary: the scan must not stay pending
        logger.exception("asset %s: face detection failed", asset.pk)
        return _fail(scan, f"Something went wrong on our side while looking for faces (reference {asset.pk}).")
    written = []
    for index, face in enumerate(found):
        key = face_thumb_key(asset, index)
        media_store().put(key, face.thumbnail, "image/webp")
        written.append(key)
    return _store_faces(scan, found, written)


@transaction.atomic
def _store_faces(scan: FaceScan, found: list[faces.Face], written: list[str]) -> FaceScan:
    asset = scan.asset
    # One writer per gallery at a time: two photos of one new guest finished
    # together must not each found a person for them.
    gallery = Gallery.objects.select_for_update().get(pk=asset.gallery_id)
    if not FaceScan.objects.filter(pk=scan.pk, status=FaceScanStatus.PENDING).exists() or not faces_active(gallery):
        delete_objects_on_commit(written)  # turned off (or done by a twin) meanwhile
        return scan
    old = list(Face.objects.filter(asset=asset))
    stale_keys = [f.thumb_key for f in old if f.thumb_key and f.thumb_key not in written]
    touched = {f.person_id for f in old if f.person_id}
    Face.objects.filter(asset=asset).delete()  # a person's cover among them: SET_NULL, then refreshed below
    rows = Face.objects.bulk_create(
        [
            Face(
                studio=asset.studio,
                gallery=gallery,
                asset=asset,
                index=index,
                left=face.box.left,
                top=face.box.top,
                right=face.box.right,
                bottom=face.box.bottom,
                score=round(face.score, 4),
                quality=face.quality.score,
                descriptor=faces.descriptor_bytes(face.descriptor),
                thumb_key=written[index],
            )
            for index, face in enumerate(found)
        ]
    )
    face_search.store_embeddings([(row.pk, row.descriptor) for row in rows])
    new_persons, joined = persons_assign(gallery=gallery, new_faces=rows)
    # Once for every person this photo touched: the ones its old faces
    # left and the ones its new faces joined (on a rescan, often the same).
    refresh_persons(touched | joined)
    delete_objects_on_commit(stale_keys)
    FaceScan.objects.filter(pk=scan.pk).update(
        status=FaceScanStatus.DONE, reason="", face_count=len(rows), updated_at=timezone.now()
    )
    bump_version([gallery.pk])
    audit_record(
        action=Action.ASSET_FACES_DETECTED, target=asset, after={"faces": len(rows), "new_persons": len(new_persons)}
    )
    scan.status, scan.face_count = FaceScanStatus.DONE, len(rows)
    return scan


def persons_assign(*, gallery: Gallery, new_faces: list[Face]) -> tuple[list[Person], set[Any]]:
    """New faces join the gallery's persons (nearest member within the
    threshold); the rest are grouped among themselves by Chinese whispers,
    each group a new person. Returns the persons created and the ids of every
    person that gained faces, for the caller to refresh_persons once."""
    if not new_faces:
        return [], set()
    threshold = settings.FACES_THRESHOLD
    members: dict[Any, list[bytes]] = {}
    for person_id, data in Face.objects.filter(gallery=gallery, person__isnull=False).values_list(
        "person_id", "descriptor"
    ):
        members.setdefault(person_id, []).append(bytes(data))
    matrix = faces.as_matrix([bytes(f.descriptor) for f in new_faces])
    known = {key: faces.as_matrix(rows) for key, rows in members.items()}
    matches = faces.assign_to_persons(matrix, known, threshold)
    joined: dict[Any, list[Face]] = {}
    strangers = []
    for face, match in zip(new_faces, matches, strict=True):
        if match is None:
            strangers.append(face)
        else:
            joined.setdefault(match.id, []).append(face)
    created = []
    if strangers:
        labels = faces.cluster(faces.as_matrix([bytes(f.descriptor) for f in strangers]), threshold)
        groups: dict[int, list[Face]] = {}
        for face, label in zip(strangers, labels, strict=True):
            groups.setdefault(int(label), []).append(face)
        for group in groups.values():
            mean = faces.centroid(faces.as_matrix([bytes(f.descriptor) for f in group]))
            person = Person.objects.create(
                studio=gallery.studio, gallery=gallery, centroid=faces.descriptor_bytes(mean)
            )
            created.append(person)
            joined[person.pk] = group
    for person_id, group in joined.items():
        Face.objects.filter(pk__in=[f.pk for f in group]).update(person_id=person_id)
    return created, set(joined)


def refresh_persons(person_ids: Any) -> None:
    """Centroid, count and cover from the persons' faces; a person left
    without faces is deleted."""
    persons = list(Person.objects.filter(pk__in=list(person_ids)))
    by_person: dict[Any, list[tuple[Any, bytes, float]]] = {}
    for person_id, pk, data, quality in Face.objects.filter(person__in=persons).values_list(
        "person_id", "pk", "descriptor", "quality"
    ):
        by_person.setdefault(person_id, []).append((pk, data, quality))
    for person in persons:
        rows = by_person.get(person.pk, [])
        if not rows:
            person.delete()
            continue
        person.centroid = faces.descriptor_bytes(faces.centroid(faces.as_matrix([bytes(d) for _, d, _ in rows])))
        person.face_count = len(rows)
        if person.cover_id not in {pk for pk, _, _ in rows}:
            person.cover_id = max(rows, key=lambda row: row[2])[0]
        person.save(update_fields=["centroid", "face_count", "cover", "updated_at"])


def scans_give_up(*, asset_ids: list[Any]) -> int:
    """The sweeper queued these scans FACES_MAX_SWEEPS times and none ended."""
    stuck = list(FaceScan.objects.filter(asset_id__in=asset_ids, status=FaceScanStatus.PENDING).select_related("asset"))
    for scan in stuck:
        _fail(scan, f"Face detection did not finish after {settings.FACES_MAX_SWEEPS + 1} attempts.")
    return len(stuck)
