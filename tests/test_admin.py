"""The studio-scoped admin: members reach it through their memberships, see
their studio's rows only, act within their role, and every write is audited."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from audit.models import AuditEvent
from studio.admin_site import SESSION_KEY
from studio.auditing import Action
from studio.models import Membership, Studio, User
from studio.roles import Role
from studio.tenancy import current_studio_or_none, is_unscoped, studio_scope, unscoped
from teams.models import Invitation, Team
from tests import factories


@dataclass
class World:
    alpha: Studio
    bravo: Studio
    alpha_team: Team
    bravo_team: Team
    alpha_member: Membership
    bravo_member: Membership
    alpha_invitation: Invitation
    bravo_invitation: Invitation


@pytest.fixture
def world(db) -> World:
    """Two studios with a little of everything each. Names sort Alpha < Bravo,
    so Alpha is the admin's default studio."""
    alpha = factories.studio("Alpha Studio")
    bravo = factories.studio("Bravo Studio")
    alpha_member = factories.member(alpha, Role.VIEWER, user_=factories.user("alpha.viewer@example.com"))
    bravo_member = factories.member(bravo, Role.VIEWER, user_=factories.user("bravo.viewer@example.com"))
    return World(
        alpha=alpha,
        bravo=bravo,
        alpha_team=factories.team(alpha, "Alpha crew", members=[alpha_member]),
        bravo_team=factories.team(bravo, "Bravo crew", members=[bravo_member]),
        alpha_member=alpha_member,
        bravo_member=bravo_member,
        alpha_invitation=factories.invitation(alpha, "alpha.invitee@example.com")[0],
        bravo_invitation=factories.invitation(bravo, "bravo.invitee@example.com")[0],
    )


def _url(model: type, view: str = "changelist", *args: object) -> str:
    meta = model._meta
    return reverse(f"admin:{meta.app_label}_{meta.model_name}_{view}", args=args)


def _rows(response) -> list:
    assert response.status_code == 200, response.status_code
    return list(response.context["cl"].result_list)


def _messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def _events(studio: Studio, action: str) -> list[AuditEvent]:
    with studio_scope(studio):
        return list(AuditEvent.objects.filter(action=action).order_by("seq"))


@pytest.fixture
def signed_in(client):
    def sign_in(membership_or_user):
        user = getattr(membership_or_user, "user", membership_or_user)
        client.force_login(user)
        return client

    return sign_in


@pytest.fixture
def alpha_admin(world) -> Membership:
    return factories.member(world.alpha, Role.ADMIN, user_=factories.user("alpha.admin@example.com"))


# --- who gets in ------------------------------------------------------------------------------


def test_member_who_is_not_staff_sees_the_admin_index(world, alpha_admin, signed_in):
    assert not alpha_admin.user.is_staff and not alpha_admin.user.is_superuser
    response = signed_in(alpha_admin).get(reverse("admin:index"))
    assert response.status_code == 200
    assert response.context["admin_studio"] == world.alpha
    models = {m["object_name"] for app in response.context["app_list"] for m in app["models"]}
    assert {"Membership", "Team", "Invitation", "AuditEvent", "Studio"} <= models
    assert "User" not in models  # platform operators only
    assert "Alpha Studio" in response.content.decode()


def test_anonymous_admin_goes_to_allauth_login(client, db):
    response = client.get(reverse("admin:index"), follow=True)
    final_url, status = response.redirect_chain[-1]
    assert status == 302
    assert final_url.startswith(reverse("account_login"))
    assert "next=/admin/" in final_url
    assert response.status_code == 200
    # Not Django's own admin login form.
    assert response.templates[0].name.startswith("account/")


def test_signed_in_user_without_memberships_gets_403(client, db):
    client.force_login(factories.user("nobody@example.com"))
    assert client.get(reverse("admin:login")).status_code == 403
    response = client.get(reverse("admin:index"), follow=True)
    assert response.status_code == 403


def test_member_of_an_inactive_studio_only_gets_403(world, signed_in):
    Studio.objects.filter(pk=world.bravo.pk).update(is_active=False)
    client = signed_in(world.bravo_member)
    assert client.get(reverse("admin:login")).status_code == 403


def test_non_superuser_cannot_manage_users(alpha_admin, signed_in):
    assert signed_in(alpha_admin).get(_url(User)).status_code == 403


# --- what they see -----------------------------------------------------------------------------


def test_changelists_show_only_the_admin_studio(world, alpha_admin, signed_in):
    client = signed_in(alpha_admin)

    memberships = _rows(client.get(_url(Membership)))
    assert memberships and {m.studio_id for m in memberships} == {world.alpha.pk}
    with unscoped():
        assert len(memberships) == Membership.objects.filter(studio=world.alpha).count()

    teams = _rows(client.get(_url(Team)))
    assert [t.name for t in teams] == ["Alpha crew"]

    invitations = _rows(client.get(_url(Invitation)))
    assert [i.email for i in invitations] == ["alpha.invitee@example.com"]

    events = _rows(client.get(_url(AuditEvent)))
    assert events and {e.studio_id for e in events} == {world.alpha.pk}

    studios = _rows(client.get(_url(Studio)))
    assert studios == [world.alpha]

    page = client.get(_url(Membership)).content.decode()
    assert "alpha.viewer@example.com" in page
    assert "bravo.viewer@example.com" not in page


def test_another_studios_objects_are_not_shown(world, alpha_admin, signed_in):
    client = signed_in(alpha_admin)
    for model, obj in [
        (Team, world.bravo_team),
        (Membership, world.bravo_member),
        (Invitation, world.bravo_invitation),
        (Studio, world.bravo),
    ]:
        response = client.get(_url(model, "change", obj.pk))
        # Django's admin answers a missing object with a redirect to the index.
        assert response.status_code in (302, 404), model
        if response.status_code == 302:
            assert response["Location"] == reverse("admin:index"), model
    with unscoped():
        bravo_event = AuditEvent.objects.filter(studio=world.bravo).first()
    assert client.get(_url(AuditEvent, "change", bravo_event.pk)).status_code in (302, 404)


def test_another_studios_objects_cannot_be_changed(world, alpha_admin, signed_in):
    client = signed_in(alpha_admin)
    client.post(_url(Membership, "change", world.bravo_member.pk), {"role": Role.ADMIN})
    client.post(_url(Team, "change", world.bravo_team.pk), {"name": "Hijacked", "description": ""})
    client.post(_url(Team, "delete", world.bravo_team.pk), {"post": "yes"})
    with unscoped():
        assert Membership.objects.get(pk=world.bravo_member.pk).role == Role.VIEWER
        assert Team.objects.get(pk=world.bravo_team.pk).name == "Bravo crew"
    assert _events(world.bravo, Action.MEMBER_ROLE_CHANGED) == []
    assert _events(world.bravo, Action.TEAM_UPDATED) == []


def test_team_form_offers_only_the_studios_members(world, alpha_admin, signed_in):
    response = signed_in(alpha_admin).get(_url(Team, "add"))
    assert response.status_code == 200
    choices = set(response.context["adminform"].form.fields["team_members"].queryset)
    assert world.alpha_member in choices
    assert {m.studio_id for m in choices} == {world.alpha.pk}


def test_admin_requests_leave_no_scope_behind(world, alpha_admin, signed_in, client):
    signed_in(alpha_admin).get(_url(Team))
    assert current_studio_or_none() is None
    assert not is_unscoped()
    superuser = User.objects.create_superuser("root@example.com", "x-very-long-password")
    client.force_login(superuser)
    client.get(_url(Team))
    assert current_studio_or_none() is None
    assert not is_unscoped()


# --- switching studio -------------------------------------------------------------------------------


@pytest.fixture
def two_studio_admin(world) -> User:
    user = factories.user("both.admin@example.com")
    factories.member(world.alpha, Role.ADMIN, user_=user)
    factories.member(world.bravo, Role.ADMIN, user_=user)
    return user


def test_switching_to_a_studio_of_yours_changes_what_you_see(world, two_studio_admin, signed_in):
    client = signed_in(two_studio_admin)
    index = client.get(reverse("admin:index"))
    assert 'id="switch-studio"' in index.content.decode()
    assert [t.name for t in _rows(client.get(_url(Team)))] == ["Alpha crew"]

    response = client.post(reverse("admin:switch-studio"), {"studio": str(world.bravo.pk), "next": _url(Team)})
    assert response.status_code == 302
    assert response["Location"] == _url(Team)
    assert client.session[SESSION_KEY] == str(world.bravo.pk)
    assert [t.name for t in _rows(client.get(_url(Team)))] == ["Bravo crew"]
    assert [i.email for i in _rows(client.get(_url(Invitation)))] == ["bravo.invitee@example.com"]
    assert client.get(reverse("admin:index")).context["admin_studio"] == world.bravo


def test_switching_to_a_studio_not_yours_does_nothing(world, alpha_admin, signed_in):
    stranger = factories.studio("Charlie Studio")
    factories.team(stranger, "Charlie crew")
    client = signed_in(alpha_admin)
    response = client.post(reverse("admin:switch-studio"), {"studio": str(stranger.pk)}, follow=True)
    assert "You are not a member of that studio." in _messages(response)
    assert SESSION_KEY not in client.session
    assert [t.name for t in _rows(client.get(_url(Team)))] == ["Alpha crew"]
    # Also for a studio the user belongs to elsewhere in the platform: bravo.
    client.post(reverse("admin:switch-studio"), {"studio": str(world.bravo.pk)})
    assert [t.name for t in _rows(client.get(_url(Team)))] == ["Alpha crew"]


def test_a_stale_session_studio_falls_back_to_a_membership(world, alpha_admin, signed_in):
    client = signed_in(alpha_admin)
    session = client.session
    session[SESSION_KEY] = str(world.bravo.pk)  # e.g. a membership that was removed
    session.save()
    assert [t.name for t in _rows(client.get(_url(Team)))] == ["Alpha crew"]


def test_switch_studio_refuses_offsite_next_and_get(world, two_studio_admin, signed_in):
    client = signed_in(two_studio_admin)
    response = client.post(
        reverse("admin:switch-studio"), {"studio": str(world.bravo.pk), "next": "https://evil.example.com/"}
    )
    assert response["Location"] == reverse("admin:index")
    assert client.get(reverse("admin:switch-studio")).status_code == 405


# --- roles ----------------------------------------------------------------------------------------


def test_viewer_cannot_see_invitations_or_audit(world, signed_in):
    client = signed_in(world.alpha_member)  # a viewer
    assert client.get(_url(Invitation)).status_code == 403
    assert client.get(_url(AuditEvent)).status_code == 403
    with studio_scope(world.alpha):
        event = AuditEvent.objects.first()
    assert client.get(_url(AuditEvent, "change", event.pk)).status_code == 403
    # Members and teams are readable (member:read), but not writable.
    assert client.get(_url(Membership)).status_code == 200
    assert client.get(_url(Team)).status_code == 200
    assert client.get(_url(Team, "add")).status_code == 403
    index = client.get(reverse("admin:index"))
    models = {m["object_name"] for app in index.context["app_list"] for m in app["models"]}
    assert "Invitation" not in models
    assert "AuditEvent" not in models


def test_viewer_cannot_change_a_role(world, signed_in):
    other = factories.member(world.alpha, Role.VIEWER)
    client = signed_in(world.alpha_member)
    response = client.post(_url(Membership, "change", other.pk), {"role": Role.ADMIN})
    assert response.status_code == 403
    with studio_scope(world.alpha):
        assert Membership.objects.get(pk=other.pk).role == Role.VIEWER


def test_superuser_sees_every_studio(world, client):
    client.force_login(User.objects.create_superuser("root@example.com", "x-very-long-password"))
    assert {t.name for t in _rows(client.get(_url(Team)))} == {"Alpha crew", "Bravo crew"}
    assert {i.email for i in _rows(client.get(_url(Invitation)))} == {
        "alpha.invitee@example.com",
        "bravo.invitee@example.com",
    }
    assert {m.studio_id for m in _rows(client.get(_url(Membership)))} == {world.alpha.pk, world.bravo.pk}
    # Every studio's events, and the platform's (no studio: the sign-in itself).
    assert {e.studio_id for e in _rows(client.get(_url(AuditEvent)))} == {world.alpha.pk, world.bravo.pk, None}
    assert {s.pk for s in _rows(client.get(_url(Studio)))} == {world.alpha.pk, world.bravo.pk}
    assert client.get(_url(Team, "change", world.bravo_team.pk)).status_code == 200


# --- the audit log is read-only -----------------------------------------------------------------


def test_audit_events_are_read_only(world, alpha_admin, signed_in):
    client = signed_in(alpha_admin)
    with studio_scope(world.alpha):
        event = AuditEvent.objects.filter(action=Action.TEAM_CREATED).first()
        before = (event.action, event.actor_label, event.hash)
        count = AuditEvent.objects.count()

    view = client.get(_url(AuditEvent, "change", event.pk))
    assert view.status_code == 200  # viewable...
    assert view.context["has_change_permission"] is False
    assert view.context["has_delete_permission"] is False
    assert client.get(_url(AuditEvent, "add")).status_code == 403
    assert client.post(_url(AuditEvent, "add"), {"action": Action.TEAM_DELETED}).status_code == 403
    response = client.post(_url(AuditEvent, "change", event.pk), {"action": Action.TEAM_DELETED, "actor_label": "x"})
    assert response.status_code == 403
    assert client.post(_url(AuditEvent, "delete", event.pk), {"post": "yes"}).status_code == 403
    bulk = client.post(_url(AuditEvent), {"action": "delete_selected", "_selected_action": [str(event.pk)]})
    assert bulk.status_code in (200, 302, 403)

    with studio_scope(world.alpha):
        fresh = AuditEvent.objects.get(pk=event.pk)
        assert (fresh.action, fresh.actor_label, fresh.hash) == before
        assert AuditEvent.objects.count() == count


# --- writes go through services and are audited ---------------------------------------------------


def test_creating_a_team_in_the_admin_is_audited(world, alpha_admin, signed_in):
    client = signed_in(alpha_admin)
    response = client.post(
        _url(Team, "add"),
        {"name": "Night crew", "description": "Late events", "team_members": [str(world.alpha_member.pk)]},
    )
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    with studio_scope(world.alpha):
        team = Team.objects.get(name="Night crew")
        assert list(team.members.all()) == [world.alpha_member]
    assert team.studio_id == world.alpha.pk
    events = [e for e in _events(world.alpha, Action.TEAM_CREATED) if e.target_id == str(team.pk)]
    assert len(events) == 1
    event = events[0]
    assert event.actor_user_id == alpha_admin.user_id
    assert event.after["name"] == "Night crew"
    assert event.after["members"] == [str(world.alpha_member.pk)]
    assert event.request_id  # bound by the request middleware
    with unscoped():
        assert not Team.objects.filter(studio=world.bravo, name="Night crew").exists()


@pytest.mark.parametrize("view", ["add", "change"])
def test_a_duplicate_team_name_in_the_admin_is_a_form_error(world, alpha_admin, signed_in, view):
    other = factories.team(world.alpha, "Other crew")
    client = signed_in(alpha_admin)
    client.raise_request_exception = False
    url = _url(Team, "add") if view == "add" else _url(Team, "change", other.pk)
    response = client.post(url, {"name": "Alpha crew", "description": ""})
    with studio_scope(world.alpha):
        assert Team.objects.filter(name="Alpha crew").count() == 1
        assert Team.objects.filter(pk=other.pk, name="Other crew").exists()
    assert response.status_code == 200  # the form again, with an error on the name
    assert "name" in response.context["adminform"].form.errors


def test_changing_a_role_in_the_admin_is_audited(world, alpha_admin, signed_in):
    client = signed_in(alpha_admin)
    response = client.post(_url(Membership, "change", world.alpha_member.pk), {"role": Role.PHOTOGRAPHER})
    assert response.status_code == 302
    with studio_scope(world.alpha):
        assert Membership.objects.get(pk=world.alpha_member.pk).role == Role.PHOTOGRAPHER
    events = _events(world.alpha, Action.MEMBER_ROLE_CHANGED)
    assert len(events) == 1
    assert events[0].target_id == str(world.alpha_member.pk)
    assert events[0].before == {"role": Role.VIEWER}
    assert events[0].after == {"role": Role.PHOTOGRAPHER}
    assert events[0].actor_user_id == alpha_admin.user_id


def _refused_in_form(response) -> list[str]:
    """The form shown again with the service's refusal, and no success message."""
    assert response.status_code == 200
    assert not any("successfully" in m for m in _messages(response)), _messages(response)
    return [str(e) for errors in response.context["adminform"].form.errors.values() for e in errors]


def test_admin_cannot_promote_to_owner_in_the_admin(world, alpha_admin, signed_in):
    client = signed_in(alpha_admin)
    response = client.post(_url(Membership, "change", world.alpha_member.pk), {"role": Role.OWNER}, follow=True)
    assert "You cannot grant a role above your own." in _refused_in_form(response)
    with studio_scope(world.alpha):
        assert Membership.objects.get(pk=world.alpha_member.pk).role == Role.VIEWER
    assert _events(world.alpha, Action.MEMBER_ROLE_CHANGED) == []


def test_admin_cannot_demote_the_owner_in_the_admin(world, alpha_admin, signed_in):
    owner = factories.owner_membership(world.alpha)
    client = signed_in(alpha_admin)
    response = client.post(_url(Membership, "change", owner.pk), {"role": Role.VIEWER}, follow=True)
    # Before: the error and "changed successfully" side by side.
    assert any("above yours" in m for m in _refused_in_form(response))
    with studio_scope(world.alpha):
        assert Membership.objects.get(pk=owner.pk).role == Role.OWNER


def test_deleting_a_team_in_the_admin_is_audited(world, alpha_admin, signed_in):
    client = signed_in(alpha_admin)
    response = client.post(_url(Team, "delete", world.alpha_team.pk), {"post": "yes"})
    assert response.status_code == 302
    with studio_scope(world.alpha):
        assert not Team.objects.filter(pk=world.alpha_team.pk).exists()
    assert [e.target_id for e in _events(world.alpha, Action.TEAM_DELETED)] == [str(world.alpha_team.pk)]


def test_inviting_in_the_admin_is_audited(world, alpha_admin, signed_in):
    client = signed_in(alpha_admin)
    response = client.post(_url(Invitation, "add"), {"email": "new.person@example.com", "role": Role.ASSISTANT})
    assert response.status_code == 302
    with studio_scope(world.alpha):
        invitation = Invitation.objects.get(email="new.person@example.com")
    assert invitation.invited_by_id == alpha_admin.user_id
    assert [e.target_id for e in _events(world.alpha, Action.MEMBER_INVITED)][-1] == str(invitation.pk)


# --- superusers (platform operators) ------------------------------------------------------------


@pytest.fixture
def superuser_client(client, db):
    client.force_login(User.objects.create_superuser("root@example.com", "x-very-long-password"))
    return client


@pytest.mark.parametrize(
    ("model", "data"),
    [
        (Team, {"name": "Operator crew", "description": ""}),
        (Invitation, {"email": "operator.invitee@example.com", "role": Role.VIEWER}),
    ],
    ids=["team", "invitation"],
)
def test_superuser_add_forms_do_not_crash(world, superuser_client, model, data):
    superuser_client.raise_request_exception = False
    response = superuser_client.post(_url(model, "add"), data)
    assert response.status_code != 500


def test_superuser_cannot_put_another_studios_member_in_a_team(world, superuser_client):
    superuser_client.post(
        _url(Team, "change", world.alpha_team.pk),
        {"name": "Alpha crew", "description": "", "team_members": [str(world.bravo_member.pk)]},
    )
    with unscoped():
        studios = {m.studio_id for m in Team.objects.get(pk=world.alpha_team.pk).members.all()}
    assert studios <= {world.alpha.pk}
