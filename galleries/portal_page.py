"""The gallery page of the client portal: a server-rendered shell whose ES
modules (static/portal/) call the portal API."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import ensure_csrf_cookie

from galleries import access, pages
from galleries.services import normalise_code


@ensure_csrf_cookie  # the page's API writes send the cookie's token
def gallery(request: HttpRequest, code: str, slug: str | None = None) -> HttpResponse:
    entry = request.session.get(access.SESSION_KEY) or {}
    try:
        gallery, visitor = access.session_visitor(request, entry.get("gallery"))
    except access.PortalError:
        return pages.entry_for_code(request, code, studio_slug=slug)
    if gallery.access_code != normalise_code(code) or (slug and gallery.studio.slug != slug):
        return pages.entry_for_code(request, code, studio_slug=slug)
    kwargs = {"gallery_pk": gallery.pk}
    portal = {
        "gallery": str(gallery.pk),
        "api": reverse("api:portal-gallery", kwargs=kwargs),
        "assets": reverse("api:portal-asset-list", kwargs=kwargs),
        "folders": reverse("api:portal-folder-list", kwargs=kwargs),
        "selection": reverse("api:portal-selection", kwargs=kwargs),
        "exports": reverse("api:portal-export-list", kwargs=kwargs),
        "visitor": str(visitor.pk),
    }
    return render(
        request,
        "galleries/portal/gallery.html",
        {"studio": gallery.studio, "gallery": gallery, "visitor": visitor, "portal": portal},
    )
