"""Staff pages in the admin that are more than a form: the uploader.

The page is a shell: static/staff/upload.js (Uppy) asks the staff upload API
for targets, sends the files straight to storage, calls complete and follows
the derivatives. The view only checks who may upload where and hands the
module its URLs as JSON (no inline script under our CSP)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.template.response import TemplateResponse
from django.urls import reverse

from galleries import imaging
from galleries.models import Gallery
from studio.admin import has_scope


def accepted_types() -> list[str]:
    """MIME types and extensions the presign API accepts, for the file picker."""
    formats = [fmt for fmt in imaging.FORMATS if fmt != "HEIF" or _heic_accepted()]
    mimes = [mime for fmt in formats for mime in imaging.FORMATS[fmt][0]]
    extensions = [f".{ext}" for fmt in formats for ext in imaging.FORMATS[fmt][1]]
    return [*mimes, *extensions]


def _heic_accepted() -> bool:
    return bool(settings.UPLOAD_ACCEPT_HEIC and imaging.pillow_heif is not None)


def upload_config(gallery: Gallery) -> dict[str, Any]:
    kwargs = {"studio_slug": gallery.studio.slug, "gallery_pk": gallery.pk}
    return {
        "gallery": str(gallery.pk),
        "title": gallery.title,
        "presign": reverse("api:gallery-upload-list", kwargs=kwargs),
        # The batch's own routes are the presign URL + "<batch>/" and + "<batch>/complete/".
        "assets": reverse("api:gallery-asset-list", kwargs=kwargs),
        "maxFileBytes": settings.UPLOAD_MAX_BYTES,
        "maxFilesPerBatch": settings.UPLOAD_BATCH_MAX_FILES,
        "accept": accepted_types(),
        "galleryUrl": reverse("admin:galleries_gallery_change", args=[gallery.pk]),
    }


def upload(model_admin: Any, request: HttpRequest, object_id: str) -> HttpResponse:
    """The uploader for one gallery of the admin studio. Another studio's
    gallery is not there (404); a member without gallery:write is refused."""
    gallery = model_admin.get_object(request, object_id)
    if gallery is None:
        raise Http404("No such gallery.")
    if not has_scope(request, "gallery:write"):
        raise PermissionDenied
    if getattr(request, "admin_membership", None) is None:
        # The upload API acts as a member of the studio; a platform operator
        # who is not one would be refused by every call the page makes.
        raise PermissionDenied("Uploads are made as a member of the gallery's studio.")
    opts = model_admin.model._meta
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Upload photos to {gallery.title}",
        "subtitle": gallery.title,
        "opts": opts,
        "original": gallery,
        "gallery": gallery,
        # get_token also sets the CSRF cookie the API's session auth checks against.
        "upload_data": {**upload_config(gallery), "csrfToken": get_token(request)},
        "has_view_permission": model_admin.has_view_permission(request, gallery),
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "galleries/staff/upload.html", context)
