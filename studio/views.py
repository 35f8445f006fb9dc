from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from studio import selectors
from studio.accounts import INVITED_SESSION_KEY


def home(request: HttpRequest) -> HttpResponse:
    memberships = list(selectors.memberships_of(request.user)) if request.user.is_authenticated else []
    # An invitation opened before signing up: the way back to it, after the
    # address was verified (allauth's confirmation link lands here).
    invited = request.session.get(INVITED_SESSION_KEY, {}).get("path")
    return render(request, "home.html", {"memberships": memberships, "invitation_path": invited})


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness plus a database round trip, for load balancers."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
