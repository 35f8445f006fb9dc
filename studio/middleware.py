"""Request-wide context: request id, client address, user agent."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject, empty

from studio import context, metrics

request_logger = logging.getLogger("studio.request")

# galleries.access.SESSION_KEY; the core imports no app (a test pins them equal).
PORTAL_SESSION_KEY = "portal"

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


def client_ip(request: HttpRequest) -> str | None:
    """The client's address. Behind N trusted proxies, the Nth address from the
    right of X-Forwarded-For (what our own proxies saw); anything further left
    was written by the client and cannot be trusted."""
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies > 0:
        forwarded = [p.strip() for p in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if p.strip()]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR") or None


class RequestContextMiddleware:
    """Binds the request to the audit context and returns ``X-Request-ID``.

    An incoming X-Request-ID of a safe shape is kept, so a request can be
    followed through a load balancer's logs and ours.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        with context.bind(
            request=request,
            ip=client_ip(request),
            user_agent=context.printable(request.META.get("HTTP_USER_AGENT", ""))[:500],
            request_id=request_id,
        ):
            response = self.get_response(request)
            # Inside the bound context, so the line carries the request id too.
            _log_request(request, response, time.perf_counter() - started)
        response["X-Request-ID"] = request_id
        return response


def _log_request(request: HttpRequest, response: HttpResponse, seconds: float) -> None:
    """One line per request, and its metrics. The route is the URL pattern,
    not the path: ids in paths would make every line and label unique."""
    match = getattr(request, "resolver_match", None)
    route = match.route if match is not None else ""
    metrics.observe_request(route=route, method=request.method or "", status=response.status_code, seconds=seconds)
    user = _user_if_loaded(request)
    fields = {
        "method": request.method,
        "route": route or metrics.UNMATCHED_ROUTE,
        "status": response.status_code,
        "duration_ms": round(seconds * 1000, 1),
        "studio": getattr(request, "log_studio", "") or (match.kwargs.get("studio_slug", "") if match else ""),
        "user": str(user.pk) if user is not None and user.is_authenticated else "",
        "visitor": _visitor_id(request),
    }
    request_logger.info(
        "%s %s %s %.1fms", fields["method"], fields["route"], fields["status"], fields["duration_ms"], extra=fields
    )


def _user_if_loaded(request: HttpRequest) -> object | None:
    """request.user when something already loaded it (a view, DRF's token
    authentication): loading it only to log would cost a query per request."""
    user = request.__dict__.get("user")
    if isinstance(user, SimpleLazyObject) and user._wrapped is empty:
        return None
    return user


def _visitor_id(request: HttpRequest) -> str:
    """The gallery visitor of a portal session, when the request loaded the
    session anyway: reading it here must not cost every request a query."""
    session = getattr(request, "session", None)
    cached = getattr(session, "_session_cache", None)
    if not cached:
        return ""
    return str((cached.get(PORTAL_SESSION_KEY) or {}).get("visitor") or "")
