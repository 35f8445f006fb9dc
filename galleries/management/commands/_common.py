"""What several gallery commands share: finding a studio and a gallery from
the command line. (A leading underscore: Django lists no command here.)"""

from __future__ import annotations

import uuid

from django.core.management.base import CommandError

from galleries.models import Gallery
from galleries.services import normalise_code
from studio.models import Studio
from studio.tenancy import studio_scope, unscoped


def resolve_studio(slug: str) -> Studio:
    studio = Studio.objects.filter(slug=slug, is_active=True).first()
    if studio is None:
        raise CommandError(f"No active studio {slug!r}.")
    return studio


def resolve_gallery(value: str, studio_slug: str | None) -> Gallery:
    """A gallery by id (any studio, or the one given) or by access code
    (codes are unique per studio only, so --studio is then required)."""
    studio = resolve_studio(studio_slug) if studio_slug else None
    try:
        pk = uuid.UUID(value)
    except ValueError:
        pk = None
    if pk is not None:
        with unscoped():  # the id names the studio; --studio, if given, must agree
            gallery = Gallery.objects.select_related("studio").filter(pk=pk).first()
        if gallery is None or (studio is not None and gallery.studio_id != studio.pk):
            raise CommandError(f"No gallery {value}.")
        return gallery
    if studio is None:
        raise CommandError("A gallery named by its access code needs --studio.")
    with studio_scope(studio):
        gallery = Gallery.objects.select_related("studio").filter(access_code=normalise_code(value)).first()
    if gallery is None:
        raise CommandError(f"No gallery with code {value!r} in {studio.slug}.")
    return gallery
