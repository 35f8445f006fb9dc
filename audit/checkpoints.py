"""Signed checkpoints of each audit chain's head, kept outside the database.

The keyed chain stops someone who can write the database but lacks
``AUDIT_CHAIN_KEY``. What it cannot stop is rewinding: deleting the newest
events and the head with them leaves a shorter chain that verifies. Like
CloudTrail's digest files, an hourly beat job (``audit.write_checkpoints``)
writes each chain's head (studio, sequence, hash, time, key id) signed with
the chain key, as a new object under ``AUDIT_CHECKPOINT_PREFIX``::

    audit-checkpoints/<studio id or "platform">/<UTC time>-<seq>.json

That prefix is meant for an S3 bucket with Object Lock in compliance mode, so
not even the account that writes them can change or delete a checkpoint
before its retention ends. ``verify_audit_log --against-checkpoints`` then
proves that every checkpoint is validly signed and that the database still
holds, at each checkpoint's sequence, the event with that hash.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.files.storage import storages
from django.utils import timezone

from audit.chain import Keyring, keyring
from audit.models import PLATFORM_CHAIN, AuditChainHead, AuditEvent
from galleries.storage import media_store
from studio.models import Studio
from studio.tenancy import unscoped

FORMAT = 1
# Domain separation: a checkpoint signature can never pass for an event hash.
SIGNING_CONTEXT = b"audit-checkpoint\n"
SIGNED_FIELDS = ("format", "chain", "studio_id", "studio_slug", "seq", "hash", "event_key_id", "written_at", "key_id")


def _prefix() -> str:
    return settings.AUDIT_CHECKPOINT_PREFIX.strip("/")


def _signature(body: dict[str, Any], key: bytes) -> str:
    payload = json.dumps({name: body.get(name) for name in SIGNED_FIELDS}, sort_keys=True, separators=(",", ":"))
    return hmac.new(key, SIGNING_CONTEXT + payload.encode(), hashlib.sha256).hexdigest()


def chain_names(chains: list[str] | None = None) -> dict[str, str]:
    """How reports name chains: the studio's slug, or "platform"."""
    names = {PLATFORM_CHAIN: PLATFORM_CHAIN}
    studios = Studio.objects.all() if chains is None else Studio.objects.filter(pk__in=_studio_ids(chains))
    names.update((str(pk), slug) for pk, slug in studios.values_list("pk", "slug"))
    return names


def _studio_ids(chains: list[str]) -> list[str]:
    return [chain for chain in chains if chain != PLATFORM_CHAIN]


def write_checkpoints(*, now: datetime | None = None) -> list[str]:
    """One checkpoint per chain whose head moved since its last one; returns
    the keys written. A failed write raises and is retried at the next run:
    the head columns only move after the object is stored."""
    ring = keyring()
    store = media_store()
    written: list[str] = []
    when = (now or timezone.now()).astimezone(UTC)
    with unscoped():  # every studio's chain, by design
        heads = list(AuditChainHead.objects.filter(seq__gt=0).order_by("chain"))
        names = chain_names([head.chain for head in heads])
        for head in heads:
            if (head.seq, head.hash) == (head.checkpoint_seq, head.checkpoint_hash):
                continue
            event_key_id = (
                AuditEvent.objects.filter(chain=head.chain, seq=head.seq).values_list("key_id", flat=True).first()
            )
            body: dict[str, Any] = {
                "format": FORMAT,
                "chain": head.chain,
                "studio_id": None if head.chain == PLATFORM_CHAIN else head.chain,
                "studio_slug": None if head.chain == PLATFORM_CHAIN else names.get(head.chain),
                "seq": head.seq,
                "hash": head.hash,
                "event_key_id": event_key_id,
                "written_at": when.isoformat(timespec="microseconds"),
                "key_id": ring.current_id,
            }
            body["signature"] = _signature(body, ring.current)
            key = f"{_prefix()}/{head.chain}/{when:%Y%m%dT%H%M%S%fZ}-{head.seq}.json"
            store.put(key, json.dumps(body, indent=2, sort_keys=True).encode(), "application/json")
            # update(), not save(): a writer appending meanwhile owns seq/hash.
            AuditChainHead.objects.filter(chain=head.chain).update(checkpoint_seq=head.seq, checkpoint_hash=head.hash)
            written.append(key)
    return written


@dataclass(frozen=True)
class Divergence:
    chain: str
    name: str
    checkpoint: str
    seq: int | None
    reason: str

    def __str__(self) -> str:
        at = f" (#{self.seq})" if self.seq is not None else ""
        return f"chain {self.name}: checkpoint {self.checkpoint}{at} {self.reason}"


@dataclass(frozen=True)
class ChainCheck:
    chain: str
    name: str
    checkpoints: int
    latest_seq: int | None
    divergence: Divergence | None


def checkpoint_chains() -> list[str]:
    """The chains that have checkpoints in storage."""
    try:
        dirs, _ = storages["default"].listdir(_prefix())
    except FileNotFoundError:  # local storage before the first checkpoint
        return []
    return sorted(dirs)


def _read(key: str) -> bytes:
    return b"".join(media_store().iter_chunks(key))


def verify_chain_checkpoints(chain: str, *, name: str, keys: Keyring | None = None) -> ChainCheck:
    """Check one chain's checkpoints against the database; the divergence
    reported is the one at the lowest sequence (the first point where the
    database stops being what was signed)."""
    ring = keys or keyring()
    folder = f"{_prefix()}/{chain}"
    try:
        _, files = storages["default"].listdir(folder)
    except FileNotFoundError:
        files = []
    checked: list[tuple[int, str, str]] = []
    problems: list[tuple[int, Divergence]] = []
    files = sorted(f for f in files if f.endswith(".json"))  # not a local store's temporary files
    for filename in files:
        key = f"{folder}/{filename}"
        try:
            body = json.loads(_read(key))
            seq, signed_hash = int(body["seq"]), str(body["hash"])
        except (ValueError, KeyError, TypeError, OSError):
            problems.append((-1, Divergence(chain, name, key, None, "is unreadable")))
            continue
        secret = ring.keys.get(str(body.get("key_id")))
        if secret is None:
            reason = f"is signed with key id '{body.get('key_id')}', which is not configured"
            problems.append((seq, Divergence(chain, name, key, seq, reason)))
            continue
        if not hmac.compare_digest(_signature(body, secret), str(body.get("signature", ""))):
            problems.append((seq, Divergence(chain, name, key, seq, "has an invalid signature")))
            continue
        if body.get("chain") != chain:
            problems.append((seq, Divergence(chain, name, key, seq, f"is for chain {body.get('chain')}")))
            continue
        checked.append((seq, signed_hash, key))
    with unscoped():
        found = dict(
            AuditEvent.objects.filter(chain=chain, seq__in={seq for seq, _, _ in checked}).values_list("seq", "hash")
        )
        last = AuditEvent.objects.filter(chain=chain).order_by("-seq").values_list("seq", flat=True).first() or 0
    for seq, signed_hash, key in checked:
        in_db = found.get(seq)
        if in_db is None:
            reason = f"expects hash {signed_hash}, the database has no event #{seq} (its log ends at #{last})"
        elif in_db != signed_hash:
            reason = f"expects hash {signed_hash}, the database has {in_db}"
        else:
            continue
        problems.append((seq, Divergence(chain, name, key, seq, reason)))
    problems.sort(key=lambda item: item[0])
    return ChainCheck(
        chain,
        name,
        len(files),
        max((seq for seq, _, _ in checked), default=None),
        problems[0][1] if problems else None,
    )
