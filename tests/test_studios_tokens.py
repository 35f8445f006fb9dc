"""The platform core over the API: who am I, my studios, personal API tokens."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent
from studio import context, services
from studio.auditing import Action
from studio.models import ApiToken, Membership, Studio, hash_token
from studio.roles import SCOPES, Role, scopes_for
from studio.tenancy import studio_scope, unscoped
from tests import factories
from tests.helpers import assert_api_error

pytestmark = pytest.mark.django_db

ME = "/api/v1/me/"
TOKENS = "/api/v1/me/tokens/"
STUDIOS = "/api/v1/studios/"


def token_url(pk: object) -> str:
    return f"{TOKENS}{pk}/"


def studio_url(studio: Studio) -> str:
    return f"{STUDIOS}{studio.slug}/"


def bearer(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def studio_events(studio: Studio, action: Action) -> list[AuditEvent]:
    with studio_scope(studio):
        return list(AuditEvent.objects.filter(action=action).order_by("seq"))


def platform_events(action: Action, target_id: object) -> list[AuditEvent]:
    with unscoped():
        return list(AuditEvent.objects.filter(action=action, target_id=str(target_id)).order_by("seq"))


def make_token(user, name: str = "ci", expires_at=None) -> tuple[ApiToken, str]:
    with context.acting_as(factories.TEST_ACTOR):
        return services.api_token_create(user=user, name=name, expires_at=expires_at)


# --- me -----------------------------------------------------------------------------------


class TestMe:
    def test_anonymous_is_401_with_challenge(self, api):
        response = api.get(ME)
        assert_api_error(response, 401, "NOT_AUTHENTICATED")
        assert response["WWW-Authenticate"].startswith("Bearer")

    def test_returns_me_and_my_memberships(self, studio, other_studio, make_member, client_for):
        user = factories.user("me@example.com", full_name="Me Myself")
        factories.member(studio, Role.PHOTOGRAPHER, user_=user)
        factories.member(other_studio, Role.ADMIN, user_=user)
        factories.studio("Not mine")
        body = client_for(user).get(ME).json()
        assert body["id"] == str(user.pk)
        assert body["email"] == "me@example.com"
        assert body["full_name"] == "Me Myself"
        assert sorted(body["memberships"], key=lambda m: m["studio"]) == sorted(
            [
                {"studio": studio.slug, "studio_name": studio.name, "role": "photographer"},
                {"studio": other_studio.slug, "studio_name": other_studio.name, "role": "admin"},
            ],
            key=lambda m: m["studio"],
        )

    def test_inactive_studios_are_left_out(self, studio, other_studio, client_for):
        user = factories.user()
        factories.member(studio, Role.VIEWER, user_=user)
        factories.member(other_studio, Role.VIEWER, user_=user)
        Studio.objects.filter(pk=other_studio.pk).update(is_active=False)
        body = client_for(user).get(ME).json()
        assert [m["studio"] for m in body["memberships"]] == [studio.slug]

    def test_user_without_studios(self, client_for):
        assert client_for(factories.user()).get(ME).json()["memberships"] == []

    def test_session_authentication_also_works(self, owner):
        client = APIClient()
        client.force_login(owner.user)
        response = client.get(ME)
        assert response.status_code == 200
        assert response.json()["email"] == owner.user.email

    def test_me_is_read_only(self, client_for):
        user = factories.user("ro@example.com")
        response = client_for(user).patch(ME, {"email": "evil@example.com"})
        assert_api_error(response, 405, "METHOD_NOT_ALLOWED")
        user.refresh_from_db()
        assert user.email == "ro@example.com"


# --- studios ------------------------------------------------------------------------------


class TestStudioList:
    def test_lists_only_my_active_studios_with_my_role(self, studio, other_studio, client_for):
        user = factories.user()
        factories.member(studio, Role.ASSISTANT, user_=user)
        mine_too = factories.studio("Zeta", owner=user)
        closed = factories.studio("Closed", owner=user)
        Studio.objects.filter(pk=closed.pk).update(is_active=False)
        response = client_for(user).get(STUDIOS)
        assert response.status_code == 200
        rows = response.json()
        assert isinstance(rows, list)  # not paginated
        by_slug = {r["slug"]: r for r in rows}
        assert set(by_slug) == {studio.slug, mine_too.slug}
        assert other_studio.slug not in by_slug
        assert by_slug[studio.slug]["role"] == "assistant"
        assert by_slug[studio.slug]["scopes"] == sorted(scopes_for(Role.ASSISTANT))
        assert by_slug[mine_too.slug]["role"] == "owner"
        assert by_slug[mine_too.slug]["scopes"] == sorted(SCOPES)
        assert set(by_slug[studio.slug]) == {
            "id",
            "slug",
            "name",
            "timezone",
            "contact_email",
            "booking_cancellation_hours",
            "payment_instructions",
            "accent_color",
            "logo",
            "gallery_expiry_notice_days",
            "created_at",
            "role",
            "scopes",
        }
        assert [r["name"] for r in rows] == sorted(r["name"] for r in rows)

    def test_no_duplicates_when_others_are_members_too(self, studio, owner, make_member, client_for):
        for role in (Role.ADMIN, Role.VIEWER, Role.VIEWER):
            make_member(role)
        rows = client_for(owner).get(STUDIOS).json()
        assert [r["slug"] for r in rows] == [studio.slug]

    def test_anonymous_is_401(self, api):
        assert_api_error(api.get(STUDIOS), 401, "NOT_AUTHENTICATED")
        assert_api_error(api.post(STUDIOS, {"name": "Sneaky"}), 401, "NOT_AUTHENTICATED")
        assert not Studio.objects.filter(name="Sneaky").exists()


class TestStudioCreate:
    def test_creator_becomes_owner(self, client_for):
        user = factories.user()
        response = client_for(user).post(
            STUDIOS,
            {
                "name": "Light & Shadow",
                "slug": "light-shadow",
                "timezone": "Europe/Berlin",
                "contact_email": "hi@ls.de",
            },
        )
        assert response.status_code == 201, response.content
        body = response.json()
        assert body["slug"] == "light-shadow"
        assert body["name"] == "Light & Shadow"
        assert body["timezone"] == "Europe/Berlin"
        assert body["contact_email"] == "hi@ls.de"
        assert body["role"] == "owner"
        assert "studio:admin" in body["scopes"]
        studio = Studio.objects.get(slug="light-shadow")
        assert str(studio.pk) == body["id"]
        with studio_scope(studio):
            (m,) = Membership.objects.all()
        assert m.user_id == user.pk
        assert m.role == Role.OWNER

        (created,) = studio_events(studio, Action.STUDIO_CREATED)
        assert created.after == {
            "slug": "light-shadow",
            "name": "Light & Shadow",
            "timezone": "Europe/Berlin",
            "contact_email": "hi@ls.de",
            "booking_cancellation_hours": 48,
            "payment_instructions": "",
            "accent_color": "#1f5f8b",
            "logo": "",
            "gallery_expiry_notice_days": 7,
        }
        assert created.actor_user_id == user.pk
        (added,) = studio_events(studio, Action.MEMBER_ADDED)
        assert added.after == {"user": str(user.pk), "role": "owner"}

        # The new owner can use it right away.
        client = client_for(user)
        assert client.get(studio_url(studio)).json()["role"] == "owner"
        assert client.patch(studio_url(studio), {"name": "L&S"}).status_code == 200

    def test_slug_and_timezone_default(self, client_for):
        response = client_for(factories.user()).post(STUDIOS, {"name": "Blue Hour Photo"})
        assert response.status_code == 201, response.content
        assert response.json()["slug"] == "blue-hour-photo"
        assert response.json()["timezone"] == "UTC"
        assert response.json()["contact_email"] == ""

    def test_duplicate_slug_is_409(self, studio, client_for):
        response = client_for(factories.user()).post(STUDIOS, {"name": "Copycat", "slug": studio.slug})
        error = assert_api_error(response, 409, "SLUG_TAKEN")
        assert error["fields"] == {"slug": ["Already in use."]}
        assert Studio.objects.filter(slug=studio.slug).count() == 1
        assert not Studio.objects.filter(name="Copycat").exists()

    def test_duplicate_derived_slug_is_409(self, client_for):
        factories.studio("Golden Frame", slug="golden-frame")
        response = client_for(factories.user()).post(STUDIOS, {"name": "Golden Frame"})
        assert_api_error(response, 409, "SLUG_TAKEN")
        assert Studio.objects.filter(name="Golden Frame").count() == 1

    @pytest.mark.parametrize(
        "body,field",
        [
            ({"name": "Tz", "timezone": "Mars/Olympus_Mons"}, "timezone"),
            ({"name": "Tz", "timezone": ""}, "timezone"),
            ({"name": "Bad slug", "slug": "not a slug!"}, "slug"),
            ({"name": "Mail", "contact_email": "nope"}, "contact_email"),
            ({"slug": "no-name"}, "name"),
        ],
    )
    def test_validation(self, client_for, body, field):
        user = factories.user()
        error = assert_api_error(client_for(user).post(STUDIOS, body), 400, "VALIDATION_ERROR")
        assert field in error["fields"]
        with unscoped():
            assert not Membership.objects.filter(user=user).exists()
        assert Studio.objects.count() == 0


class TestStudioDetail:
    @pytest.mark.parametrize("role", [Role.VIEWER, Role.ASSISTANT, Role.PHOTOGRAPHER, Role.ADMIN])
    def test_every_member_can_read(self, studio, make_member, client_for, role):
        response = client_for(make_member(role)).get(studio_url(studio))
        assert response.status_code == 200
        body = response.json()
        assert body["slug"] == studio.slug
        assert body["role"] == role
        assert body["scopes"] == sorted(scopes_for(role))

    def test_non_member_gets_404_like_missing(self, studio, other_studio, client_for):
        client = client_for(factories.owner_membership(other_studio))
        a = assert_api_error(client.get(studio_url(studio)), 404, "NOT_FOUND")
        b = assert_api_error(client.get(f"{STUDIOS}does-not-exist/"), 404, "NOT_FOUND")
        assert a["message"] == b["message"]
        assert_api_error(client.patch(studio_url(studio), {"name": "Hijacked"}), 404, "NOT_FOUND")
        studio.refresh_from_db()
        assert studio.name != "Hijacked"

    def test_inactive_studio_is_404_even_for_its_owner(self, studio, owner, client_for):
        Studio.objects.filter(pk=studio.pk).update(is_active=False)
        assert_api_error(client_for(owner).get(studio_url(studio)), 404, "NOT_FOUND")

    def test_owner_updates_and_it_is_audited(self, studio, owner, client_for):
        before = {
            "name": studio.name,
            "timezone": studio.timezone,
            "contact_email": studio.contact_email,
            "booking_cancellation_hours": 48,
            "payment_instructions": "",
            "accent_color": "#1f5f8b",
            "logo": "",
            "gallery_expiry_notice_days": 7,
        }
        response = client_for(owner).patch(
            studio_url(studio), {"name": "Renamed", "timezone": "America/New_York", "contact_email": "a@b.co"}
        )
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["name"] == "Renamed"
        assert body["timezone"] == "America/New_York"
        assert body["role"] == "owner"
        studio.refresh_from_db()
        assert (studio.name, studio.timezone, studio.contact_email) == ("Renamed", "America/New_York", "a@b.co")
        (event,) = studio_events(studio, Action.STUDIO_UPDATED)
        assert event.before == before
        assert event.after == {
            "name": "Renamed",
            "timezone": "America/New_York",
            "contact_email": "a@b.co",
            "booking_cancellation_hours": 48,
            "payment_instructions": "",
            "accent_color": "#1f5f8b",
            "logo": "",
            "gallery_expiry_notice_days": 7,
        }
        assert event.actor_user_id == owner.user_id

    def test_slug_is_not_editable(self, studio, owner, client_for):
        slug = studio.slug
        response = client_for(owner).patch(studio_url(studio), {"slug": "new-slug"})
        assert response.status_code == 200
        studio.refresh_from_db()
        assert studio.slug == slug
        assert studio_events(studio, Action.STUDIO_UPDATED) == []

    def test_unchanged_update_writes_no_event(self, studio, owner, client_for):
        assert client_for(owner).patch(studio_url(studio), {"name": studio.name}).status_code == 200
        assert studio_events(studio, Action.STUDIO_UPDATED) == []

    @pytest.mark.parametrize("role", [Role.VIEWER, Role.PHOTOGRAPHER, Role.ADMIN])
    def test_only_owner_may_update(self, studio, make_member, client_for, role):
        name = studio.name
        assert_api_error(
            client_for(make_member(role)).patch(studio_url(studio), {"name": "Nope"}), 403, "PERMISSION_DENIED"
        )
        studio.refresh_from_db()
        assert studio.name == name
        assert studio_events(studio, Action.STUDIO_UPDATED) == []

    def test_bad_timezone_is_400(self, studio, owner, client_for):
        error = assert_api_error(
            client_for(owner).patch(studio_url(studio), {"timezone": "Nowhere/Land"}), 400, "VALIDATION_ERROR"
        )
        assert "timezone" in error["fields"]
        studio.refresh_from_db()
        assert studio.timezone == "UTC"


# --- personal API tokens -------------------------------------------------------------------


class TestTokenLifecycle:
    def test_create_shows_the_token_once_and_stores_only_its_hash(self, client_for):
        user = factories.user()
        expires = timezone.now() + timedelta(days=30)
        response = client_for(user).post(TOKENS, {"name": "laptop", "expires_at": expires.isoformat()})
        assert response.status_code == 201, response.content
        body = response.json()
        raw = body["token"]
        assert raw.startswith("stp_")
        assert len(raw) > 40
        assert body["prefix"] == raw[:10]
        assert body["name"] == "laptop"
        assert body["is_live"] is True
        assert body["revoked_at"] is None

        token = ApiToken.objects.get(pk=body["id"])
        assert token.user_id == user.pk
        assert token.token_hash == hash_token(raw)
        assert abs((token.expires_at - expires).total_seconds()) < 1
        for field in ApiToken._meta.concrete_fields:
            value = str(getattr(token, field.attname))
            assert raw not in value, field.name

        # Never shown again.
        client = client_for(user)
        listed = client.get(TOKENS).json()["results"]
        row = next(r for r in listed if r["id"] == body["id"])
        assert "token" not in row
        assert "token" not in client.get(token_url(body["id"])).json()

        (event,) = platform_events(Action.API_TOKEN_CREATED, token.pk)
        assert event.studio_id is None
        assert event.actor_user_id == user.pk
        assert event.after["name"] == "laptop"
        assert event.after["prefix"] == raw[:10]
        assert raw not in str(event.after)

    def test_new_token_authenticates_and_records_last_use(self):
        user = factories.user()
        token, raw = make_token(user)
        assert token.last_used_at is None
        response = bearer(raw).get(ME)
        assert response.status_code == 200
        assert response.json()["id"] == str(user.pk)
        token.refresh_from_db()
        assert token.last_used_at is not None
        assert timezone.now() - token.last_used_at < timedelta(seconds=30)

    def test_last_use_is_written_at_most_once_a_minute(self):
        token, raw = make_token(factories.user())
        client = bearer(raw)
        client.get(ME)
        token.refresh_from_db()
        first = token.last_used_at
        client.get(ME)
        token.refresh_from_db()
        assert token.last_used_at == first
        stale = timezone.now() - timedelta(minutes=5)
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=stale)
        client.get(ME)
        token.refresh_from_db()
        assert token.last_used_at > stale + timedelta(minutes=4)

    def test_token_keyword_is_accepted_too(self):
        user = factories.user()
        _, raw = make_token(user)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {raw}")
        assert client.get(ME).json()["id"] == str(user.pk)

    def test_list_shows_only_my_tokens(self, client_for):
        me, someone = factories.user(), factories.user()
        mine, _ = make_token(me, "mine")
        theirs, _ = make_token(someone, "theirs")
        rows = client_for(me).get(TOKENS).json()["results"]
        ids = {r["id"] for r in rows}
        assert str(mine.pk) in ids
        assert str(theirs.pk) not in ids
        assert all(
            set(r) == {"id", "name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at", "is_live"}
            for r in rows
        )

    def test_revoke_keeps_the_record(self):
        user = factories.user()
        token, raw = make_token(user, "old")
        _, admin_raw = make_token(user, "admin")
        client = bearer(admin_raw)
        assert client.delete(token_url(token.pk)).status_code == 204
        token.refresh_from_db()
        assert token.revoked_at is not None
        assert token.is_live is False
        row = client.get(token_url(token.pk)).json()
        assert row["is_live"] is False
        assert row["revoked_at"] is not None
        (event,) = platform_events(Action.API_TOKEN_REVOKED, token.pk)
        assert event.actor_user_id == user.pk
        # The revoked token no longer opens anything.
        assert_api_error(bearer(raw).get(ME), 401, "AUTHENTICATION_FAILED")
        # Revoking again changes nothing and writes no second event.
        revoked_at = token.revoked_at
        assert client.delete(token_url(token.pk)).status_code == 204
        token.refresh_from_db()
        assert token.revoked_at == revoked_at
        assert len(platform_events(Action.API_TOKEN_REVOKED, token.pk)) == 1

    def test_a_token_can_revoke_itself(self):
        token, raw = make_token(factories.user())
        client = bearer(raw)
        assert client.delete(token_url(token.pk)).status_code == 204
        assert_api_error(client.get(ME), 401, "AUTHENTICATION_FAILED")

    def test_cannot_touch_someone_elses_token(self, client_for):
        victim = factories.user()
        token, raw = make_token(victim)
        client = client_for(factories.user())
        assert_api_error(client.get(token_url(token.pk)), 404, "NOT_FOUND")
        assert_api_error(client.delete(token_url(token.pk)), 404, "NOT_FOUND")
        token.refresh_from_db()
        assert token.revoked_at is None
        assert bearer(raw).get(ME).status_code == 200

    def test_expires_at_must_be_in_the_future(self, client_for):
        user = factories.user()
        past = (timezone.now() - timedelta(minutes=1)).isoformat()
        error = assert_api_error(
            client_for(user).post(TOKENS, {"name": "x", "expires_at": past}), 400, "VALIDATION_ERROR"
        )
        assert "expires_at" in error["fields"]
        assert not ApiToken.objects.filter(user=user, name="x").exists()

    def test_name_is_required(self, client_for):
        error = assert_api_error(client_for(factories.user()).post(TOKENS, {}), 400, "VALIDATION_ERROR")
        assert "name" in error["fields"]

    def test_client_cannot_choose_the_token_or_prefix(self, client_for):
        response = client_for(factories.user()).post(TOKENS, {"name": "x", "prefix": "stp_chosen", "token": "stp_mine"})
        assert response.status_code == 201
        assert response.json()["token"] != "stp_mine"
        assert response.json()["prefix"] != "stp_chosen"
        assert bearer("stp_mine").get(ME).status_code == 401

    def test_anonymous_cannot_list_or_create(self, api):
        assert_api_error(api.get(TOKENS), 401, "NOT_AUTHENTICATED")
        assert_api_error(api.post(TOKENS, {"name": "x"}), 401, "NOT_AUTHENTICATED")
        assert not ApiToken.objects.filter(name="x").exists()


class TestTokenAuthentication:
    def test_expired_token_is_401(self):
        token, raw = make_token(factories.user(), expires_at=timezone.now() + timedelta(hours=1))
        assert bearer(raw).get(ME).status_code == 200
        ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
        response = bearer(raw).get(ME)
        assert_api_error(response, 401, "AUTHENTICATION_FAILED")
        assert response["WWW-Authenticate"].startswith("Bearer")

    def test_unknown_token_is_401(self):
        assert_api_error(bearer("stp_" + "x" * 43).get(ME), 401, "AUTHENTICATION_FAILED")

    def test_hash_is_not_a_token(self):
        token, _ = make_token(factories.user())
        assert_api_error(bearer(token.token_hash).get(ME), 401, "AUTHENTICATION_FAILED")

    def test_malformed_header_is_401(self):
        _, raw = make_token(factories.user())
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw} extra")
        assert_api_error(client.get(ME), 401, "AUTHENTICATION_FAILED")
        client.credentials(HTTP_AUTHORIZATION="Bearer")
        assert_api_error(client.get(ME), 401, "AUTHENTICATION_FAILED")

    def test_inactive_user_is_401(self):
        user = factories.user()
        _, raw = make_token(user)
        user.is_active = False
        user.save()
        assert_api_error(bearer(raw).get(ME), 401, "AUTHENTICATION_FAILED")

    def test_bad_token_does_not_fall_back_to_the_session(self, owner):
        client = APIClient()
        client.force_login(owner.user)
        client.credentials(HTTP_AUTHORIZATION="Bearer stp_wrong")
        assert_api_error(client.get(ME), 401, "AUTHENTICATION_FAILED")

    def test_revoked_token_cannot_reach_studio_endpoints(self, studio, owner):
        token, raw = make_token(owner.user)
        client = bearer(raw)
        assert client.get(f"{studio_url(studio)}members/").status_code == 200
        with context.acting_as(factories.TEST_ACTOR):
            services.api_token_revoke(token=token)
        assert_api_error(client.get(f"{studio_url(studio)}members/"), 401, "AUTHENTICATION_FAILED")
        assert_api_error(client.patch(studio_url(studio), {"name": "x"}), 401, "AUTHENTICATION_FAILED")

    def test_audit_events_name_the_token(self, studio, owner):
        _, raw = make_token(owner.user, name="ci-bot")
        assert bearer(raw).patch(studio_url(studio), {"name": "Via token"}).status_code == 200
        (event,) = studio_events(studio, Action.STUDIO_UPDATED)
        assert event.actor_user_id == owner.user_id
        assert event.actor_label == f"{owner.user.email} (token ci-bot)"
