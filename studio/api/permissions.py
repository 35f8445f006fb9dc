"""Scope-based permissions. Views declare the scope each HTTP method needs;
a member's role grants scopes (studio.roles). Nothing is allowed by default."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission

from studio.roles import SCOPES, scopes_for

_SAFE_ALIASES = {"HEAD": "GET", "OPTIONS": "GET"}


def required_scope(view: Any, request: Any) -> str | None:
    """``action_scopes`` (per viewset action) wins over ``scope_map`` (per method)."""
    action = getattr(view, "action", None)
    action_scopes = getattr(view, "action_scopes", {}) or {}
    if action and action in action_scopes:
        return action_scopes[action]
    method = _SAFE_ALIASES.get(request.method, request.method)
    return view.scope_map.get(method)


def validate_scope_map(cls: type) -> None:
    for scope in [*cls.scope_map.values(), *(getattr(cls, "action_scopes", {}) or {}).values()]:
        if scope not in SCOPES:
            raise TypeError(f"{cls.__name__} asks for unknown scope {scope!r}")


class HasStudioScope(BasePermission):
    """The request's member must hold the scope the view declares for it.

    Runs after the base view has resolved the studio and the membership, so a
    non-member never gets here (they get 404)."""

    message = "Your role in this studio does not allow this."

    def has_permission(self, request: Any, view: Any) -> bool:
        if not hasattr(view, request.method.lower()):
            return True  # DRF answers 405 Method Not Allowed next
        scope = required_scope(view, request)
        membership = getattr(view, "membership", None)
        if scope is None or membership is None:
            return False
        return scope in scopes_for(membership.role)
