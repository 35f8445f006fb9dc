"""Seed the demo studio. Safe to run again: it only creates what is missing,
and it (re)sets the demo sign-in's password so the printed one always works.

The core makes the people, the studio and the memberships; each installed
app adds its own demo data from its ``demo.py`` (``seed(studio=, members=)``,
returning the lines it wants printed), in INSTALLED_APPS order. So the core
imports no app, and an app's demo data lives next to its code."""

from __future__ import annotations

import os
from importlib import import_module
from typing import Any

from allauth.account.models import EmailAddress
from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils.module_loading import module_has_submodule

from studio import context, services
from studio.models import Membership, Studio, User
from studio.roles import Role
from studio.tenancy import studio_scope

DEMO_SLUG = "blakely"
DEMO_PASSWORD = os.environ.get("DEMO_PASSWORD", "studio-demo-2026")
DEMO_PEOPLE = [
    ("owner@demo.studio", "Blake Owner", Role.OWNER),
    ("admin@demo.studio", "Avery Admin", Role.ADMIN),
    ("photographer@demo.studio", "Parker Photographer", Role.PHOTOGRAPHER),
    ("assistant@demo.studio", "Alex Assistant", Role.ASSISTANT),
    ("viewer@demo.studio", "Val Viewer", Role.VIEWER),
]


def demo_modules() -> list[Any]:
    """Every installed app's ``demo`` module, in INSTALLED_APPS order."""
    return [
        import_module(f"{config.name}.demo")
        for config in apps.get_app_configs()
        if config.name != "studio" and module_has_submodule(config.module, "demo")
    ]


class Command(BaseCommand):
    help = "Create (or complete) the demo studio and print how to sign in."

    def handle(self, *args: Any, **options: Any) -> None:
        lines: list[str] = []
        with context.acting_as(context.Actor.system("command:seed_demo")), transaction.atomic():
            users = {email: self._user(email, name) for email, name, _ in DEMO_PEOPLE}
            owner = users[DEMO_PEOPLE[0][0]]
            studio = Studio.objects.filter(slug=DEMO_SLUG).first() or services.studio_create(
                owner=owner,
                name="Blakely Cinematics",
                slug=DEMO_SLUG,
                timezone_name="America/Los_Angeles",
                contact_email="hello@demo.studio",
            )
            with studio_scope(studio):
                for email, _, role in DEMO_PEOPLE:
                    if not Membership.objects.filter(user=users[email]).exists():
                        services.membership_add(user=users[email], role=role)
                members = {m.role: m for m in Membership.objects.select_related("user")}
                for module in demo_modules():
                    lines.extend(module.seed(studio=studio, members=members))
        self.stdout.write(self.style.SUCCESS(f"Demo studio '{studio.name}' is ready."))
        site = settings.SITE_URL.rstrip("/")  # where this deployment answers, not a guess
        self.stdout.write(
            "\n" + "".join(f"  {line}\n" for line in lines) + f"\n  Sign in at   {site}/accounts/login/\n"
            f"  Email        {DEMO_PEOPLE[0][0]}\n"
            "               (other roles: admin@, photographer@, assistant@, viewer@demo.studio)\n"
            f"  Password     {DEMO_PASSWORD}\n"
            f"  Admin        {site}/admin/\n"
            f"  API docs     {site}/api/docs/\n"
        )

    def _user(self, email: str, name: str) -> User:
        user = User.objects.filter(email=email).first() or User.objects.create_user(email=email, full_name=name)
        user.set_password(DEMO_PASSWORD)
        user.save(update_fields=["password"])
        # Demo addresses cannot receive mail: mark them verified.
        EmailAddress.objects.update_or_create(user=user, email=email, defaults={"verified": True, "primary": True})
        return user
