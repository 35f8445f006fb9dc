"""The client portal's flavour of the scoped endpoint (studio.api.base).

Here the tenant is the gallery named in the URL, which must be the gallery
of the caller's portal session (galleries.access), published and not
expired. The studio scope and the visitor as audit actor are entered for the
rest of the request. Objects of another gallery answer 404.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import models
from rest_framework import generics, viewsets
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny

from galleries import access
from studio import context
from studio.api.base import ScopedEndpoint
from studio.tenancy import studio_scope
from studio.throttling import SimpleRateThrottle

_SAFE = ("GET", "HEAD", "OPTIONS")


class _CSRF(SessionAuthentication):
    pass


class VisitorRateThrottle(SimpleRateThrottle):
    """Per visitor, not per address: a gallery page loads a hundred thumbnails
    through the media endpoint, and a family may share one address."""

    scope = "portal"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        visitor = getattr(view, "visitor", None)
        return self.cache_format % {"scope": self.scope, "ident": visitor.pk} if visitor else None


class PortalMixin(ScopedEndpoint, flavour=True):
    authentication_classes: ClassVar[list[Any]] = []
    permission_classes: ClassVar[list[Any]] = [AllowAny]
    throttle_classes: ClassVar[list[Any]] = [VisitorRateThrottle]

    @classmethod
    def check_endpoint_class(cls) -> None:
        if not getattr(cls, "model", None):
            raise TypeError(f"{cls.__name__} must declare its model.")

    def resolve(self, request: Any) -> None:
        if request.method not in _SAFE:
            # The portal rides on a session cookie: writes need the CSRF token.
            _CSRF().enforce_csrf(request)
        self.gallery, self.visitor = access.session_visitor(request._request, self.kwargs["gallery_pk"])  # type: ignore[attr-defined]
        self.studio = self.gallery.studio
        self.enter(studio_scope(self.studio))
        self.enter(context.acting_as(context.Actor.visitor(self.visitor)))
        access.touch(self.visitor)

    def tenant_queryset(self) -> models.QuerySet:
        assert self.model is not None
        return self.model._default_manager.filter(gallery=self.gallery)

    def get_serializer_context(self) -> dict[str, Any]:
        ctx = super().get_serializer_context()  # type: ignore[misc]
        ctx["gallery"] = getattr(self, "gallery", None)
        ctx["visitor"] = getattr(self, "visitor", None)
        ctx["studio"] = getattr(getattr(self, "gallery", None), "studio", None)
        return ctx


class PortalViewSet(PortalMixin, viewsets.GenericViewSet):
    abstract = True


class PortalAPIView(PortalMixin, generics.GenericAPIView):
    abstract = True
