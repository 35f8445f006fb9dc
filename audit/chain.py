"""The hash chain over audit events.

``hash = HMAC-SHA-256(key, key_id + "\n" + prev_hash + canonical_json(event))``
where ``key`` is the chain key named by the event's ``key_id``
(``AUDIT_CHAIN_KEY``, never stored in the database). Someone who can write the
database but does not hold the key cannot recompute a tampered event's hash and
the ones after it. Events written before the chain was keyed carry
``LEGACY_KEY_ID`` and keep their plain ``sha256(prev_hash + canonical_json)``;
a chain may start with such events, never return to them.

The canonical form uses only values that survive a round trip through every
supported database unchanged (UTC timestamps to the microsecond, text ids,
normalised IPs, JSON with sorted keys), so a verifier reading rows back
computes the same bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from audit.models import GENESIS_HASH, LEGACY_KEY_ID, AuditChainHead, AuditEvent

HASHED_FIELDS = (
    "id",
    "chain",
    "seq",
    "created_at",
    "studio_id",
    "actor_type",
    "actor_user_id",
    "actor_ref",
    "actor_label",
    "action",
    "target_type",
    "target_id",
    "target_label",
    "before",
    "after",
    "ip",
    "user_agent",
    "request_id",
)


def normalise_ip(ip: str | None) -> str | None:
    return str(ipaddress.ip_address(ip)) if ip else None


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if value is None or isinstance(value, (bool, int, float, str, dict, list)):
        return value
    return str(value)


def canonical_bytes(event: AuditEvent) -> bytes:
    payload = {name: _canonical(getattr(event, name)) for name in HASHED_FIELDS}
    payload["ip"] = normalise_ip(payload["ip"])
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Keyring:
    """The chain keys: the current one (new events and checkpoints) and the
    retired ones, still needed to verify what they signed."""

    current_id: str
    keys: dict[str, bytes]

    @property
    def current(self) -> bytes:
        return self.keys[self.current_id]


def keyring() -> Keyring:
    """From settings, read on every call so a rotation (or a test) takes
    effect without a restart of this module.

    ``AUDIT_CHAIN_KEY`` / ``AUDIT_CHAIN_KEY_ID`` is the current key;
    ``AUDIT_CHAIN_OLD_KEYS`` is ``"k1:secret,k0:secret"``."""
    current_id = settings.AUDIT_CHAIN_KEY_ID
    keys: dict[str, bytes] = {}
    for item in filter(None, (part.strip() for part in settings.AUDIT_CHAIN_OLD_KEYS.split(","))):
        key_id, sep, secret = item.partition(":")
        if not sep or not key_id or not secret:
            raise ImproperlyConfigured("AUDIT_CHAIN_OLD_KEYS is 'id:secret,id:secret'.")
        keys[key_id.strip()] = secret.strip().encode()
    if current_id in keys:
        # One id, one key: two secrets under one id would make old events unverifiable.
        raise ImproperlyConfigured(f"AUDIT_CHAIN_OLD_KEYS repeats the current AUDIT_CHAIN_KEY_ID '{current_id}'.")
    keys[current_id] = settings.AUDIT_CHAIN_KEY.encode()
    for key_id, secret in keys.items():
        if key_id == LEGACY_KEY_ID or len(key_id) > 16 or not secret:
            raise ImproperlyConfigured(f"Audit chain key id '{key_id}' is reserved, too long or has no secret.")
    return Keyring(current_id, keys)


class UnknownKey(KeyError):
    """The event names a key id this installation does not hold."""


def compute_hash(event: AuditEvent, prev_hash: str, *, keys: Keyring | None = None) -> str:
    """The event's hash under the key its ``key_id`` names (UnknownKey if not held)."""
    if event.key_id == LEGACY_KEY_ID:
        return hashlib.sha256(prev_hash.encode() + canonical_bytes(event)).hexdigest()
    ring = keys or keyring()
    try:
        key = ring.keys[event.key_id]
    except KeyError:
        raise UnknownKey(event.key_id) from None
    # The key id is in the message too, so an event cannot be relabelled to
    # another key holding the same secret.
    message = f"{event.key_id}\n{prev_hash}".encode() + canonical_bytes(event)
    return hmac.new(key, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class BrokenLink:
    chain: str
    seq: int
    event_id: str
    reason: str
    # How reports name the chain (the studio's slug); not part of equality.
    name: str = field(default="", compare=False)

    def __str__(self) -> str:
        return f"chain {self.name or self.chain}: event #{self.seq} ({self.event_id}) {self.reason}"


def verify_chain(
    chain: str,
    events: Iterable[AuditEvent],
    *,
    head: AuditChainHead | None = None,
    keys: Keyring | None = None,
    name: str = "",
) -> BrokenLink | None:
    """Walk one chain in ``seq`` order; return the first broken link, if any.

    With the chain's ``head``, events cut off the end are caught too (unless
    the head was rewound with them: checkpoints catch that)."""
    ring = keys or keyring()
    expected_seq = 1
    prev_hash = GENESIS_HASH
    keyed = False
    for event in events:
        if event.seq != expected_seq:
            return BrokenLink(chain, expected_seq, str(event.id), f"is missing (found #{event.seq} next)", name)
        if event.prev_hash != prev_hash:
            return BrokenLink(chain, event.seq, str(event.id), "does not link to the event before it", name)
        if event.key_id == LEGACY_KEY_ID and keyed:
            # Unkeyed hashes are what an attacker without the key can compute:
            # they are only history from before the chain was keyed.
            return BrokenLink(chain, event.seq, str(event.id), "is unkeyed after keyed events", name)
        keyed = keyed or event.key_id != LEGACY_KEY_ID
        try:
            expected = compute_hash(event, prev_hash, keys=ring)
        except UnknownKey:
            reason = f"names key id '{event.key_id}', which is not configured (AUDIT_CHAIN_OLD_KEYS)"
            return BrokenLink(chain, event.seq, str(event.id), reason, name)
        if not hmac.compare_digest(expected, event.hash):
            return BrokenLink(chain, event.seq, str(event.id), "was altered: its content does not match its hash", name)
        prev_hash = event.hash
        expected_seq += 1
    if head is not None and (head.seq, head.hash) != (expected_seq - 1, prev_hash):
        return BrokenLink(
            chain, expected_seq, "-", f"is missing: the log ends at #{expected_seq - 1}, its head is #{head.seq}", name
        )
    return None
