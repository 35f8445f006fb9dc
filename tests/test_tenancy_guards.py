"""Tenancy guards without holes.

- Sealing looks at the whole MRO: a mixin that overrides ``get_queryset``
  placed before the base is refused when the class is created, for every
  flavour of the scoped endpoint (staff, portal, public booking).
- Every API endpoint that serves studio-owned data derives from the one
  scoped-endpoint base, and its sealed methods come from the base or a
  declared flavour.
- Bulk writes get the check that ``save()`` has, for every studio-owned
  model: a foreign row in ``bulk_create``/``bulk_update``, an ``update()``
  that moves rows to another studio and deleting a foreign row all raise.
  Under ``unscoped()`` they act across studios, as documented.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import models

from audit.models import AppendOnlyError, AuditEvent
from bookings.api.public_views import ClientBookingView, PublicStudioView
from galleries.api.portal_base import PortalAPIView, PortalMixin, PortalViewSet
from galleries.models import Gallery
from studio.api.base import _SEAL_OWNERS, SEALED, ScopedEndpoint, StudioAPIView, StudioScopedMixin, StudioViewSet
from studio.models import Membership, Studio
from studio.tenancy import CrossStudioWrite, NoStudioScope, studio_scope, unscoped
from teams.models import Team
from tests import factories
from tests.test_meta import PORTAL_ENTRY_VIEWS, PUBLIC_VIEWS, ROUTES, studio_owned_models

FLAVOURS = {StudioScopedMixin, PortalMixin, PublicStudioView, ClientBookingView}
BASES = [StudioViewSet, StudioAPIView, PortalViewSet, PortalAPIView, PublicStudioView, ClientBookingView]
# What a concrete endpoint of each base must declare to be accepted at all.
REQUIRED = {
    StudioViewSet: {"model": Team, "scope_map": {"GET": "member:read"}},
    StudioAPIView: {"model": Studio, "scope_map": {"GET": "studio:read"}},
    PortalViewSet: {"model": Gallery},
    PortalAPIView: {"model": Gallery},
    PublicStudioView: {},
    ClientBookingView: {},
}


def _leak(self: Any, *args: Any, **kwargs: Any) -> Any:
    return Team._base_manager.all()  # every studio's rows


# --- sealing ----------------------------------------------------------------------------------


def test_the_flavours_are_exactly_the_reviewed_ones():
    """A new flavour may define the sealed hooks: it must be added here on purpose."""
    assert {ScopedEndpoint, *FLAVOURS} == _SEAL_OWNERS


@pytest.mark.parametrize("base", BASES, ids=lambda b: b.__name__)
def test_a_concrete_endpoint_of_each_flavour_is_accepted(base):
    assert issubclass(type("Fine", (base,), dict(REQUIRED[base])), ScopedEndpoint)


@pytest.mark.parametrize("name", SEALED)
@pytest.mark.parametrize("base", BASES, ids=lambda b: b.__name__)
def test_a_leaky_mixin_before_the_base_is_refused_at_class_creation(base, name):
    leaky_mixin = type("LeakyMixin", (), {name: _leak})
    with pytest.raises(TypeError, match=f"{name} \\(from LeakyMixin\\)"):
        type("Leaky", (leaky_mixin, base), dict(REQUIRED[base]))


@pytest.mark.parametrize("name", SEALED)
@pytest.mark.parametrize("base", BASES, ids=lambda b: b.__name__)
def test_an_override_in_the_class_body_is_refused(base, name):
    with pytest.raises(TypeError, match=name):
        type("Leaky", (base,), {**REQUIRED[base], name: _leak})


def test_the_mixin_of_the_issue_is_refused():
    """The reproduction: before, this class was accepted and listed every studio's teams."""

    class EveryStudiosTeams:
        def get_queryset(self) -> models.QuerySet:
            with unscoped():
                return Team.objects.all()

    with pytest.raises(TypeError, match="get_queryset"):

        class TeamLeak(EveryStudiosTeams, StudioViewSet):
            model = Team
            scope_map = {"GET": "member:read"}


def test_a_mixin_after_the_base_cannot_take_over():
    """Placed after the base in the bases, a mixin comes after it in the MRO:
    the base's methods win, so nothing leaks and nothing needs refusing."""

    class LateMixin:
        get_queryset = _leak

    class Late(StudioViewSet, LateMixin):
        model = Team
        scope_map = {"GET": "member:read"}

    assert Late.get_queryset is ScopedEndpoint.get_queryset


SCOPED_ROUTES = [
    r
    for r in ROUTES
    if r.is_studio_route
    or (r.is_portal_route and r.view.__name__ not in PORTAL_ENTRY_VIEWS)
    or (r.path.startswith("api/v1/public/") and r.view.__name__ != "StripeWebhookView")
]


def test_the_route_walk_sees_every_flavour():
    flavours = {next(f for f in FLAVOURS if issubclass(r.view, f)) for r in SCOPED_ROUTES}
    assert flavours == FLAVOURS
    assert {r.view.__name__ for r in ROUTES if r.path.startswith("api/v1/public/")} <= set(PUBLIC_VIEWS)


@pytest.mark.parametrize("route", SCOPED_ROUTES, ids=str)
def test_every_scoped_route_uses_the_one_base_and_its_sealed_methods(route):
    assert issubclass(route.view, ScopedEndpoint), f"{route} must derive from a ScopedEndpoint flavour"
    for name in SEALED:
        owner = next(k for k in route.view.__mro__ if name in k.__dict__)
        assert owner in _SEAL_OWNERS, f"{route}: {name} comes from {owner.__qualname__}"


# --- bulk writes ---------------------------------------------------------------------------------


def _copy(obj: models.Model) -> models.Model:
    """An unsaved row with ``obj``'s values and a new primary key."""
    model = type(obj)
    values = {f.attname: getattr(obj, f.attname) for f in model._meta.concrete_fields if not f.primary_key}
    return model(**values)


def _a_field(model: type[models.Model]) -> str:
    return next(f.name for f in model._meta.concrete_fields if not f.primary_key and f.name != "studio")


STUDIO_OWNED = studio_owned_models()


@pytest.mark.django_db
@pytest.mark.parametrize("model", STUDIO_OWNED, ids=lambda m: m._meta.label)
def test_a_foreign_bulk_write_raises_for_every_studio_owned_model(model, studio, other_studio):
    foreign = factories.FACTORIES[model](other_studio)
    with studio_scope(studio):
        with pytest.raises(CrossStudioWrite):
            model.objects.bulk_create([_copy(foreign)])
        with pytest.raises(CrossStudioWrite):
            model.objects.bulk_update([foreign], [_a_field(model)])
        # The audit log refuses every update anyway (append-only).
        refused = (CrossStudioWrite, AppendOnlyError) if model is AuditEvent else CrossStudioWrite
        with pytest.raises(refused):
            model.objects.all().update(studio=other_studio)
        with pytest.raises(refused):
            model.objects.all().update(studio_id=other_studio.pk)
    with pytest.raises(NoStudioScope):
        model.objects.bulk_create([_copy(foreign)])


@pytest.mark.django_db
def test_bulk_writes_in_the_scope_of_their_own_studio_still_work(studio, other_studio):
    with studio_scope(studio):
        created = Team.objects.bulk_create([Team(studio=studio, name="A"), Team(studio=studio, name="B")])
        for team in created:
            team.description = "renamed"
        assert Team.objects.bulk_update(created, ["description"]) == 2
        assert Team.objects.filter(description="renamed").count() == 2
        assert Team.objects.all().update(studio=studio) == 2


@pytest.mark.django_db
def test_a_mixed_bulk_create_writes_nothing(studio, other_studio):
    with studio_scope(studio), pytest.raises(CrossStudioWrite):
        Team.objects.bulk_create([Team(studio=studio, name="mine"), Team(studio=other_studio, name="theirs")])
    with unscoped():
        assert not Team.objects.filter(name__in=["mine", "theirs"]).exists()


@pytest.mark.django_db
def test_deleting_or_saving_a_foreign_row_raises(studio, other_studio):
    team = factories.FACTORIES[Team](other_studio)
    with studio_scope(studio):
        with pytest.raises(CrossStudioWrite):
            team.delete()
        with pytest.raises(CrossStudioWrite):
            team.save()
    with unscoped():
        assert Team.objects.filter(pk=team.pk).exists()


@pytest.mark.django_db
def test_update_and_delete_in_a_scope_only_reach_its_own_rows(studio, other_studio):
    mine, theirs = factories.FACTORIES[Team](studio), factories.FACTORIES[Team](other_studio)
    with studio_scope(studio):
        assert Team.objects.all().update(description="touched") == 1
        Team.objects.all().delete()
    with unscoped():
        assert not Team.objects.filter(pk=mine.pk).exists()
        survivor = Team.objects.get(pk=theirs.pk)
    assert survivor.description != "touched"


@pytest.mark.django_db
def test_unscoped_update_and_delete_act_across_studios_as_documented(studio, other_studio):
    """The decision for the escape hatch: it reaches exactly the rows the
    queryset names, whichever studio they belong to (platform commands,
    superuser admin). Bulk writes under it are not checked either."""
    a, b = factories.FACTORIES[Team](studio), factories.FACTORIES[Team](other_studio)
    with unscoped():
        assert Team.objects.filter(pk__in=[a.pk, b.pk]).update(description="platform") == 2
        created = Team.objects.bulk_create([Team(studio=studio, name="x"), Team(studio=other_studio, name="y")])
        assert {t.studio_id for t in created} == {studio.pk, other_studio.pk}
        Team.objects.filter(pk__in=[a.pk, b.pk]).delete()
        assert not Team.objects.filter(pk__in=[a.pk, b.pk]).exists()


@pytest.mark.django_db
def test_membership_moves_between_studios_are_refused(studio, other_studio, owner):
    with studio_scope(studio), pytest.raises(CrossStudioWrite):
        Membership.objects.filter(pk=owner.pk).update(studio=other_studio)
    with unscoped():
        assert Membership.objects.get(pk=owner.pk).studio_id == studio.pk
