"""Housekeeping for galleries, daily from Celery beat (galleries.cleanup) or cron:

- uploads asked for but never completed, and failed uploads, older than
  --hours (default 48) are forgotten and their stray bytes deleted;
- photos stuck in processing are queued again or failed, by the sweeper
  beat already runs every minute (galleries.tasks.sweep_stuck_assets);
- photos staff deleted (in the bin) longer than STAFF_BIN_RETENTION_DAYS
  (default 30) are purged with their bytes;
- upload batches left empty, older than --hours, are deleted;
- galleries expired longer than the studio's archive_expired_after_days are
  archived (never deleted; no setting, no archiving);
- the bucket is reconciled: objects under a studio's prefix that no row
  accounts for are listed, and deleted with --delete-orphans.

The client's trash (Asset.trashed_at) is not purged: it is the client's way
to hide photos while choosing, restorable by them at any time.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils import timezone

from galleries import selectors, services
from galleries.models import Asset, AssetStatus
from galleries.services import maintenance
from galleries.storage import media_store
from studio import context
from studio.models import Studio
from studio.tenancy import studio_scope

ACTOR = "command:cleanup_galleries"
# Any fixed 64-bit number, the same in every process: the advisory lock's name.
ADVISORY_LOCK_ID = 0x5743_4C45_414E  # "WCLEAN"
COLUMNS = ("uploads", "purged", "batches", "archived", "orphans")


@contextlib.contextmanager
def cleanup_lock() -> Iterator[bool]:
    """Yields whether this run holds the lock; another run refuses rather
    than waits (the next day's run does the work).

    PostgreSQL: a session advisory lock, released by the server if the
    process dies. Elsewhere (SQLite, one host by nature): an flock on a file
    named after the database, released by the kernel if the process dies;
    a cache lock would not do with the in-memory cache, which processes do
    not share."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [ADVISORY_LOCK_ID])
            held = cursor.fetchone()[0]
        try:
            yield held
        finally:
            if held:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_LOCK_ID])
        return
    # The connection's database: a test run must not share a lock with the
    # real one, and an in-memory database is a different one in each process
    # (parallel test workers), so its lock is per process.
    database = str(connection.settings_dict["NAME"])
    if database == ":memory:" or "mode=memory" in database:
        database += f"#{os.getpid()}"
    name = hashlib.sha256(database.encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"cleanup_galleries-{name}.lock"
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Command(BaseCommand):
    help = (
        "Forget abandoned uploads, sweep stuck photos, purge the staff bin past its retention, "
        "delete empty upload batches, archive long-expired "
        "galleries (per studio setting) and list (--delete-orphans: delete) objects no row references."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--hours", type=int, default=48, help="Age after which an unfinished upload is abandoned.")
        parser.add_argument("--studio", help="Only this studio (slug).")
        parser.add_argument("--dry-run", action="store_true", help="Report what would be done, change nothing.")
        parser.add_argument(
            "--delete-orphans", action="store_true", help="Delete the stored objects no row references."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        studios = Studio.objects.filter(is_active=True).order_by("slug")
        if options.get("studio"):
            studios = studios.filter(slug=options["studio"])
            if not studios.exists():
                raise CommandError(f"No active studio {options['studio']!r}.")
        with cleanup_lock() as held:
            if not held:
                raise CommandError("Another cleanup_galleries is running; try again later.")
            with context.acting_as(context.Actor.system(ACTOR)):
                self._run(list(studios), options)

    def _run(self, studios: list[Studio], options: dict[str, Any]) -> None:
        dry = options["dry_run"]
        now = timezone.now()
        cutoff = now - timedelta(hours=options["hours"])
        store = media_store()
        self._stuck(studios, dry, scoped=bool(options.get("studio")))
        rows: list[tuple[str, dict[str, int]]] = []
        orphans_found: dict[str, list[str]] = {}
        tty = hasattr(self.stdout, "isatty") and self.stdout.isatty()
        for index, studio in enumerate(studios, start=1):
            if tty:  # a bar only where a person watches; logs get the table
                filled = int(20 * index / len(studios))
                bar = "#" * filled + "." * (20 - filled)
                self.stdout.write(f"\r[{bar}] {index}/{len(studios)} {studio.slug}", ending="")
                self.stdout.flush()
            with studio_scope(studio):
                counts, orphans = self._studio(store, cutoff, now, dry, options["delete_orphans"])
            rows.append((studio.slug, counts))
            orphans_found[studio.slug] = orphans
        if tty:
            self.stdout.write("")
        for slug, keys in orphans_found.items():
            for key in keys:
                self.stdout.write(f"orphan {slug}: {key}")
        self._table(rows, dry, options["delete_orphans"])

    def _stuck(self, studios: list[Studio], dry: bool, *, scoped: bool) -> None:
        ids = {s.pk for s in studios}
        stuck = [row for row in selectors.stuck_assets() if row[0] in ids]
        if dry or scoped:
            # The sweeper works across studios (beat runs it every minute);
            # scoped to one studio, this run only reports.
            self.stdout.write(f"{len(stuck)} photo(s) stuck in processing (the sweeper queues or fails them).")
            return
        from galleries.tasks import sweep_stuck_assets

        queued = sweep_stuck_assets()
        self.stdout.write(f"{len(stuck)} photo(s) stuck in processing: {queued} queued again, the rest failed.")

    def _studio(
        self, store: Any, cutoff: Any, now: Any, dry: bool, delete_orphans: bool
    ) -> tuple[dict[str, int], list[str]]:
        counts = dict.fromkeys(COLUMNS, 0)
        if dry:
            counts["uploads"] = Asset.with_deleted.filter(
                created_at__lt=cutoff, status__in=[AssetStatus.AWAITING_UPLOAD, AssetStatus.FAILED]
            ).count()
            counts["purged"] = services.binned_assets_due(now=now).count()
            counts["batches"] = len(maintenance.empty_batches_due(older_than=cutoff))
            counts["archived"] = len(maintenance.expired_galleries_due(now=now))
        else:
            with transaction.atomic():
                counts["uploads"] = services.uploads_cleanup(older_than=cutoff)
            counts["purged"] = services.assets_purge_binned(now=now)
            counts["batches"] = maintenance.upload_batches_cleanup(older_than=cutoff)
            counts["archived"] = maintenance.galleries_archive_expired(now=now)
        # Listed after the cleanup above, so the bytes it just queued for
        # deletion are not reported twice.
        orphans = maintenance.orphan_keys(store)
        counts["orphans"] = len(orphans)
        if delete_orphans and not dry and orphans:
            maintenance.orphans_delete(keys=orphans)
        return counts, orphans

    def _table(self, rows: list[tuple[str, dict[str, int]]], dry: bool, delete_orphans: bool) -> None:
        width = max([len("studio"), *(len(slug) for slug, _ in rows)])
        header = f"{'studio':<{width}}  " + "  ".join(f"{c:>8}" for c in COLUMNS)
        self.stdout.write(header)
        self.stdout.write("-" * len(header))
        totals = dict.fromkeys(COLUMNS, 0)
        for slug, counts in rows:
            self.stdout.write(f"{slug:<{width}}  " + "  ".join(f"{counts[c]:>8}" for c in COLUMNS))
            for c in COLUMNS:
                totals[c] += counts[c]
        self.stdout.write(f"{'total':<{width}}  " + "  ".join(f"{totals[c]:>8}" for c in COLUMNS))
        if dry:
            verdict = "Dry run: nothing was changed."
        elif totals["orphans"] and not delete_orphans:
            verdict = "Done. Orphans were only listed: --delete-orphans deletes them."
        else:
            verdict = "Done."
        self.stdout.write(self.style.SUCCESS(verdict))
