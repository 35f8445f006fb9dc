"""The one way into studio-owned data over the API.

Every endpoint under ``/api/v1/studios/{studio_slug}/`` derives from
:class:`StudioViewSet` (or :class:`StudioAPIView`). The base class:

1. authenticates, then resolves the studio from the URL once, together with
   the caller's membership. No membership (or no such studio) answers 404, so
   studios cannot be probed;
2. enters the studio scope for the rest of the request (``studio.tenancy``);
3. answers 404 for an object id that is not in this studio, for every role;
4. checks the scope the view declares for the method (``scope_map``) against
   the member's role (``studio.roles``): 403 when the role lacks it;
5. builds every queryset from the studio, and looks objects up as
   ``(studio, id)``.

Subclasses may not override ``get_queryset``, ``get_object``,
``get_permissions``, ``check_permissions``, ``initial`` or ``dispatch``
(``__init_subclass__`` refuses), so no endpoint can skip the filter. They
shape the queryset through ``scope_queryset()`` instead.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any, ClassVar

from django.db import models
from django.shortcuts import get_object_or_404
from rest_framework import exceptions, generics, viewsets
from rest_framework.permissions import IsAuthenticated

from studio import selectors
from studio.api.permissions import HasStudioScope, validate_scope_map
from studio.models import Studio
from studio.tenancy import studio_scope, unscoped

_SEALED = ("get_queryset", "get_object", "get_permissions", "check_permissions", "initial", "dispatch")


def require_in_scope(queryset: models.QuerySet, object_id: Any) -> None:
    """404 unless the id names a row of ``queryset``, before any role check:
    answering 403 first would tell a low-privileged caller the object exists."""
    if not queryset.filter(pk=object_id).exists():
        raise exceptions.NotFound()


def resolve_membership(user: Any, studio_slug: str) -> Any:
    """The caller's membership in the studio named by the URL, or 404."""
    membership = selectors.membership_in(user, studio_slug)
    if membership is None:
        raise exceptions.NotFound("No such studio.")
    return membership


class StudioScopedMixin:
    """See the module docstring. ``abstract = True`` marks intermediate bases."""

    abstract: ClassVar[bool] = True
    model: ClassVar[type[models.Model]]
    # For nested routes, e.g. ("gallery", Gallery) for galleries/<gallery_pk>/...:
    # the parent is looked up inside the studio (404 otherwise), kept as
    # self.<name>, and the queryset is filtered by it.
    parent_lookup: ClassVar[tuple[str, type[models.Model]] | None] = None
    scope_map: ClassVar[dict[str, str]] = {}
    action_scopes: ClassVar[dict[str, str]] = {}
    lookup_value_converter = "uuid"

    studio: Studio
    membership: Any

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        overridden = [name for name in _SEALED if name in cls.__dict__]
        if overridden:
            raise TypeError(
                f"{cls.__name__} overrides {', '.join(overridden)}: studio scoping lives in "
                "StudioScopedMixin; shape querysets with scope_queryset() instead."
            )
        if cls.__dict__.get("abstract", False):
            return
        if not cls.scope_map and not cls.action_scopes:
            raise TypeError(f"{cls.__name__} must declare scope_map (HTTP method -> scope).")
        if not getattr(cls, "model", None):
            raise TypeError(f"{cls.__name__} must declare the model it serves.")
        validate_scope_map(cls)

    # -- request lifecycle -------------------------------------------------------
    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        with ExitStack() as stack:
            self._scope_stack = stack
            return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]

    def get_permissions(self) -> list[Any]:
        return [IsAuthenticated(), HasStudioScope()]

    def check_permissions(self, request: Any) -> None:
        # DRF calls this right after authentication: the first moment the
        # caller is known, and before throttling or the handler.
        if not (request.user and request.user.is_authenticated):
            self.permission_denied(request)  # type: ignore[attr-defined]  # 401
        self.membership = resolve_membership(request.user, self.kwargs["studio_slug"])  # type: ignore[attr-defined]
        self.studio = self.membership.studio
        self._scope_stack.enter_context(studio_scope(self.studio))
        if self.parent_lookup is not None:
            name, parent_model = self.parent_lookup
            parent = parent_model._default_manager.filter(studio=self.studio, pk=self.kwargs[f"{name}_pk"]).first()  # type: ignore[attr-defined]
            if parent is None:
                raise exceptions.NotFound()
            setattr(self, name, parent)
        if "pk" in self.kwargs:  # type: ignore[attr-defined]
            require_in_scope(self.get_queryset(), self.kwargs["pk"])  # type: ignore[attr-defined]
        super().check_permissions(request)  # type: ignore[misc]

    # -- data ------------------------------------------------------------------------
    def scope_queryset(self, queryset: models.QuerySet) -> models.QuerySet:
        """Hook for select_related/annotations. Receives an already-scoped queryset."""
        return queryset

    def get_queryset(self) -> models.QuerySet:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request
            with unscoped():
                return self.model._default_manager.none()
        if self.model is Studio:
            queryset = Studio.objects.filter(pk=self.studio.pk)
        else:
            queryset = self.model._default_manager.filter(studio=self.studio)
        if self.parent_lookup is not None:
            name = self.parent_lookup[0]
            queryset = queryset.filter(**{name: getattr(self, name)})
        return self.scope_queryset(queryset)

    def get_object(self) -> Any:
        if self.model is Studio:
            obj = self.studio
        else:
            queryset = self.filter_queryset(self.get_queryset())  # type: ignore[attr-defined]
            obj = get_object_or_404(queryset, pk=self.kwargs["pk"])  # type: ignore[attr-defined]
        self.check_object_permissions(self.request, obj)  # type: ignore[attr-defined]
        return obj

    def get_serializer_context(self) -> dict[str, Any]:
        ctx = super().get_serializer_context()  # type: ignore[misc]
        ctx["studio"] = getattr(self, "studio", None)
        ctx["membership"] = getattr(self, "membership", None)
        return ctx


class StudioViewSet(StudioScopedMixin, viewsets.GenericViewSet):
    """Base of every studio-owned viewset. Add DRF mixins for the actions."""

    abstract = True


class StudioAPIView(StudioScopedMixin, generics.GenericAPIView):
    """Base of studio-level endpoints that are not a resource collection."""

    abstract = True
