"""Seed the demo studio. Safe to run again: it only creates what is missing,
and it (re)sets the demo sign-in's password so the printed one always works."""

from __future__ import annotations

import datetime
import os
from typing import Any

from allauth.account.models import EmailAddress
from django.core.management.base import BaseCommand
from django.db import transaction

from bookings import services as booking_services
from bookings.models import Service, WorkingHours
from galleries import services as gallery_services
from galleries.demo_images import jpeg_bytes
from galleries.models import Asset, AssetStatus, Gallery
from galleries.storage import media_store, original_key
from studio import context, services
from studio.models import Studio, User
from studio.tenancy import studio_scope
from teams import services as team_services
from teams.models import Membership, Team
from teams.roles import Role

DEMO_SLUG = "blakely"
DEMO_GALLERY_CODE = "DEMO2025"
DEMO_PHOTOS = 8
DEMO_PASSWORD = os.environ.get("DEMO_PASSWORD", "studio-demo-2026")
DEMO_PEOPLE = [
    ("owner@demo.studio", "Blake Owner", Role.OWNER),
    ("admin@demo.studio", "Avery Admin", Role.ADMIN),
    ("photographer@demo.studio", "Parker Photographer", Role.PHOTOGRAPHER),
    ("assistant@demo.studio", "Alex Assistant", Role.ASSISTANT),
    ("viewer@demo.studio", "Val Viewer", Role.VIEWER),
]


class Command(BaseCommand):
    help = "Create (or complete) the demo studio and print how to sign in."

    def handle(self, *args: Any, **options: Any) -> None:
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
                        team_services.membership_add(user=users[email], role=role)
                if not Team.objects.filter(name="Second shooters").exists():
                    team_services.team_create(
                        name="Second shooters",
                        description="Extra hands for weddings and events.",
                        members=list(Membership.objects.filter(role__in=[Role.PHOTOGRAPHER, Role.ASSISTANT])),
                    )
                gallery = self._gallery()
                self._bookings()
        self.stdout.write(self.style.SUCCESS(f"Demo studio '{studio.name}' is ready."))
        self.stdout.write(
            f"\n  Client portal code  {DEMO_GALLERY_CODE} (gallery '{gallery.title}', studio '{DEMO_SLUG}')\n"
            "\n  Sign in at   http://127.0.0.1:8000/accounts/login/\n"
            f"  Email        {DEMO_PEOPLE[0][0]}\n"
            "               (other roles: admin@, photographer@, assistant@, viewer@demo.studio)\n"
            f"  Password     {DEMO_PASSWORD}\n"
            "  Admin        http://127.0.0.1:8000/admin/\n"
            f"  Booking page http://127.0.0.1:8000/book/{DEMO_SLUG}/   (contact: /contact/{DEMO_SLUG}/)\n"
            "  API docs     http://127.0.0.1:8000/api/docs/\n"
        )

    def _gallery(self) -> Gallery:
        """A published gallery with a few generated photos, made by the real pipeline."""
        gallery = Gallery.objects.filter(access_code=DEMO_GALLERY_CODE).first()
        if gallery is None:
            gallery = gallery_services.gallery_create(
                title="Smith & Jones Wedding",
                access_code=DEMO_GALLERY_CODE,
                client_name="Sam Smith",
                client_email="sam@example.com",
                selection_limit=30,
            )
        missing = DEMO_PHOTOS - Asset.objects.filter(gallery=gallery).count()
        for index in range(max(missing, 0)):
            data = jpeg_bytes(1500, 1000, seed=100 + index, orientation=6 if index % 3 == 2 else 1, quality=88)
            asset = Asset(
                studio=gallery.studio,
                gallery=gallery,
                original_filename=f"DSC_{1001 + index}.jpg",
                content_type="image/jpeg",
                size=len(data),
                status=AssetStatus.PROCESSING,
                sort_order=index + 1,
            )
            asset.storage_key = original_key(asset, "jpg")
            asset.save()
            media_store().put(asset.storage_key, data, "image/jpeg")
            gallery_services.asset_process(asset_id=asset.pk)
        if gallery.cover_id is None:
            first = Asset.objects.filter(gallery=gallery, status=AssetStatus.READY).order_by("sort_order").first()
            gallery_services.gallery_set_cover(gallery=gallery, asset=first)
        gallery_services.gallery_publish(gallery=gallery)
        return gallery

    def _bookings(self) -> None:
        """Two services and weekday hours (studio time, America/Los_Angeles)."""
        if not Service.objects.exists():
            booking_services.service_save(
                service=Service(
                    name="Portrait session",
                    description="One hour in the studio.",
                    duration_minutes=60,
                    buffer_after_minutes=15,
                    price=250,
                    deposit=0,
                    min_notice_minutes=24 * 60,
                )
            )
            booking_services.service_save(
                service=Service(
                    name="Engagement shoot",
                    description="Two hours on location.",
                    duration_minutes=120,
                    buffer_before_minutes=30,
                    buffer_after_minutes=30,
                    price=600,
                    deposit=150,
                    daily_limit=2,
                )
            )
        if not WorkingHours.objects.exists():
            for weekday in range(5):
                booking_services.availability_save(
                    obj=WorkingHours(weekday=weekday, start_time=datetime.time(9), end_time=datetime.time(18))
                )
            booking_services.availability_save(
                obj=WorkingHours(weekday=5, start_time=datetime.time(10), end_time=datetime.time(16))
            )

    def _user(self, email: str, name: str) -> User:
        user = User.objects.filter(email=email).first() or User.objects.create_user(email=email, full_name=name)
        user.set_password(DEMO_PASSWORD)
        user.save(update_fields=["password"])
        # Demo addresses cannot receive mail: mark them verified.
        EmailAddress.objects.update_or_create(user=user, email=email, defaults={"verified": True, "primary": True})
        return user
