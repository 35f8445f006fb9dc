from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from studio import selectors


def home(request: HttpRequest) -> HttpResponse:
    memberships = list(selectors.memberships_of(request.user)) if request.user.is_authenticated else []
    return render(request, "home.html", {"memberships": memberships})


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness plus a database round trip, for load balancers."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
