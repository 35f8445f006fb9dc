"""Filters are declared, never generated (generation queries the scoped
manager at import time)."""

from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet

from bookings.models import Booking, BookingStatus
from studio.api.filters import IsoDateTimeFilter


class BookingFilterSet(django_filters.FilterSet):
    start = IsoDateTimeFilter(field_name="ends_at", lookup_expr="gt", label="Ending after")
    end = IsoDateTimeFilter(field_name="starts_at", lookup_expr="lt", label="Starting before")
    status = django_filters.MultipleChoiceFilter(choices=BookingStatus.choices)
    service = django_filters.UUIDFilter(field_name="service_id")
    member = django_filters.UUIDFilter(method="filter_member", label="Assigned to this membership (or their teams)")

    class Meta:
        model = Booking
        fields = ["start", "end", "status", "service", "member"]

    def filter_member(self, queryset: QuerySet, name: str, value: object) -> QuerySet:
        return queryset.filter(
            Q(assigned_members=value) | Q(resource=str(value)) | Q(assigned_team__team_members__membership=value)
        ).distinct()
