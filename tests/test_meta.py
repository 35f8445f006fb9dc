"""Meta-tests: they enumerate the URL resolver and the model registry, so a new
endpoint or model is tested by them without anyone remembering to.

- every model with a ``studio`` foreign key uses the fail-closed manager and
  has a factory (so the cross-studio walk below can build one);
- every API route under /api/v1/studios/{studio_slug}/ is a studio-scoped view;
- every such route answers 404 to every role of studio A for studio B's
  objects, and for studio B's slug;
- every mutating API endpoint writes an audit event (each needs a case in
  MUTATION_CASES: a new endpoint without one fails here).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.apps import apps
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from audit.models import AuditEvent
from studio.api.base import StudioScopedMixin
from studio.models import Studio
from studio.tenancy import StudioOwnedModel, StudioScopedManager, studio_scope, unscoped
from teams.models import Membership
from teams.roles import Role
from tests import factories

OUR_APPS = {"studio", "teams", "audit", "galleries", "bookings"}
# Models that are deliberately not studio-owned, with the reason.
PLATFORM_MODELS = {
    "studio.User": "a person can belong to several studios",
    "studio.Studio": "the tenant itself",
    "studio.ApiToken": "personal, acts through the user's memberships",
    "audit.AuditChainHead": "keyed by chain; read only by the audit writer under its lock",
}
# API views that are not studio-owned resources, with the reason.
USER_LEVEL_VIEWS = {
    "MeView": "the caller's own profile",
    "ApiTokenViewSet": "the caller's own tokens (queryset filtered by user)",
    "StudioListView": "lists the caller's memberships' studios; creates a studio",
    "InvitationAcceptView": "the token names the studio; checked in the service",
}
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


# --- enumeration helpers ---------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    path: str  # e.g. api/v1/studios/<slug:studio_slug>/members/<uuid:pk>/
    name: str
    view: type
    methods: tuple[str, ...]
    actions: tuple[tuple[str, str], ...] = ()  # (METHOD, viewset action)

    @property
    def is_studio_route(self) -> bool:
        return "<slug:studio_slug>" in self.path

    @property
    def has_object(self) -> bool:
        return "<uuid:pk>" in self.path

    def url(self, *, studio_slug: str = "", pk: Any = None) -> str:
        url = "/" + self.path.replace("<slug:studio_slug>", studio_slug).replace("<uuid:pk>", str(pk))
        leftover = re.findall(r"<[^>]+>", url)
        assert not leftover, f"{self.name}: teach test_meta about path parameters {leftover}"
        return url

    def __str__(self) -> str:
        return f"{self.name} {self.path}"


def _methods(pattern: URLPattern) -> tuple[str, ...]:
    callback = pattern.callback
    actions = getattr(callback, "actions", None)
    if actions:
        return tuple(sorted(m.upper() for m in actions))
    cls = callback.view_class
    return tuple(sorted(m.upper() for m in cls.http_method_names if m not in ("head", "options") and hasattr(cls, m)))


def api_routes() -> list[Route]:
    routes: list[Route] = []

    def walk(patterns: list[Any], prefix: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
            else:
                path = prefix + str(pattern.pattern)
                if path.startswith("api/v1/"):
                    view = getattr(pattern.callback, "cls", None) or pattern.callback.view_class
                    actions = tuple(
                        (m.upper(), a) for m, a in (getattr(pattern.callback, "actions", None) or {}).items()
                    )
                    routes.append(Route(path, pattern.name or "", view, _methods(pattern), actions))

    walk(get_resolver().url_patterns, "")
    return routes


ROUTES = api_routes()
STUDIO_ROUTES = [r for r in ROUTES if r.is_studio_route]


def studio_owned_models() -> list[type]:
    found = []
    for model in apps.get_models():
        if model._meta.app_label not in OUR_APPS:
            continue
        field = next((f for f in model._meta.fields if f.name == "studio"), None)
        if field is not None and field.related_model is Studio:
            found.append(model)
    return found


def test_enumeration_sees_the_api() -> None:
    # Guards the guards: if the walk found nothing, every test below would pass vacuously.
    assert len(STUDIO_ROUTES) >= 8
    assert {"member-detail", "team-list", "invitation-detail", "audit-event-list"} <= {r.name for r in ROUTES}
    assert len(studio_owned_models()) >= 5


# --- models -------------------------------------------------------------------------------


@pytest.mark.parametrize("model", studio_owned_models(), ids=lambda m: m._meta.label)
def test_studio_owned_model_fails_closed(model: type) -> None:
    assert issubclass(model, StudioOwnedModel), f"{model._meta.label} must derive from StudioOwnedModel"
    assert isinstance(model._default_manager, StudioScopedManager)
    assert isinstance(model.objects, StudioScopedManager)
    assert model in factories.FACTORIES, f"add a factory for {model._meta.label} to tests/factories.py"


def test_every_model_is_studio_owned_or_declared_platform_wide() -> None:
    owned = set(studio_owned_models())
    for model in apps.get_models():
        if model._meta.app_label in OUR_APPS and model not in owned:
            through_auto = model._meta.auto_created
            assert through_auto or model._meta.label in PLATFORM_MODELS, (
                f"{model._meta.label} has no studio foreign key: make it studio-owned or justify it in PLATFORM_MODELS"
            )


# --- views ---------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_api_view_is_studio_scoped_or_declared_user_level(route: Route) -> None:
    if route.is_studio_route:
        assert issubclass(route.view, StudioScopedMixin), f"{route} must derive from StudioViewSet/StudioAPIView"
    else:
        assert route.view.__name__ in USER_LEVEL_VIEWS, f"{route} is neither studio-scoped nor declared user-level"


# --- cross-studio walk --------------------------------------------------------------------


@pytest.fixture
def two_studios(db) -> tuple[Studio, Studio, dict[str, APIClient], APIClient]:
    """Studio A with one client per role, studio B with its owner."""
    studio_a, studio_b = factories.studio(), factories.studio()
    clients: dict[str, APIClient] = {}
    for role in Role.values:
        membership = factories.owner_membership(studio_a) if role == Role.OWNER else factories.member(studio_a, role)
        clients[role] = _token_client(membership.user)
    return studio_a, studio_b, clients, _token_client(factories.owner_membership(studio_b).user)


def _token_client(user: Any) -> APIClient:
    from studio import context, services

    with context.acting_as(factories.TEST_ACTOR):
        _, raw = services.api_token_create(user=user, name="meta")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def _call(client: APIClient, method: str, url: str) -> Any:
    return getattr(client, method.lower())(url, data={}, format="json")


@pytest.mark.parametrize("route", STUDIO_ROUTES, ids=str)
def test_other_studios_objects_answer_404_for_every_role(route: Route, two_studios) -> None:
    studio_a, studio_b, clients, owner_b = two_studios
    if route.has_object:
        foreign = factories.FACTORIES[route.view.model](studio_b)
        url = route.url(studio_slug=studio_a.slug, pk=foreign.pk)
        # Sanity: the object is real, its own studio's owner can read it.
        if "GET" in route.methods:
            assert owner_b.get(route.url(studio_slug=studio_b.slug, pk=foreign.pk)).status_code == 200
    else:
        url = route.url(studio_slug=studio_b.slug)
    for role, client in clients.items():
        for method in route.methods:
            response = _call(client, method, url)
            assert response.status_code == 404, f"{role} {method} {url} answered {response.status_code}"
            assert response.json()["error"]["code"] == "NOT_FOUND"
    if route.has_object:
        # Studio B's slug with its own object, seen from studio A's members.
        for role, client in clients.items():
            response = client.get(route.url(studio_slug=studio_b.slug, pk=foreign.pk))
            assert response.status_code == 404, role


@pytest.mark.parametrize("route", STUDIO_ROUTES, ids=str)
def test_anonymous_gets_401(route: Route, two_studios) -> None:
    studio_a = two_studios[0]
    url = route.url(studio_slug=studio_a.slug, pk=studio_a.pk)
    for method in route.methods:
        response = _call(APIClient(), method, url)
        assert response.status_code == 401, f"{method} {url}"
        assert response.json()["error"]["code"] == "NOT_AUTHENTICATED"


# --- every mutation is audited -----------------------------------------------------------------


@dataclass
class Env:
    studio: Studio
    owner: Membership
    client: APIClient


def _member(env: Env, role: str = Role.VIEWER) -> Membership:
    return factories.member(env.studio, role)


def _studio_url(env: Env, route_name: str, pk: Any = None) -> str:
    route = next(r for r in ROUTES if r.name == route_name)
    return route.url(studio_slug=env.studio.slug, pk=pk)


def _api_token_detail(env: Env) -> tuple[APIClient, str, dict]:
    from studio import context, services

    with context.acting_as(factories.TEST_ACTOR):
        token, _ = services.api_token_create(user=env.owner.user, name="to revoke")
    return env.client, f"/api/v1/me/tokens/{token.pk}/", {}


def _invitation_accept(env: Env) -> tuple[APIClient, str, dict]:
    invitee = factories.user()
    _, raw = factories.invitation(env.studio, email=invitee.email)
    return _token_client(invitee), "/api/v1/invitations/accept/", {"token": raw}


# (route name, method) -> (env -> (client, url, body)), expected audit action
MUTATION_CASES: dict[tuple[str, str], tuple[Callable[[Env], tuple[APIClient, str, dict]], str]] = {
    ("studio-list", "POST"): (lambda e: (e.client, "/api/v1/studios/", {"name": "New Studio"}), "studio.created"),
    ("studio-detail", "PATCH"): (
        lambda e: (e.client, _studio_url(e, "studio-detail"), {"name": "R"}),
        "studio.updated",
    ),
    ("api-token-list", "POST"): (lambda e: (e.client, "/api/v1/me/tokens/", {"name": "ci"}), "api_token.created"),
    ("api-token-detail", "DELETE"): (_api_token_detail, "api_token.revoked"),
    ("member-detail", "PATCH"): (
        lambda e: (e.client, _studio_url(e, "member-detail", _member(e).pk), {"role": "assistant"}),
        "member.role_changed",
    ),
    ("member-detail", "DELETE"): (
        lambda e: (e.client, _studio_url(e, "member-detail", _member(e).pk), {}),
        "member.removed",
    ),
    ("team-list", "POST"): (lambda e: (e.client, _studio_url(e, "team-list"), {"name": "Crew"}), "team.created"),
    ("team-detail", "PUT"): (
        lambda e: (e.client, _studio_url(e, "team-detail", factories.team(e.studio).pk), {"name": "Renamed"}),
        "team.updated",
    ),
    ("team-detail", "PATCH"): (
        lambda e: (
            e.client,
            _studio_url(e, "team-detail", factories.team(e.studio).pk),
            {"members": [str(_member(e).pk)]},
        ),
        "team.updated",
    ),
    ("team-detail", "DELETE"): (
        lambda e: (e.client, _studio_url(e, "team-detail", factories.team(e.studio).pk), {}),
        "team.deleted",
    ),
    ("invitation-list", "POST"): (
        lambda e: (e.client, _studio_url(e, "invitation-list"), {"email": "new@example.com", "role": "viewer"}),
        "member.invited",
    ),
    ("invitation-detail", "DELETE"): (
        lambda e: (e.client, _studio_url(e, "invitation-detail", factories.invitation(e.studio)[0].pk), {}),
        "invitation.revoked",
    ),
    ("invitation-accept", "POST"): (_invitation_accept, "invitation.accepted"),
}

MUTATING_ENDPOINTS = sorted({(r.name, m) for r in ROUTES for m in r.methods if m in MUTATING})


def test_every_mutating_endpoint_has_an_audit_case() -> None:
    missing = [e for e in MUTATING_ENDPOINTS if e not in MUTATION_CASES]
    stale = [c for c in MUTATION_CASES if c not in MUTATING_ENDPOINTS]
    assert not missing, f"add MUTATION_CASES for {missing}"
    assert not stale, f"MUTATION_CASES names endpoints that no longer exist: {stale}"


def _all_events() -> list[AuditEvent]:
    with unscoped():
        return list(AuditEvent.objects.all())


@pytest.mark.parametrize("endpoint", MUTATING_ENDPOINTS, ids=lambda e: f"{e[1]} {e[0]}")
def test_mutating_endpoint_writes_an_audit_event(endpoint: tuple[str, str], studio, owner) -> None:
    make, expected_action = MUTATION_CASES[endpoint]
    env = Env(studio=studio, owner=owner, client=_token_client(owner.user))
    client, url, body = make(env)
    before = {e.pk for e in _all_events()}
    response = getattr(client, endpoint[1].lower())(url, data=body, format="json")
    assert response.status_code < 300, (url, response.status_code, response.content)
    new = [e for e in _all_events() if e.pk not in before]
    assert expected_action in {e.action for e in new}, f"{endpoint} wrote {[e.action for e in new]}"
    event = next(e for e in new if e.action == expected_action)
    assert event.request_id == response["X-Request-ID"]
    assert event.actor_type == "user"


def test_a_studio_route_scope_map_covers_its_methods() -> None:
    """Every method a studio route serves needs a scope, or it answers 403 to all."""
    for route in STUDIO_ROUTES:
        view = route.view
        actions = dict(route.actions)
        for method in route.methods:
            by_action = actions.get(method) in (getattr(view, "action_scopes", {}) or {})
            assert method in view.scope_map or by_action, f"{route}: no scope for {method}"


def test_factories_leave_no_scope_behind(studio) -> None:
    # A scope left active by a factory would make the 404 walk meaningless.
    from studio.tenancy import current_studio_or_none

    for make in factories.FACTORIES.values():
        make(studio)
        assert current_studio_or_none() is None
    with studio_scope(studio):
        assert current_studio_or_none() == studio
    assert current_studio_or_none() is None
