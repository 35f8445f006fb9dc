"""Deactivating a person ends every way in: API tokens, sessions and calendar
feeds, recorded once on the platform audit chain, whether it is done by the
service or by a platform operator unticking "active" in the admin. Reactivating
the account later brings none of the old tokens or sessions back.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

import pytest
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from audit.chain import verify_chain
from audit.models import PLATFORM_CHAIN, AuditChainHead, AuditEvent
from bookings import services as booking_services
from bookings.models import BookingStatus
from studio import context
from studio import services as studio_services
from studio.auditing import Action
from studio.models import ApiToken, User
from studio.roles import Role
from studio.tenancy import studio_scope, unscoped
from tests import factories

pytestmark = pytest.mark.django_db

ME = "/api/v1/me/"


def _token_client(user: User, name: str = "laptop") -> tuple[APIClient, ApiToken]:
    with context.acting_as(factories.TEST_ACTOR):
        token, raw = studio_services.api_token_create(user=user, name=name)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client, token


def _session_client(user: User) -> Client:
    client = Client()
    client.force_login(user)  # a real database session, as a sign-in makes
    return client


def _sessions_of(user: User) -> list[str]:
    now = timezone.now()
    return [
        s.session_key
        for s in Session.objects.filter(expire_date__gt=now)
        if s.get_decoded().get(SESSION_KEY) == str(user.pk)
    ]


def _platform_events(action: str) -> list[AuditEvent]:
    with unscoped():
        return list(AuditEvent.objects.filter(chain=PLATFORM_CHAIN, action=action).order_by("seq"))


def _deactivate(user: User) -> User:
    with context.acting_as(factories.TEST_ACTOR):
        return studio_services.user_deactivate(user=user)


def _reactivate(user: User) -> None:
    User.objects.filter(pk=user.pk).update(is_active=True)


def _signed_in(client: Client | APIClient) -> bool:
    response = client.get(ME)
    assert response.status_code in (200, 401, 403), response.content
    return response.status_code == 200


def _feed_path(owner, scope: str = "member") -> str:
    with context.acting_as(factories.TEST_ACTOR), studio_scope(owner.studio):
        _, raw = booking_services.feed_create(owner=owner, scope=scope)
    return f"/calendar/{raw}.ics"


# --- the service -------------------------------------------------------------------------------------


def test_deactivation_ends_tokens_sessions_and_feeds_and_reactivation_brings_none_back(studio, owner):
    leaver = factories.member(studio, Role.ADMIN)
    user = leaver.user
    laptop, laptop_token = _token_client(user, "laptop")
    ci, ci_token = _token_client(user, "ci")
    with context.acting_as(factories.TEST_ACTOR):
        revoked_before, _ = studio_services.api_token_create(user=user, name="old")
        studio_services.api_token_revoke(token=revoked_before)
    browser, phone = _session_client(user), _session_client(user)
    colleague_browser = _session_client(owner.user)
    colleague_api, _ = _token_client(owner.user)
    studio_feed, own_feed = _feed_path(leaver, "studio"), _feed_path(leaver, "member")
    colleague_feed = _feed_path(owner, "studio")
    api = APIClient()
    assert all(_signed_in(c) for c in (laptop, ci, browser, phone))
    assert all(api.get(p).status_code == 200 for p in (studio_feed, own_feed, colleague_feed))
    assert len(_sessions_of(user)) == 2

    returned = _deactivate(user)

    assert returned.is_active is False
    user.refresh_from_db()
    assert user.is_active is False
    assert not any(_signed_in(c) for c in (laptop, ci, browser, phone))
    assert _sessions_of(user) == []
    assert [api.get(p).status_code for p in (studio_feed, own_feed)] == [404, 404]
    # Nobody else lost anything.
    assert _signed_in(colleague_browser) and _signed_in(colleague_api)
    assert api.get(colleague_feed).status_code == 200

    # The account comes back (a platform operator ticks "active" again): the
    # person signs in anew; their old tokens and sessions stay dead.
    _reactivate(user)
    assert not any(_signed_in(c) for c in (laptop, ci, browser, phone))
    for token in (laptop_token, ci_token):
        token.refresh_from_db()
        assert token.revoked_at is not None
    assert _signed_in(_session_client(user))

    (event,) = _platform_events(Action.USER_DEACTIVATED)
    assert event.studio_id is None and event.chain == PLATFORM_CHAIN
    assert event.target_type == "studio.user" and event.target_id == str(user.pk)
    assert event.actor_label == factories.TEST_ACTOR.label
    assert event.before == {"is_active": True}
    assert event.after["is_active"] is False
    assert sorted(event.after["api_tokens_revoked"]) == sorted([laptop_token.prefix, ci_token.prefix])
    assert event.after["sessions_ended"] == 2
    revocations = {e.target_id for e in _platform_events(Action.API_TOKEN_REVOKED)}
    assert {str(laptop_token.pk), str(ci_token.pk)} <= revocations
    with unscoped():
        events = AuditEvent.objects.filter(chain=PLATFORM_CHAIN).order_by("seq")
        assert verify_chain(PLATFORM_CHAIN, events, head=AuditChainHead.objects.get(chain=PLATFORM_CHAIN)) is None


def test_deactivating_twice_records_it_once(studio):
    user = factories.member(studio, Role.VIEWER).user
    _token_client(user)
    _deactivate(user)
    _deactivate(user)
    assert len(_platform_events(Action.USER_DEACTIVATED)) == 1


def test_a_token_or_session_made_while_active_cannot_outlive_a_later_deactivation(studio):
    """Deactivation is not a snapshot: what was made just before it ends too."""
    user = factories.member(studio, Role.VIEWER).user
    _deactivate(user)
    _reactivate(user)
    fresh_api, _ = _token_client(user)
    fresh_browser = _session_client(user)
    assert _signed_in(fresh_api) and _signed_in(fresh_browser)
    _deactivate(user)
    assert not _signed_in(fresh_api) and not _signed_in(fresh_browser)
    assert len(_platform_events(Action.USER_DEACTIVATED)) == 2


def test_an_inactive_user_is_refused_even_when_flagged_outside_the_service(studio):
    """The doors check the account themselves: a user made inactive by a bare
    update (a shell, a migration) is refused by token, by session and by feed."""
    member = factories.member(studio, Role.ADMIN)
    api_client, _ = _token_client(member.user)
    browser = _session_client(member.user)
    feed = _feed_path(member, "studio")
    User.objects.filter(pk=member.user.pk).update(is_active=False)
    assert not _signed_in(api_client)
    assert not _signed_in(browser)
    assert APIClient().get(feed).status_code == 404
    assert APIClient().head(feed).status_code == 404


def test_a_deactivated_owners_feed_shows_no_client_even_to_a_conditional_poll(studio):
    owner = factories.owner_membership(studio)
    service = factories.service(studio)
    start = timezone.now() + timedelta(days=3)
    factories.booking(studio, start=start, service_=service, status=BookingStatus.CONFIRMED)
    path = _feed_path(owner, "studio")
    first = APIClient().get(path)
    assert first.status_code == 200 and b"VEVENT" in first.content
    _deactivate(owner.user)
    for response in (
        APIClient().get(path),
        APIClient().get(path, HTTP_IF_NONE_MATCH=first["ETag"]),  # not a 304 that confirms it still exists
        APIClient().head(path),
    ):
        assert response.status_code == 404
        assert b"VEVENT" not in response.content


# --- the admin: a platform operator unticks "active" --------------------------------------------------


@pytest.fixture
def operator_client(db) -> Client:
    operator = User.objects.create_superuser(f"root-{secrets.token_hex(4)}@example.com", "x-very-long-password")
    client = Client()
    client.force_login(operator)
    client.operator = operator  # type: ignore[attr-defined]
    return client


def _change_url(user: User) -> str:
    return reverse("admin:studio_user_change", args=[user.pk])


def _form(user: User, **changes: object) -> dict[str, object]:
    data = {"email": user.email, "full_name": user.full_name, "is_active": "on", "is_staff": "", "is_superuser": ""}
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def test_unticking_active_in_the_admin_ends_tokens_sessions_and_feeds(studio, operator_client):
    member = factories.member(studio, Role.ADMIN)
    user = member.user
    api_client, token = _token_client(user)
    browser = _session_client(user)
    feed = _feed_path(member, "studio")
    assert _signed_in(api_client) and _signed_in(browser)

    response = operator_client.post(_change_url(user), _form(user, is_active=None, full_name="Left in May"))

    assert response.status_code == 302, response.content
    user.refresh_from_db()
    assert (user.is_active, user.full_name) == (False, "Left in May")  # the rest of the form is saved too
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert _sessions_of(user) == []
    _reactivate(user)  # even so, nothing comes back
    assert not _signed_in(api_client) and not _signed_in(browser)
    User.objects.filter(pk=user.pk).update(is_active=False)
    assert APIClient().get(feed).status_code == 404
    (event,) = _platform_events(Action.USER_DEACTIVATED)
    assert event.actor_user_id == operator_client.operator.pk  # type: ignore[attr-defined]
    assert event.after["api_tokens_revoked"] == [token.prefix]
    assert event.after["sessions_ended"] == 1
    # The operator's own session is untouched.
    assert operator_client.get(reverse("admin:index")).status_code == 200


def test_saving_a_user_in_the_admin_without_unticking_active_ends_nothing(studio, operator_client):
    user = factories.member(studio, Role.VIEWER).user
    api_client, token = _token_client(user)
    response = operator_client.post(_change_url(user), _form(user, full_name="Renamed"))
    assert response.status_code == 302, response.content
    user.refresh_from_db()
    assert (user.is_active, user.full_name) == (True, "Renamed")
    assert _signed_in(api_client)
    assert _platform_events(Action.USER_DEACTIVATED) == []


def test_the_admin_change_is_all_or_nothing(studio, operator_client, monkeypatch):
    """The form's save and the deactivation share the admin's transaction."""
    user = factories.member(studio, Role.VIEWER).user
    api_client, _ = _token_client(user)

    def broken(*args, **kwargs):
        raise RuntimeError("the session store is down")

    monkeypatch.setattr(studio_services, "_end_sessions", broken)
    operator_client.raise_request_exception = False
    response = operator_client.post(_change_url(user), _form(user, is_active=None, full_name="Half done"))
    assert response.status_code == 500
    user.refresh_from_db()
    assert (user.is_active, user.full_name) == (True, "")
    assert _signed_in(api_client)
    assert _platform_events(Action.USER_DEACTIVATED) == []


def test_only_live_tokens_are_listed_as_revoked(studio):
    user = factories.member(studio, Role.VIEWER).user
    _, live = _token_client(user, "live")
    with context.acting_as(factories.TEST_ACTOR):
        expired, _ = studio_services.api_token_create(
            user=user, name="expired", expires_at=timezone.now() - timedelta(days=1)
        )
    _deactivate(user)
    (event,) = _platform_events(Action.USER_DEACTIVATED)
    assert event.after["api_tokens_revoked"] == [live.prefix]
    expired.refresh_from_db()
    assert expired.revoked_at is None  # already dead; its record says when it expired
