"""Roles are data: one ordered table of role -> scopes.

Code never asks "is this user an admin?"; it asks for a scope such as
``gallery:write``. Changing what a role may do is an edit to ``ROLE_SCOPES``.
Roles are ordered by rank; nobody can grant, or act on, a role above their own.
"""

from __future__ import annotations

from typing import Any

from django.db import models


class Role(models.TextChoices):
    # Declared from lowest to highest rank.
    VIEWER = "viewer", "Viewer"
    ASSISTANT = "assistant", "Assistant"
    PHOTOGRAPHER = "photographer", "Photographer"
    ADMIN = "admin", "Admin"
    OWNER = "owner", "Owner"


# Every scope the platform knows. Permission classes may only ask for these.
SCOPES: frozenset[str] = frozenset(
    {
        "studio:read",
        "studio:admin",
        "member:read",
        "member:admin",
        "gallery:read",
        "gallery:write",
        "gallery:admin",
        "booking:read",
        "booking:write",
        "booking:admin",
        "audit:read",
    }
)

_VIEWER = {"studio:read", "member:read", "gallery:read", "booking:read"}
_ASSISTANT = _VIEWER | {"gallery:write", "booking:write"}
_PHOTOGRAPHER = _ASSISTANT | {"gallery:admin"}
_ADMIN = _PHOTOGRAPHER | {"booking:admin", "member:admin", "audit:read"}
_OWNER = _ADMIN | {"studio:admin"}

ROLE_SCOPES: dict[str, frozenset[str]] = {
    Role.VIEWER: frozenset(_VIEWER),
    Role.ASSISTANT: frozenset(_ASSISTANT),
    Role.PHOTOGRAPHER: frozenset(_PHOTOGRAPHER),
    Role.ADMIN: frozenset(_ADMIN),
    Role.OWNER: frozenset(_OWNER),
}

_RANK = {role: index for index, role in enumerate(Role.values)}


def scopes_for(role: str) -> frozenset[str]:
    return ROLE_SCOPES.get(role, frozenset())


def rank(role: str) -> int:
    return _RANK[role]


def require_scope(actor: Any, scope: str, message: str) -> None:
    """The actor rule: services take the acting member (``actor=``) and check
    the rules that depend on what changes here, whoever calls them (API,
    admin, commands). ``actor`` is a Membership, or None for a platform
    operator (superuser) or the system (tasks, commands), who act above
    every studio role. Whole operations are gated where they are exposed:
    the endpoint's scope_map, the admin's permissions."""
    if actor is not None and scope not in scopes_for(actor.role):
        # Imported here: studio.models imports this module, and studio.errors
        # imports DRF, whose settings import our authentication (models).
        from studio.errors import Forbidden

        raise Forbidden(message, code="PERMISSION_DENIED")


def can_grant(granter_role: str, role: str) -> bool:
    """A member may grant any role up to and including their own."""
    return rank(role) <= rank(granter_role)
