"""Serving a photo's files after the caller's access was checked.

On S3 the answer is a redirect to a presigned URL that lives
MEDIA_URL_TTL_SECONDS; on the embedded default the file is streamed. The
check happens on every request, so unpublishing a gallery or rotating its
code cuts access to originals and derivatives (on S3, links already handed
out expire within the TTL).
"""

from __future__ import annotations

from django.conf import settings
from django.http import FileResponse, Http404, HttpResponse, HttpResponseRedirect

from galleries.models import Asset, AssetStatus
from galleries.storage import LocalMediaStore, media_store
from studio.errors import DomainError

_TYPES = {"webp": "image/webp"}


def variant_key(asset: Asset, variant: str) -> str:
    if variant == "original":
        if asset.status in (AssetStatus.AWAITING_UPLOAD, AssetStatus.FAILED):
            raise Http404("No original.")
        if asset.upload_etag:
            # Checked, not yet copied to its key by the derivatives job.
            raise DomainError(
                "The original is still being stored: try again in a moment.", code="NOT_FOUND", status_code=404
            )
        return asset.storage_key
    derivative = (asset.derivatives or {}).get(variant)
    if derivative is None:
        raise Http404("This size does not exist (yet).")
    return derivative["key"]


def download_name(asset: Asset, variant: str) -> str:
    stem = asset.original_filename.rsplit(".", 1)[0]
    return asset.original_filename if variant == "original" else f"{stem}-{variant}.webp"


def media_response(asset: Asset, variant: str, *, download: bool = False) -> HttpResponse:
    ttl = settings.MEDIA_URL_TTL_SECONDS
    filename = download_name(asset, variant) if download else None
    response = stored_file_response(variant_key(asset, variant), ttl=ttl, filename=filename)
    # The browser may reuse the answer a little while, never past the link's life.
    response["Cache-Control"] = f"private, max-age={max(ttl - 10, 0)}"
    return response


def stored_file_response(key: str, *, ttl: int, filename: str | None) -> HttpResponse:
    """A stored object for the browser, after the caller's checks: on S3 a
    redirect to a presigned GET living ``ttl`` seconds (an attachment named
    ``filename`` when given), on the embedded default the file itself."""
    store = media_store()
    if isinstance(store, LocalMediaStore):
        return _file_response(store, key, filename)
    return HttpResponseRedirect(store.media_url(key, ttl=ttl, filename=filename))


def _file_response(store: LocalMediaStore, key: str, filename: str | None) -> FileResponse:
    try:
        handle = store.open(key)
    except FileNotFoundError as exc:
        raise Http404("The file is missing.") from exc
    extension = key.rsplit(".", 1)[-1].lower()
    info = None if extension in _TYPES else store.head(key)
    content_type = _TYPES.get(extension) or (info.content_type if info else None) or None
    return FileResponse(handle, as_attachment=bool(filename), filename=filename or "", content_type=content_type)
