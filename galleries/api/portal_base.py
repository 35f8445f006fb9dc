"""The one way into a gallery for its clients (the portal API).

Like the studio base view, it resolves the tenant once and owns the
queryset, the object lookup and the checks; subclasses cannot override them.
Here the tenant is the gallery named in the URL, which must be the gallery
of the caller's portal session (galleries.access), published and not
expired. The studio scope and the visitor as audit actor are entered for the
rest of the request. Objects of another gallery answer 404.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any, ClassVar

from django.db import models
from django.shortcuts import get_object_or_404
from rest_framework import generics, viewsets
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny
from rest_framework.throttling import SimpleRateThrottle

from galleries import access
from studio import context
from studio.api.base import require_in_scope
from studio.tenancy import studio_scope, unscoped

_SEALED = ("get_queryset", "get_object", "get_permissions", "check_permissions", "initial", "dispatch")
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


class PortalMixin:
    abstract: ClassVar[bool] = True
    model: ClassVar[type[models.Model]]
    authentication_classes: ClassVar[list[Any]] = []
    throttle_classes: ClassVar[list[Any]] = [VisitorRateThrottle]
    lookup_value_converter = "uuid"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        overridden = [name for name in _SEALED if name in cls.__dict__]
        if overridden:
            raise TypeError(f"{cls.__name__} overrides {', '.join(overridden)}: use scope_queryset().")
        if not cls.__dict__.get("abstract", False) and not getattr(cls, "model", None):
            raise TypeError(f"{cls.__name__} must declare its model.")

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        with ExitStack() as stack:
            self._scope_stack = stack
            return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]

    def get_permissions(self) -> list[Any]:
        return [AllowAny()]

    def check_permissions(self, request: Any) -> None:
        if request.method not in _SAFE:
            # The portal rides on a session cookie: writes need the CSRF token.
            _CSRF().enforce_csrf(request)
        self.gallery, self.visitor = access.session_visitor(request._request, self.kwargs["gallery_pk"])  # type: ignore[attr-defined]
        self._scope_stack.enter_context(studio_scope(self.gallery.studio))
        self._scope_stack.enter_context(context.acting_as(context.Actor.visitor(self.visitor)))
        access.touch(self.visitor)
        if "pk" in self.kwargs:  # type: ignore[attr-defined]
            require_in_scope(self.get_queryset(), self.kwargs["pk"])  # type: ignore[attr-defined]
        super().check_permissions(request)  # type: ignore[misc]

    def scope_queryset(self, queryset: models.QuerySet) -> models.QuerySet:
        return queryset

    def get_queryset(self) -> models.QuerySet:
        if getattr(self, "swagger_fake_view", False):
            with unscoped():
                return self.model._default_manager.none()
        return self.scope_queryset(self.model._default_manager.filter(gallery=self.gallery))

    def get_object(self) -> Any:
        obj = get_object_or_404(self.filter_queryset(self.get_queryset()), pk=self.kwargs["pk"])  # type: ignore[attr-defined]
        self.check_object_permissions(self.request, obj)  # type: ignore[attr-defined]
        return obj

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
