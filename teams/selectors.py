"""Reads for teams and invitations."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from studio.errors import DomainError
from studio.models import Membership, hash_token
from studio.tenancy import unscoped
from teams.models import Invitation, InvitationStatus, Team


class InvalidInvitation(DomainError):
    code = "INVITATION_INVALID"
    status_code = 400
    default_message = "This invitation link is invalid, expired, revoked or already used."


def invitation_for_token(raw_token: str) -> Invitation:
    """The pending invitation a raw token names, whichever studio it is for."""
    with unscoped():  # the token is what tells us the studio
        invitation = Invitation.objects.select_related("studio").filter(token_hash=hash_token(raw_token)).first()
    if invitation is None or invitation.status != InvitationStatus.PENDING or not invitation.studio.is_active:
        raise InvalidInvitation()
    return invitation


def teams_with_members(teams: QuerySet[Team]) -> QuerySet[Team]:
    """One query for all members of a page of teams, not one per team."""
    return teams.prefetch_related(Prefetch("members", queryset=Membership.objects.order_by("created_at")))


def members_with_teams(members: QuerySet[Membership]) -> QuerySet[Membership]:
    return members.select_related("user").prefetch_related("team_members")
