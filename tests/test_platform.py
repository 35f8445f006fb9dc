"""Platform-wide guarantees: deployment checks, migrations, the OpenAPI schema,
the one error format, fail-closed tenancy, studio tasks and the demo seed."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
import uuid
from io import StringIO
from pathlib import Path
from unittest import mock

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.throttling import UserRateThrottle

from audit.models import AuditEvent
from studio import context
from studio.api.base import SEALED, StudioAPIView, StudioViewSet
from studio.api.views import MeView
from studio.auditing import Action, audit_record
from studio.cache import studio_cache_key
from studio.models import Membership, Studio, User
from studio.roles import Role
from studio.tasks import studio_task
from studio.tenancy import (
    CrossStudioWrite,
    NoStudioScope,
    current_studio,
    current_studio_or_none,
    is_unscoped,
    studio_scope,
    unscoped,
)
from teams.models import Invitation, Team, TeamMember
from tests import factories
from tests.helpers import assert_api_error

BASE_DIR = Path(__file__).resolve().parent.parent

# --- tasks defined for these tests ----------------------------------------------------

TASK_CALLS: list[dict] = []


@studio_task(name="tests.platform.stamp", soft_time_limit=10, time_limit=20)
def stamp(studio: Studio, note: str) -> dict:
    """Records what the task saw and writes an audit event."""
    actor = context.current().resolved_actor()
    TASK_CALLS.append({"studio": studio.pk, "note": note})
    event = audit_record(action=Action.STUDIO_UPDATED, target=studio, after={"note": note})
    return {
        "studio": str(current_studio().pk),
        "actor_type": actor.type,
        "actor_label": actor.label,
        "event": str(event.pk),
        "memberships": Membership.objects.count(),
    }


# A queue of our own, so a worker of another test run sharing the broker never
# takes this task (and ours never takes theirs).
WORKER_QUEUE = f"tests-platform-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@studio_task(name="tests.platform.stamp_remote", soft_time_limit=10, time_limit=20)
def stamp_remote(studio: Studio, note: str) -> None:
    from django.db import connections

    try:
        audit_record(action=Action.STUDIO_UPDATED, target=studio, after={"note": note})
    finally:
        # The worker thread's connection would otherwise outlive the test and
        # keep the test database busy (CONN_MAX_AGE on PostgreSQL).
        connections.close_all()


# --- deployment -------------------------------------------------------------------------

_PRODUCTION_ENV = {
    "DEBUG": "false",
    "ALLOWED_HOSTS": "studio.example.com",
    "HTTPS": "true",
    "AWS_STORAGE_BUCKET_NAME": "b",
    "AWS_S3_REGION_NAME": "eu-west-1",
    "EMAIL_URL": "smtp+tls://u:p@smtp.example.com:587",
    "REDIS_URL": "redis://127.0.0.1:6379/9",
}
# Variables of the calling environment that would change the outcome.
_STRIP = (
    "DJANGO_ALLOW_ASYNC_UNSAFE",  # the browser tests' allowance (tests/browser/conftest.py)
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_",
    "HTTPS",
    "SECURE_",
    "STATIC_",
    "BEHIND_PROXY",
    "AWS_",
    "EMAIL_URL",
    "DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
)


def _production_env(tmp_path: Path, **overrides: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_STRIP)}
    env.update(_PRODUCTION_ENV)
    env.update(
        {
            "SECRET_KEY": secrets.token_urlsafe(60),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}",
            "VAR_DIR": str(tmp_path / "var"),
            "DJANGO_SETTINGS_MODULE": "studio.settings",
        }
    )
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, *args], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=180
    )


def test_check_deploy_passes_with_production_variables(tmp_path):
    assert len(_production_env(tmp_path)["SECRET_KEY"]) >= 50
    result = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], _production_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_fails_without_https(tmp_path):
    result = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], _production_env(tmp_path, HTTPS=None))
    assert result.returncode != 0
    output = result.stdout + result.stderr
    # HSTS, SSL redirect and secure cookies all hang on HTTPS=true.
    for check_id in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert check_id in output


_PRINT_SETTINGS = """
import json
import django
django.setup()
from django.conf import settings
from django.core.cache import caches
from django.core.files.storage import default_storage
from django.core.mail import get_connection
storage = default_storage.__class__
mail = get_connection()
print(json.dumps({
    "storage": storage.__module__ + "." + storage.__name__,
    "bucket": getattr(default_storage, "bucket_name", None),
    "region": getattr(default_storage, "region_name", None),
    "cache": caches["default"].__class__.__name__,
    "cache_location": settings.CACHES["default"].get("LOCATION"),
    "mail": mail.__class__.__module__,
    "mail_host": getattr(mail, "host", None),
    "mail_port": getattr(mail, "port", None),
    "mail_tls": getattr(mail, "use_tls", None),
    "mail_user": getattr(mail, "username", None),
    "broker": settings.CELERY_BROKER_URL,
    "eager": settings.CELERY_TASK_ALWAYS_EAGER,
    "debug": settings.DEBUG,
    "ssl_redirect": settings.SECURE_SSL_REDIRECT,
    "static": settings.STORAGES["staticfiles"]["BACKEND"],
    "csp_img": settings.CONTENT_SECURITY_POLICY["DIRECTIVES"]["img-src"],
    "csp_connect": settings.CONTENT_SECURITY_POLICY["DIRECTIVES"]["connect-src"],
}))
"""


def test_production_variables_select_s3_redis_and_smtp(tmp_path):
    result = _run(["-c", _PRINT_SETTINGS], _production_env(tmp_path))
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["storage"] == "storages.backends.s3.S3Storage"
    assert (seen["bucket"], seen["region"]) == ("b", "eu-west-1")
    assert seen["cache"] == "RedisCache"
    assert seen["cache_location"] == "redis://127.0.0.1:6379/9"
    assert seen["mail"] == "django.core.mail.backends.smtp"
    assert (seen["mail_host"], seen["mail_port"], seen["mail_tls"], seen["mail_user"]) == (
        "smtp.example.com",
        587,
        True,
        "u",
    )
    # Cache and broker on one server, apart: a cache.clear() keeps the queues.
    assert seen["broker"] == "redis://127.0.0.1:6379/10"
    assert seen["eager"] is False
    assert seen["debug"] is False
    assert seen["ssl_redirect"] is True
    assert seen["static"] == "studio.staticfiles.StaticFilesStorage"  # whitenoise, plus hashed ES module imports
    # The bucket's origins, and only they, join 'self' for images and uploads.
    bucket_origins = ["https://b.s3.amazonaws.com", "https://b.s3.eu-west-1.amazonaws.com"]
    assert seen["csp_img"] == ["'self'", "data:", "blob:", *bucket_origins]
    assert seen["csp_connect"] == ["'self'", *bucket_origins]


def test_embedded_default_without_variables(tmp_path):
    """The contrast: with nothing set, local disk, memory cache, eager tasks, file mail."""
    env = _production_env(tmp_path)
    for key in (*_PRODUCTION_ENV, "SECRET_KEY"):
        env.pop(key)
    result = _run(["-c", _PRINT_SETTINGS], env)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["storage"] == "django.core.files.storage.filesystem.FileSystemStorage"
    assert seen["cache"] == "LocMemCache"
    assert seen["mail"] == "django.core.mail.backends.filebased"
    assert seen["eager"] is True
    assert seen["broker"] == "memory://"


def test_the_wsgi_application_loads_the_views_and_freezes_startups_objects(tmp_path):
    """studio.wsgi imports what the first request would and freezes it, so
    the garbage collector never scans those long-lived objects again (the
    server's process, not this one: a subprocess)."""
    env = _production_env(tmp_path)
    for key in (*_PRODUCTION_ENV, "SECRET_KEY"):
        env.pop(key)
    script = (
        "import gc, json, sys; import studio.wsgi; "
        "print(json.dumps([gc.get_freeze_count(), 'galleries.api.portal_views' in sys.modules]))"
    )
    result = _run(["-c", script], env)
    assert result.returncode == 0, result.stderr
    frozen, views_loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert views_loaded
    assert frozen > 50_000


@pytest.mark.django_db
def test_no_missing_migrations():
    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=StringIO())
    assert "No changes detected" in out.getvalue()


# --- OpenAPI ----------------------------------------------------------------------------


@pytest.fixture
def schema(tmp_path) -> dict:
    from drf_spectacular.drainage import GENERATOR_STATS

    GENERATOR_STATS.reset()  # warnings of earlier in-process generations must not count
    target = tmp_path / "schema.json"
    try:
        call_command("spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", "--file", str(target))
    finally:
        GENERATOR_STATS.reset()
    return json.loads(target.read_text())


STUDIO_PREFIX = "/api/v1/studios/{studio_slug}/"
HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


def _operations(schema: dict, prefix: str = ""):
    for path, item in schema["paths"].items():
        if path.startswith(prefix):
            for method, operation in item.items():
                if method in HTTP_METHODS:
                    yield path, method, operation


def test_schema_generates_without_warnings_and_documents_the_error_body(schema):
    components = schema["components"]["schemas"]
    assert components["Error"]["properties"]["error"] == {"$ref": "#/components/schemas/ErrorDetail"}
    assert set(components["Error"]["required"]) == {"error", "request_id"}
    assert set(components["ErrorDetail"]["properties"]) == {"code", "message", "fields", "details"}

    not_found = schema["paths"]["/api/v1/studios/{studio_slug}/members/{id}/"]["get"]["responses"]["404"]
    assert not_found["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    # Writes document validation errors and conflicts in the same shape.
    team_create = schema["paths"]["/api/v1/studios/{studio_slug}/teams/"]["post"]["responses"]
    for code in ("400", "401", "403", "404", "409", "429"):
        assert team_create[code]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def test_every_studio_operation_has_the_studio_slug_parameter(schema):
    operations = list(_operations(schema, STUDIO_PREFIX))
    assert len(operations) >= 10  # members, teams, invitations, audit events, the studio itself
    for path, method, operation in operations:
        slug = [p for p in operation.get("parameters", []) if p["name"] == "studio_slug"]
        assert len(slug) == 1, f"{method.upper()} {path}"
        assert slug[0]["in"] == "path"
        assert slug[0]["required"] is True
    # ... and nothing outside the studio prefix gets it.
    for path, method, operation in _operations(schema):
        if not path.startswith(STUDIO_PREFIX):
            assert all(p["name"] != "studio_slug" for p in operation.get("parameters", [])), f"{method} {path}"


def test_schema_and_docs_are_served(client):
    schema = client.get("/api/schema/", REMOTE_ADDR="10.1.0.1")
    assert schema.status_code == 200
    assert b"openapi:" in schema.content
    assert b"/api/v1/studios/{studio_slug}/" in schema.content

    for url in ("/api/docs/", "/api/redoc/"):
        page = client.get(url, REMOTE_ADDR="10.1.0.2")
        assert page.status_code == 200, url
        html = page.content.decode()
        # The docs work offline: assets come from drf-spectacular-sidecar, not a CDN.
        assert "/static/drf_spectacular_sidecar/" in html, url
        for cdn in ("cdn.jsdelivr", "unpkg", "cdnjs"):
            assert cdn not in html, (url, cdn)


# --- one error format ---------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    ["/api/nope", "/api/v1/nope/", "/api/v1/studios/some-studio/members/not-a-uuid/"],
)
def test_unknown_api_path_answers_json_404(api, path):
    assert_api_error(api.get(path, REMOTE_ADDR="10.1.1.1"), 404, "NOT_FOUND")


def test_unknown_studio_answers_json_404(client_for, owner):
    assert_api_error(client_for(owner).get("/api/v1/studios/no-such-studio/"), 404, "NOT_FOUND")


def test_malformed_json_answers_400(client_for, owner):
    response = client_for(owner).post("/api/v1/studios/", data='{"name": ', content_type="application/json")
    assert_api_error(response, 400, "MALFORMED_REQUEST")


def test_wrong_content_type_answers_415(client_for, owner):
    response = client_for(owner).post(
        "/api/v1/studios/", data="name=x", content_type="application/x-www-form-urlencoded"
    )
    assert_api_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")


def test_wrong_method_answers_405(client_for, owner):
    assert_api_error(client_for(owner).put("/api/v1/me/", {}), 405, "METHOD_NOT_ALLOWED")


@pytest.mark.django_db
def test_unauthenticated_answers_401_with_www_authenticate(api):
    response = api.get("/api/v1/me/", REMOTE_ADDR="10.1.2.1")
    assert_api_error(response, 401, "NOT_AUTHENTICATED")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_bad_token_answers_401(api, db):
    api.credentials(HTTP_AUTHORIZATION="Bearer stp_nonsense")
    response = api.get("/api/v1/me/", REMOTE_ADDR="10.1.2.2")
    assert_api_error(response, 401, "AUTHENTICATION_FAILED")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_validation_error_lists_messages_per_field(client_for, owner):
    response = client_for(owner).post(
        "/api/v1/studios/", {"name": "", "timezone": "Mars/Olympus", "contact_email": "nope"}, format="json"
    )
    body = assert_api_error(response, 400, "VALIDATION_ERROR")
    fields = body["fields"]
    assert set(fields) == {"name", "timezone", "contact_email"}
    assert all(isinstance(messages, list) and messages for messages in fields.values())
    assert any("Mars/Olympus" in message for message in fields["timezone"])


def test_nested_validation_errors_use_dotted_paths():
    from studio.errors import flatten_field_errors

    assert flatten_field_errors({"items": [{"name": ["Required."]}, {}], "non_field_errors": ["Bad."]}) == {
        "items.0.name": ["Required."],
        "non_field_errors": ["Bad."],
    }


def test_domain_error_answers_in_the_same_shape(client_for, owner, studio):
    # The last owner cannot step down: a business rule, raised inside a service.
    response = client_for(owner).patch(
        f"/api/v1/studios/{studio.slug}/members/{owner.pk}/", {"role": "admin"}, format="json"
    )
    assert_api_error(response, 409, "LAST_OWNER")
    with studio_scope(studio):
        assert Membership.objects.get(pk=owner.pk).role == Role.OWNER


def test_throttled_answers_429_with_retry_after(client_for, owner):
    client = client_for(owner)
    with mock.patch.object(UserRateThrottle, "get_rate", return_value="2/min"):
        assert client.get("/api/v1/me/").status_code == 200
        assert client.get("/api/v1/me/").status_code == 200
        response = client.get("/api/v1/me/")
    body = assert_api_error(response, 429, "THROTTLED")
    retry_after = int(response["Retry-After"])
    assert 0 < retry_after <= 60
    assert body["details"] == {"retry_after_seconds": retry_after}


def _fresh_ip(prefix: str) -> str:
    # Throttle counters live in the cache, which on Redis outlives a test run:
    # fresh addresses keep runs apart.
    return f"{prefix}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250 + 1}"


def _anonymous_docs_statuses(client, forwarded_for: list[str]) -> list[int]:
    from rest_framework.throttling import AnonRateThrottle

    remote_addr = _fresh_ip("10.2")
    with mock.patch.object(AnonRateThrottle, "get_rate", return_value="2/min"):
        return [
            client.get("/api/docs/", REMOTE_ADDR=remote_addr, HTTP_X_FORWARDED_FOR=xff).status_code
            for xff in forwarded_for
        ]


@pytest.mark.django_db
def test_anonymous_throttle_applies_to_public_endpoints(client):
    assert _anonymous_docs_statuses(client, [_fresh_ip("172.16")] * 3) == [200, 200, 429]


@pytest.mark.django_db
def test_anonymous_throttle_cannot_be_escaped_with_x_forwarded_for(client):
    assert _anonymous_docs_statuses(client, [_fresh_ip("172.17"), _fresh_ip("172.18"), _fresh_ip("172.19")])[-1] == 429


def test_unexpected_exception_answers_json_500(client_for, owner):
    client = client_for(owner)
    client.raise_request_exception = False
    with mock.patch.object(MeView, "get", side_effect=RuntimeError("boom")):
        response = client.get("/api/v1/me/")
    body = assert_api_error(response, 500, "SERVER_ERROR")
    assert "boom" not in json.dumps(body)  # internals stay in the logs
    assert current_studio_or_none() is None


def test_unexpected_exception_in_a_studio_view_leaves_no_scope(client_for, owner, studio):
    from teams.api.views import TeamViewSet

    client = client_for(owner)
    client.raise_request_exception = False
    with mock.patch.object(TeamViewSet, "list", side_effect=RuntimeError("boom")):
        response = client.get(f"/api/v1/studios/{studio.slug}/teams/")
    assert_api_error(response, 500, "SERVER_ERROR")
    assert current_studio_or_none() is None
    assert not is_unscoped()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/healthz", 200),
        ("/api/v1/me/", 401),
        ("/api/v1/nope/", 404),
        ("/no-such-page/", 404),
        ("/admin/", 302),
        ("/accounts/login/", 200),
    ],
)
def test_every_response_has_a_request_id(client, path, status):
    response = client.get(path, REMOTE_ADDR="10.1.3.1")
    assert response.status_code == status
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])


def test_request_id_is_kept_when_safe_and_replaced_otherwise(client_for, owner):
    client = client_for(owner)
    kept = client.get("/api/v1/me/", HTTP_X_REQUEST_ID="lb-1234abcd")
    assert kept["X-Request-ID"] == "lb-1234abcd"
    replaced = client.get("/api/v1/nope/", HTTP_X_REQUEST_ID="<script>alert(1)</script>")
    assert re.fullmatch(r"[0-9a-f]{32}", replaced["X-Request-ID"])
    assert replaced.json()["request_id"] == replaced["X-Request-ID"]


def test_api_writes_are_audited_with_the_request_id(client_for, owner, studio):
    response = client_for(owner).post(
        f"/api/v1/studios/{studio.slug}/teams/", {"name": "Editors"}, format="json", HTTP_X_REQUEST_ID="req-teams-01"
    )
    assert response.status_code == 201, response.content
    with studio_scope(studio):
        event = AuditEvent.objects.get(action=Action.TEAM_CREATED, target_id=response.json()["id"])
    assert event.request_id == "req-teams-01"
    assert event.actor_user_id == owner.user_id


# --- tenancy ---------------------------------------------------------------------------------

SCOPED_MODELS = [Membership, Team, TeamMember, Invitation, AuditEvent]


@pytest.fixture
def two_studios(studio, other_studio):
    for s in (studio, other_studio):
        factories.member(s, Role.PHOTOGRAPHER)
        factories.team_member(s)
        factories.invitation(s)
        factories.audit_event(s)
    return studio, other_studio


@pytest.mark.parametrize("model", SCOPED_MODELS, ids=lambda m: m.__name__)
def test_query_without_scope_raises(two_studios, model):
    with pytest.raises(NoStudioScope):
        model.objects.count()
    with pytest.raises(NoStudioScope):
        list(model.objects.all())


@pytest.mark.parametrize("model", SCOPED_MODELS, ids=lambda m: m.__name__)
def test_scope_shows_only_that_studios_rows(two_studios, model):
    a, b = two_studios
    with unscoped():
        total = model.objects.count()
        in_a = model.objects.filter(studio=a).count()
    assert in_a > 0
    assert total > in_a  # the other studio has rows too
    with studio_scope(a):
        rows = list(model.objects.all())
        assert len(rows) == in_a
        assert {row.studio_id for row in rows} == {a.pk}
        # Even an explicit filter on the other studio finds nothing.
        assert not model.objects.filter(studio=b).exists()


def test_unscoped_sees_every_studio(two_studios):
    a, b = two_studios
    with unscoped():
        assert set(Membership.objects.values_list("studio_id", flat=True)) == {a.pk, b.pk}
        assert set(Team.objects.values_list("studio_id", flat=True)) == {a.pk, b.pk}
    assert not is_unscoped()


def test_saving_another_studios_row_raises(two_studios):
    a, b = two_studios
    with unscoped():
        membership = Membership.objects.get(studio=a, role=Role.PHOTOGRAPHER)
        team = Team.objects.filter(studio=a).first()
    with studio_scope(b):
        membership.role = Role.OWNER
        with pytest.raises(CrossStudioWrite):
            membership.save()
        with pytest.raises(CrossStudioWrite):
            Team(studio=a, name="Sneaky").save()
        with pytest.raises(CrossStudioWrite):
            Team.objects.create(studio=a, name="Sneakier")
        team.name = "Renamed"
        with pytest.raises(CrossStudioWrite):
            team.save()
    with unscoped():
        assert Membership.objects.get(pk=membership.pk).role != Role.OWNER
        assert not Team.objects.filter(name__startswith="Sneak").exists()
        assert Team.objects.get(pk=team.pk).name != "Renamed"


def test_saving_without_scope_raises(studio):
    with pytest.raises(NoStudioScope):
        Team(studio=studio, name="Nowhere").save()


def test_scope_needs_a_studio():
    with pytest.raises(ValueError), studio_scope(None):
        pass


def test_scope_needs_a_saved_studio():
    with pytest.raises(ValueError), studio_scope(Studio(name="Unsaved", slug="unsaved")):
        pass


def test_scopes_nest_and_unwind(studio, other_studio):
    with studio_scope(studio):
        with studio_scope(other_studio):
            assert current_studio() == other_studio
        assert current_studio() == studio
        with unscoped():
            assert current_studio_or_none() is None
            assert is_unscoped()
        assert current_studio() == studio
    assert current_studio_or_none() is None
    with pytest.raises(NoStudioScope):
        current_studio()


def test_following_relations_needs_no_scope(two_studios):
    a, _ = two_studios
    with studio_scope(a):
        team_member = TeamMember.objects.select_related(None).first()
    # Forward foreign keys use the unfiltered base manager.
    assert team_member.team.studio_id == a.pk
    assert team_member.membership.studio_id == a.pk


def test_scope_is_reset_after_an_api_request(client_for, owner, studio):
    client = client_for(owner)
    response = client.get(f"/api/v1/studios/{studio.slug}/members/")
    assert response.status_code == 200
    assert current_studio_or_none() is None
    assert not is_unscoped()
    # ... and after one that failed inside the scope.
    viewer = factories.member(studio, Role.VIEWER)
    denied = client_for(viewer).get(f"/api/v1/studios/{studio.slug}/invitations/")
    assert denied.status_code == 403
    assert current_studio_or_none() is None
    with pytest.raises(NoStudioScope):
        Membership.objects.count()


def test_api_lists_only_the_studio_in_the_url(client_for, two_studios):
    a, b = two_studios
    owner_a = factories.owner_membership(a)
    response = client_for(owner_a).get(f"/api/v1/studios/{a.slug}/members/")
    assert response.status_code == 200
    with studio_scope(a):
        expected = {str(pk) for pk in Membership.objects.values_list("pk", flat=True)}
    assert {row["id"] for row in response.json()["results"]} == expected
    # A studio the caller is not a member of is indistinguishable from none.
    assert_api_error(client_for(owner_a).get(f"/api/v1/studios/{b.slug}/members/"), 404, "NOT_FOUND")


def test_studio_cache_key_carries_the_studio(studio, other_studio):
    with studio_scope(studio):
        key_a = studio_cache_key("teams", 1)
    with studio_scope(other_studio):
        key_b = studio_cache_key("teams", 1)
    assert str(studio.pk) in key_a
    assert str(other_studio.pk) in key_b
    assert key_a != key_b
    assert studio_cache_key("teams", 1, studio=studio) == key_a
    with pytest.raises(NoStudioScope):
        studio_cache_key("teams", 1)


def test_base_view_accepts_a_well_formed_subclass():
    class Fine(StudioViewSet):
        model = Team
        scope_map = {"GET": "member:read"}

        def scope_queryset(self, queryset):
            return queryset.order_by("name")

    class FineView(StudioAPIView):
        model = Studio
        scope_map = {"GET": "studio:read"}

    assert Fine.scope_map and FineView.scope_map


@pytest.mark.parametrize("base", [StudioViewSet, StudioAPIView], ids=["viewset", "apiview"])
@pytest.mark.parametrize("method", SEALED)
def test_base_view_refuses_overriding_sealed_methods(base, method):
    assert {"get_queryset", "get_object", "get_permissions", "check_permissions", "initial", "dispatch"} <= set(SEALED)
    attrs = {"model": Team, "scope_map": {"GET": "member:read"}, method: lambda self, *a, **k: None}
    with pytest.raises(TypeError, match=method):
        type("Leaky", (base,), attrs)
    # Not even in an intermediate (abstract) base.
    with pytest.raises(TypeError, match=method):
        type("LeakyBase", (base,), {"abstract": True, method: lambda self, *a, **k: None})


def test_base_view_refuses_a_missing_scope_map():
    with pytest.raises(TypeError, match="scope_map"):

        class NoScopes(StudioViewSet):
            model = Team


def test_base_view_refuses_an_unknown_scope():
    with pytest.raises(TypeError, match="unknown scope"):

        class Typo(StudioViewSet):
            model = Team
            scope_map = {"GET": "members:read"}

    with pytest.raises(TypeError, match="unknown scope"):

        class TypoAction(StudioViewSet):
            model = Team
            action_scopes = {"list": "team:read"}


def test_base_view_refuses_a_missing_model():
    with pytest.raises(TypeError, match="model"):

        class NoModel(StudioViewSet):
            scope_map = {"GET": "member:read"}


# --- tasks ------------------------------------------------------------------------------------


@pytest.fixture
def task_calls():
    TASK_CALLS.clear()
    yield TASK_CALLS
    TASK_CALLS.clear()


def test_studio_task_runs_in_the_studio_scope_as_a_system_actor(settings, two_studios, task_calls):
    a, _ = two_studios
    settings.CELERY_TASK_ALWAYS_EAGER = True
    with unscoped():
        memberships_of_a = Membership.objects.filter(studio=a).count()

    result = stamp.delay(str(a.pk), "hello").get()

    assert result["studio"] == str(a.pk)
    assert result["actor_type"] == context.ActorType.SYSTEM
    assert result["actor_label"] == "task:tests.platform.stamp"
    assert result["memberships"] == memberships_of_a  # scoped: only studio A's rows
    with studio_scope(a):
        event = AuditEvent.objects.get(pk=result["event"])
    assert (event.actor_type, event.actor_label, event.actor_ref) == (
        "system",
        "task:tests.platform.stamp",
        "task:tests.platform.stamp",
    )
    assert event.studio_id == a.pk
    assert task_calls == [{"studio": a.pk, "note": "hello"}]
    # Nothing leaks out of the task.
    assert current_studio_or_none() is None
    assert context.current().actor is None


def test_studio_task_for_a_missing_studio_is_a_no_op(db, task_calls, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    assert stamp.delay(str(uuid.uuid4()), "ghost").get() is None
    assert task_calls == []


def test_studio_task_for_an_inactive_studio_is_a_no_op(studio, task_calls, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    Studio.objects.filter(pk=studio.pk).update(is_active=False)
    with studio_scope(studio):
        events_before = AuditEvent.objects.count()
    assert stamp.delay(str(studio.pk), "asleep").get() is None
    assert task_calls == []
    with studio_scope(studio):
        assert AuditEvent.objects.count() == events_before


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_studio_task_runs_on_a_real_worker(settings):
    from celery.contrib.testing.worker import start_worker

    from studio.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # keep pytest's log capture
    assert app.conf.task_always_eager is False
    assert app.conf.broker_url.startswith("redis://")

    studio_ = factories.studio()
    note = uuid.uuid4().hex
    try:
        with start_worker(app, perform_ping_check=False, queues=[WORKER_QUEUE], shutdown_timeout=30):
            # .delay() with a routing option: the same send path, to our own queue.
            stamp_remote.apply_async((str(studio_.pk), note), queue=WORKER_QUEUE)
            deadline = time.monotonic() + 30
            event = None
            while event is None and time.monotonic() < deadline:
                with studio_scope(studio_):
                    event = AuditEvent.objects.filter(action=Action.STUDIO_UPDATED, after__note=note).first()
                if event is None:
                    time.sleep(0.2)
    finally:
        # Leave nothing behind on the broker: the queue and its exchange bindings.
        with app.connection_for_write() as conn:
            conn.default_channel.client.delete(
                WORKER_QUEUE, f"_kombu.binding.{WORKER_QUEUE}", f"_kombu.binding_permanent.{WORKER_QUEUE}"
            )
    assert event is not None, "the worker did not run the task within 30 seconds"
    assert event.actor_type == "system"
    assert event.actor_label == "task:tests.platform.stamp_remote"
    assert event.studio_id == studio_.pk
    call_command("verify_audit_log", stdout=StringIO())


# --- seed_demo ----------------------------------------------------------------------------------


def _counts() -> dict[str, int]:
    with unscoped():
        return {
            "users": User.objects.count(),
            "studios": Studio.objects.count(),
            "memberships": Membership.objects.count(),
            "teams": Team.objects.count(),
            "team_members": TeamMember.objects.count(),
            "events": AuditEvent.objects.count(),
        }


@pytest.mark.django_db
def test_seed_demo_is_idempotent_and_its_password_signs_in(client):
    first = StringIO()
    call_command("seed_demo", stdout=first)
    after_first = _counts()
    second = StringIO()
    call_command("seed_demo", stdout=second)
    assert _counts() == after_first
    assert after_first["users"] == 5
    assert after_first["memberships"] == 5
    assert after_first["teams"] == 1
    assert after_first["team_members"] == 2

    output = second.getvalue()
    email = re.search(r"Email\s+(\S+@\S+)", output).group(1)
    password = re.search(r"Password\s+(\S+)", output).group(1)
    assert client.login(email=email, password=password)
    studio_ = Studio.objects.get(slug="blakely")
    with studio_scope(studio_):
        assert Membership.objects.get(user__email=email).role == Role.OWNER
    # Every demo person can sign in through allauth (verified address).
    client.logout()
    response = client.post(
        "/accounts/login/", {"login": "viewer@demo.studio", "password": password}, REMOTE_ADDR=_fresh_ip("10.3")
    )
    assert response.status_code == 302
    assert response["Location"] == "/"

    verify = StringIO()
    call_command("verify_audit_log", stdout=verify)
    assert "verified" in verify.getvalue()


@pytest.mark.django_db
def test_verify_audit_log_notices_tampering():
    """The check above can fail: a rewritten event breaks the chain (and on
    PostgreSQL the database refuses the rewrite outright)."""
    from django.db import DatabaseError, connection, transaction

    call_command("seed_demo", stdout=StringIO())
    with unscoped():
        event = AuditEvent.objects.filter(action=Action.MEMBER_ADDED).order_by("seq").first()
    table = AuditEvent._meta.db_table
    if connection.vendor == "postgresql":
        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"UPDATE {table} SET actor_label = %s WHERE id = %s", ["someone else", event.pk])
        call_command("verify_audit_log", stdout=StringIO())
        return
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET actor_label = %s WHERE id = %s", ["someone else", event.pk.hex])
    with pytest.raises(CommandError):
        call_command("verify_audit_log", stdout=StringIO())
