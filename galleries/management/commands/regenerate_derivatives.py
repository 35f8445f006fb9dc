"""Make the previews again: of one gallery, a studio's galleries or every
studio's, as the system actor. Ready (and processing) photos go through
services.assets_regenerate; with --failed-only, only failed photos whose
original is stored are retried. Jobs are queued (or run in-process when
there is no broker), so this returns before the previews are made."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from galleries import services
from galleries.management.commands._common import resolve_gallery, resolve_studio
from galleries.models import Gallery
from galleries.services import maintenance
from galleries.storage import media_store
from studio import context
from studio.models import Studio
from studio.tenancy import studio_scope

ACTOR = "command:regenerate_derivatives"


class Command(BaseCommand):
    help = "Regenerate the derivatives of a gallery (--gallery), a studio (--studio) or all (--all)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--gallery", help="A gallery's id, or its access code with --studio.")
        parser.add_argument("--studio", help="A studio's slug: all its galleries (or the one --gallery names).")
        parser.add_argument("--all", action="store_true", help="Every active studio's galleries.")
        parser.add_argument("--failed-only", action="store_true", help="Only retry failed photos.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["gallery"]:
            gallery = resolve_gallery(options["gallery"], options["studio"])
            targets = [(gallery.studio, [gallery])]
        elif options["studio"]:
            targets = [(resolve_studio(options["studio"]), None)]
        elif options["all"]:
            targets = [(studio, None) for studio in Studio.objects.filter(is_active=True).order_by("slug")]
        else:
            raise CommandError("Say which: --gallery, --studio or --all.")
        store = media_store()
        total = 0
        with context.acting_as(context.Actor.system(ACTOR)):
            for studio, galleries in targets:
                with studio_scope(studio):
                    for gallery in galleries or Gallery.objects.order_by("created_at"):
                        if options["failed_only"]:
                            chosen = maintenance.assets_retry_failed(gallery=gallery, store=store)
                        else:
                            chosen = services.assets_regenerate(gallery=gallery)
                        if chosen:
                            self.stdout.write(f"{studio.slug} / {gallery.title}: {len(chosen)} photo(s)")
                        total += len(chosen)
        what = "failed photo(s) retried" if options["failed_only"] else "photo(s) queued for new previews"
        self.stdout.write(self.style.SUCCESS(f"{total} {what}."))
