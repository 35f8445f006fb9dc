"""Staff curation of the persons faces were grouped into (rename, hide,
cover, merge, split), and the client's "find me" search, audited. Every
write bumps the gallery's faces_version, so cached search matrices follow."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction

from galleries import face_search, faces
from galleries.models import Face, Gallery, Person, Visitor
from galleries.services.faces import bump_version, find_me_active, refresh_persons
from studio.auditing import Action, audit_record
from studio.errors import DomainError


class InvalidPerson(DomainError):
    code = "INVALID_PERSON"
    default_message = "The person, or the face, is not one of this gallery's."


class FindMeDisabled(DomainError):
    code = "FIND_ME_DISABLED"
    status_code = 403
    default_message = 'The studio does not offer "find me" in this gallery.'


class InvalidSelfie(DomainError):
    code = "INVALID_SELFIE"
    default_message = "No single face was found in the photo."


def _snapshot(person: Person) -> dict[str, Any]:
    return {"name": person.name, "hidden": person.hidden, "cover": str(person.cover_id or "")}


_UNSET: Any = object()


@transaction.atomic
def person_update(*, person: Person, name: Any = _UNSET, hidden: Any = _UNSET, cover: Any = _UNSET) -> Person:
    """Rename, hide or show, or choose the cover face (one of its own)."""
    before = _snapshot(person)
    if name is not _UNSET:
        person.name = name.strip()
    if hidden is not _UNSET:
        person.hidden = bool(hidden)
    if cover is not _UNSET:
        if cover is None or cover.person_id != person.pk:
            raise InvalidPerson("The cover must be one of this person's faces.", fields={"cover": ["Not theirs."]})
        person.cover = cover
    after = _snapshot(person)
    if after != before:
        person.save(update_fields=["name", "hidden", "cover", "updated_at"])
        bump_version([person.gallery_id])
        audit_record(action=Action.PERSON_UPDATED, target=person, before=before, after=after)
    return person


@transaction.atomic
def person_merge(*, person: Person, into: Person) -> Person:
    """``person``'s faces join ``into``; ``person`` is gone. A name is kept
    if only the merged one had one."""
    if into.pk == person.pk or into.gallery_id != person.gallery_id:
        raise InvalidPerson("Merge into another person of the same gallery.", fields={"into": ["Invalid."]})
    moved = Face.objects.filter(person=person).update(person=into)
    centroid, count = faces.merge_centroids(
        faces.from_bytes(bytes(into.centroid)), into.face_count, faces.from_bytes(bytes(person.centroid)), moved
    )
    into.centroid, into.face_count = faces.descriptor_bytes(centroid), count
    into.name = into.name or person.name
    into.save(update_fields=["centroid", "face_count", "name", "updated_at"])
    merged = {"merged": str(person.pk), "merged_name": person.name, "faces": moved}
    person.delete()
    bump_version([into.gallery_id])
    audit_record(action=Action.PERSON_MERGED, target=into, after=merged)
    return into


@transaction.atomic
def person_split(*, person: Person, face_ids: list[Any] | None = None) -> list[Person]:
    """Split a person who turns out to be two: the faces named go to a new
    person; with none named, the faces are re-grouped at the tighter
    FACES_SPLIT_THRESHOLD and each extra group becomes a person. The first
    of the list returned is ``person``."""
    rows = list(Face.objects.filter(person=person).values_list("pk", "descriptor"))
    if face_ids is not None:
        chosen = {str(pk) for pk in face_ids}
        if not chosen or not chosen <= {str(pk) for pk, _ in rows} or len(chosen) == len(rows):
            raise InvalidPerson("Name some, not all, of this person's faces.", fields={"faces": ["Invalid."]})
        groups = [[pk for pk, _ in rows if str(pk) in chosen]]
    else:
        labels = faces.split_person(faces.as_matrix([bytes(d) for _, d in rows]), settings.FACES_SPLIT_THRESHOLD)
        groups = [
            [pk for (pk, _), label in zip(rows, labels, strict=True) if label == n]
            for n in range(1, max(labels, default=0) + 1)
        ]
    created = []
    for group in groups:
        new = Person.objects.create(studio=person.studio, gallery=person.gallery, centroid=person.centroid)
        Face.objects.filter(pk__in=group).update(person=new)
        created.append(new)
    refresh_persons([person.pk, *(p.pk for p in created)])
    bump_version([person.gallery_id])
    audit_record(
        action=Action.PERSON_SPLIT, target=person, after={"into": [str(p.pk) for p in created], "faces": len(rows)}
    )
    return [person, *created]


# --- find me (the portal) ----------------------------------------------------------------------


@dataclass
class FindMeResult:
    key: str
    matches: list[faces.Match] = field(default_factory=list)


@transaction.atomic
def find_me_search(*, gallery: Gallery, visitor: Visitor, image: bytes, excluded: set[str]) -> FindMeResult:
    """The photos of the gallery the selfie's person appears in, closest
    first, without those the visitor said were not them. The image is
    decoded and described in memory and dropped: no row, no object, no log
    holds it or its descriptor; the audit event keeps counts only."""
    if not find_me_active(gallery):
        raise FindMeDisabled()
    try:
        descriptor = faces.selfie_descriptors(image)
    except faces.FaceError as exc:
        raise InvalidSelfie(exc.detail, details={"reason": exc.reason}) from exc
    matches = face_search.find_assets(gallery, descriptor, threshold=settings.FACES_FIND_ME_THRESHOLD)
    matches = [m for m in matches if str(m.id) not in excluded]
    del descriptor
    result = FindMeResult(key=secrets.token_urlsafe(12), matches=matches)
    audit_record(action=Action.FIND_ME_SEARCHED, target=gallery, after={"matches": len(matches)})
    return result


@transaction.atomic
def find_me_not_me(*, gallery: Gallery, asset: Any) -> None:
    """Recorded for the studio's trail; the exclusion itself lives in the
    visitor's session (galleries.api.face_views)."""
    audit_record(action=Action.FIND_ME_NOT_ME, target=gallery, after={"asset": str(asset.pk)})
