"""Walk every audit chain (or one studio's) and report the first broken link;
with ``--against-checkpoints``, also prove the database matches the signed
checkpoints in storage and name the first divergence.

Chains are named by studio slug ("platform" for the platform chain).
Exit status 0 when everything verifies, 1 otherwise (for cron and CI).
"""

from __future__ import annotations

from contextlib import closing
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audit.chain import keyring, verify_chain
from audit.checkpoints import chain_names, checkpoint_chains, verify_chain_checkpoints
from audit.models import PLATFORM_CHAIN, AuditChainHead, AuditEvent
from studio.models import Studio
from studio.tenancy import unscoped


class Command(BaseCommand):
    help = "Verify the keyed hash chains of the audit log (and its checkpoints); name the first broken link."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--studio", help="Only this studio's chain (slug).")
        parser.add_argument(
            "--against-checkpoints",
            action="store_true",
            help="Also check the database against the signed checkpoints in storage.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        keys = keyring()
        against = options.get("against_checkpoints")
        with unscoped():  # verification reads every studio's history by design
            chains = self._chains(options.get("studio"), against)
            names = chain_names(chains)
            broken = []
            for chain in chains:
                name = names.get(chain, chain)
                head = AuditChainHead.objects.filter(chain=chain).first()
                events = AuditEvent.objects.filter(chain=chain).order_by("seq").iterator(chunk_size=2000)
                # closing(): a broken chain stops the walk early; release the
                # server-side cursor now rather than at garbage collection.
                with closing(events):
                    link = verify_chain(chain, events, head=head, keys=keys, name=name)
                if link is None:
                    self.stdout.write(f"ok      {name}")
                else:
                    broken.append(str(link))
                    self.stdout.write(f"BROKEN  {link}")
            diverged = []
            if against:
                for chain in chains:
                    check = verify_chain_checkpoints(chain, name=names.get(chain, chain), keys=keys)
                    if check.divergence is None:
                        latest = f", latest #{check.latest_seq}" if check.latest_seq is not None else ""
                        self.stdout.write(f"ok      {check.name}: {check.checkpoints} checkpoint(s){latest}")
                    else:
                        diverged.append(str(check.divergence))
                        self.stdout.write(f"DIVERGES {check.divergence}")
        if broken or diverged:
            parts = []
            if broken:
                parts.append(f"{len(broken)} audit chain(s) broken; first: {broken[0]}")
            if diverged:
                parts.append(f"{len(diverged)} chain(s) diverge from their checkpoints; first: {diverged[0]}")
            raise CommandError(" | ".join(parts))
        suffix = " and matched against their checkpoints" if against else ""
        self.stdout.write(self.style.SUCCESS(f"{len(chains)} chain(s) verified{suffix}."))

    def _chains(self, slug: str | None, against: bool) -> list[str]:
        if slug:
            studio = Studio.objects.filter(slug=slug).first()
            if studio is None:
                raise CommandError(f"No studio with slug '{slug}'.")
            return [str(studio.pk)]
        chains = set(AuditChainHead.objects.values_list("chain", flat=True))
        chains |= set(AuditEvent.objects.values_list("chain", flat=True).distinct())
        if against:
            # A chain wiped from the database still has its checkpoints.
            chains |= set(checkpoint_chains())
        return sorted(chains, key=lambda c: (c != PLATFORM_CHAIN, c))
