from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from studio import health, selectors
from studio.accounts import INVITED_SESSION_KEY


def home(request: HttpRequest) -> HttpResponse:
    memberships = list(selectors.memberships_of(request.user)) if request.user.is_authenticated else []
    # An invitation opened before signing up: the way back to it, after the
    # address was verified (allauth's confirmation link lands here).
    invited = request.session.get(INVITED_SESSION_KEY, {}).get("path")
    return render(request, "home.html", {"memberships": memberships, "invitation_path": invited})


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Nothing else, so a database outage
    does not make an orchestrator restart every healthy web process."""
    return JsonResponse({"status": "ok"})


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: database, cache, broker and storage each answered within
    READINESS_TIMEOUT; 503 names the ones that did not."""
    results = health.run_checks()
    failed = sorted(name for name, result in results.items() if not result.ok)
    body = {
        "status": "unavailable" if failed else "ok",
        "failed": failed,
        "checks": {name: result.as_json() for name, result in results.items()},
    }
    return JsonResponse(body, status=503 if failed else 200)
