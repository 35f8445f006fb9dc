"""Filter fields shared by the apps' filtersets."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import django_filters
from django.core.exceptions import ValidationError
from django_filters.fields import IsoDateTimeField


class BoundedIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 date-time that is also an instant datetime can hold in UTC.

    9999-12-31T23:59:59-14:00 parses, but is year 10000 in UTC: the database
    adapter overflowed when the query ran (500). Refused here instead (400)."""

    default_error_messages = {"out_of_range": "Enter a date and time between the years 1 and 9999 in UTC."}

    def to_python(self, value: Any) -> datetime | None:
        instant = super().to_python(value)
        if instant is not None:
            try:
                instant.astimezone(UTC)
            except OverflowError as exc:
                raise ValidationError(self.error_messages["out_of_range"], code="out_of_range") from exc
        return instant


class IsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = BoundedIsoDateTimeField
