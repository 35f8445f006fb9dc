"""Reads of the core: a person's memberships, across studios by nature."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from studio.models import Membership, Studio
from studio.tenancy import unscoped


def memberships_of(user: Any) -> QuerySet[Membership]:
    """The user's memberships in active studios, by studio name. Evaluated
    inside unscoped(): a person's memberships span studios."""
    with unscoped():
        return (
            Membership.objects.filter(user=user, studio__is_active=True)
            .select_related("studio")
            .order_by("studio__name")
        )


def membership_in(user: Any, studio_slug: str) -> Membership | None:
    """The user's membership in the active studio named ``studio_slug``."""
    with unscoped():  # looking the studio up is what gives us a scope
        return (
            Membership.objects.select_related("studio")
            .filter(user=user, studio__slug=studio_slug, studio__is_active=True)
            .first()
        )


def studios_of(user: Any) -> QuerySet[Studio]:
    return Studio.objects.filter(memberships__user=user, is_active=True).order_by("name")
