"""Portal entry pages: typing a code (and PIN), direct links, the public
studio page, and the pages that say why a gallery does not open.

Opening always goes through :mod:`galleries.access`, so throttling, audit and
the session rules live in one place; these views only choose the next step
and the page that explains a refusal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.core.files.storage import FileSystemStorage, default_storage
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers, patch_cache_control
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_http_methods

from galleries import access
from galleries.media import media_response
from galleries.models import Asset, AssetStatus, Gallery, GalleryStatus, Visibility
from galleries.services import normalise_code
from studio.errors import DomainError
from studio.models import Studio
from studio.tenancy import studio_scope

TEMPLATES = "galleries/portal/"


@dataclass
class Step:
    """What the entry form asks next, and what it already knows."""

    name: str  # "code", "studio", "pin" or "identity"
    code: str = ""
    studio: Studio | None = None
    studios: list[Studio] = field(default_factory=list)
    pin: str = ""
    visitor_name: str = ""
    email: str = ""
    error: str = ""
    field_errors: dict[str, list[str]] = field(default_factory=dict)
    status: int = 200


# --- views -------------------------------------------------------------------------------------


@ensure_csrf_cookie
@require_http_methods(["GET", "POST"])
def entry(request: HttpRequest) -> HttpResponse:
    """/g/: type the code, then whatever the gallery asks for."""
    if request.method != "POST":
        return _step_page(request, Step("code"))
    code = request.POST.get("code", "")
    if not normalise_code(code):
        return _step_page(request, Step("code", error="Enter the gallery code from your invitation.", status=400))
    return _open(request, code, studio_slug=request.POST.get("studio") or None, direct=False)


@ensure_csrf_cookie
def entry_for_code(request: HttpRequest, code: str, studio_slug: str | None = None) -> HttpResponse:
    """What /g/<code>/ shows when this browser has not opened that gallery:
    the gallery itself when the link is all it needs (a redirect to this
    URL, now with a session), else the next step with the code filled in."""
    if request.method not in ("GET", "HEAD", "POST"):
        return HttpResponse(status=405, headers={"Allow": "GET, HEAD, POST"})
    if request.method == "HEAD":
        # A link preview (chat apps fetch links) must not open the gallery.
        return _no_store(HttpResponse())
    studio_slug = studio_slug or (request.POST.get("studio") if request.method == "POST" else None) or None
    return _open(request, code, studio_slug=studio_slug, direct=True)


@ensure_csrf_cookie
@require_GET
def studio_page(request: HttpRequest, slug: str) -> HttpResponse:
    """/s/<studio>/: the studio's galleries marked "Public: listed"."""
    studio = _active_studio(slug)
    with studio_scope(studio):
        galleries = list(_listed_galleries(studio))
    cards = [
        {
            "gallery": g,
            "url": reverse("portal:studio-gallery", kwargs={"slug": studio.slug, "code": g.access_code}),
            "cover_url": reverse("portal:cover", kwargs={"slug": studio.slug, "gallery_id": g.pk})
            if _cover_id(g)
            else "",
        }
        for g in galleries
    ]
    return render(request, TEMPLATES + "studio.html", {"studio": studio, "cards": cards})


@require_GET
def public_cover(request: HttpRequest, slug: str, gallery_id: Any) -> HttpResponse:
    """The thumbnail of a listed gallery's cover, without a portal session.
    Only the cover, only of listed, published, unexpired galleries: anything
    else is 404, exactly as if it did not exist."""
    studio = _active_studio(slug)
    with studio_scope(studio):
        gallery = _listed_galleries(studio).filter(pk=gallery_id).first()
        if gallery is None or _cover_id(gallery) is None:
            raise Http404("No such cover.")
        asset = Asset.objects.get(pk=_cover_id(gallery))
    response = media_response(asset, "thumb")
    patch_cache_control(response, private=True)
    return response


@require_GET
def studio_logo(request: HttpRequest, slug: str) -> HttpResponse:
    """The studio's logo. Served here rather than from MEDIA_URL, which the
    app does not serve on the embedded default; the file name changes with
    every upload, so the page's ?v= makes long caching safe."""
    studio = _active_studio(slug)
    if not studio.logo:
        raise Http404("No logo.")
    if not isinstance(default_storage, FileSystemStorage):
        return HttpResponseRedirect(studio.logo.url)  # the bucket's presigned URL
    try:
        handle = default_storage.open(studio.logo.name)
    except FileNotFoundError as exc:
        raise Http404("The logo file is missing.") from exc
    response = FileResponse(handle)
    patch_cache_control(response, public=True, max_age=24 * 3600)
    return response


# --- opening ----------------------------------------------------------------------------------------


def _open(request: HttpRequest, code: str, *, studio_slug: str | None, direct: bool) -> HttpResponse:
    is_post = request.method == "POST"
    pin = request.POST.get("pin", "") if is_post else ""
    name = request.POST.get("name", "") if is_post else ""
    email = request.POST.get("email", "") if is_post else ""
    step = Step("code", code=normalise_code(code), pin=pin, visitor_name=name, email=email)
    chosen = studio_slug is not None
    try:
        if studio_slug is None:
            studios = access.studios_for_code(request, code)
            if len(studios) > 1:
                step.name, step.studios = "studio", studios
                return _step_page(request, step)
            studio_slug = studios[0].slug
        step.studio = Studio.objects.filter(slug=studio_slug, is_active=True).first()
        gallery, _ = access.open_with_code(request, studio_slug=studio_slug, code=code, pin=pin, name=name, email=email)
    except access.TooManyAttempts as exc:
        return _throttled(request, exc, step.studio)
    except access.AccessDenied:
        return _denied(request, step, direct=direct)
    except access.GalleryExpired as exc:
        return _refused(request, step.studio, "portal-expired", "This gallery has expired", exc.message, 410)
    except access.GalleryUnavailable as exc:
        return _refused(request, step.studio, "portal-unavailable", "This gallery is not available", exc.message, 403)
    except DomainError as exc:
        return _next_step(request, step, exc, submitted=is_post)
    if direct:
        target = request.path
    else:
        kwargs = {"code": gallery.access_code}
        if chosen:  # the code alone is ambiguous: keep the studio in the link
            kwargs["slug"] = gallery.studio.slug
        target = reverse("portal:studio-gallery" if chosen else "portal:gallery", kwargs=kwargs)
    return _no_store(HttpResponseRedirect(target))


def _next_step(request: HttpRequest, step: Step, exc: DomainError, *, submitted: bool) -> HttpResponse:
    if exc.code == "PIN_REQUIRED":
        step.name = "pin"
        if submitted and "pin" in request.POST:  # asked for and left empty
            step.field_errors = {"pin": ["Enter the PIN."]}
            step.status = 400
        return _step_page(request, step)
    if exc.code == "IDENTITY_REQUIRED":
        step.name = "identity"
        if submitted and ("name" in request.POST or "email" in request.POST):
            step.field_errors = exc.fields or {}
            step.status = 400
        return _step_page(request, step)
    raise exc  # not a step of this form: the app's error handling answers


def _denied(request: HttpRequest, step: Step, *, direct: bool) -> HttpResponse:
    if step.pin:
        step.name = "pin"
        step.pin = ""
        step.field_errors = {"pin": ["That PIN is not right. Check it and try again."]}
        step.status = 403
        return _step_page(request, step)
    if direct and request.method != "POST":
        step.name, step.code = "code", ""
        step.error = "We could not find a gallery for that link. Check the code in your invitation and type it here."
        step.status = 404
        return _step_page(request, step, form_action=reverse("portal:entry"))
    step.name = "code"
    step.error = "That gallery code is not right. Check it and try again."
    step.status = 403
    return _step_page(request, step, form_action=reverse("portal:entry") if direct else "")


def _throttled(request: HttpRequest, exc: access.TooManyAttempts, studio: Studio | None) -> HttpResponse:
    seconds = int((exc.details or {}).get("retry_after_seconds") or 60)
    when = timezone.localtime(timezone.now() + timedelta(seconds=seconds))
    wait = f"{seconds} seconds" if seconds < 90 else f"{math.ceil(seconds / 60)} minutes"
    message = (
        f"There were too many wrong attempts from your connection. Please try again in {wait} (after {when:%H:%M})."
    )
    response = _refused(request, studio, "portal-throttled", "Too many attempts", message, 429)
    response["Retry-After"] = str(seconds)
    return response


# --- pages -----------------------------------------------------------------------------------------


def _step_page(request: HttpRequest, step: Step, form_action: str = "") -> HttpResponse:
    context = {"studio": step.studio, "step": step, "form_action": form_action}
    return _no_store(render(request, TEMPLATES + "entry.html", context, status=step.status))


def _refused(
    request: HttpRequest, studio: Studio | None, kind: str, title: str, message: str, status: int
) -> HttpResponse:
    context = {"studio": studio, "kind": kind, "title": title, "message": message}
    return _no_store(render(request, TEMPLATES + "error.html", context, status=status))


def _no_store(response: HttpResponse) -> HttpResponse:
    # Entry pages carry the typed code (and PIN, between steps): never cached.
    add_never_cache_headers(response)
    return response


# --- reads -----------------------------------------------------------------------------------------


def _active_studio(slug: str) -> Studio:
    studio = Studio.objects.filter(slug=slug, is_active=True).first()
    if studio is None:
        raise Http404("No such studio.")
    return studio


def _listed_galleries(studio: Studio) -> QuerySet[Gallery]:
    """Listed, published, unexpired galleries, each with the asset that
    stands for it: its cover when that is ready and not trashed, else its
    first ready photo."""
    ready = Asset.objects.filter(status=AssetStatus.READY, trashed_at__isnull=True)
    usable_cover = ready.filter(pk=OuterRef("cover_id")).values("pk")[:1]
    first_ready = ready.filter(gallery=OuterRef("pk")).order_by("sort_order", "created_at").values("pk")[:1]
    now = timezone.now()
    galleries = Gallery.objects.filter(
        studio=studio, visibility=Visibility.PUBLIC, status=GalleryStatus.PUBLISHED
    ).filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
    galleries = galleries.annotate(usable_cover=Subquery(usable_cover), first_ready=Subquery(first_ready))
    return galleries.order_by("-event_date", "-created_at")


def _cover_id(gallery: Gallery) -> Any:
    """The asset that stands for a gallery from :func:`_listed_galleries`."""
    return gallery.usable_cover or gallery.first_ready  # type: ignore[attr-defined]
