"""Create a studio for someone, as a platform operator: the way studios come
to be when SIGNUP_MODE is "invite" (the production default).

    manage.py create_studio "Blakely Cinematics" --owner owner@example.com [--slug blakely]
        [--timezone America/Los_Angeles] [--contact-email hello@example.com]

An owner who has an account becomes the studio's owner at once; anyone else
is invited as its owner (the email's link lets them sign up, even in invite
mode, and join). Lives in the teams app because invitations do; the core
imports no app."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from studio import context
from studio.errors import DomainError
from studio.models import User
from studio.roles import Role
from studio.services import studio_create
from studio.tenancy import studio_scope
from teams import services


class Command(BaseCommand):
    help = "Create a studio, with its owner (invited when they have no account yet)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("name")
        parser.add_argument("--owner", required=True, help="The owner's email address.")
        parser.add_argument("--slug", default="")
        parser.add_argument("--timezone", default="UTC", help="IANA time zone, e.g. Europe/Paris.")
        parser.add_argument("--contact-email", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        email = options["owner"].strip().lower()
        owner = User.objects.filter(email=email, is_active=True).first()
        try:
            with context.acting_as(context.Actor.system("command:create_studio")), transaction.atomic():
                studio = studio_create(
                    owner=owner,
                    name=options["name"],
                    slug=options["slug"],
                    timezone_name=options["timezone"],
                    contact_email=options["contact_email"],
                )
                if owner is None:
                    with studio_scope(studio):
                        services.invitation_create(actor=None, email=email, role=Role.OWNER)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        except ValidationError as exc:  # a bad time zone, slug...
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from exc
        how = "owner" if owner is not None else "invited as owner (an email is on its way)"
        self.stdout.write(self.style.SUCCESS(f"Studio '{studio.name}' ({studio.slug}) created; {email} {how}."))
