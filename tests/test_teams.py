"""Memberships, teams and invitations: roles as data, rank rules, the last
owner, team CRUD, the invitation flow (API and HTML page) and query counts."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditEvent
from studio import context
from studio import services as studio_services
from studio.auditing import Action
from studio.models import Membership, Studio, hash_token
from studio.roles import ROLE_SCOPES, SCOPES, Role, can_grant, rank, scopes_for
from studio.tenancy import studio_scope, unscoped
from teams import services as team_services
from teams.models import Invitation, InvitationStatus, Team, TeamMember
from tests import factories
from tests.helpers import assert_api_error

pytestmark = pytest.mark.django_db

ROLES_LOW_TO_HIGH = [Role.VIEWER, Role.ASSISTANT, Role.PHOTOGRAPHER, Role.ADMIN, Role.OWNER]


# --- helpers ----------------------------------------------------------------------------


def members_url(studio: Studio, pk: object | None = None) -> str:
    base = f"/api/v1/studios/{studio.slug}/members/"
    return f"{base}{pk}/" if pk is not None else base


def teams_url(studio: Studio, pk: object | None = None) -> str:
    base = f"/api/v1/studios/{studio.slug}/teams/"
    return f"{base}{pk}/" if pk is not None else base


def invitations_url(studio: Studio, pk: object | None = None) -> str:
    base = f"/api/v1/studios/{studio.slug}/invitations/"
    return f"{base}{pk}/" if pk is not None else base


ACCEPT_URL = "/api/v1/invitations/accept/"


def events(studio: Studio, action: Action) -> list[AuditEvent]:
    with studio_scope(studio):
        return list(AuditEvent.objects.filter(action=action).order_by("seq"))


def membership(studio: Studio, pk: object) -> Membership | None:
    with studio_scope(studio):
        return Membership.objects.filter(pk=pk).first()


def results(response) -> list[dict]:
    assert response.status_code == 200, response.content
    return response.json()["results"]


def token_from_email(message) -> str:
    match = re.search(r"/invitations/([A-Za-z0-9_\-]+)/", message.body)
    assert match, message.body
    return match.group(1)


# --- the role table -----------------------------------------------------------------------


class TestRoleTable:
    def test_roles_are_declared_lowest_to_highest(self):
        assert list(Role) == ROLES_LOW_TO_HIGH
        assert [rank(r) for r in ROLES_LOW_TO_HIGH] == list(range(len(ROLES_LOW_TO_HIGH)))

    def test_every_role_has_scopes_and_only_known_ones(self):
        assert set(ROLE_SCOPES) == set(Role.values)
        for role, scopes in ROLE_SCOPES.items():
            assert scopes, role
            assert scopes <= SCOPES, (role, scopes - SCOPES)

    @pytest.mark.parametrize("lower,higher", list(zip(ROLES_LOW_TO_HIGH, ROLES_LOW_TO_HIGH[1:], strict=False)))
    def test_each_higher_role_has_strictly_more_scopes(self, lower, higher):
        assert scopes_for(lower) < scopes_for(higher)

    def test_owner_holds_every_scope(self):
        assert scopes_for(Role.OWNER) == SCOPES

    def test_only_owner_has_studio_admin(self):
        assert [r for r in Role if "studio:admin" in scopes_for(r)] == [Role.OWNER]

    def test_only_admin_and_owner_manage_members_and_read_audit(self):
        for scope in ("member:admin", "audit:read"):
            assert [r for r in Role if scope in scopes_for(r)] == [Role.ADMIN, Role.OWNER]

    def test_every_role_can_read_the_studio_and_its_members(self):
        for role in Role:
            assert {"studio:read", "member:read"} <= scopes_for(role)

    def test_viewer_cannot_write(self):
        assert not {s for s in scopes_for(Role.VIEWER) if not s.endswith(":read")}

    def test_unknown_role_has_no_scopes(self):
        assert scopes_for("superhero") == frozenset()
        assert scopes_for("") == frozenset()

    @pytest.mark.parametrize("granter", ROLES_LOW_TO_HIGH)
    @pytest.mark.parametrize("role", ROLES_LOW_TO_HIGH)
    def test_can_grant_up_to_own_rank_only(self, granter, role):
        expected = ROLES_LOW_TO_HIGH.index(role) <= ROLES_LOW_TO_HIGH.index(granter)
        assert can_grant(granter, role) is expected

    def test_can_grant_examples(self):
        assert can_grant(Role.OWNER, Role.OWNER)
        assert can_grant(Role.ADMIN, Role.ADMIN)
        assert not can_grant(Role.ADMIN, Role.OWNER)
        assert not can_grant(Role.VIEWER, Role.ASSISTANT)


# --- members: reading ------------------------------------------------------------------


class TestMemberList:
    def test_lists_members_of_this_studio_only(self, studio, other_studio, owner, make_member, client_for):
        viewer = make_member(Role.VIEWER)
        admin = make_member(Role.ADMIN)
        factories.member(other_studio, Role.ADMIN)
        rows = results(client_for(viewer).get(members_url(studio)))
        assert {r["id"] for r in rows} == {str(owner.pk), str(viewer.pk), str(admin.pk)}
        by_id = {r["id"]: r for r in rows}
        assert by_id[str(admin.pk)]["role"] == "admin"
        assert by_id[str(admin.pk)]["user"] == {
            "id": str(admin.user.pk),
            "email": admin.user.email,
            "full_name": admin.user.full_name,
        }
        assert set(by_id[str(owner.pk)]) == {"id", "user", "role", "teams", "created_at"}

    def test_member_shows_their_teams(self, studio, owner, make_member, client_for):
        m = make_member(Role.ASSISTANT)
        t1 = factories.team(studio, "Second shooters", members=[m])
        t2 = factories.team(studio, "Editors", members=[m, owner])
        body = client_for(owner).get(members_url(studio, m.pk)).json()
        assert sorted(body["teams"]) == sorted([str(t1.pk), str(t2.pk)])
        owner_row = client_for(owner).get(members_url(studio, owner.pk)).json()
        assert owner_row["teams"] == [str(t2.pk)]

    @pytest.mark.parametrize("role", ROLES_LOW_TO_HIGH)
    def test_every_role_can_read_members(self, studio, owner, make_member, client_for, role):
        m = owner if role == Role.OWNER else make_member(role)
        assert client_for(m).get(members_url(studio)).status_code == 200
        assert client_for(m).get(members_url(studio, owner.pk)).status_code == 200

    def test_non_member_gets_404_like_a_missing_studio(self, studio, other_studio, client_for):
        outsider = factories.owner_membership(other_studio)
        client = client_for(outsider)
        assert_api_error(client.get(members_url(studio)), 404, "NOT_FOUND")
        missing = Studio(slug="no-such-studio")
        assert_api_error(client.get(members_url(missing)), 404, "NOT_FOUND")

    def test_anonymous_gets_401(self, studio, api):
        assert_api_error(api.get(members_url(studio)), 401, "NOT_AUTHENTICATED")

    def test_other_studios_membership_id_is_404(self, studio, other_studio, owner, client_for):
        foreign = factories.member(other_studio, Role.VIEWER)
        client = client_for(owner)
        assert_api_error(client.get(members_url(studio, foreign.pk)), 404, "NOT_FOUND")
        assert_api_error(client.patch(members_url(studio, foreign.pk), {"role": "admin"}), 404, "NOT_FOUND")
        assert_api_error(client.delete(members_url(studio, foreign.pk)), 404, "NOT_FOUND")
        assert membership(other_studio, foreign.pk).role == Role.VIEWER

    def test_filter_by_role(self, studio, owner, make_member, client_for):
        a1, a2 = make_member(Role.ADMIN), make_member(Role.ADMIN)
        v = make_member(Role.VIEWER)
        make_member(Role.PHOTOGRAPHER)
        client = client_for(owner)
        rows = results(client.get(members_url(studio), {"role": "admin"}))
        assert {r["id"] for r in rows} == {str(a1.pk), str(a2.pk)}
        rows = results(client.get(members_url(studio) + "?role=viewer&role=owner"))
        assert {r["id"] for r in rows} == {str(v.pk), str(owner.pk)}

    def test_filter_by_unknown_role_is_a_validation_error(self, studio, owner, client_for):
        error = assert_api_error(client_for(owner).get(members_url(studio), {"role": "king"}), 400, "VALIDATION_ERROR")
        assert "role" in error["fields"]

    def test_filter_by_email_is_case_insensitive_substring(self, studio, owner, make_member, client_for):
        alice = factories.member(studio, Role.VIEWER, user_=factories.user("alice.smith@example.com"))
        factories.member(studio, Role.VIEWER, user_=factories.user("bob@example.com"))
        rows = results(client_for(owner).get(members_url(studio), {"email": "ALICE.S"}))
        assert [r["id"] for r in rows] == [str(alice.pk)]
        rows = results(client_for(owner).get(members_url(studio), {"email": "nobody"}))
        assert rows == []


# --- members: role changes and the rank rules ------------------------------------------


RANK_CASES = [
    # actor role, target role, new role, expected status, expected error code
    (Role.ADMIN, Role.OWNER, Role.VIEWER, 403, "ROLE_ABOVE_YOURS"),
    (Role.ADMIN, Role.OWNER, Role.ADMIN, 403, "ROLE_ABOVE_YOURS"),
    (Role.ADMIN, Role.VIEWER, Role.OWNER, 403, "ROLE_ABOVE_YOURS"),
    (Role.ADMIN, Role.ADMIN, Role.OWNER, 403, "ROLE_ABOVE_YOURS"),
    (Role.ADMIN, Role.VIEWER, Role.ADMIN, 200, None),
    (Role.ADMIN, Role.ADMIN, Role.VIEWER, 200, None),
    (Role.ADMIN, Role.PHOTOGRAPHER, Role.ASSISTANT, 200, None),
    (Role.OWNER, Role.ADMIN, Role.OWNER, 200, None),
    (Role.OWNER, Role.VIEWER, Role.PHOTOGRAPHER, 200, None),
    (Role.OWNER, Role.OWNER, Role.ADMIN, 200, None),  # two owners: one may be demoted
    (Role.PHOTOGRAPHER, Role.VIEWER, Role.ASSISTANT, 403, "PERMISSION_DENIED"),
    (Role.ASSISTANT, Role.VIEWER, Role.VIEWER, 403, "PERMISSION_DENIED"),
    (Role.VIEWER, Role.VIEWER, Role.ASSISTANT, 403, "PERMISSION_DENIED"),
]


class TestRoleChange:
    @pytest.mark.parametrize("actor_role,target_role,new_role,status,code", RANK_CASES)
    def test_rank_rules(self, studio, owner, make_member, client_for, actor_role, target_role, new_role, status, code):
        actor = make_member(actor_role)
        target = make_member(target_role)
        response = client_for(actor).patch(members_url(studio, target.pk), {"role": new_role})
        if status == 200:
            assert response.status_code == 200, response.content
            assert response.json()["role"] == new_role
            assert membership(studio, target.pk).role == new_role
        else:
            assert_api_error(response, status, code)
            assert membership(studio, target.pk).role == target_role
            assert events(studio, Action.MEMBER_ROLE_CHANGED) == []

    def test_admin_cannot_promote_themselves_to_owner(self, studio, owner, make_member, client_for):
        admin = make_member(Role.ADMIN)
        assert_api_error(
            client_for(admin).patch(members_url(studio, admin.pk), {"role": "owner"}), 403, "ROLE_ABOVE_YOURS"
        )
        assert membership(studio, admin.pk).role == Role.ADMIN

    def test_role_change_is_audited_with_before_and_after(self, studio, owner, make_member, client_for):
        target = make_member(Role.VIEWER)
        response = client_for(owner).patch(members_url(studio, target.pk), {"role": "photographer"})
        assert response.status_code == 200, response.content
        (event,) = events(studio, Action.MEMBER_ROLE_CHANGED)
        assert event.before == {"role": "viewer"}
        assert event.after == {"role": "photographer"}
        assert event.target_id == str(target.pk)
        assert event.actor_user_id == owner.user_id
        assert event.request_id == response["X-Request-ID"]

    def test_setting_the_same_role_is_a_no_op(self, studio, owner, make_member, client_for):
        target = make_member(Role.ASSISTANT)
        response = client_for(owner).patch(members_url(studio, target.pk), {"role": "assistant"})
        assert response.status_code == 200
        assert events(studio, Action.MEMBER_ROLE_CHANGED) == []

    @pytest.mark.parametrize("body", [{"role": "emperor"}, {"role": ""}, {"role": None}])
    def test_invalid_role_is_a_validation_error(self, studio, owner, make_member, client_for, body):
        target = make_member(Role.VIEWER)
        error = assert_api_error(client_for(owner).patch(members_url(studio, target.pk), body), 400, "VALIDATION_ERROR")
        assert "role" in error["fields"]
        assert membership(studio, target.pk).role == Role.VIEWER

    def test_put_and_post_are_refused(self, studio, owner, make_member, client_for):
        # Methods the view does not declare fail closed: the scope check refuses
        # them (403) before DRF would answer 405.
        target = make_member(Role.VIEWER)
        client = client_for(owner)
        assert client.put(members_url(studio, target.pk), {"role": "admin"}).status_code in (403, 405)
        assert client.post(members_url(studio), {"role": "admin"}).status_code in (403, 405)
        assert membership(studio, target.pk).role == Role.VIEWER
        with studio_scope(studio):
            assert Membership.objects.count() == 2


# --- the last owner -----------------------------------------------------------------------


class TestLastOwner:
    @pytest.mark.parametrize("new_role", [Role.ADMIN, Role.VIEWER])
    def test_last_owner_cannot_demote_themselves(self, studio, owner, client_for, new_role):
        error = assert_api_error(
            client_for(owner).patch(members_url(studio, owner.pk), {"role": new_role}), 409, "LAST_OWNER"
        )
        assert error["message"]
        assert membership(studio, owner.pk).role == Role.OWNER
        assert events(studio, Action.MEMBER_ROLE_CHANGED) == []

    def test_last_owner_cannot_leave(self, studio, owner, client_for):
        assert_api_error(client_for(owner).delete(members_url(studio, owner.pk)), 409, "LAST_OWNER")
        assert membership(studio, owner.pk) is not None
        assert events(studio, Action.MEMBER_REMOVED) == []

    def test_admin_cannot_remove_or_demote_the_owner(self, studio, owner, make_member, client_for):
        admin = make_member(Role.ADMIN)
        client = client_for(admin)
        assert_api_error(client.delete(members_url(studio, owner.pk)), 403, "ROLE_ABOVE_YOURS")
        assert_api_error(client.patch(members_url(studio, owner.pk), {"role": "viewer"}), 403, "ROLE_ABOVE_YOURS")
        assert membership(studio, owner.pk).role == Role.OWNER

    def test_with_two_owners_one_may_be_demoted_then_the_other_is_protected(
        self, studio, owner, make_member, client_for
    ):
        second = make_member(Role.OWNER)
        response = client_for(owner).patch(members_url(studio, second.pk), {"role": "admin"})
        assert response.status_code == 200, response.content
        assert membership(studio, second.pk).role == Role.ADMIN
        # Now owner is the last one again, whoever asks.
        assert_api_error(client_for(owner).patch(members_url(studio, owner.pk), {"role": "admin"}), 409, "LAST_OWNER")
        assert_api_error(client_for(owner).delete(members_url(studio, owner.pk)), 409, "LAST_OWNER")

    def test_owner_may_demote_themselves_when_another_owner_remains(self, studio, owner, make_member, client_for):
        second = make_member(Role.OWNER)
        response = client_for(owner).patch(members_url(studio, owner.pk), {"role": "viewer"})
        assert response.status_code == 200, response.content
        assert membership(studio, owner.pk).role == Role.VIEWER
        assert membership(studio, second.pk).role == Role.OWNER

    def test_owner_may_remove_another_owner(self, studio, owner, make_member, client_for):
        second = make_member(Role.OWNER)
        assert client_for(owner).delete(members_url(studio, second.pk)).status_code == 204
        assert membership(studio, second.pk) is None

    def test_owners_of_another_studio_do_not_count(self, studio, other_studio, owner, client_for):
        # The same person owning a second studio does not make them a second owner here.
        factories.member(other_studio, Role.OWNER, user_=factories.user())
        assert_api_error(client_for(owner).delete(members_url(studio, owner.pk)), 409, "LAST_OWNER")

    def test_service_protects_last_owner_without_an_actor(self, studio, owner):
        """Platform operators (actor=None) still keep the last owner."""
        from studio.errors import Conflict

        with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
            with pytest.raises(Conflict) as exc_info:
                studio_services.membership_remove(actor=None, membership=owner)
            assert exc_info.value.code == "LAST_OWNER"
            assert exc_info.value.status_code == 409
            with pytest.raises(Conflict):
                studio_services.membership_change_role(actor=None, membership=owner, role=Role.ADMIN)
        assert membership(studio, owner.pk).role == Role.OWNER


# --- removing members and leaving ---------------------------------------------------------


class TestRemoveMember:
    @pytest.mark.parametrize(
        "actor_role,target_role,status,code",
        [
            (Role.OWNER, Role.ADMIN, 204, None),
            (Role.OWNER, Role.VIEWER, 204, None),
            (Role.ADMIN, Role.ADMIN, 204, None),
            (Role.ADMIN, Role.PHOTOGRAPHER, 204, None),
            (Role.ADMIN, Role.OWNER, 403, "ROLE_ABOVE_YOURS"),
            (Role.PHOTOGRAPHER, Role.VIEWER, 403, "PERMISSION_DENIED"),
            (Role.VIEWER, Role.VIEWER, 403, "PERMISSION_DENIED"),
        ],
    )
    def test_remove_rank_rules(self, studio, owner, make_member, client_for, actor_role, target_role, status, code):
        actor = owner if actor_role == Role.OWNER else make_member(actor_role)
        target = make_member(target_role)
        response = client_for(actor).delete(members_url(studio, target.pk))
        if status == 204:
            assert response.status_code == 204, response.content
            assert membership(studio, target.pk) is None
        else:
            assert_api_error(response, status, code)
            assert membership(studio, target.pk) is not None

    def test_removal_is_audited_and_drops_team_seats(self, studio, owner, make_member, client_for):
        target = make_member(Role.PHOTOGRAPHER)
        keep = make_member(Role.ASSISTANT)
        team = factories.team(studio, "Crew", members=[target, keep])
        response = client_for(owner).delete(members_url(studio, target.pk))
        assert response.status_code == 204
        (event,) = events(studio, Action.MEMBER_REMOVED)
        assert event.before == {"user": str(target.user_id), "role": "photographer"}
        assert event.target_id == str(target.pk)
        assert event.actor_user_id == owner.user_id
        with studio_scope(studio):
            assert list(TeamMember.objects.filter(team=team).values_list("membership_id", flat=True)) == [keep.pk]
        team_body = client_for(owner).get(teams_url(studio, team.pk)).json()
        assert team_body["members"] == [str(keep.pk)]

    def test_admin_can_leave(self, studio, owner, make_member, client_for):
        admin = make_member(Role.ADMIN)
        client = client_for(admin)
        assert client.delete(members_url(studio, admin.pk)).status_code == 204
        assert membership(studio, admin.pk) is None
        # Gone means gone: the studio answers 404 like to any outsider.
        assert_api_error(client.get(members_url(studio)), 404, "NOT_FOUND")

    def test_non_last_owner_can_leave(self, studio, owner, make_member, client_for):
        second = make_member(Role.OWNER)
        assert client_for(second).delete(members_url(studio, second.pk)).status_code == 204
        assert membership(studio, second.pk) is None
        assert membership(studio, owner.pk).role == Role.OWNER
        (event,) = events(studio, Action.MEMBER_REMOVED)
        assert event.actor_user_id == second.user_id


# --- teams --------------------------------------------------------------------------------


class TestTeams:
    def test_create_with_members(self, studio, owner, make_member, client_for):
        a, b = make_member(Role.PHOTOGRAPHER), make_member(Role.ASSISTANT)
        response = client_for(owner).post(
            teams_url(studio), {"name": "Second shooters", "description": "Weekends", "members": [str(a.pk), str(b.pk)]}
        )
        assert response.status_code == 201, response.content
        body = response.json()
        assert set(body) == {"id", "name", "description", "members", "created_at", "updated_at"}
        assert body["name"] == "Second shooters"
        assert body["description"] == "Weekends"
        assert sorted(body["members"]) == sorted([str(a.pk), str(b.pk)])
        with studio_scope(studio):
            team = Team.objects.get(pk=body["id"])
            assert set(team.members.values_list("pk", flat=True)) == {a.pk, b.pk}
            assert team.studio_id == studio.pk
        (event,) = events(studio, Action.TEAM_CREATED)
        assert event.target_id == body["id"]
        assert event.after == {
            "name": "Second shooters",
            "description": "Weekends",
            "members": sorted([str(a.pk), str(b.pk)]),
        }
        assert event.actor_user_id == owner.user_id

    def test_create_without_members(self, studio, owner, client_for):
        response = client_for(owner).post(teams_url(studio), {"name": "Editors"})
        assert response.status_code == 201, response.content
        assert response.json()["members"] == []
        assert response.json()["description"] == ""

    def test_duplicate_member_ids_are_collapsed(self, studio, owner, make_member, client_for):
        a = make_member()
        response = client_for(owner).post(teams_url(studio), {"name": "Solo", "members": [str(a.pk), str(a.pk)]})
        assert response.status_code == 201, response.content
        assert response.json()["members"] == [str(a.pk)]

    def test_list_and_retrieve(self, studio, other_studio, owner, make_member, client_for):
        a = make_member()
        t1 = factories.team(studio, "Alpha", members=[a])
        t2 = factories.team(studio, "Beta")
        factories.team(other_studio, "Gamma")
        viewer = make_member(Role.VIEWER)
        rows = results(client_for(viewer).get(teams_url(studio)))
        assert {r["id"] for r in rows} == {str(t1.pk), str(t2.pk)}
        body = client_for(viewer).get(teams_url(studio, t1.pk)).json()
        assert body["members"] == [str(a.pk)]
        assert body["name"] == "Alpha"

    def test_filter_by_name(self, studio, owner, client_for):
        t = factories.team(studio, "Second shooters")
        factories.team(studio, "Editors")
        rows = results(client_for(owner).get(teams_url(studio), {"name": "SHOOT"}))
        assert [r["id"] for r in rows] == [str(t.pk)]

    def test_other_studios_team_is_404(self, studio, other_studio, owner, client_for):
        foreign = factories.team(other_studio, "Theirs")
        client = client_for(owner)
        assert_api_error(client.get(teams_url(studio, foreign.pk)), 404, "NOT_FOUND")
        assert_api_error(client.patch(teams_url(studio, foreign.pk), {"name": "Mine"}), 404, "NOT_FOUND")
        assert_api_error(client.delete(teams_url(studio, foreign.pk)), 404, "NOT_FOUND")
        with studio_scope(other_studio):
            assert Team.objects.get(pk=foreign.pk).name == "Theirs"

    @pytest.mark.parametrize("role", [Role.VIEWER, Role.ASSISTANT, Role.PHOTOGRAPHER])
    def test_writes_need_member_admin(self, studio, owner, make_member, client_for, role):
        team = factories.team(studio, "Crew")
        client = client_for(make_member(role))
        assert client.get(teams_url(studio)).status_code == 200
        assert_api_error(client.post(teams_url(studio), {"name": "New"}), 403, "PERMISSION_DENIED")
        assert_api_error(client.patch(teams_url(studio, team.pk), {"name": "X"}), 403, "PERMISSION_DENIED")
        assert_api_error(client.put(teams_url(studio, team.pk), {"name": "X"}), 403, "PERMISSION_DENIED")
        assert_api_error(client.delete(teams_url(studio, team.pk)), 403, "PERMISSION_DENIED")
        with studio_scope(studio):
            assert list(Team.objects.values_list("name", flat=True)) == ["Crew"]

    def test_admin_can_write(self, studio, owner, make_member, client_for):
        admin = make_member(Role.ADMIN)
        assert client_for(admin).post(teams_url(studio), {"name": "By admin"}).status_code == 201

    def test_duplicate_name_is_409(self, studio, owner, client_for):
        factories.team(studio, "Editors")
        error = assert_api_error(client_for(owner).post(teams_url(studio), {"name": "Editors"}), 409, "DUPLICATE_NAME")
        assert error["fields"] == {"name": ["Already in use."]}
        with studio_scope(studio):
            assert Team.objects.filter(name="Editors").count() == 1
        assert len(events(studio, Action.TEAM_CREATED)) == 1

    def test_renaming_onto_an_existing_name_is_409(self, studio, owner, client_for):
        factories.team(studio, "Editors")
        other = factories.team(studio, "Shooters")
        assert_api_error(
            client_for(owner).patch(teams_url(studio, other.pk), {"name": "Editors"}), 409, "DUPLICATE_NAME"
        )
        with studio_scope(studio):
            assert Team.objects.get(pk=other.pk).name == "Shooters"
        assert events(studio, Action.TEAM_UPDATED) == []

    def test_same_name_in_another_studio_is_fine(self, studio, other_studio, owner, client_for):
        factories.team(other_studio, "Editors")
        assert client_for(owner).post(teams_url(studio), {"name": "Editors"}).status_code == 201

    def test_other_studios_membership_is_rejected(self, studio, other_studio, owner, client_for):
        foreign = factories.member(other_studio, Role.PHOTOGRAPHER)
        response = client_for(owner).post(teams_url(studio), {"name": "Crew", "members": [str(foreign.pk)]})
        error = assert_api_error(response, 400, "VALIDATION_ERROR")
        assert list(error["fields"]) == ["members"]
        # Reported exactly like an id that does not exist, so it cannot be probed.
        assert error["fields"]["members"] == [f"Unknown ids: {foreign.pk}."]
        random_id = uuid.uuid4()
        response = client_for(owner).post(teams_url(studio), {"name": "Crew", "members": [str(random_id)]})
        assert assert_api_error(response, 400, "VALIDATION_ERROR")["fields"]["members"] == [
            f"Unknown ids: {random_id}."
        ]
        with studio_scope(studio):
            assert not Team.objects.exists()
        assert events(studio, Action.TEAM_CREATED) == []

    def test_mixing_own_and_foreign_members_is_rejected_as_a_whole(
        self, studio, other_studio, owner, make_member, client_for
    ):
        mine = make_member()
        foreign = factories.member(other_studio)
        team = factories.team(studio, "Crew", members=[mine])
        response = client_for(owner).patch(teams_url(studio, team.pk), {"members": [str(mine.pk), str(foreign.pk)]})
        error = assert_api_error(response, 400, "VALIDATION_ERROR")
        assert "members" in error["fields"]
        assert str(mine.pk) not in error["fields"]["members"][0]
        with studio_scope(studio):
            assert list(team.team_members.values_list("membership_id", flat=True)) == [mine.pk]
        with unscoped():
            assert not TeamMember.objects.filter(membership=foreign).exists()

    @pytest.mark.parametrize("members", [["not-a-uuid"], [123], "abc", {"id": "x"}])
    def test_malformed_members_are_rejected(self, studio, owner, client_for, members):
        response = client_for(owner).post(teams_url(studio), {"name": "Crew", "members": members})
        error = assert_api_error(response, 400, "VALIDATION_ERROR")
        assert list(error["fields"]) == ["members"]
        with studio_scope(studio):
            assert not Team.objects.exists()

    def test_name_is_required(self, studio, owner, client_for):
        error = assert_api_error(
            client_for(owner).post(teams_url(studio), {"description": "x"}), 400, "VALIDATION_ERROR"
        )
        assert "name" in error["fields"]

    def test_update_members_shows_new_members_and_is_audited(self, studio, owner, make_member, client_for):
        a, b, c = make_member(), make_member(), make_member()
        team = factories.team(studio, "Crew", members=[a, b])
        response = client_for(owner).patch(teams_url(studio, team.pk), {"members": [str(b.pk), str(c.pk)]})
        assert response.status_code == 200, response.content
        assert sorted(response.json()["members"]) == sorted([str(b.pk), str(c.pk)])
        with studio_scope(studio):
            assert set(team.members.values_list("pk", flat=True)) == {b.pk, c.pk}
        (event,) = events(studio, Action.TEAM_UPDATED)
        assert event.before == {"name": "Crew", "description": "", "members": sorted([str(a.pk), str(b.pk)])}
        assert event.after == {"name": "Crew", "description": "", "members": sorted([str(b.pk), str(c.pk)])}
        assert event.actor_user_id == owner.user_id

    def test_update_name_only_keeps_members(self, studio, owner, make_member, client_for):
        a = make_member()
        team = factories.team(studio, "Crew", members=[a])
        response = client_for(owner).patch(teams_url(studio, team.pk), {"name": "Core crew", "description": "New"})
        assert response.status_code == 200, response.content
        assert response.json()["members"] == [str(a.pk)]
        assert response.json()["name"] == "Core crew"
        (event,) = events(studio, Action.TEAM_UPDATED)
        assert event.before == {"name": "Crew", "description": "", "members": [str(a.pk)]}
        assert event.after == {"name": "Core crew", "description": "New", "members": [str(a.pk)]}

    def test_put_replaces_fields(self, studio, owner, make_member, client_for):
        a = make_member()
        team = factories.team(studio, "Crew", members=[a])
        response = client_for(owner).put(teams_url(studio, team.pk), {"name": "Crew 2", "members": []})
        assert response.status_code == 200, response.content
        assert response.json()["members"] == []
        assert response.json()["name"] == "Crew 2"

    def test_clearing_members(self, studio, owner, make_member, client_for):
        team = factories.team(studio, "Crew", members=[make_member(), make_member()])
        response = client_for(owner).patch(teams_url(studio, team.pk), {"members": []})
        assert response.status_code == 200
        assert response.json()["members"] == []
        with studio_scope(studio):
            assert not TeamMember.objects.filter(team=team).exists()

    def test_unchanged_update_writes_no_event(self, studio, owner, make_member, client_for):
        a = make_member()
        team = factories.team(studio, "Crew", members=[a])
        response = client_for(owner).patch(teams_url(studio, team.pk), {"name": "Crew", "members": [str(a.pk)]})
        assert response.status_code == 200
        assert events(studio, Action.TEAM_UPDATED) == []

    def test_delete(self, studio, owner, make_member, client_for):
        a = make_member()
        team = factories.team(studio, "Crew", members=[a])
        assert client_for(owner).delete(teams_url(studio, team.pk)).status_code == 204
        with studio_scope(studio):
            assert not Team.objects.filter(pk=team.pk).exists()
            assert not TeamMember.objects.filter(team_id=team.pk).exists()
            assert Membership.objects.filter(pk=a.pk).exists()
        (event,) = events(studio, Action.TEAM_DELETED)
        assert event.before == {"name": "Crew", "description": "", "members": [str(a.pk)]}
        assert event.target_id == str(team.pk)


# --- query counts -------------------------------------------------------------------------


def _count_queries(client, url: str) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return len(ctx.captured_queries), len(response.json()["results"])


class TestQueryCounts:
    def test_member_list_does_not_grow_with_rows(self, studio, owner, make_member, client_for):
        client = client_for(owner)
        client.get("/api/v1/me/")  # first use of the token writes last_used_at
        team = factories.team(studio, "All")
        extra = [make_member(Role.ASSISTANT) for _ in range(2)]
        with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
            team_services.team_update(team=team, members=[owner, *extra])
        few, rows = _count_queries(client, members_url(studio))
        assert rows == 3
        more = [make_member(Role.ASSISTANT) for _ in range(27)]
        with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
            team_services.team_update(team=team, members=[owner, *extra, *more])
            factories.team(studio, "Half", members=more[:10])
        many, rows = _count_queries(client, members_url(studio))
        assert rows == 30
        assert many == few, (few, many)
        assert few <= 5

    def test_team_list_does_not_grow_with_rows(self, studio, owner, make_member, client_for):
        client = client_for(owner)
        client.get("/api/v1/me/")
        people = [make_member() for _ in range(3)]
        for i in range(3):
            factories.team(studio, f"Team {i:02}", members=people)
        few, rows = _count_queries(client, teams_url(studio))
        assert rows == 3
        for i in range(3, 30):
            factories.team(studio, f"Team {i:02}", members=people[: i % 3 + 1])
        many, rows = _count_queries(client, teams_url(studio))
        assert rows == 30
        assert many == few, (few, many)
        assert few <= 5


# --- invitations --------------------------------------------------------------------------


def invite(client, studio: Studio, email: str, role: str = Role.VIEWER, capture=None):
    """POST an invitation, running the on-commit email; returns (response, raw token or None)."""
    before = len(mail.outbox)
    with capture(execute=True):
        response = client.post(invitations_url(studio), {"email": email, "role": role})
    if response.status_code != 201:
        assert len(mail.outbox) == before
        return response, None
    assert len(mail.outbox) == before + 1
    return response, token_from_email(mail.outbox[-1])


def get_invitation(studio: Studio, pk: object) -> Invitation:
    with studio_scope(studio):
        return Invitation.objects.get(pk=pk)


class TestInvitationCreate:
    def test_invite_sends_email_with_single_raw_token_and_stores_only_its_hash(
        self, studio, owner, client_for, django_capture_on_commit_callbacks, settings
    ):
        settings.SITE_URL = "https://studio.example"
        response, raw = invite(
            client_for(owner), studio, "New.Person@Example.com", Role.PHOTOGRAPHER, django_capture_on_commit_callbacks
        )
        assert response.status_code == 201, response.content
        body = response.json()
        assert body["email"] == "new.person@example.com"
        assert body["role"] == "photographer"
        assert body["status"] == "pending"
        assert body["invited_by"] == owner.user.email
        assert body["accepted_at"] is None
        assert "token" not in body and "token_hash" not in body

        message = mail.outbox[-1]
        assert message.to == ["new.person@example.com"]
        assert studio.name in message.subject
        assert f"https://studio.example/invitations/{raw}/" in message.body
        assert "Photographer" in message.body

        invitation = get_invitation(studio, body["id"])
        assert invitation.token_hash == hash_token(raw)
        assert raw not in invitation.token_hash
        assert invitation.invited_by_id == owner.user_id
        expected_expiry = timezone.now() + timedelta(hours=settings.INVITATION_TTL_HOURS)
        assert abs((invitation.expires_at - expected_expiry).total_seconds()) < 60
        # The raw token is nowhere in the database row.
        for field in Invitation._meta.concrete_fields:
            assert raw not in str(getattr(invitation, field.attname))

        (event,) = events(studio, Action.MEMBER_INVITED)
        assert event.target_id == str(invitation.pk)
        assert event.after["email"] == "new.person@example.com"
        assert event.after["role"] == "photographer"
        assert raw not in str(event.after)

    def test_email_waits_for_commit(self, studio, owner, client_for, django_capture_on_commit_callbacks):
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            response = client_for(owner).post(invitations_url(studio), {"email": "x@example.com", "role": "viewer"})
        assert response.status_code == 201
        assert mail.outbox == []
        assert len(callbacks) == 1

    def test_inviting_an_existing_member_is_409(self, studio, owner, make_member, client_for):
        m = make_member(Role.VIEWER)
        error = assert_api_error(
            client_for(owner).post(invitations_url(studio), {"email": m.user.email.upper(), "role": "admin"}),
            409,
            "ALREADY_MEMBER",
        )
        assert error["message"]
        with studio_scope(studio):
            assert not Invitation.objects.exists()

    def test_member_of_another_studio_can_be_invited(
        self, studio, other_studio, owner, client_for, django_capture_on_commit_callbacks
    ):
        elsewhere = factories.owner_membership(other_studio)
        response, raw = invite(
            client_for(owner), studio, elsewhere.user.email, capture=django_capture_on_commit_callbacks
        )
        assert response.status_code == 201, response.content
        assert raw

    @pytest.mark.parametrize(
        "actor_role,role,status",
        [
            (Role.ADMIN, Role.OWNER, 403),
            (Role.ADMIN, Role.ADMIN, 201),
            (Role.ADMIN, Role.VIEWER, 201),
            (Role.OWNER, Role.OWNER, 201),
        ],
    )
    def test_cannot_invite_above_own_role(self, studio, owner, make_member, client_for, actor_role, role, status):
        actor = owner if actor_role == Role.OWNER else make_member(actor_role)
        response = client_for(actor).post(invitations_url(studio), {"email": "someone@example.com", "role": role})
        if status == 201:
            assert response.status_code == 201, response.content
        else:
            assert_api_error(response, 403, "ROLE_ABOVE_YOURS")
            with studio_scope(studio):
                assert not Invitation.objects.exists()

    @pytest.mark.parametrize("role", [Role.VIEWER, Role.ASSISTANT, Role.PHOTOGRAPHER])
    def test_invitations_need_member_admin(self, studio, owner, make_member, client_for, role):
        inv, _ = factories.invitation(studio)
        client = client_for(make_member(role))
        assert_api_error(client.get(invitations_url(studio)), 403, "PERMISSION_DENIED")
        assert_api_error(
            client.post(invitations_url(studio), {"email": "a@example.com", "role": "viewer"}), 403, "PERMISSION_DENIED"
        )
        assert_api_error(client.delete(invitations_url(studio, inv.pk)), 403, "PERMISSION_DENIED")
        assert get_invitation(studio, inv.pk).status == InvitationStatus.PENDING

    @pytest.mark.parametrize(
        "body,field",
        [({"email": "not-an-email", "role": "viewer"}, "email"), ({"email": "a@example.com", "role": "god"}, "role")],
    )
    def test_validation(self, studio, owner, client_for, body, field):
        error = assert_api_error(client_for(owner).post(invitations_url(studio), body), 400, "VALIDATION_ERROR")
        assert field in error["fields"]

    def test_list_and_pending_filter(self, studio, other_studio, owner, client_for):
        pending, _ = factories.invitation(studio, "p@example.com")
        expired, _ = factories.invitation(studio, "e@example.com")
        factories.invitation(other_studio, "o@example.com")
        with studio_scope(studio):
            Invitation.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
        client = client_for(owner)
        rows = results(client.get(invitations_url(studio)))
        assert {r["email"]: r["status"] for r in rows} == {"p@example.com": "pending", "e@example.com": "expired"}
        assert [r["id"] for r in results(client.get(invitations_url(studio), {"pending": "true"}))] == [str(pending.pk)]
        assert [r["id"] for r in results(client.get(invitations_url(studio), {"pending": "false"}))] == [
            str(expired.pk)
        ]


class TestInvitationRevoke:
    def test_revoke_makes_the_link_invalid(self, studio, owner, client_for):
        inv, raw = factories.invitation(studio, "guest@example.com")
        guest = factories.user("guest@example.com")
        response = client_for(owner).delete(invitations_url(studio, inv.pk))
        assert response.status_code == 204, response.content
        assert get_invitation(studio, inv.pk).status == InvitationStatus.REVOKED
        (event,) = events(studio, Action.INVITATION_REVOKED)
        assert event.target_id == str(inv.pk)
        assert event.actor_user_id == owner.user_id
        assert_api_error(client_for(guest).post(ACCEPT_URL, {"token": raw}), 400, "INVITATION_INVALID")
        with studio_scope(studio):
            assert not Membership.objects.filter(user=guest).exists()

    def test_revoking_twice_is_409(self, studio, owner, client_for):
        inv, _ = factories.invitation(studio)
        client = client_for(owner)
        assert client.delete(invitations_url(studio, inv.pk)).status_code == 204
        assert_api_error(client.delete(invitations_url(studio, inv.pk)), 409, "INVITATION_NOT_PENDING")
        assert len(events(studio, Action.INVITATION_REVOKED)) == 1

    def test_other_studios_invitation_is_404(self, studio, other_studio, owner, client_for):
        inv, _ = factories.invitation(other_studio)
        assert_api_error(client_for(owner).delete(invitations_url(studio, inv.pk)), 404, "NOT_FOUND")
        assert get_invitation(other_studio, inv.pk).status == InvitationStatus.PENDING

    def test_reinvite_revokes_the_earlier_invitation(
        self, studio, owner, client_for, django_capture_on_commit_callbacks
    ):
        client = client_for(owner)
        first, raw1 = invite(client, studio, "guest@example.com", Role.VIEWER, django_capture_on_commit_callbacks)
        second, raw2 = invite(client, studio, "GUEST@example.com", Role.ASSISTANT, django_capture_on_commit_callbacks)
        assert first.status_code == second.status_code == 201
        assert raw1 != raw2
        assert get_invitation(studio, first.json()["id"]).status == InvitationStatus.REVOKED
        assert get_invitation(studio, second.json()["id"]).status == InvitationStatus.PENDING
        (revoked,) = events(studio, Action.INVITATION_REVOKED)
        assert revoked.target_id == first.json()["id"]

        guest = client_for(factories.user("guest@example.com"))
        assert_api_error(guest.post(ACCEPT_URL, {"token": raw1}), 400, "INVITATION_INVALID")
        response = guest.post(ACCEPT_URL, {"token": raw2})
        assert response.status_code == 201, response.content
        assert response.json()["role"] == "assistant"

    def test_reinvite_after_expiry_works(self, studio, owner, client_for, django_capture_on_commit_callbacks):
        old, _ = factories.invitation(studio, "late@example.com")
        with studio_scope(studio):
            Invitation.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(hours=1))
        response, raw = invite(
            client_for(owner), studio, "late@example.com", capture=django_capture_on_commit_callbacks
        )
        assert response.status_code == 201, response.content
        assert get_invitation(studio, old.pk).revoked_at is not None


class TestInvitationAcceptApi:
    def test_full_flow(self, studio, owner, client_for, django_capture_on_commit_callbacks):
        response, raw = invite(
            client_for(owner), studio, "newbie@example.com", Role.PHOTOGRAPHER, django_capture_on_commit_callbacks
        )
        invitation_id = response.json()["id"]
        newbie = factories.user("newbie@example.com")
        client = client_for(newbie)
        # Not a member yet.
        assert_api_error(client.get(members_url(studio)), 404, "NOT_FOUND")

        response = client.post(ACCEPT_URL, {"token": raw})
        assert response.status_code == 201, response.content
        body = response.json()
        with studio_scope(studio):
            m = Membership.objects.get(user=newbie)
        assert body == {"studio": studio.slug, "membership": str(m.pk), "role": "photographer"}
        assert m.role == Role.PHOTOGRAPHER

        invitation = get_invitation(studio, invitation_id)
        assert invitation.status == InvitationStatus.ACCEPTED
        assert invitation.accepted_by_id == newbie.pk
        assert invitation.accepted_at is not None

        (accepted,) = events(studio, Action.INVITATION_ACCEPTED)
        assert accepted.after == {"membership": str(m.pk)}
        assert accepted.actor_user_id == newbie.pk
        added = [e for e in events(studio, Action.MEMBER_ADDED) if e.target_id == str(m.pk)]
        assert len(added) == 1
        assert added[0].after == {"user": str(newbie.pk), "role": "photographer"}

        # Now a member with the photographer's scopes.
        assert client.get(members_url(studio)).status_code == 200
        me = client.get("/api/v1/me/").json()
        assert {"studio": studio.slug, "studio_name": studio.name, "role": "photographer"} in me["memberships"]

        # Single use.
        assert_api_error(client.post(ACCEPT_URL, {"token": raw}), 400, "INVITATION_INVALID")
        with studio_scope(studio):
            assert Membership.objects.filter(user=newbie).count() == 1

    def test_email_must_match(self, studio, client_for):
        inv, raw = factories.invitation(studio, "intended@example.com", Role.ADMIN)
        intruder = factories.user("intruder@example.com")
        error = assert_api_error(
            client_for(intruder).post(ACCEPT_URL, {"token": raw}), 403, "INVITATION_EMAIL_MISMATCH"
        )
        assert error["message"]
        with studio_scope(studio):
            assert not Membership.objects.filter(user=intruder).exists()
        invitation = get_invitation(studio, inv.pk)
        assert invitation.status == InvitationStatus.PENDING
        assert events(studio, Action.INVITATION_ACCEPTED) == []
        # The intended person can still use it afterwards.
        intended = factories.user("intended@example.com")
        assert client_for(intended).post(ACCEPT_URL, {"token": raw}).status_code == 201

    def test_email_match_ignores_case(self, studio, client_for):
        _, raw = factories.invitation(studio, "MiXeD@Example.com")
        user = factories.user("mixed@example.com")
        assert client_for(user).post(ACCEPT_URL, {"token": raw}).status_code == 201

    def test_expired(self, studio, client_for):
        inv, raw = factories.invitation(studio, "slow@example.com")
        with studio_scope(studio):
            Invitation.objects.filter(pk=inv.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
        user = factories.user("slow@example.com")
        assert_api_error(client_for(user).post(ACCEPT_URL, {"token": raw}), 400, "INVITATION_INVALID")
        with studio_scope(studio):
            assert not Membership.objects.filter(user=user).exists()

    @pytest.mark.parametrize("token", ["garbage", "x" * 200])
    def test_unknown_token(self, studio, client_for, token):
        factories.invitation(studio, "who@example.com")
        user = factories.user("who@example.com")
        assert_api_error(client_for(user).post(ACCEPT_URL, {"token": token}), 400, "INVITATION_INVALID")

    def test_hash_is_not_a_token(self, studio, client_for):
        inv, _ = factories.invitation(studio, "hash@example.com")
        user = factories.user("hash@example.com")
        assert_api_error(client_for(user).post(ACCEPT_URL, {"token": inv.token_hash}), 400, "INVITATION_INVALID")

    def test_token_is_required(self, client_for):
        error = assert_api_error(client_for(factories.user()).post(ACCEPT_URL, {}), 400, "VALIDATION_ERROR")
        assert "token" in error["fields"]

    def test_anonymous_gets_401(self, studio, api):
        _, raw = factories.invitation(studio)
        assert_api_error(api.post(ACCEPT_URL, {"token": raw}), 401, "NOT_AUTHENTICATED")

    def test_inactive_studio(self, studio, client_for):
        _, raw = factories.invitation(studio, "closed@example.com")
        Studio.objects.filter(pk=studio.pk).update(is_active=False)
        user = factories.user("closed@example.com")
        assert_api_error(client_for(user).post(ACCEPT_URL, {"token": raw}), 400, "INVITATION_INVALID")

    def test_already_a_member_is_409_and_invitation_stays_pending(self, studio, client_for):
        inv, raw = factories.invitation(studio, "twice@example.com", Role.ADMIN)
        user = factories.user("twice@example.com")
        factories.member(studio, Role.VIEWER, user_=user)  # joined some other way meanwhile
        assert_api_error(client_for(user).post(ACCEPT_URL, {"token": raw}), 409, "ALREADY_MEMBER")
        assert get_invitation(studio, inv.pk).status == InvitationStatus.PENDING
        with studio_scope(studio):
            assert Membership.objects.get(user=user).role == Role.VIEWER
        assert events(studio, Action.INVITATION_ACCEPTED) == []

    def test_token_joins_only_its_own_studio(self, studio, other_studio, client_for):
        _, raw = factories.invitation(other_studio, "one@example.com", Role.ASSISTANT)
        user = factories.user("one@example.com")
        response = client_for(user).post(ACCEPT_URL, {"token": raw})
        assert response.status_code == 201
        assert response.json()["studio"] == other_studio.slug
        with studio_scope(studio):
            assert not Membership.objects.filter(user=user).exists()
        with studio_scope(other_studio):
            assert Membership.objects.get(user=user).role == Role.ASSISTANT

    def test_accept_is_throttled_per_user(self, client_for):
        client = client_for(factories.user())
        for _ in range(20):
            assert client.post(ACCEPT_URL, {"token": "wrong"}).status_code == 400
        error = assert_api_error(client.post(ACCEPT_URL, {"token": "wrong"}), 429, "THROTTLED")
        assert error["details"]["retry_after_seconds"] > 0
        # Another user is not affected.
        assert client_for(factories.user()).post(ACCEPT_URL, {"token": "wrong"}).status_code == 400


class TestInvitationPage:
    def page(self, raw: str) -> str:
        return f"/invitations/{raw}/"

    def test_signed_out_invitees_are_sent_to_sign_up_or_sign_in_and_back(self, studio, client):
        _, raw = factories.invitation(studio)
        response = client.get(self.page(raw))
        assert response.status_code == 302
        assert response["Location"] == f"/accounts/signup/?next=%2Finvitations%2F{raw}%2F"
        invitation, raw = factories.invitation(studio, "has-account@example.com")
        factories.user("has-account@example.com")
        response = client.get(self.page(raw))
        assert response["Location"] == f"/accounts/login/?next=%2Finvitations%2F{raw}%2F"

    def test_invite_mode_opens_sign_up_only_to_a_browser_with_an_invitation(self, studio, client, settings):
        settings.SIGNUP_MODE = "invite"
        closed = client.get("/accounts/signup/")
        assert "signup_closed" in closed.templates[0].name or b"closed" in closed.content.lower()
        _, raw = factories.invitation(studio)
        client.get(self.page(raw))  # a valid link marks the session
        opened = client.get("/accounts/signup/")
        assert opened.status_code == 200 and b'name="password1"' in opened.content
        # A wrong token opens nothing.
        other = Client()
        assert other.get(self.page("not-a-token")).status_code == 400
        assert b'name="password1"' not in other.get("/accounts/signup/").content

    def test_get_shows_the_studio_and_does_not_accept(self, studio, client):
        inv, raw = factories.invitation(studio, "page@example.com", Role.ASSISTANT)
        user = factories.user("page@example.com")
        client.force_login(user)
        response = client.get(self.page(raw))
        assert response.status_code == 200
        content = response.content.decode()
        assert studio.name in content
        assert "Assistant" in content
        assert "page@example.com" in content
        assert get_invitation(studio, inv.pk).status == InvitationStatus.PENDING
        with studio_scope(studio):
            assert not Membership.objects.filter(user=user).exists()

    def test_post_accepts_once(self, studio, owner, client, client_for, django_capture_on_commit_callbacks):
        _, raw = invite(client_for(owner), studio, "html@example.com", Role.ADMIN, django_capture_on_commit_callbacks)
        user = factories.user("html@example.com")
        client.force_login(user)
        response = client.post(self.page(raw))
        assert response.status_code == 302
        assert response["Location"] == "/"
        with studio_scope(studio):
            assert Membership.objects.get(user=user).role == Role.ADMIN
        assert len(events(studio, Action.INVITATION_ACCEPTED)) == 1
        # Used up: both the page and the API refuse it now.
        again = client.get(self.page(raw))
        assert again.status_code == 400
        assert "invalid" in again.content.decode().lower()
        assert client.post(self.page(raw)).status_code == 400
        assert_api_error(client_for(user).post(ACCEPT_URL, {"token": raw}), 400, "INVITATION_INVALID")
        with studio_scope(studio):
            assert Membership.objects.filter(user=user).count() == 1

    def test_post_with_the_wrong_account(self, studio, client):
        inv, raw = factories.invitation(studio, "right@example.com")
        wrong = factories.user("wrong@example.com")
        client.force_login(wrong)
        response = client.post(self.page(raw))
        assert response.status_code == 400
        assert "another email address" in response.content.decode()
        with studio_scope(studio):
            assert not Membership.objects.filter(user=wrong).exists()
        assert get_invitation(studio, inv.pk).status == InvitationStatus.PENDING

    def test_unknown_or_revoked_token(self, studio, owner, client, client_for):
        inv, raw = factories.invitation(studio, "gone@example.com")
        client.force_login(factories.user("gone@example.com"))
        assert client.get(self.page("nonsense")).status_code == 400
        assert client_for(owner).delete(invitations_url(studio, inv.pk)).status_code == 204
        assert client.get(self.page(raw)).status_code == 400
        assert client.post(self.page(raw)).status_code == 400


def test_an_empty_patch_of_a_member_changes_nothing_and_succeeds(studio, owner, client_for):
    """PATCH is partial, as the schema says: {} was refused ("role: required")."""
    photographer = factories.member(studio, Role.PHOTOGRAPHER)
    response = client_for(owner).patch(members_url(studio, photographer.pk), {}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["role"] == Role.PHOTOGRAPHER
    assert membership(studio, photographer.pk).role == Role.PHOTOGRAPHER
    assert events(studio, Action.MEMBER_ROLE_CHANGED) == []
