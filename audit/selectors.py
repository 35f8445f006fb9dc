"""Reads of the audit log."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC

from django.db.models import QuerySet

from audit.models import AuditEvent
from studio.models import Studio
from studio.tenancy import studio_scope

# What an event shows, in the API and in the CSV export alike.
EVENT_FIELDS = (
    "id",
    "created_at",
    "action",
    "actor_type",
    "actor_user",
    "actor_label",
    "target_type",
    "target_id",
    "target_label",
    "before",
    "after",
    "ip",
    "user_agent",
    "request_id",
    "prev_hash",
    "hash",
)


class _Echo:
    def write(self, value: str) -> str:
        return value


def audit_events_csv(*, studio: Studio, queryset: QuerySet[AuditEvent]) -> Iterator[str]:
    """CSV rows of ``queryset``, streamed in chunks so an export of a long
    history never sits in memory. The response body is generated after the
    view returns, so the generator enters the studio scope itself."""
    writer = csv.writer(_Echo())
    yield writer.writerow(EVENT_FIELDS)
    with studio_scope(studio):
        for event in queryset.order_by("created_at", "seq").iterator(chunk_size=2000):
            yield writer.writerow([_cell(_value(event, name)) for name in EVENT_FIELDS])


def _value(event: AuditEvent, name: str) -> object:
    if name == "actor_user":
        return event.actor_user_id
    if name == "created_at":  # as the API shows it: ISO 8601, UTC as Z
        return event.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return getattr(event, name)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    text = str(value)
    # Spreadsheet formula injection: a cell starting with these runs as a formula.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
