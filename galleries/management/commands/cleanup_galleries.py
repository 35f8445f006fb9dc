"""Housekeeping for galleries, for cron or Celery beat:

- uploads that were asked for but never completed, and failed uploads, older
  than --hours (default 48) are forgotten and their stray bytes deleted.

Expired galleries are hidden from clients by their expiry date, never
deleted: that is the studio's decision.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from galleries import services
from galleries.models import Asset, AssetStatus
from studio import context
from studio.models import Studio
from studio.tenancy import studio_scope


class Command(BaseCommand):
    help = "Forget abandoned and failed uploads older than --hours, deleting their stray bytes."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--hours", type=int, default=48, help="Age after which an unfinished upload is abandoned.")
        parser.add_argument("--studio", help="Only this studio (slug).")
        parser.add_argument("--dry-run", action="store_true", help="Report, change nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        cutoff = timezone.now() - timedelta(hours=options["hours"])
        studios = Studio.objects.filter(is_active=True)
        if options.get("studio"):
            studios = studios.filter(slug=options["studio"])
        total = 0
        with context.acting_as(context.Actor.system("command:cleanup_galleries")):
            for studio in studios.order_by("slug"):
                # One studio at a time, each in its own scope and transaction.
                with studio_scope(studio):
                    if options["dry_run"]:
                        count = Asset.objects.filter(
                            created_at__lt=cutoff, status__in=[AssetStatus.AWAITING_UPLOAD, AssetStatus.FAILED]
                        ).count()
                    else:
                        with transaction.atomic():
                            count = services.uploads_cleanup(older_than=cutoff)
                if count:
                    self.stdout.write(f"{studio.slug}: {count} abandoned or failed upload(s)")
                total += count
        verb = "would be removed" if options["dry_run"] else "removed"
        self.stdout.write(self.style.SUCCESS(f"{total} upload(s) {verb}."))
