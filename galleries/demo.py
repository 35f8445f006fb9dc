"""The demo studio's gallery (``manage.py seed_demo``): published, with a few
generated photos made by the real pipeline. Idempotent."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from galleries import services
from galleries.demo_images import jpeg_bytes
from galleries.models import Asset, AssetStatus, Gallery, Visibility
from galleries.storage import media_store, original_key

DEMO_GALLERY_CODE = "DEMO2025"
DEMO_PHOTOS = 24
# A second gallery, "Public: listed", so the studio's public page shows something.
PORTFOLIO_CODE = "PORTFOLIO"
PORTFOLIO_PHOTOS = 6


def seed(*, studio: Any, members: dict[str, Any]) -> list[str]:
    gallery = Gallery.objects.filter(access_code=DEMO_GALLERY_CODE).first()
    if gallery is None:
        gallery = services.gallery_create(
            actor=None,
            title="Smith & Jones Wedding",
            access_code=DEMO_GALLERY_CODE,
            client_name="Sam Smith",
            client_email="sam@example.com",
            selection_limit=30,
        )
    _fill(studio, gallery, DEMO_PHOTOS, seed=100)
    portfolio = Gallery.objects.filter(access_code=PORTFOLIO_CODE).first()
    if portfolio is None:
        portfolio = services.gallery_create(
            actor=None, title="Autumn in the park", access_code=PORTFOLIO_CODE, visibility=Visibility.PUBLIC
        )
    _fill(studio, portfolio, PORTFOLIO_PHOTOS, seed=300)
    return [
        f"Client portal code  {DEMO_GALLERY_CODE} (gallery '{gallery.title}', studio '{studio.slug}')",
        f"Client portal       {settings.SITE_URL.rstrip('/')}/g/{DEMO_GALLERY_CODE}/",
        f"Studio page         {settings.SITE_URL.rstrip('/')}/s/{studio.slug}/",
    ]


def _fill(studio: Any, gallery: Gallery, photos: int, *, seed: int) -> None:
    """Top the gallery up to ``photos`` generated photos, publish it, set a cover."""
    missing = photos - Asset.objects.filter(gallery=gallery).count()
    for index in range(max(missing, 0)):
        data = jpeg_bytes(1500, 1000, seed=seed + index, orientation=6 if index % 3 == 2 else 1, quality=88)
        asset = Asset(
            studio=studio,
            gallery=gallery,
            original_filename=f"DSC_{1001 + index}.jpg",
            content_type="image/jpeg",
            size=len(data),
            status=AssetStatus.PROCESSING,
            sort_order=index + 1,
        )
        asset.storage_key = original_key(asset, "jpg")
        asset.save()
        media_store().put(asset.storage_key, data, "image/jpeg")
        services.asset_process(asset_id=asset.pk)
    if gallery.cover_id is None:
        first = Asset.objects.filter(gallery=gallery, status=AssetStatus.READY).order_by("sort_order").first()
        services.gallery_set_cover(gallery=gallery, asset=first)
    services.gallery_publish(gallery=gallery)
