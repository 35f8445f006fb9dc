"""Import the photos of a folder on this server into a gallery, as the
system actor, through the uploads' rules (types, size, quota): originals
stored, derivatives queued (or made in-process without a broker). Files the
gallery already holds (same SHA-256) are skipped, so an interrupted import
can simply be run again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from galleries.management.commands._common import resolve_gallery
from galleries.services import imports
from galleries.services.uploads import QuotaExceeded
from studio import context
from studio.tenancy import studio_scope

ACTOR = "command:import_photos"


class Command(BaseCommand):
    help = "Import the image files of a local folder into a gallery, skipping ones already there (by checksum)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("folder", help="A folder on this machine.")
        parser.add_argument("--gallery", required=True, help="The gallery's id, or its access code with --studio.")
        parser.add_argument("--studio", help="The studio's slug (required with an access code).")
        parser.add_argument("--recursive", action="store_true", help="Include sub-folders.")

    def handle(self, *args: Any, **options: Any) -> None:
        folder = Path(options["folder"])
        if not folder.is_dir():
            raise CommandError(f"{folder} is not a folder.")
        gallery = resolve_gallery(options["gallery"], options["studio"])
        pattern = "**/*" if options["recursive"] else "*"
        # Hidden files (.DS_Store, ._IMG_1.jpg from macOS) are never photos.
        files = sorted(p for p in folder.glob(pattern) if p.is_file() and not p.name.startswith("."))
        tty = hasattr(self.stdout, "isatty") and self.stdout.isatty()
        imported = skipped = 0
        with context.acting_as(context.Actor.system(ACTOR)), studio_scope(gallery.studio):
            batch = imports.import_batch_start(gallery=gallery, files=len(files))
            for index, path in enumerate(files, start=1):
                if tty:
                    self.stdout.write(f"\r{index}/{len(files)} {path.name[:40]:<40}", ending="")
                    self.stdout.flush()
                try:
                    result = imports.asset_import(batch=batch, filename=path.name, data=path.read_bytes())
                except QuotaExceeded as exc:
                    raise CommandError(f"Stopped at {path.name}: {exc}. {imported} file(s) imported.") from exc
                if result.asset is not None:
                    imported += 1
                else:
                    skipped += 1
                    if tty:
                        self.stdout.write("")
                    self.stdout.write(f"skipped {path.name}: {result.skipped}")
        if tty:
            self.stdout.write("")
        self.stdout.write(self.style.SUCCESS(f"{imported} imported, {skipped} skipped into {gallery.title}."))
