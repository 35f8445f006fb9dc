"""The one way into studio-owned data over the API.

Every endpoint that serves a studio's rows derives from :class:`ScopedEndpoint`
through one of its *flavours*, which differ only in who the caller is and how
the tenant is found:

- staff (:class:`StudioViewSet`, :class:`StudioAPIView`, here): a signed-in
  member, the studio from ``/api/v1/studios/{studio_slug}/``, the role's
  scopes checked against the view's ``scope_map``;
- the client portal (``galleries.api.portal_base``): a portal session bound
  to one gallery;
- public booking (``bookings.api.public_views``): no sign-in, the studio
  from its public slug, or a booking from the secret token of its link.

The base, whatever the flavour:

1. resolves the tenant once, right after authentication and before throttles
   or the handler (``resolve()``, the flavour's hook); a caller who may not
   see it gets 404 (or 401 with no credentials), so studios cannot be probed;
2. enters the studio scope (``studio.tenancy``) for the rest of the request,
   and leaves it when the response is done;
3. answers 404 for an object id (or a parent id) that is not in the tenant,
   before any role check, for every role;
4. builds every queryset from the tenant (``tenant_queryset()``, the
   flavour's hook) and looks objects up inside it.

Concrete endpoints may not define ``get_queryset``, ``get_object``,
``get_permissions``, ``check_permissions``, ``initial``, ``dispatch`` or the
flavour hooks, anywhere in their MRO: ``__init_subclass__`` finds the class
that provides each name and refuses the endpoint unless that class is the
base or a registered flavour. So a mixin that overrides ``get_queryset``
placed before the base is refused at import time, not found in review.
Endpoints shape querysets through ``scope_queryset()`` instead.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, ExitStack
from typing import Any, ClassVar

from django.core.exceptions import ValidationError
from django.db import models
from django.shortcuts import get_object_or_404
from django.utils import timezone
from rest_framework import exceptions, generics, viewsets
from rest_framework.permissions import IsAuthenticated

from studio import selectors
from studio.api.permissions import HasStudioScope, validate_scope_map
from studio.models import Studio
from studio.sql_templates import Templates, instance, instance_columns
from studio.tenancy import studio_id_scope, studio_scope, unscoped

FLAVOUR_HOOKS = ("resolve", "tenant_queryset", "check_endpoint_class")
SEALED = ("get_queryset", "get_object", "get_permissions", "check_permissions", "initial", "dispatch", *FLAVOUR_HOOKS)

# The HTTP methods some endpoint of the API serves.
API_METHODS = frozenset({"get", "head", "options", "post", "put", "patch", "delete"})

# Classes allowed to provide sealed names: ScopedEndpoint and its flavours.
_SEAL_OWNERS: set[type] = set()


# The parent named in a nested URL (a gallery's photos: the gallery) is
# looked up on every request under it: compiled once per parent model.
_PARENTS = Templates(size=64)


def _parent_rows(values: dict[str, Any], *, model: type[models.Model]) -> models.QuerySet:
    with studio_id_scope(values["studio"]) as studio:
        return (
            model._default_manager.filter(studio=studio, pk=values["pk"])
            .order_by("pk")
            .values(*instance_columns(model))[:1]
        )


def _parent(model: type[models.Model], studio: Studio, pk: Any) -> models.Model | None:
    """The studio's ``model`` object ``pk``, or None."""
    try:
        pk = model._meta.pk.to_python(pk)  # type: ignore[union-attr]
    except ValidationError:
        return None
    rows = _PARENTS.rows(_parent_rows, {"studio": studio.pk, "pk": pk}, model=model)
    return instance(model, rows[0]) if rows else None


def require_in_scope(queryset: models.QuerySet, object_id: Any) -> None:
    """404 unless the id names a row of ``queryset``, before any role check:
    answering 403 first would tell a low-privileged caller the object exists."""
    if not queryset.filter(pk=object_id).exists():
        raise exceptions.NotFound()


def sealed_owner(cls: type, name: str) -> type | None:
    """The class in ``cls``'s MRO whose body provides ``name``."""
    return next((klass for klass in cls.__mro__ if name in klass.__dict__), None)


class ScopedEndpoint:
    """See the module docstring. ``abstract = True`` marks intermediate bases;
    ``class X(ScopedEndpoint, flavour=True)`` declares a flavour."""

    abstract: ClassVar[bool] = True
    model: ClassVar[type[models.Model] | None] = None
    # For nested routes, e.g. ("gallery", Gallery) for galleries/<gallery_pk>/...:
    # the parent is looked up inside the tenant (404 otherwise), kept as
    # self.<name>, and the queryset is filtered by it.
    parent_lookup: ClassVar[tuple[str, type[models.Model]] | None] = None
    lookup_value_converter = "uuid"
    # Answer 405 for an undeclared method before resolving the tenant.
    method_check_first: ClassVar[bool] = True

    studio: Studio

    def __init_subclass__(cls, flavour: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if flavour:
            _SEAL_OWNERS.add(cls)
        leaks = [
            f"{name} (from {owner.__qualname__})"
            for name in SEALED
            if (owner := sealed_owner(cls, name)) is not None and owner not in _SEAL_OWNERS
        ]
        if leaks:
            raise TypeError(
                f"{cls.__qualname__} overrides {', '.join(leaks)}: tenant scoping lives in ScopedEndpoint and "
                "its flavours; shape querysets with scope_queryset() instead."
            )
        if flavour or cls.__dict__.get("abstract", False):
            return
        cls.check_endpoint_class()

    # -- flavour hooks -------------------------------------------------------------
    @classmethod
    def check_endpoint_class(cls) -> None:
        """Refuse a concrete endpoint class that lacks what the flavour needs."""

    def resolve(self, request: Any) -> None:
        """Authenticate the caller for this flavour, find the tenant, set
        ``self.studio`` and enter its scope with ``self.enter()``; raise
        NotFound (or NotAuthenticated) when the caller may not see it."""
        raise NotImplementedError

    def tenant_manager(self) -> models.Manager:
        """The manager rows are read through, before the tenant filter: an
        endpoint may choose another of the model's managers (one that also
        sees rows the default hides), never skip the studio filter."""
        assert self.model is not None
        return self.model._default_manager

    def tenant_queryset(self) -> models.QuerySet:
        """Every row of ``self.model`` the tenant owns."""
        return self.tenant_manager().filter(studio=self.studio)

    # -- request lifecycle -----------------------------------------------------------
    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        with ExitStack() as stack:
            self._scope_stack = stack
            return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]

    def enter(self, manager: AbstractContextManager) -> Any:
        """Enter a context (a studio scope, an audit actor) until the response is done."""
        return self._scope_stack.enter_context(manager)

    def initial(self, request: Any, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]

    def get_permissions(self) -> list[Any]:
        return super().get_permissions()  # type: ignore[misc]

    def check_permissions(self, request: Any) -> None:
        # DRF calls this right after authentication: the first moment the
        # caller is known, and before throttling or the handler. A method the
        # endpoint does not serve answers 405 first, as routing would: 401 or
        # 403 would suggest that a session could make it work. It says
        # nothing about the tenant. Flavours that hide the tenant from
        # non-members behind 404 whatever the method (staff) keep that for
        # the methods the API uses, and answer 405 once the caller is known.
        method = request.method.lower()
        undeclared = method not in self.http_method_names or not hasattr(self, method)  # type: ignore[attr-defined]
        if undeclared and (self.method_check_first or method not in API_METHODS):
            self.http_method_not_allowed(request)  # type: ignore[attr-defined]
        self.resolve(request)
        # The request's log line is written after the studio scope closed:
        # leave it the studio this request was resolved to (staff or portal).
        request._request.log_studio = self.studio.slug
        # Times are the studio's: instants leave with its UTC offset (the same
        # instant, read as its staff and clients read it), and a time given
        # without an offset (where a field accepts one) is read in its zone.
        self.enter(timezone.override(self.studio.timezone))
        if self.parent_lookup is not None:
            name, parent_model = self.parent_lookup
            parent = _parent(parent_model, self.studio, self.kwargs[f"{name}_pk"])  # type: ignore[attr-defined]
            if parent is None:
                raise exceptions.NotFound()
            setattr(self, name, parent)
        if "pk" in self.kwargs and self.model is not None:  # type: ignore[attr-defined]
            require_in_scope(self.get_queryset(), self.kwargs["pk"])  # type: ignore[attr-defined]
        super().check_permissions(request)  # type: ignore[misc]

    # -- data ------------------------------------------------------------------------
    def scope_queryset(self, queryset: models.QuerySet) -> models.QuerySet:
        """Hook for select_related/annotations. Receives an already-scoped queryset."""
        return queryset

    def get_queryset(self) -> models.QuerySet:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request
            with unscoped():
                return self.model._default_manager.none()  # type: ignore[union-attr]
        queryset = self.tenant_queryset()
        if self.parent_lookup is not None:
            name = self.parent_lookup[0]
            queryset = queryset.filter(**{name: getattr(self, name)})
        return self.scope_queryset(queryset)

    def get_object(self) -> Any:
        queryset = self.filter_queryset(self.get_queryset())  # type: ignore[attr-defined]
        obj = get_object_or_404(queryset, pk=self.kwargs["pk"]) if "pk" in self.kwargs else queryset.get()  # type: ignore[attr-defined]
        self.check_object_permissions(self.request, obj)  # type: ignore[attr-defined]
        return obj


_SEAL_OWNERS.add(ScopedEndpoint)


class StudioScopedMixin(ScopedEndpoint, flavour=True):
    """The staff flavour: a signed-in member of the studio in the URL, whose
    role must hold the scope the view declares for the method."""

    scope_map: ClassVar[dict[str, str]] = {}
    action_scopes: ClassVar[dict[str, str]] = {}
    # A non-member gets 404 for every method (tests/test_meta.py); members
    # get DRF's 405 for a method the endpoint lacks (HasStudioScope lets it through).
    method_check_first: ClassVar[bool] = False
    membership: Any

    @classmethod
    def check_endpoint_class(cls) -> None:
        if not cls.scope_map and not cls.action_scopes:
            raise TypeError(f"{cls.__name__} must declare scope_map (HTTP method -> scope).")
        if not getattr(cls, "model", None):
            raise TypeError(f"{cls.__name__} must declare the model it serves.")
        validate_scope_map(cls)

    def get_permissions(self) -> list[Any]:
        return [IsAuthenticated(), HasStudioScope()]

    def resolve(self, request: Any) -> None:
        if not (request.user and request.user.is_authenticated):
            self.permission_denied(request)  # type: ignore[attr-defined]  # 401
        membership = selectors.membership_in(request.user, self.kwargs["studio_slug"])  # type: ignore[attr-defined]
        if membership is None:
            raise exceptions.NotFound("No such studio.")
        self.membership = membership
        self.studio = membership.studio
        self.enter(studio_scope(self.studio))

    def tenant_queryset(self) -> models.QuerySet:
        if self.model is Studio:
            return Studio.objects.filter(pk=self.studio.pk)
        return super().tenant_queryset()

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
