"""The demo studio's team (``manage.py seed_demo``). Idempotent."""

from __future__ import annotations

from typing import Any

from studio.roles import Role
from teams import services
from teams.models import Team


def seed(*, studio: Any, members: dict[str, Any]) -> list[str]:
    if not Team.objects.filter(name="Second shooters").exists():
        services.team_create(
            name="Second shooters",
            description="Extra hands for weddings and events.",
            members=[members[Role.PHOTOGRAPHER], members[Role.ASSISTANT]],
        )
    return []
