"""The studio-scoped admin site.

Staff reach the admin through their memberships. Each admin request runs in
the scope of one studio, the one chosen in the header (kept in the session),
so every changelist, form choice and lookup shows that studio's rows only.
Times are shown and read in that studio's zone. Superusers (platform
operators) work unscoped, in UTC, and see every studio.
Kept apart from studio.admin so the site can be built before ModelAdmins load.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from studio import selectors
from studio.tenancy import studio_scope, unscoped

SESSION_KEY = "admin_studio_id"

# What staff should not miss, on every admin page (a quota nearly full).
# Apps register callables ``(request, studio) -> list[str]`` from their admin
# module (galleries: storage), so the core needs no app.
NOTICES: list[Callable[[HttpRequest, Any], list[str]]] = []


def register_notice(provider: Callable[[HttpRequest, Any], list[str]]) -> Callable[[HttpRequest, Any], list[str]]:
    NOTICES.append(provider)
    return provider


class StudioAdminSite(admin.AdminSite):
    site_header = "Studio Platform"
    site_title = "Studio Platform admin"
    index_title = "Studio administration"

    def has_permission(self, request: HttpRequest) -> bool:
        user = request.user
        if not (user.is_active and user.is_authenticated):
            return False
        return user.is_superuser or selectors.memberships_of(user).exists()

    def login(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        """Sign-in goes through allauth (email verification, two-factor)."""
        if request.user.is_authenticated:
            if self.has_permission(request):
                return HttpResponseRedirect(reverse("admin:index", current_app=self.name))
            raise PermissionDenied("Your account is not a member of any studio.")
        return redirect_to_login(request.GET.get("next", reverse("admin:index")), reverse("account_login"))

    def _studio_context(self, request: HttpRequest) -> contextlib.AbstractContextManager:
        """Resolve the admin studio once per request and enter its scope."""
        user = request.user
        request.admin_membership = None
        request.admin_studio = None
        if not (user.is_authenticated and user.is_active):
            return contextlib.nullcontext()
        if user.is_superuser:
            return unscoped()
        memberships = list(selectors.memberships_of(user))
        if not memberships:
            return contextlib.nullcontext()
        chosen = request.session.get(SESSION_KEY)
        membership = next((m for m in memberships if str(m.studio_id) == chosen), memberships[0])
        request.admin_memberships = memberships
        request.admin_membership = membership
        request.admin_studio = membership.studio
        stack = contextlib.ExitStack()
        stack.enter_context(studio_scope(membership.studio))
        # Staff read and type times in their studio's zone: lists, forms,
        # the date drill-down (it groups by the active zone's days).
        stack.enter_context(timezone.override(membership.studio.timezone))
        return stack

    def admin_view(self, view: Any, cacheable: bool = False) -> Any:
        inner = super().admin_view(view, cacheable)

        @functools.wraps(inner)
        def scoped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            with self._studio_context(request):
                response = inner(request, *args, **kwargs)
                # Render inside the scope: templates may follow relations.
                if hasattr(response, "render") and not getattr(response, "is_rendered", True):
                    response.render()
                return response

        return scoped

    def get_urls(self) -> list[Any]:
        return [path("switch-studio/", self.admin_view(self.switch_studio), name="switch-studio"), *super().get_urls()]

    @staticmethod
    @require_POST
    def switch_studio(request: HttpRequest) -> HttpResponse:
        wanted = request.POST.get("studio", "")
        if any(str(m.studio_id) == wanted for m in getattr(request, "admin_memberships", [])):
            request.session[SESSION_KEY] = wanted
        else:
            messages.error(request, "You are not a member of that studio.")
        target = request.POST.get("next", "")
        if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
            target = reverse("admin:index")
        return HttpResponseRedirect(target)

    def each_context(self, request: HttpRequest) -> dict[str, Any]:
        ctx = super().each_context(request)
        ctx["admin_studio"] = getattr(request, "admin_studio", None)
        ctx["admin_memberships"] = getattr(request, "admin_memberships", [])
        ctx["admin_timezone"] = timezone.get_current_timezone_name()
        studio = ctx["admin_studio"]
        ctx["admin_notices"] = [text for provider in NOTICES for text in provider(request, studio)] if studio else []
        return ctx
