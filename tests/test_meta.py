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
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.apps import apps
from django.test import override_settings
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent
from galleries.models import Asset
from studio.api.base import StudioScopedMixin
from studio.models import Membership, Studio
from studio.roles import Role
from studio.tenancy import StudioOwnedModel, StudioScopedManager, studio_scope, unscoped
from tests import factories

OUR_APPS = {"studio", "teams", "audit", "galleries", "bookings"}
# Models that are deliberately not studio-owned, with the reason.
PLATFORM_MODELS = {
    "studio.User": "a person can belong to several studios",
    "studio.Studio": "the tenant itself",
    "studio.ApiToken": "personal, acts through the user's memberships",
    "audit.AuditChainHead": "keyed by chain; read only by the audit writer under its lock",
    "bookings.WebhookEvent": "deduplicates payment deliveries before their studio is known",
}
# API views that are not studio-owned resources, with the reason.
USER_LEVEL_VIEWS = {
    "MeView": "the caller's own profile",
    "ApiTokenViewSet": "the caller's own tokens (queryset filtered by user)",
    "StudioListView": "lists the caller's memberships' studios; creates a studio",
    "InvitationAcceptView": "the token names the studio; checked in the service",
}
# Public booking views: no sign-in; each resolves its studio from the URL
# (public_slug) or the booking from its secret token, and scopes to it.
PUBLIC_VIEWS = {
    "PublicServicesView": "a studio's active services",
    "PublicSlotsView": "free times of one of the studio's services",
    "PublicHoldView": "holds a slot for a client",
    "PublicContactView": "the contact form (honeypot, throttled)",
    "ClientBookingDetailView": "the client's booking, by its secret token",
    "ClientConfirmView": "confirms the client's own held booking",
    "ClientCheckoutView": "starts the client's deposit payment",
    "ClientCancelView": "the client cancels, inside the studio's window",
    "ClientRescheduleView": "the client moves, inside the studio's window",
    "StripeWebhookView": "Stripe's signed deliveries",
}
# Portal views that come before a portal session exists.
PORTAL_ENTRY_VIEWS = {
    "PortalAccessView": "opens a session from a gallery code (throttled)",
    "PortalOpenView": "opens a session from an unlisted/public gallery's link",
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
    def is_portal_route(self) -> bool:
        return self.path.startswith("api/v1/portal/")

    @property
    def has_object(self) -> bool:
        return "<uuid:pk>" in self.path

    @property
    def has_gallery(self) -> bool:
        return "<uuid:gallery_pk>" in self.path

    def url(self, *, studio_slug: str = "", pk: Any = None, gallery_pk: Any = None) -> str:
        url = "/" + self.path
        for token, value in (
            ("<slug:studio_slug>", studio_slug),
            ("<uuid:pk>", pk),
            ("<uuid:gallery_pk>", gallery_pk),
            ("<variant:variant>", "thumb"),
        ):
            url = url.replace(token, str(value))
        leftover = re.findall(r"<[^>]+>", url)
        assert not leftover, f"{self.name}: teach test_meta about path parameters {leftover}"
        return url

    def __str__(self) -> str:
        return f"{self.name} {self.path}"


def _methods(pattern: URLPattern) -> tuple[str, ...]:
    callback = pattern.callback
    actions = getattr(callback, "actions", None)
    if actions:
        allowed = callback.cls.http_method_names
        return tuple(sorted(m.upper() for m in actions if m in allowed))
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
PORTAL_ROUTES = [r for r in ROUTES if r.is_portal_route and r.view.__name__ not in PORTAL_ENTRY_VIEWS]


def gallery_of(obj: Any) -> Any:
    from galleries.models import Gallery

    return obj.pk if isinstance(obj, Gallery) else getattr(obj, "gallery_id", None)


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
    from galleries.api.portal_base import PortalMixin

    if route.is_studio_route:
        assert issubclass(route.view, StudioScopedMixin), f"{route} must derive from StudioViewSet/StudioAPIView"
    elif route.is_portal_route:
        assert issubclass(route.view, PortalMixin) or route.view.__name__ in PORTAL_ENTRY_VIEWS, route
    elif route.path.startswith("api/v1/public/"):
        assert route.view.__name__ in PUBLIC_VIEWS, f"{route} is a public view nobody declared"
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
        url = route.url(studio_slug=studio_a.slug, pk=foreign.pk, gallery_pk=gallery_of(foreign))
        # Sanity: the object is real, its own studio's owner can read it.
        if "GET" in route.methods:
            own = route.url(studio_slug=studio_b.slug, pk=foreign.pk, gallery_pk=gallery_of(foreign))
            assert owner_b.get(own).status_code in (200, 302), own
    elif route.has_gallery:
        from galleries.models import Gallery

        foreign = factories.FACTORIES[Gallery](studio_b)
        url = route.url(studio_slug=studio_a.slug, gallery_pk=foreign.pk)
    else:
        url = route.url(studio_slug=studio_b.slug)
    for role, client in clients.items():
        for method in route.methods:
            response = _call(client, method, url)
            assert response.status_code == 404, f"{role} {method} {url} answered {response.status_code}"
            assert response.json()["error"]["code"] == "NOT_FOUND"
    if route.has_object or route.has_gallery:
        # Studio B's slug with its own object, seen from studio A's members.
        pk = foreign.pk if route.has_object else None
        for role, client in clients.items():
            response = client.get(route.url(studio_slug=studio_b.slug, pk=pk, gallery_pk=gallery_of(foreign)))
            assert response.status_code == 404, role


@pytest.mark.parametrize("route", STUDIO_ROUTES, ids=str)
def test_anonymous_gets_401(route: Route, two_studios) -> None:
    studio_a = two_studios[0]
    url = route.url(studio_slug=studio_a.slug, pk=studio_a.pk, gallery_pk=studio_a.pk)
    for method in route.methods:
        response = _call(APIClient(), method, url)
        assert response.status_code == 401, f"{method} {url}"
        assert response.json()["error"]["code"] == "NOT_AUTHENTICATED"


# --- the portal: a visitor reaches only their own gallery ------------------------------------------


def portal_client(gallery: Any) -> APIClient:
    """A client with a portal session for ``gallery`` (published on the way)."""
    from galleries import services as gallery_services
    from studio import context

    if gallery.status != "published":
        with context.acting_as(factories.TEST_ACTOR), studio_scope(gallery.studio):
            gallery_services.gallery_publish(gallery=gallery)
    client = APIClient()
    response = client.post(
        "/api/v1/portal/access/", {"studio": gallery.studio.slug, "code": gallery.access_code}, format="json"
    )
    assert response.status_code == 200, response.content
    return client


@pytest.mark.parametrize("route", PORTAL_ROUTES, ids=str)
def test_portal_visitor_reaches_only_their_gallery(route: Route, db) -> None:
    from galleries.models import Gallery

    studio_a, studio_b = factories.studio(), factories.studio()
    mine = factories.gallery(studio_a)
    sibling = factories.gallery(studio_a)  # same studio, another client's gallery
    client = portal_client(mine)
    for other_studio in (studio_a, studio_b):
        other = factories.FACTORIES[Gallery](other_studio) if other_studio is studio_b else sibling
        portal_client(other)  # published, so only the session stands in the way
        for method in route.methods:
            response = _call(client, method, route.url(gallery_pk=other.pk, pk=other.pk))
            assert response.status_code == 401, f"{method} {route} for another gallery: {response.status_code}"
            assert response.json()["error"]["code"] == "PORTAL_SESSION_REQUIRED"
    if route.has_object:
        model = route.view.model
        for owner_studio, in_gallery in ((studio_b, None), (studio_a, sibling)):
            maker = factories.FACTORIES[model]
            foreign = maker(owner_studio) if in_gallery is None else _in_gallery(model, owner_studio, in_gallery)
            for method in route.methods:
                response = _call(client, method, route.url(gallery_pk=mine.pk, pk=foreign.pk))
                assert response.status_code == 404, f"{method} {route}: {response.status_code}"


def _in_gallery(model: type, studio: Studio, gallery: Any) -> Any:
    from galleries.models import Asset, Export, Folder

    if model is Asset:
        return factories.ready_asset(studio, gallery)
    if model is Folder:
        return factories.folder(studio, gallery)
    if model is Export:
        return factories.export(studio, gallery)
    raise AssertionError(f"teach _in_gallery about {model.__name__}")


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

# --- gallery cases ---


def _gurl(e: Env, gallery: Any, suffix: str = "") -> str:
    return f"/api/v1/studios/{e.studio.slug}/galleries/{gallery.pk}/{suffix}"


def _with_assets(e: Env, count: int = 2) -> tuple[Any, list[Any]]:
    gallery = factories.gallery(e.studio)
    return gallery, [factories.ready_asset(e.studio, gallery) for _ in range(count)]


def _binned(e: Env) -> Any:
    """A photo staff deleted: in the bin."""
    asset = factories.ready_asset(e.studio)
    with studio_scope(e.studio):
        Asset.with_deleted.filter(pk=asset.pk).update(deleted_at=timezone.now())
    return asset


def _portal(e: Env) -> tuple[APIClient, Any, list[Any]]:
    gallery, assets = _with_assets(e)
    return portal_client(gallery), gallery, assets


def _purl(gallery: Any, suffix: str = "") -> str:
    return f"/api/v1/portal/galleries/{gallery.pk}/{suffix}"


def _upload_complete(e: Env) -> tuple[APIClient, str, dict]:
    from tests.gallery_helpers import jpeg, post_to_target

    gallery = factories.gallery(e.studio)
    data = jpeg(64, 48)
    body = e.client.post(
        _gurl(e, gallery, "uploads/"),
        {"files": [{"filename": "a.jpg", "size": len(data), "content_type": "image/jpeg"}]},
        format="json",
    ).json()
    post_to_target(body["targets"][0], data)
    return e.client, _gurl(e, gallery, f"uploads/{body['batch']}/complete/"), {}


def _reopen(e: Env) -> tuple[APIClient, str, dict]:
    selection = factories.selection(e.studio)
    return e.client, _gurl(e, selection.gallery, "reopen-selection/"), {}


def _visitor_folder(client: APIClient, gallery: Any, assets: list[Any] = ()) -> str:
    """A folder of the portal visitor's own (staff folders are read-only to
    visitors), holding ``assets``; returns its id."""
    created = client.post(_purl(gallery, "folders/"), {"name": f"Mine {uuid.uuid4().hex[:6]}"}, format="json")
    assert created.status_code == 201, created.content
    folder_id = created.json()["id"]
    if assets:
        added = client.post(_purl(gallery, f"folders/{folder_id}/add/"), {"assets": _ids(assets)}, format="json")
        assert added.status_code < 300, added.content
    return folder_id


def _portal_folder(e: Env, suffix: str, body: Callable[[Any, list[Any], Any], dict]) -> tuple[APIClient, str, dict]:
    client, gallery, assets = _portal(e)
    folder = _visitor_folder(client, gallery)
    return client, _purl(gallery, f"folders/{folder}/{suffix}"), body(gallery, assets, folder)


def _staff_folder(e: Env, suffix: str, body: Callable[[Any, list[Any], Any], dict]) -> tuple[APIClient, str, dict]:
    gallery, assets = _with_assets(e)
    folder = factories.folder(e.studio, gallery)
    return e.client, _gurl(e, gallery, f"folders/{folder.pk}/{suffix}"), body(gallery, assets, folder)


def _ids(objects: list[Any]) -> list[str]:
    return [str(o.pk) for o in objects]


def _filed(e: Env, gallery: Any, assets: list[Any]) -> Any:
    from galleries import services as gallery_services
    from studio import context

    folder = factories.folder(e.studio, gallery)
    with context.acting_as(factories.TEST_ACTOR), studio_scope(e.studio):
        gallery_services.placements_add(folder=folder, assets=assets)
    return folder


def _portal_rated(e: Env) -> tuple[APIClient, str, dict]:
    client, gallery, assets = _portal(e)
    client.put(_purl(gallery, f"assets/{assets[0].pk}/rating/"), {"stars": 4}, format="json")
    return client, _purl(gallery, "selection/"), {}


def _moved(e: Env, portal: bool) -> tuple[APIClient, str, dict]:
    if portal:
        client, gallery, assets = _portal(e)
        source, target = _visitor_folder(client, gallery, assets), _visitor_folder(client, gallery)
        return client, _purl(gallery, f"folders/{source}/move/"), {"assets": _ids(assets), "to": target}
    gallery, assets = _with_assets(e)
    client, base = e.client, (lambda g, s="": _gurl(e, g, s))
    source, target = _filed(e, gallery, assets), factories.folder(e.studio, gallery)
    return client, base(gallery, f"folders/{source.pk}/move/"), {"assets": _ids(assets), "to": str(target.pk)}


GALLERY_CASES: dict[tuple[str, str], tuple[Callable[[Env], tuple[APIClient, str, dict]], str]] = {
    ("gallery-list", "POST"): (
        lambda e: (e.client, f"/api/v1/studios/{e.studio.slug}/galleries/", {"title": "Lee"}),
        "gallery.created",
    ),
    ("gallery-detail", "PUT"): (
        lambda e: (e.client, _gurl(e, factories.gallery(e.studio)), {"title": "Renamed"}),
        "gallery.updated",
    ),
    ("gallery-detail", "PATCH"): (
        lambda e: (e.client, _gurl(e, factories.gallery(e.studio)), {"pin": "1234"}),
        "gallery.updated",
    ),
    ("gallery-detail", "DELETE"): (lambda e: (e.client, _gurl(e, factories.gallery(e.studio)), {}), "gallery.deleted"),
    ("gallery-publish", "POST"): (
        lambda e: (e.client, _gurl(e, factories.gallery(e.studio), "publish/"), {}),
        "gallery.published",
    ),
    ("gallery-unpublish", "POST"): (
        lambda e: (e.client, _gurl(e, _published(e), "unpublish/"), {}),
        "gallery.unpublished",
    ),
    ("gallery-rotate-code", "POST"): (
        lambda e: (e.client, _gurl(e, factories.gallery(e.studio), "rotate-code/"), {}),
        "gallery.code_rotated",
    ),
    ("gallery-set-cover", "POST"): (
        lambda e: (lambda g, a: (e.client, _gurl(e, g, "set-cover/"), {"asset": str(a[0].pk)}))(*_with_assets(e, 1)),
        "gallery.cover_set",
    ),
    ("gallery-reopen-selection", "POST"): (_reopen, "selection.reopened"),
    ("gallery-regenerate", "POST"): (
        lambda e: (e.client, _gurl(e, _with_assets(e, 1)[0], "regenerate-derivatives/"), {}),
        "asset.regenerate_requested",
    ),
    ("gallery-send", "POST"): (
        lambda e: (e.client, _gurl(e, _published(e, client_email="client@example.com"), "send/"), {}),
        "gallery.sent",
    ),
    ("gallery-asset-detail", "DELETE"): (
        lambda e: (lambda a: (e.client, _gurl(e, a.gallery, f"assets/{a.pk}/"), {}))(factories.ready_asset(e.studio)),
        "asset.deleted",
    ),
    ("gallery-asset-restore", "POST"): (
        lambda e: (lambda a: (e.client, _gurl(e, a.gallery, f"assets/{a.pk}/restore/"), {}))(_binned(e)),
        "asset.restored_from_bin",
    ),
    ("gallery-asset-purge", "POST"): (
        lambda e: (lambda a: (e.client, _gurl(e, a.gallery, f"assets/{a.pk}/purge/"), {}))(_binned(e)),
        "asset.purged",
    ),
    ("gallery-upload-list", "POST"): (
        lambda e: (
            e.client,
            _gurl(e, factories.gallery(e.studio), "uploads/"),
            {"files": [{"filename": "a.jpg", "size": 1000, "content_type": "image/jpeg"}]},
        ),
        "upload.requested",
    ),
    ("gallery-upload-complete", "POST"): (_upload_complete, "upload.completed"),
    ("gallery-folder-list", "POST"): (
        lambda e: (e.client, _gurl(e, factories.gallery(e.studio), "folders/"), {"name": "Album"}),
        "folder.created",
    ),
    ("gallery-folder-detail", "PATCH"): (
        lambda e: (lambda f: (e.client, _gurl(e, f.gallery, f"folders/{f.pk}/"), {"name": "Renamed"}))(
            factories.folder(e.studio)
        ),
        "folder.updated",
    ),
    ("gallery-folder-detail", "DELETE"): (
        lambda e: (lambda f: (e.client, _gurl(e, f.gallery, f"folders/{f.pk}/"), {}))(factories.folder(e.studio)),
        "folder.deleted",
    ),
    ("gallery-folder-add-assets", "POST"): (
        lambda e: _staff_folder(e, "add/", lambda g, a, f: {"assets": _ids(a)}),
        "placements.added",
    ),
    ("gallery-folder-remove-assets", "POST"): (
        lambda e: _staff_folder(e, "remove/", lambda g, a, f: {"assets": _ids(a)}),
        "placements.removed",
    ),
    ("gallery-folder-move-assets", "POST"): (lambda e: _moved(e, portal=False), "placements.moved"),
    ("portal-access", "POST"): (
        lambda e: (lambda g: (APIClient(), "/api/v1/portal/access/", {"studio": e.studio.slug, "code": g.access_code}))(
            _published(e)
        ),
        "gallery.opened",
    ),
    ("portal-open", "POST"): (
        lambda e: (lambda g: (APIClient(), _purl(g, "open/"), {}))(_published(e, visibility="unlisted")),
        "gallery.opened",
    ),
    ("portal-asset-rating", "PUT"): (
        lambda e: (lambda c, g, a: (c, _purl(g, f"assets/{a[0].pk}/rating/"), {"stars": 5}))(*_portal(e)),
        "ratings.set",
    ),
    ("portal-asset-rating", "DELETE"): (
        lambda e: (lambda c, g, a: (c, _purl(g, f"assets/{a[0].pk}/rating/"), {}))(*_portal(e)),
        "ratings.cleared",
    ),
    ("portal-asset-ratings", "POST"): (
        lambda e: (
            lambda c, g, a: (c, _purl(g, "assets/ratings/"), {"ratings": [{"asset": str(x.pk), "stars": 2} for x in a]})
        )(*_portal(e)),
        "ratings.set",
    ),
    ("portal-asset-trash", "POST"): (
        lambda e: (lambda c, g, a: (c, _purl(g, "assets/trash/"), {"assets": _ids(a)}))(*_portal(e)),
        "assets.trashed",
    ),
    ("portal-asset-restore", "POST"): (
        lambda e: (lambda c, g, a: (c, _purl(g, "assets/restore/"), {"assets": _ids(a)}))(*_portal(e)),
        "assets.restored",
    ),
    ("portal-folder-list", "POST"): (
        lambda e: (lambda c, g, a: (c, _purl(g, "folders/"), {"name": "Favourites"}))(*_portal(e)),
        "folder.created",
    ),
    ("portal-folder-detail", "PATCH"): (
        lambda e: _portal_folder(e, "", lambda g, a, f: {"name": "Best"}),
        "folder.updated",
    ),
    ("portal-folder-detail", "DELETE"): (lambda e: _portal_folder(e, "", lambda g, a, f: {}), "folder.deleted"),
    ("portal-folder-reorder", "POST"): (
        lambda e: (lambda c, g, a: (c, _purl(g, "folders/reorder/"), {"folders": [_visitor_folder(c, g)]}))(
            *_portal(e)
        ),
        "folders.reordered",
    ),
    ("portal-folder-add-assets", "POST"): (
        lambda e: _portal_folder(e, "add/", lambda g, a, f: {"assets": _ids(a)}),
        "placements.added",
    ),
    ("portal-folder-remove-assets", "POST"): (
        lambda e: _portal_folder(e, "remove/", lambda g, a, f: {"assets": _ids(a)}),
        "placements.removed",
    ),
    ("portal-folder-move-assets", "POST"): (lambda e: _moved(e, portal=True), "placements.moved"),
    ("portal-folder-reorder-assets", "POST"): (
        lambda e: (
            lambda c, g, a: (
                c,
                _purl(g, f"folders/{_visitor_folder(c, g, a)}/reorder-assets/"),
                {"assets": _ids(a[::-1])},
            )
        )(*_portal(e)),
        "placements.reordered",
    ),
    ("portal-selection", "POST"): (_portal_rated, "selection.finalized"),
}
MUTATION_CASES.update(GALLERY_CASES)

# --- export cases ---


def _export_zip(e: Env) -> tuple[APIClient, str, dict]:
    return e.client, _gurl(e, _with_assets(e, 1)[0], "exports/"), {"kind": "zip"}


def _queued_export(e: Env) -> tuple[APIClient, str, dict]:
    export = factories.export(e.studio, run=False)
    return e.client, _gurl(e, export.gallery, f"exports/{export.pk}/cancel/"), {}


def _portal_export(e: Env, cancel: bool) -> tuple[APIClient, str, dict]:
    client, gallery, _ = _portal(e)
    if not cancel:
        return client, _purl(gallery, "exports/"), {"kind": "zip"}
    # Tests run in a transaction: the run task (queued on commit) never starts.
    created = client.post(_purl(gallery, "exports/"), {"kind": "zip"}, format="json")
    assert created.status_code == 201, created.content
    return client, _purl(gallery, f"exports/{created.json()['id']}/cancel/"), {}


EXPORT_CASES: dict[tuple[str, str], tuple[Callable[[Env], tuple[APIClient, str, dict]], str]] = {
    ("gallery-export-list", "POST"): (_export_zip, "export.requested"),
    ("gallery-export-cancel", "POST"): (_queued_export, "export.cancelled"),
    ("portal-export-list", "POST"): (lambda e: _portal_export(e, cancel=False), "export.requested"),
    ("portal-export-cancel", "POST"): (lambda e: _portal_export(e, cancel=True), "export.cancelled"),
}
MUTATION_CASES.update(EXPORT_CASES)

# --- people in photos (issue 13) ---


def _two_faced_person(e: Env) -> Any:
    """A person holding two clearly different faces (for merge and split)."""
    import numpy as np

    first = factories.face(e.studio, descriptor=np.zeros(128, np.float32))
    far = np.full(128, 0.2, np.float32)  # 2.26 apart: two people by any threshold
    factories.face(e.studio, factories.ready_asset(e.studio, first.gallery), person_=first.person, descriptor=far)
    return first.person


def _find_me_gallery(e: Env) -> tuple[APIClient, Any]:
    from galleries import services as gallery_services
    from studio import context

    gallery, assets = _with_assets(e, 1)
    with context.acting_as(factories.TEST_ACTOR), studio_scope(e.studio):
        gallery_services.studio_faces_enable(studio=e.studio, consent_text="We compare, then forget.")
        gallery_services.gallery_faces_set(gallery=gallery, faces_enabled=True, find_me_enabled=True)
    return portal_client(gallery), gallery


def _find_me(e: Env) -> tuple[APIClient, str, dict]:
    import base64

    from tests.test_faces import selfie_jpeg

    client, gallery = _find_me_gallery(e)
    return client, _purl(gallery, "find-me/"), {"selfie": base64.b64encode(selfie_jpeg()).decode()}


def _not_me(e: Env) -> tuple[APIClient, str, dict]:
    from galleries.models import Asset as AssetModel

    client, gallery = _find_me_gallery(e)
    with studio_scope(e.studio):
        asset = AssetModel.objects.filter(gallery=gallery).first()
    return client, _purl(gallery, "find-me/not-me/"), {"asset": str(asset.pk)}


FACE_CASES: dict[tuple[str, str], tuple[Callable[[Env], tuple[APIClient, str, dict]], str]] = {
    ("gallery-person-detail", "PATCH"): (
        lambda e: (lambda p: (e.client, _gurl(e, p.gallery, f"persons/{p.pk}/"), {"name": "Ada"}))(
            factories.person(e.studio)
        ),
        "person.updated",
    ),
    ("gallery-person-merge", "POST"): (
        lambda e: (
            lambda a: (lambda b: (e.client, _gurl(e, a.gallery, f"persons/{a.pk}/merge/"), {"into": str(b.pk)}))(
                factories.face(e.studio, factories.ready_asset(e.studio, a.gallery)).person
            )
        )(factories.person(e.studio)),
        "person.merged",
    ),
    ("gallery-person-split", "POST"): (
        lambda e: (lambda p: (e.client, _gurl(e, p.gallery, f"persons/{p.pk}/split/"), {}))(_two_faced_person(e)),
        "person.split",
    ),
    ("studio-face-settings", "PUT"): (
        lambda e: (e.client, _surl(e, "face-settings/"), {"enabled": True, "consent_text": "We compare, then forget."}),
        "faces.enabled",
    ),
    ("gallery-face-settings", "PUT"): (
        lambda e: (lambda g: (e.client, _gurl(e, g, "face-settings/"), {"find_me_enabled": False}))(
            _find_me_gallery(e)[1]
        ),
        "gallery.faces_changed",
    ),
    ("portal-find-me", "POST"): (_find_me, "find_me.searched"),
    ("portal-find-me-not-me", "POST"): (_not_me, "find_me.not_me"),
}
MUTATION_CASES.update(FACE_CASES)

# --- booking cases ---

WEBHOOK_SECRET = "whsec_meta_test"


def _surl(e: Env, suffix: str) -> str:
    return f"/api/v1/studios/{e.studio.slug}/{suffix}"


def _bookable(e: Env, **fields: Any) -> tuple[Any, Any]:
    """A service open every day, and a free start two or more days ahead."""
    from datetime import time, timedelta

    from django.utils import timezone

    from bookings import availability
    from bookings.models import WorkingHours

    service = factories.service(e.studio, **fields)
    with studio_scope(e.studio):
        if not WorkingHours.objects.exists():
            WorkingHours.objects.bulk_create(
                [WorkingHours(studio=e.studio, weekday=d, start_time=time(8), end_time=time(20)) for d in range(7)]
            )
        day = timezone.now().date() + timedelta(days=5)
        slots = availability.available_slots(service, day, day + timedelta(days=3))
    return service, slots[len(slots) // 2].start


def _held(e: Env, **fields: Any) -> tuple[Any, str]:
    from bookings import services as booking_services
    from studio import context

    service, start = _bookable(e, **fields)
    with context.acting_as(factories.TEST_ACTOR), studio_scope(e.studio):
        return booking_services.booking_hold(
            service=service, starts_at=start, client_name="C", client_email="c@example.com"
        )


def _confirmed(e: Env) -> tuple[Any, str]:
    from bookings import services as booking_services
    from studio import context

    booking, raw = _held(e)
    with context.acting_as(factories.TEST_ACTOR), studio_scope(e.studio):
        booking_services.booking_confirm(booking=booking)
    return booking, raw


def _client(raw: str, suffix: str) -> str:
    return f"/api/v1/public/bookings/{raw}/{suffix}"


def _other_start(e: Env, booking: Any) -> Any:
    from bookings import availability

    with studio_scope(e.studio):
        day = booking.starts_at.date()
        slots = availability.available_slots(booking.service, day, day, exclude=booking.pk)
    return next(s.start for s in slots if s.start != booking.starts_at)


def _stripe_webhook(e: Env) -> tuple[APIClient, str, dict]:
    import hashlib
    import hmac
    import time as clock

    from rest_framework.renderers import JSONRenderer

    from bookings.models import Payment

    booking, _ = _held(e, price=200, deposit=50)
    with studio_scope(e.studio):
        payment = Payment.objects.create(
            studio=e.studio, booking=booking, provider="stripe", provider_ref="cs_test_meta", amount=50, currency="USD"
        )
    body = {
        "id": "evt_meta_1",
        "object": "event",
        "type": "checkout.session.completed",
        "data": {
            "object": {
                "id": payment.provider_ref,
                "object": "checkout.session",
                "payment_status": "paid",
                "amount_total": 5000,
            }
        },
    }
    payload = JSONRenderer().render(body).decode()
    stamp = int(clock.time())
    signature = hmac.new(WEBHOOK_SECRET.encode(), f"{stamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    client = APIClient()
    client.credentials(HTTP_STRIPE_SIGNATURE=f"t={stamp},v1={signature}")
    return client, "/api/v1/public/payments/stripe/webhook/", body


def _enquiry(e: Env) -> Any:
    return factories.FACTORIES[_model("bookings.ContactSubmission")](e.studio)


def _model(label: str) -> Any:
    return apps.get_model(label)


def _config(e: Env, label: str, suffix: str, body: dict) -> tuple[APIClient, str, dict]:
    obj = factories.FACTORIES[_model(label)](e.studio)
    return e.client, _surl(e, f"{suffix}/{obj.pk}/"), body


BOOKING_CASES: dict[tuple[str, str], tuple[Callable[[Env], tuple[APIClient, str, dict]], str]] = {
    ("service-list", "POST"): (
        lambda e: (e.client, _surl(e, "services/"), {"name": "Portraits", "duration_minutes": 60}),
        "service.created",
    ),
    ("service-detail", "PUT"): (
        lambda e: _config(e, "bookings.Service", "services", {"name": "Renamed", "duration_minutes": 90}),
        "service.updated",
    ),
    ("service-detail", "PATCH"): (
        lambda e: _config(e, "bookings.Service", "services", {"price": "300.00"}),
        "service.updated",
    ),
    ("service-detail", "DELETE"): (lambda e: _config(e, "bookings.Service", "services", {}), "service.deleted"),
    ("working-hours-list", "POST"): (
        lambda e: (e.client, _surl(e, "working-hours/"), {"weekday": 2, "start_time": "09:00", "end_time": "17:00"}),
        "availability.changed",
    ),
    ("working-hours-detail", "PUT"): (
        lambda e: _config(
            e, "bookings.WorkingHours", "working-hours", {"weekday": 1, "start_time": "10:00", "end_time": "18:00"}
        ),
        "availability.changed",
    ),
    ("working-hours-detail", "PATCH"): (
        lambda e: _config(e, "bookings.WorkingHours", "working-hours", {"end_time": "16:00"}),
        "availability.changed",
    ),
    ("working-hours-detail", "DELETE"): (
        lambda e: _config(e, "bookings.WorkingHours", "working-hours", {}),
        "availability.changed",
    ),
    ("date-override-list", "POST"): (
        lambda e: (e.client, _surl(e, "date-overrides/"), {"date": "2031-12-24"}),
        "availability.changed",
    ),
    ("date-override-detail", "PUT"): (
        lambda e: _config(
            e,
            "bookings.DateOverride",
            "date-overrides",
            {"date": "2031-12-26", "start_time": "10:00", "end_time": "12:00"},
        ),
        "availability.changed",
    ),
    ("date-override-detail", "PATCH"): (
        lambda e: _config(e, "bookings.DateOverride", "date-overrides", {"date": "2031-12-27"}),
        "availability.changed",
    ),
    ("date-override-detail", "DELETE"): (
        lambda e: _config(e, "bookings.DateOverride", "date-overrides", {}),
        "availability.changed",
    ),
    ("time-off-list", "POST"): (
        lambda e: (
            e.client,
            _surl(e, "time-off/"),
            {"starts_at": "2031-07-01T00:00:00Z", "ends_at": "2031-07-08T00:00:00Z"},
        ),
        "availability.changed",
    ),
    ("time-off-detail", "PUT"): (
        lambda e: _config(
            e, "bookings.TimeOff", "time-off", {"starts_at": "2031-08-01T00:00:00Z", "ends_at": "2031-08-02T00:00:00Z"}
        ),
        "availability.changed",
    ),
    ("time-off-detail", "PATCH"): (
        lambda e: _config(e, "bookings.TimeOff", "time-off", {"reason": "Holiday"}),
        "availability.changed",
    ),
    ("time-off-detail", "DELETE"): (lambda e: _config(e, "bookings.TimeOff", "time-off", {}), "availability.changed"),
    ("booking-list", "POST"): (
        lambda e: (
            lambda s, start: (
                e.client,
                _surl(e, "bookings/"),
                {"service": str(s.pk), "start": start.isoformat(), "client_name": "P", "client_email": "p@example.com"},
            )
        )(*_bookable(e)),
        "booking.confirmed",
    ),
    ("booking-detail", "PATCH"): (
        lambda e: (e.client, _surl(e, f"bookings/{factories.booking(e.studio).pk}/"), {"notes": "Bring the drone"}),
        "booking.updated",
    ),
    ("booking-confirm", "POST"): (
        lambda e: (e.client, _surl(e, f"bookings/{_held(e)[0].pk}/confirm/"), {}),
        "booking.confirmed",
    ),
    ("booking-cancel", "POST"): (
        lambda e: (e.client, _surl(e, f"bookings/{factories.booking(e.studio).pk}/cancel/"), {"reason": "Rain"}),
        "booking.cancelled",
    ),
    ("booking-complete", "POST"): (
        lambda e: (e.client, _surl(e, f"bookings/{factories.booking(e.studio).pk}/complete/"), {}),
        "booking.completed",
    ),
    ("booking-reschedule", "POST"): (
        lambda e: (
            lambda b: (e.client, _surl(e, f"bookings/{b.pk}/reschedule/"), {"start": _other_start(e, b).isoformat()})
        )(_confirmed(e)[0]),
        "booking.rescheduled",
    ),
    ("booking-mark-paid", "POST"): (
        lambda e: (e.client, _surl(e, f"bookings/{_held(e, price=200, deposit=50)[0].pk}/mark-paid/"), {}),
        "payment.received",
    ),
    ("contact-submission-convert", "POST"): (
        lambda e: (
            lambda s, start: (
                e.client,
                _surl(e, f"contact-submissions/{_enquiry(e).pk}/convert/"),
                {"service": str(s.pk), "start": start.isoformat()},
            )
        )(*_bookable(e)),
        "contact.converted",
    ),
    ("calendar-feed-list", "POST"): (
        lambda e: (e.client, _surl(e, "calendar-feeds/"), {"scope": "member", "name": "Mine"}),
        "calendar_feed.created",
    ),
    ("calendar-feed-detail", "DELETE"): (
        lambda e: (
            e.client,
            _surl(e, f"calendar-feeds/{factories.FACTORIES[_model('bookings.CalendarFeed')](e.studio).pk}/"),
            {},
        ),
        "calendar_feed.revoked",
    ),
    ("calendar-feed-rotate", "POST"): (
        lambda e: (
            e.client,
            _surl(e, f"calendar-feeds/{factories.FACTORIES[_model('bookings.CalendarFeed')](e.studio).pk}/rotate/"),
            {},
        ),
        "calendar_feed.rotated",
    ),
    ("public-hold", "POST"): (
        lambda e: (
            lambda s, start: (
                APIClient(),
                f"/api/v1/public/studios/{e.studio.slug}/holds/",
                {"service": str(s.pk), "start": start.isoformat(), "name": "Ana", "email": "ana@example.com"},
            )
        )(*_bookable(e)),
        "booking.held",
    ),
    ("public-contact", "POST"): (
        lambda e: (
            APIClient(),
            f"/api/v1/public/studios/{e.studio.slug}/contact/",
            {"name": "Bo", "email": "bo@example.com", "message": "Hello"},
        ),
        "contact.received",
    ),
    ("client-booking-confirm", "POST"): (
        lambda e: (APIClient(), _client(_held(e)[1], "confirm/"), {}),
        "booking.confirmed",
    ),
    ("client-booking-checkout", "POST"): (
        lambda e: (APIClient(), _client(_held(e, price=200, deposit=50)[1], "checkout/"), {}),
        "booking.checkout_started",
    ),
    ("client-booking-cancel", "POST"): (
        lambda e: (APIClient(), _client(_confirmed(e)[1], "cancel/"), {}),
        "booking.cancelled",
    ),
    ("client-booking-reschedule", "POST"): (
        lambda e: (
            lambda b, raw: (APIClient(), _client(raw, "reschedule/"), {"start": _other_start(e, b).isoformat()})
        )(*_confirmed(e)),
        "booking.rescheduled",
    ),
    ("stripe-webhook", "POST"): (_stripe_webhook, "payment.received"),
}
MUTATION_CASES.update(BOOKING_CASES)

# Mutating endpoints that change no stored data, so write no audit event.
NOT_AUDITED = {("portal-access", "DELETE"): "leaving only ends the caller's own session"}


def _published(e: Env, **fields: Any) -> Any:
    from galleries import services as gallery_services
    from studio import context

    gallery = factories.gallery(e.studio, **fields)
    with context.acting_as(factories.TEST_ACTOR), studio_scope(e.studio):
        gallery_services.gallery_publish(gallery=gallery)
    return gallery


MUTATING_ENDPOINTS = sorted(
    {(r.name, m) for r in ROUTES for m in r.methods if m in MUTATING and (r.name, m) not in NOT_AUDITED}
)


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
    with override_settings(STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET):
        response = getattr(client, endpoint[1].lower())(url, data=body, format="json")
    assert response.status_code < 300, (url, response.status_code, response.content)
    new = [e for e in _all_events() if e.pk not in before]
    assert expected_action in {e.action for e in new}, f"{endpoint} wrote {[e.action for e in new]}"
    event = next(e for e in new if e.action == expected_action)
    assert event.request_id == response["X-Request-ID"]
    assert event.actor_type == _expected_actor(endpoint[0])


def _expected_actor(route_name: str) -> str:
    if route_name.startswith("portal-"):
        return "visitor"
    if route_name.startswith(("public-", "client-booking")):
        return "client"
    if route_name == "stripe-webhook":
        return "system"
    return "user"


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
