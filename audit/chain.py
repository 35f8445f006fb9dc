"""The hash chain over audit events.

``hash = sha256(prev_hash + canonical_json(event))``. The canonical form uses
only values that survive a round trip through every supported database
unchanged (UTC timestamps to the microsecond, text ids, normalised IPs, JSON
with sorted keys), so a verifier reading rows back computes the same bytes.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from audit.models import GENESIS_HASH, AuditChainHead, AuditEvent

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


def compute_hash(event: AuditEvent, prev_hash: str) -> str:
    return hashlib.sha256(prev_hash.encode() + canonical_bytes(event)).hexdigest()


@dataclass(frozen=True)
class BrokenLink:
    chain: str
    seq: int
    event_id: str
    reason: str

    def __str__(self) -> str:
        return f"chain {self.chain}: event #{self.seq} ({self.event_id}) {self.reason}"


def verify_chain(chain: str, events: Iterable[AuditEvent], *, head: AuditChainHead | None = None) -> BrokenLink | None:
    """Walk one chain in ``seq`` order; return the first broken link, if any.

    With the chain's ``head``, events cut off the end are caught too."""
    expected_seq = 1
    prev_hash = GENESIS_HASH
    for event in events:
        if event.seq != expected_seq:
            return BrokenLink(chain, expected_seq, str(event.id), f"is missing (found #{event.seq} next)")
        if event.prev_hash != prev_hash:
            return BrokenLink(chain, event.seq, str(event.id), "does not link to the event before it")
        if compute_hash(event, prev_hash) != event.hash:
            return BrokenLink(chain, event.seq, str(event.id), "was altered: its content does not match its hash")
        prev_hash = event.hash
        expected_seq += 1
    if head is not None and (head.seq, head.hash) != (expected_seq - 1, prev_hash):
        return BrokenLink(
            chain, expected_seq, "-", f"is missing: the log ends at #{expected_seq - 1}, its head is #{head.seq}"
        )
    return None
