"""The page an invitation email links to."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from studio.errors import DomainError
from teams import selectors, services


@login_required
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    try:
        invitation = selectors.invitation_for_token(token)
    except DomainError as exc:
        return render(request, "teams/invitation_accept.html", {"error": exc.message}, status=400)
    if request.method == "POST":
        try:
            membership = services.invitation_accept(user=request.user, raw_token=token)
        except DomainError as exc:
            return render(
                request, "teams/invitation_accept.html", {"invitation": invitation, "error": exc.message}, status=400
            )
        messages.success(request, f"You joined {membership.studio.name} as {membership.get_role_display()}.")
        return redirect("home")
    return render(request, "teams/invitation_accept.html", {"invitation": invitation})
