"""The one registry of audit actions. Every event's action is one of these.

Names are ``<entity>.<verb>``. Add new actions here as apps grow.
"""

from django.db import models


class Action(models.TextChoices):
    STUDIO_CREATED = "studio.created"
    STUDIO_UPDATED = "studio.updated"
    API_TOKEN_CREATED = "api_token.created"
    API_TOKEN_REVOKED = "api_token.revoked"
    MEMBER_ADDED = "member.added"
    MEMBER_ROLE_CHANGED = "member.role_changed"
    MEMBER_REMOVED = "member.removed"
    MEMBER_INVITED = "member.invited"
    INVITATION_REVOKED = "invitation.revoked"
    INVITATION_ACCEPTED = "invitation.accepted"
    TEAM_CREATED = "team.created"
    TEAM_UPDATED = "team.updated"
    TEAM_DELETED = "team.deleted"
    AUDIT_EXPORTED = "audit.exported"
