"""Reads for people in photos: which photos a face appears in.

The embedded default searches a gallery's descriptors in NumPy
(``galleries.faces.FaceIndex``: one matrix-vector product, ~1 ms for 30,000
faces). The matrix is built once per process and gallery, keyed by the
gallery's ``faces_version``, which every write to its faces or persons
bumps, so a stale matrix is never used and nothing has to be invalidated.

On PostgreSQL with the pgvector extension *and* the ``embedding`` column
(``galleries/migrations/0011_faces.py`` adds it when the extension is there
at migrate time), the search runs in the database instead; feature-detected
once per process. Without either, NumPy: same answers.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection
from django.db.models import Q

from galleries import faces
from galleries.models import Asset, AssetStatus, Face, Gallery

INDEX_CACHE_SIZE = 16  # galleries per process; 30,000 faces are 15 MB
_indexes: OrderedDict[tuple[Any, int], faces.FaceIndex] = OrderedDict()
_lock = threading.Lock()


def gallery_index(gallery: Gallery) -> faces.FaceIndex:
    """Every face of the gallery (ids: the photo's), cached per version."""
    key = (gallery.pk, gallery.faces_version)
    with _lock:
        index = _indexes.get(key)
        if index is not None:
            _indexes.move_to_end(key)
            return index
    rows = Face.objects.filter(gallery=gallery).values_list("asset_id", "descriptor")
    index = faces.FaceIndex.from_rows((asset_id, bytes(data)) for asset_id, data in rows)
    with _lock:
        for stale in [k for k in _indexes if k[0] == gallery.pk]:
            del _indexes[stale]
        _indexes[key] = index
        while len(_indexes) > INDEX_CACHE_SIZE:
            _indexes.popitem(last=False)
    return index


def find_me_session_key(gallery: Gallery) -> str:
    """Where a visitor's last find-me result lives in their portal session
    (written by the find-me view, read by the ?find_me= filter)."""
    return f"find_me:{gallery.pk}"


def clear_cache() -> None:
    with _lock:
        _indexes.clear()


@functools.cache
def _pgvector_on(alias: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'")
        if cursor.fetchone() is None:
            return False
        cursor.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_name = 'galleries_face' AND column_name = 'embedding'"
        )
        return cursor.fetchone() is not None


def pgvector_available() -> bool:
    if connection.vendor != "postgresql" or not getattr(settings, "FACES_PGVECTOR", True):
        return False
    return _pgvector_on(connection.alias)


def vector_literal(descriptor: np.ndarray) -> str:
    return "[" + ",".join(f"{float(v):.7g}" for v in np.asarray(descriptor, np.float32).reshape(-1)) + "]"


def _pgvector_matches(gallery: Gallery, descriptor: np.ndarray, threshold: float) -> list[faces.Match]:
    # <-> is pgvector's Euclidean distance: the same measure as FaceIndex.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT asset_id, MIN(embedding <-> %s::vector) AS distance FROM galleries_face "
            "WHERE gallery_id = %s AND embedding IS NOT NULL GROUP BY asset_id "
            "HAVING MIN(embedding <-> %s::vector) < %s ORDER BY distance",
            [vector_literal(descriptor), gallery.pk, vector_literal(descriptor), threshold],
        )
        return [faces.Match(asset_id, float(distance)) for asset_id, distance in cursor.fetchall()]


def store_embeddings(face_ids_and_descriptors: list[tuple[Any, bytes]]) -> None:
    """Mirror descriptors into the pgvector column, when there is one."""
    if not face_ids_and_descriptors or not pgvector_available():
        return
    with connection.cursor() as cursor:
        cursor.executemany(
            "UPDATE galleries_face SET embedding = %s::vector WHERE id = %s",
            [(vector_literal(faces.from_bytes(data)), pk) for pk, data in face_ids_and_descriptors],
        )


def find_assets(gallery: Gallery, descriptor: np.ndarray, *, threshold: float) -> list[faces.Match]:
    """Photos of ``gallery`` with a face within ``threshold`` of
    ``descriptor``, closest first; only photos a client may see (ready,
    not in the staff bin)."""
    if pgvector_available():
        matches = _pgvector_matches(gallery, descriptor, threshold)
    else:
        # Thread-safe without a lock: a FaceIndex is read-only after it is built.
        matches = gallery_index(gallery).photos_of(descriptor, threshold)
    if not matches:
        return []
    live = set(
        Asset.objects.filter(gallery=gallery, status=AssetStatus.READY, pk__in=[m.id for m in matches]).values_list(
            "pk", flat=True
        )
    )
    return [m for m in matches if m.id in live]


def person_asset_ids(gallery: Gallery, person_id: Any, *, visible_only: bool = False) -> Any:
    """A subquery of the photo ids a person's faces are in, for filters."""
    faces_of = Face.objects.filter(gallery=gallery, person_id=person_id)
    if visible_only:
        faces_of = faces_of.filter(person__hidden=False)
    return faces_of.values("asset_id")


def stuck_face_scans() -> list[tuple[Any, Any, int]]:
    """(studio_id, asset_id, sweeps) of scans pending for longer than
    FACES_STUCK_AFTER_SECONDS, across studios (the sweeper's question)."""
    from datetime import timedelta

    from django.utils import timezone

    from galleries.models import FaceScan, FaceScanStatus
    from studio.tenancy import unscoped

    cutoff = timezone.now() - timedelta(seconds=settings.FACES_STUCK_AFTER_SECONDS)
    with unscoped():  # the beat job looks across studios; each fix runs in its own scope
        return list(
            # Inactive studios' tasks would be skipped (as stuck_assets): not queued.
            FaceScan.objects.filter(status=FaceScanStatus.PENDING, updated_at__lt=cutoff, studio__is_active=True)
            .filter(Q(queued_at__isnull=True) | Q(queued_at__lt=cutoff))
            .values_list("studio_id", "asset_id", "sweeps")[:1000]
        )
