"""Test data, built through the services (so audit chains stay intact).

``FACTORIES`` maps every studio-owned model to a maker, and the meta-tests
insist that each model with a ``studio`` foreign key has one, so a new model
cannot dodge the cross-studio tests.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from django.db import models

from audit.actions import Action
from audit.models import AuditEvent
from audit.services import audit_record
from studio import context, services
from studio.models import Studio, User
from studio.tenancy import studio_scope
from teams import services as team_services
from teams.models import Invitation, Membership, Team, TeamMember
from teams.roles import Role

_seq = itertools.count(1)
PASSWORD = "correct-horse-battery-staple"
TEST_ACTOR = context.Actor.system("tests")


def _n() -> int:
    return next(_seq)


def user(email: str | None = None, **extra: Any) -> User:
    from allauth.account.models import EmailAddress

    email = email or f"user{_n()}@example.com"
    u = User.objects.create_user(email=email, password=PASSWORD, **extra)
    EmailAddress.objects.create(user=u, email=email, verified=True, primary=True)
    return u


def studio(name: str | None = None, *, owner: User | None = None, slug: str = "") -> Studio:
    n = _n()
    with context.acting_as(TEST_ACTOR):
        return services.studio_create(owner=owner or user(), name=name or f"Studio {n}", slug=slug or f"studio-{n}")


def member(studio_: Studio, role: str = Role.VIEWER, *, user_: User | None = None) -> Membership:
    with context.acting_as(TEST_ACTOR), studio_scope(studio_):
        return team_services.membership_add(user=user_ or user(), role=role)


def owner_membership(studio_: Studio) -> Membership:
    with studio_scope(studio_):
        return Membership.objects.filter(role=Role.OWNER).select_related("user").first()


def team(studio_: Studio, name: str | None = None, members: list[Membership] | None = None) -> Team:
    with context.acting_as(TEST_ACTOR), studio_scope(studio_):
        return team_services.team_create(name=name or f"Team {_n()}", members=members or [])


def team_member(studio_: Studio) -> TeamMember:
    m = member(studio_)
    t = team(studio_, members=[m])
    with studio_scope(studio_):
        return TeamMember.objects.get(team=t)


def invitation(studio_: Studio, email: str | None = None, role: str = Role.VIEWER) -> tuple[Invitation, str]:
    with context.acting_as(TEST_ACTOR), studio_scope(studio_):
        return team_services.invitation_create(actor=None, email=email or f"invitee{_n()}@example.com", role=role)


def audit_event(studio_: Studio) -> AuditEvent:
    with context.acting_as(TEST_ACTOR), studio_scope(studio_):
        return audit_record(action=Action.STUDIO_UPDATED, target=studio_, after={"note": "test"})


FACTORIES: dict[type[models.Model], Callable[[Studio], models.Model]] = {
    Membership: lambda s: member(s),
    Team: lambda s: team(s),
    TeamMember: team_member,
    Invitation: lambda s: invitation(s)[0],
    AuditEvent: audit_event,
    Studio: lambda s: s,
}
