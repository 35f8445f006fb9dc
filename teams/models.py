"""Teams inside a studio and invitations. Memberships and roles are the core's
(studio.models, studio.roles): tenancy is resolved from them."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from studio.models import TimestampedModel
from studio.roles import Role
from studio.tenancy import StudioOwnedModel


class Team(StudioOwnedModel, TimestampedModel):
    """A group of members inside one studio, e.g. "Second shooters"."""

    studio = models.ForeignKey("studio.Studio", on_delete=models.CASCADE, related_name="teams")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    members = models.ManyToManyField("studio.Membership", through="TeamMember", related_name="teams", blank=True)

    EDITABLE_FIELDS = ("name", "description")

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["studio", "name"], name="team_unique_name")]

    def __str__(self) -> str:
        return self.name


class TeamMember(StudioOwnedModel, TimestampedModel):
    studio = models.ForeignKey("studio.Studio", on_delete=models.CASCADE, related_name="+")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="team_members")
    membership = models.ForeignKey("studio.Membership", on_delete=models.CASCADE, related_name="team_members")

    class Meta:
        ordering = ["created_at"]
        constraints = [models.UniqueConstraint(fields=["team", "membership"], name="team_member_unique")]


class InvitationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"
    REVOKED = "revoked", "Revoked"
    EXPIRED = "expired", "Expired"


class Invitation(StudioOwnedModel, TimestampedModel):
    """An emailed, single-use, expiring invitation. Only the token's hash is kept."""

    studio = models.ForeignKey("studio.Studio", on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=20, choices=Role.choices)
    token_hash = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField()
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # One open invitation per address and studio; re-inviting replaces it.
            models.UniqueConstraint(
                fields=["studio", "email"],
                condition=models.Q(accepted_at__isnull=True, revoked_at__isnull=True),
                name="invitation_one_open_per_email",
            )
        ]

    def __str__(self) -> str:
        return f"{self.email} as {self.role}"

    @property
    def status(self) -> str:
        if self.accepted_at:
            return InvitationStatus.ACCEPTED
        if self.revoked_at:
            return InvitationStatus.REVOKED
        if self.expires_at <= timezone.now():
            return InvitationStatus.EXPIRED
        return InvitationStatus.PENDING
