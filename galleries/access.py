"""Client access: opening a gallery with its code (and PIN), the portal
session, and throttling of wrong guesses.

A portal session is bound to one gallery: the Django session keeps the
gallery, the visitor and the gallery's ``access_version`` at the time it was
opened. Unpublishing, rotating the code or changing the PIN bumps the
version, which ends every session opened before.

Wrong codes and PINs are counted per client address and per gallery in
fixed windows (settings.PORTAL_FAILURE_*). When a window is full, further
attempts are refused until it ends: an attacker can delay the real client by
at most one window, never lock them out for good, and a correct code from a
fresh address works as soon as the gallery's window has passed.
"""

from __future__ import annotations

import contextlib
import math
import time
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from galleries.models import Gallery, GalleryStatus, Visibility, Visitor
from galleries.services import normalise_code
from studio import context
from studio.auditing import Action, audit_record
from studio.cache import studio_cache_key
from studio.errors import DomainError
from studio.middleware import client_ip
from studio.sql_templates import Templates, instance, instance_columns
from studio.tenancy import studio_scope, unscoped

SESSION_KEY = "portal"


class PortalError(DomainError):
    status_code = 403


class AccessDenied(PortalError):
    code = "ACCESS_DENIED"
    default_message = "That gallery code or PIN is not right."


class TooManyAttempts(PortalError):
    code = "TOO_MANY_ATTEMPTS"
    status_code = 429
    default_message = "Too many wrong attempts. Wait a few minutes and try again."


class GalleryUnavailable(PortalError):
    code = "GALLERY_UNAVAILABLE"
    default_message = "This gallery is not available right now. Contact the studio."


class GalleryExpired(PortalError):
    code = "GALLERY_EXPIRED"
    status_code = 410
    default_message = "This gallery has expired. Contact the studio if you still need it."


class SessionRequired(PortalError):
    code = "PORTAL_SESSION_REQUIRED"
    status_code = 401
    default_message = "Open this gallery with its code first."


def check_available(gallery: Gallery) -> None:
    if gallery.status != GalleryStatus.PUBLISHED:
        raise GalleryUnavailable()
    if gallery.is_expired:
        raise GalleryExpired(
            f"This gallery expired on {timezone.localtime(gallery.expires_at):%d %B %Y}. "
            "Contact the studio if you still need it."
        )


# --- throttling ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Window:
    key: str
    limit: int


def _address_window(ip: str | None) -> _Window:
    """Every guess from one address: codes and PINs."""
    return _Window(f"portal:fail:ip:{ip or 'unknown'}", settings.PORTAL_FAILURES_PER_IP)


def _gallery_window(gallery: Gallery) -> _Window:
    """PIN guesses at one gallery, from anywhere."""
    return _Window(
        studio_cache_key("portal", "fail", "gallery", gallery.pk, studio=gallery.studio),
        settings.PORTAL_FAILURES_PER_GALLERY,
    )


def _attempt(windows: list[_Window]) -> None:
    """Count this attempt in every window *before* it is checked, with the
    cache's atomic increment, and refuse it when a window is full. Counting
    after the (slow, by design) PIN check let 45 concurrent guesses all be
    checked; now at most the limit are, the rest answer 429. A successful
    attempt gives its count back (:func:`_refund`), so a family opening the
    gallery from one address is never throttled for succeeding."""
    for window in windows:
        if _incr(window) > window.limit:
            raise TooManyAttempts(details={"retry_after_seconds": _remaining(window)})


def _incr(window: _Window) -> int:
    seconds = settings.PORTAL_FAILURE_WINDOW_SECONDS
    if cache.add(window.key, 0, timeout=seconds):  # a window starts: fixed, never extended
        cache.set(f"{window.key}:ends", time.time() + seconds, timeout=seconds)
    try:
        return cache.incr(window.key)
    except ValueError:  # expired between add() and incr(): a new window
        cache.set(window.key, 1, timeout=seconds)
        cache.set(f"{window.key}:ends", time.time() + seconds, timeout=seconds)
        return 1


def _remaining(window: _Window) -> int:
    """Seconds until the window ends, as Retry-After should say."""
    ends = cache.get(f"{window.key}:ends")
    if ends is None:
        return settings.PORTAL_FAILURE_WINDOW_SECONDS
    return max(1, math.ceil(ends - time.time()))


def _refund(windows: list[_Window]) -> None:
    for window in windows:
        with contextlib.suppress(ValueError):  # the window ended meanwhile
            cache.decr(window.key)


# --- opening a gallery -----------------------------------------------------------------------------


def _identity(gallery: Gallery, name: str, email: str) -> None:
    if gallery.ask_visitor_identity and not (name.strip() and email.strip()):
        fields = {}
        if not name.strip():
            fields["name"] = ["Tell the studio who you are."]
        if not email.strip():
            fields["email"] = ["Your email address, so the studio can reach you."]
        raise DomainError(
            "Please give your name and email to open this gallery.", code="IDENTITY_REQUIRED", fields=fields
        )


def _enter(request: HttpRequest, gallery: Gallery, name: str, email: str) -> Visitor:
    with studio_scope(gallery.studio), transaction.atomic():
        visitor = Visitor.objects.create(studio=gallery.studio, gallery=gallery, name=name.strip(), email=email.strip())
        with context.acting_as(context.Actor.visitor(visitor)):
            audit_record(action=Action.GALLERY_OPENED, target=gallery, after={"visitor": str(visitor.pk)})
    # A new session id on every entry: no fixation of a session an attacker planted.
    request.session.cycle_key()
    request.session[SESSION_KEY] = {"gallery": str(gallery.pk), "visitor": str(visitor.pk), "v": gallery.access_version}
    return visitor


def studios_for_code(request: HttpRequest, code: str) -> list[Any]:
    """The active studios with a gallery under this code (codes are unique
    per studio, so a direct link /g/<code>/ may name several). Throttled like
    a guess: a code that names nothing counts against the address; one that
    resolves gives its count back."""
    ip_windows = [_address_window(client_ip(request))]
    _attempt(ip_windows)
    with unscoped():  # the code is what names the gallery
        galleries = Gallery.objects.select_related("studio").filter(
            studio__is_active=True, access_code=normalise_code(code)
        )
        studios = sorted({g.studio for g in galleries}, key=lambda s: s.name.lower())
    if not studios:
        raise AccessDenied()
    _refund(ip_windows)
    return studios


def open_with_code(
    request: HttpRequest, *, studio_slug: str, code: str, pin: str = "", name: str = "", email: str = ""
) -> tuple[Gallery, Visitor]:
    ip_windows = [_address_window(client_ip(request))]
    _attempt(ip_windows)
    with unscoped():  # the code is what names the gallery
        gallery = (
            Gallery.objects.select_related("studio")
            .filter(studio__slug=studio_slug, studio__is_active=True, access_code=normalise_code(code))
            .first()
        )
    if gallery is None:
        raise AccessDenied()  # counted against the address
    return _open(request, gallery, ip_windows, pin=pin, name=name, email=email)


def _open(
    request: HttpRequest, gallery: Gallery, ip_windows: list[_Window], *, pin: str, name: str, email: str
) -> tuple[Gallery, Visitor]:
    gallery_windows = [_gallery_window(gallery)] if gallery.has_pin else []
    _attempt(gallery_windows)
    if gallery.has_pin:
        if not pin:
            _refund(ip_windows + gallery_windows)  # nothing was guessed
            raise DomainError(
                "This gallery also needs its PIN.", code="PIN_REQUIRED", fields={"pin": ["Enter the PIN."]}
            )
        if not gallery.check_pin(pin):
            raise AccessDenied()  # stays counted, per address and per gallery
    _refund(ip_windows + gallery_windows)
    check_available(gallery)
    _identity(gallery, name, email)
    return gallery, _enter(request, gallery, name, email)


def open_by_link(
    request: HttpRequest, *, gallery_id: Any, pin: str = "", name: str = "", email: str = ""
) -> tuple[Gallery, Visitor]:
    """Unlisted and public galleries open from their link, without a code,
    but with the PIN when the studio set one (counted like wrong codes)."""
    ip_windows = [_address_window(client_ip(request))]
    _attempt(ip_windows)
    with unscoped():  # the link is what names the gallery
        gallery = Gallery.objects.select_related("studio").filter(pk=gallery_id, studio__is_active=True).first()
    if gallery is None or gallery.visibility == Visibility.PRIVATE:
        raise AccessDenied("This gallery needs its code.")
    return _open(request, gallery, ip_windows, pin=pin, name=name, email=email)


def leave(request: HttpRequest) -> None:
    request.session.pop(SESSION_KEY, None)


def session_visitor(request: HttpRequest, gallery_id: Any) -> tuple[Gallery, Visitor]:
    """The gallery and visitor of this portal session, or an error that says
    what to do. Runs before any studio scope exists."""
    entry = request.session.get(SESSION_KEY) or {}
    if entry.get("gallery") != str(gallery_id):
        raise SessionRequired()
    try:
        ids = {"visitor": uuid.UUID(str(entry.get("visitor"))), "gallery": uuid.UUID(str(gallery_id))}
    except ValueError:
        ids = None
    rows = _SESSION_TEMPLATES.rows(_session_visitor_rows, ids) if ids else []
    if not rows:
        leave(request)
        raise SessionRequired()
    visitor = instance(Visitor, rows[0], *_SESSION_RELATED)
    gallery = visitor.gallery
    if entry.get("v") != gallery.access_version:
        leave(request)
        raise SessionRequired("The studio changed this gallery's access. Enter the code again.")
    check_available(gallery)
    return gallery, visitor


# The visitor, its gallery and studio in one query: this runs on every
# portal request, the hot photo list included, so its SQL is compiled once
# (studio.sql_templates) and the three rows built from one .values() row.
_SESSION_TEMPLATES = Templates(size=4)
_SESSION_RELATED = ("gallery", "gallery__studio")


def _session_visitor_rows(ids: dict[str, Any]) -> Any:
    with unscoped():  # the session names the gallery; checked against the URL
        return Visitor.objects.filter(
            pk=ids["visitor"], gallery_id=ids["gallery"], gallery__studio__is_active=True
        ).values(*instance_columns(Visitor, *_SESSION_RELATED))[:1]


def touch(visitor: Visitor) -> None:
    """last_seen_at, at most once a minute: not a write per request."""
    now = timezone.now()
    if (now - visitor.last_seen_at).total_seconds() > 60:
        Visitor.objects.filter(pk=visitor.pk).update(last_seen_at=now)
