"""Reads of the core: a person's memberships, across studios by nature."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from studio.models import Membership, Studio
from studio.sql_templates import Templates, instance, instance_columns
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


# Every staff API request looks its membership up: the query is compiled
# once (studio.sql_templates) and the two rows built from one .values() row.
_TEMPLATES = Templates(size=4)


def _membership_rows(values: dict[str, Any]) -> QuerySet[Any]:
    with unscoped():  # looking the studio up is what gives us a scope
        return (
            Membership.objects.filter(user_id=values["user"], studio__slug=values["slug"], studio__is_active=True)
            .order_by("pk")
            .values(*instance_columns(Membership, "studio"))[:1]
        )


def membership_in(user: Any, studio_slug: str) -> Membership | None:
    """The user's membership in the active studio named ``studio_slug``,
    with its studio."""
    rows = _TEMPLATES.rows(_membership_rows, {"user": user.pk, "slug": str(studio_slug)})
    return instance(Membership, rows[0], "studio") if rows else None


def studios_of(user: Any) -> QuerySet[Studio]:
    return Studio.objects.filter(memberships__user=user, is_active=True).order_by("name")
