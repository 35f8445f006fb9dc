"""Reads of the audit log."""

from __future__ import annotations

import csv
from collections.abc import Iterator

from django.db.models import QuerySet

from audit.api.serializers import AuditEventSerializer
from audit.models import AuditEvent
from studio.models import Studio
from studio.tenancy import studio_scope

CSV_COLUMNS = AuditEventSerializer.Meta.fields


class _Echo:
    def write(self, value: str) -> str:
        return value


def audit_events_csv(*, studio: Studio, queryset: QuerySet[AuditEvent]) -> Iterator[str]:
    """CSV rows of ``queryset``, streamed in chunks so an export of a long
    history never sits in memory. The response body is generated after the
    view returns, so the generator enters the studio scope itself."""
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    with studio_scope(studio):
        for event in queryset.order_by("created_at", "seq").iterator(chunk_size=2000):
            row = AuditEventSerializer(event).data
            yield writer.writerow([_cell(row[name]) for name in CSV_COLUMNS])


def _cell(value: object) -> str:
    import json

    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    text = str(value)
    # Spreadsheet formula injection: a cell starting with these runs as a formula.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
