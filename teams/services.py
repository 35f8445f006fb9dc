"""Writes for teams and invitations (memberships are the core's:
``studio.services``). Each records its audit event inside the same
transaction; emails go out only after commit."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from studio.auditing import Action, audit_record, snapshot
from studio.email_templates import render_email
from studio.emails import email_queue
from studio.errors import Conflict, DomainError, Forbidden, save_or_conflict
from studio.models import Membership, Studio, hash_token
from studio.roles import can_grant
from studio.services import membership_add
from studio.tenancy import current_studio, studio_scope
from teams.models import Invitation, InvitationStatus, Team, TeamMember
from teams.selectors import InvalidInvitation, invitation_for_token

# --- teams ------------------------------------------------------------------------------


def _team_snapshot(team: Team) -> dict[str, Any]:
    data = snapshot(team, Team.EDITABLE_FIELDS)
    data["members"] = sorted(str(pk) for pk in team.team_members.values_list("membership_id", flat=True))
    return data


def _set_team_members(team: Team, members: list[Membership]) -> None:
    foreign = [m for m in members if m.studio_id != team.studio_id]
    if foreign:
        raise DomainError(
            "Team members must be members of the team's studio.",
            code="MEMBER_OF_ANOTHER_STUDIO",
            fields={"members": [f"Unknown member: {m.pk}." for m in foreign]},
        )
    wanted = {m.pk for m in members}
    TeamMember.objects.filter(team=team).exclude(membership_id__in=wanted).delete()
    existing = set(TeamMember.objects.filter(team=team).values_list("membership_id", flat=True))
    TeamMember.objects.bulk_create(
        [TeamMember(studio=team.studio, team=team, membership_id=pk) for pk in wanted - existing]
    )


def _save_team(team: Team) -> None:
    conflict = Conflict(
        f"A team named '{team.name}' already exists.", code="DUPLICATE_NAME", fields={"name": ["Already in use."]}
    )
    save_or_conflict(team, conflict)


@transaction.atomic
def team_create(*, name: str, description: str = "", members: list[Membership] | None = None) -> Team:
    team = Team(studio=current_studio(), name=name, description=description)
    _save_team(team)
    _set_team_members(team, members or [])
    audit_record(action=Action.TEAM_CREATED, target=team, after=_team_snapshot(team))
    return team


@transaction.atomic
def team_update(
    *, team: Team, name: str | None = None, description: str | None = None, members: list[Membership] | None = None
) -> Team:
    before = _team_snapshot(team)
    if name is not None:
        team.name = name
    if description is not None:
        team.description = description
    _save_team(team)
    if members is not None:
        _set_team_members(team, members)
    after = _team_snapshot(team)
    if after != before:
        audit_record(action=Action.TEAM_UPDATED, target=team, before=before, after=after)
    return team


@transaction.atomic
def team_delete(*, team: Team) -> None:
    audit_record(action=Action.TEAM_DELETED, target=team, before=_team_snapshot(team))
    team.delete()


# --- invitations -----------------------------------------------------------------------


def _queue_invitation_email(invitation: Invitation, raw_token: str) -> None:
    path = reverse("teams:invitation-accept", kwargs={"token": raw_token})
    base = settings.SITE_URL.rstrip("/")
    context = {"invitation": invitation, "studio": invitation.studio, "accept_url": f"{base}{path}"}
    text, html = render_email("teams/invitation_email", context)
    email_queue(
        kind="member.invitation",
        to=[invitation.email],
        subject=f"You're invited to join {invitation.studio.name}",
        body=text,
        html_body=html,
        key=f"invitation:{invitation.pk}",
        sensitive=True,  # the link is the only copy of the token
        target=invitation,
    )


@transaction.atomic
def invitation_create(*, actor: Membership | None, email: str, role: str) -> tuple[Invitation, str]:
    """Invite ``email`` with ``role``. Returns the invitation and the raw token,
    which exists only in the email (and this return value)."""
    email = email.strip().lower()
    if actor is not None and not can_grant(actor.role, role):
        raise Forbidden("You cannot invite someone to a role above your own.", code="ROLE_ABOVE_YOURS")
    if Membership.objects.filter(user__email__iexact=email).exists():
        raise Conflict(f"{email} is already a member of this studio.", code="ALREADY_MEMBER")
    # Re-inviting replaces the open invitation: the old link stops working.
    for old in Invitation.objects.select_for_update().filter(email=email, accepted_at=None, revoked_at=None):
        _revoke(old)
    raw_token = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        studio=current_studio(),
        email=email,
        role=role,
        token_hash=hash_token(raw_token),
        expires_at=timezone.now() + timedelta(hours=settings.INVITATION_TTL_HOURS),
        invited_by=actor.user if actor is not None else None,
    )
    audit_record(
        action=Action.MEMBER_INVITED, target=invitation, after=snapshot(invitation, ["email", "role", "expires_at"])
    )
    _queue_invitation_email(invitation, raw_token)
    return invitation, raw_token


def _revoke(invitation: Invitation) -> None:
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at", "updated_at"])
    audit_record(action=Action.INVITATION_REVOKED, target=invitation, before={"status": InvitationStatus.PENDING})


@transaction.atomic
def invitation_revoke(*, invitation: Invitation) -> Invitation:
    if invitation.status != InvitationStatus.PENDING:
        raise Conflict(f"This invitation is already {invitation.status}.", code="INVITATION_NOT_PENDING")
    _revoke(invitation)
    return invitation


def invitation_accept(*, user: Any, raw_token: str) -> Membership:
    invitation = invitation_for_token(raw_token)
    studio: Studio = invitation.studio
    with studio_scope(studio), transaction.atomic():
        # Lock the row: a token is good for exactly one acceptance.
        invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
        if invitation.status != InvitationStatus.PENDING:
            raise InvalidInvitation()
        if invitation.email.lower() != user.email.lower():
            raise Forbidden(
                "This invitation was sent to another email address. Sign in with that address to accept it.",
                code="INVITATION_EMAIL_MISMATCH",
            )
        membership = membership_add(user=user, role=invitation.role)
        invitation.accepted_at = timezone.now()
        invitation.accepted_by = user
        invitation.save(update_fields=["accepted_at", "accepted_by", "updated_at"])
        audit_record(action=Action.INVITATION_ACCEPTED, target=invitation, after={"membership": str(membership.pk)})
    return membership
