"""The page an invitation email links to."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from studio.accounts import INVITED_SESSION_KEY
from studio.errors import DomainError
from studio.models import User
from teams import selectors, services


def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    try:
        invitation = selectors.invitation_for_token(token)
    except DomainError as exc:
        return render(request, "teams/invitation_accept.html", {"error": exc.message}, status=400)
    if not request.user.is_authenticated:
        # A valid invitation opens sign-up for this browser, even when
        # SIGNUP_MODE is "invite"; the way back here is kept in ?next.
        request.session[INVITED_SESSION_KEY] = {"path": request.path, "email": invitation.email}
        has_account = User.objects.filter(email=invitation.email).exists()
        target = reverse("account_login" if has_account else "account_signup")
        return redirect(f"{target}?{urlencode({'next': request.path})}")
    if request.method == "POST":
        try:
            membership = services.invitation_accept(user=request.user, raw_token=token)
        except DomainError as exc:
            return render(
                request, "teams/invitation_accept.html", {"invitation": invitation, "error": exc.message}, status=400
            )
        request.session.pop(INVITED_SESSION_KEY, None)
        messages.success(request, f"You joined {membership.studio.name} as {membership.get_role_display()}.")
        return redirect("home")
    return render(request, "teams/invitation_accept.html", {"invitation": invitation})
