from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from django.urls import reverse
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from bookings.models import (
    Booking,
    BookingStatus,
    CalendarFeed,
    ContactSubmission,
    DateOverride,
    FeedScope,
    Payment,
    Service,
    TimeOff,
    WorkingHours,
)
from studio.api.fields import StudioObjectField, StudioObjectsField
from studio.models import Membership
from teams.models import Team

# --- dates and times -------------------------------------------------------------------------------

# Every date a client or staff sends to the booking API lies in this window.
# A studio books nothing outside it, and bounding the input keeps the
# availability arithmetic (and the database) away from datetime's limits:
# year 9999 plus an hour, or year 1 seen from UTC+14, overflowed (500).
EARLIEST_DATE = date(2000, 1, 1)
LATEST_DATE = date(2099, 12, 31)
_OUT_OF_RANGE = f"Must be between {EARLIEST_DATE.isoformat()} and {LATEST_DATE.isoformat()}."


class BookingDateField(serializers.DateField):
    """A calendar date within the booking window."""

    default_error_messages = {"out_of_range": _OUT_OF_RANGE}

    def to_internal_value(self, value: Any) -> date:
        day = super().to_internal_value(value)
        if not EARLIEST_DATE <= day <= LATEST_DATE:
            self.fail("out_of_range")
        return day


@extend_schema_field(
    {
        "type": "string",
        "format": "date-time",
        "description": "ISO 8601 with its UTC offset (`Z` or `+02:00`); a time without one is refused.",
    }
)
class BookingDateTimeField(serializers.DateTimeField):
    """An instant within the booking window, given with its UTC offset.

    A time without an offset used to be read as UTC, which is the studio's
    zone only by accident: a client in Los Angeles sending 10:00 booked 02:00.
    It is refused instead, so the mistake shows where it is made."""

    default_error_messages = {
        "offset_required": "Give the time with its UTC offset, e.g. 2030-06-01T10:00:00+02:00 or 2030-06-01T08:00:00Z.",
        "out_of_range": _OUT_OF_RANGE,
    }

    def enforce_timezone(self, value: datetime) -> datetime:
        if timezone.is_naive(value):
            self.fail("offset_required")
        return super().enforce_timezone(value)

    def to_internal_value(self, value: Any) -> datetime:
        instant = super().to_internal_value(value)
        if not EARLIEST_DATE <= instant.date() <= LATEST_DATE:
            self.fail("out_of_range")
        return instant


_WALL_CLOCK = re.compile(r"([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?")


@extend_schema_field(
    {
        "type": "string",
        "pattern": f"^{_WALL_CLOCK.pattern}$",
        "example": "09:00:00",
        "description": "A wall-clock time in the studio's time zone, HH:MM[:SS], without an offset.",
    }
)
class WallClockTimeField(serializers.TimeField):
    """Opening hours are wall-clock times in the studio's zone: an offset
    would mean nothing (and was silently dropped), so it is refused. The
    schema says so: OpenAPI's "time" format is RFC 3339's, which requires one."""

    default_error_messages = {"wall_clock": "Give a wall-clock time, HH:MM or HH:MM:SS, without an offset."}

    def to_internal_value(self, value: Any) -> Any:
        if isinstance(value, str) and not _WALL_CLOCK.fullmatch(value):
            self.fail("wall_clock")
        return super().to_internal_value(value)


class ServiceSerializer(serializers.ModelSerializer):
    members = StudioObjectsField(model=Membership, required=False, help_text="Who performs it (each is a calendar).")

    class Meta:
        model = Service
        fields = ["id", *Service.EDITABLE_FIELDS, "members", "created_at"]
        read_only_fields = ["id", "created_at"]


class _MemberScoped(serializers.ModelSerializer):
    member = StudioObjectField(model=Membership, required=False, allow_null=True, help_text="Empty: the studio's.")


class WorkingHoursSerializer(_MemberScoped):
    start_time = WallClockTimeField()
    end_time = WallClockTimeField()

    class Meta:
        model = WorkingHours
        fields = ["id", *WorkingHours.EDITABLE_FIELDS]


class DateOverrideSerializer(_MemberScoped):
    date = BookingDateField()
    start_time = WallClockTimeField(required=False, allow_null=True)
    end_time = WallClockTimeField(required=False, allow_null=True)

    class Meta:
        model = DateOverride
        fields = ["id", *DateOverride.EDITABLE_FIELDS]


class TimeOffSerializer(_MemberScoped):
    starts_at = BookingDateTimeField()
    ends_at = BookingDateTimeField()

    class Meta:
        model = TimeOff
        fields = ["id", *TimeOff.EDITABLE_FIELDS]


class PaymentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Payment
        fields = ["id", "provider", "provider_ref", "amount", "currency", "status", "paid_at", "created_at"]
        read_only_fields = fields


class BookingSerializer(serializers.ModelSerializer):
    service = serializers.UUIDField(source="service_id", read_only=True)
    service_name = serializers.CharField(source="service.name", read_only=True)
    assigned_members = StudioObjectsField(model=Membership, required=False)
    assigned_team = StudioObjectField(model=Team, required=False, allow_null=True)
    payments = PaymentSerializer(many=True, read_only=True)

    class Meta:
        model = Booking
        fields = [
            "id",
            "service",
            "service_name",
            "client_name",
            "client_email",
            "client_phone",
            "starts_at",
            "ends_at",
            "status",
            "hold_expires_at",
            "resource",
            "assigned_members",
            "assigned_team",
            "notes",
            "deposit_amount",
            "payments",
            "sequence",
            "confirmed_at",
            "cancelled_at",
            "cancel_reason",
            "created_at",
        ]
        read_only_fields = [f for f in fields if f not in ("assigned_members", "assigned_team", "notes")]


class CancelSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True)


class RescheduleSerializer(serializers.Serializer):
    start = BookingDateTimeField(help_text="The new start, with its UTC offset (ISO 8601).")


class StaffBookingSerializer(serializers.Serializer):
    """A booking staff enter themselves (taken by phone, agreed by email)."""

    service = StudioObjectField(model=Service)
    start = BookingDateTimeField(help_text="The start, with its UTC offset (ISO 8601).")
    client_name = serializers.CharField(max_length=200)
    client_email = serializers.EmailField()
    client_phone = serializers.CharField(max_length=40, required=False, allow_blank=True, default="")
    notes = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
    member = StudioObjectField(
        model=Membership,
        required=False,
        allow_null=True,
        default=None,
        help_text="Who performs it (one of the service's members). Default: the first free one, or the studio.",
    )
    anytime = serializers.BooleanField(
        required=False,
        default=False,
        help_text=(
            "Allow a time outside the working hours, the minimum notice or the advance limit. "
            "Another booking's or hold's time is never allowed."
        ),
    )


class ConvertSerializer(serializers.Serializer):
    service = StudioObjectField(model=Service)
    start = BookingDateTimeField(help_text="The agreed start, with its UTC offset (ISO 8601).")


class ContactSubmissionSerializer(serializers.ModelSerializer):
    service = serializers.UUIDField(source="service_id", read_only=True, allow_null=True)
    booking = serializers.UUIDField(source="booking_id", read_only=True, allow_null=True)

    class Meta:
        model = ContactSubmission
        fields = ["id", "name", "email", "phone", "message", "service", "booking", "handled_at", "created_at"]
        read_only_fields = fields


class CalendarFeedSerializer(serializers.ModelSerializer):
    scope = serializers.ChoiceField(choices=FeedScope.choices, default=FeedScope.MEMBER)
    url = serializers.SerializerMethodField(help_text="Present only when the token was just made (create, rotate).")

    class Meta:
        model = CalendarFeed
        fields = ["id", "name", "scope", "url", "revoked_at", "last_fetched_at", "created_at"]
        read_only_fields = ["id", "url", "revoked_at", "last_fetched_at", "created_at"]

    def get_url(self, feed: CalendarFeed) -> str | None:
        raw = self.context.get("raw_token")
        if not raw:
            return None
        from django.conf import settings

        return settings.SITE_URL.rstrip("/") + reverse("bookings:calendar-feed", kwargs={"token": raw})


# --- public -----------------------------------------------------------------------------------------


class PublicServiceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Service
        fields = ["id", "name", "description", "duration_minutes", "price", "deposit", "currency"]
        read_only_fields = fields


class SlotSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()


class SlotQuerySerializer(serializers.Serializer):
    start = BookingDateField(help_text="First date (studio's local date).")
    end = BookingDateField(help_text="Last date, inclusive; at most 62 days after start.")

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if data["end"] < data["start"]:
            raise serializers.ValidationError({"end": ["Must not be before start."]})
        if (data["end"] - data["start"]).days > 62:
            raise serializers.ValidationError({"end": ["At most 62 days at a time."]})
        return data


class HoldSerializer(serializers.Serializer):
    service = serializers.UUIDField()
    start = BookingDateTimeField(help_text="One of the slots' start values, with its UTC offset.")
    name = serializers.CharField(max_length=200)
    email = serializers.EmailField()
    phone = serializers.CharField(max_length=40, required=False, allow_blank=True)
    notes = serializers.CharField(max_length=2000, required=False, allow_blank=True)


class PublicBookingSerializer(serializers.ModelSerializer):
    service = PublicServiceSerializer(read_only=True)
    studio = serializers.CharField(source="studio.name", read_only=True)
    timezone = serializers.CharField(source="studio.timezone", read_only=True, help_text="The studio's time zone.")
    next_step = serializers.SerializerMethodField()
    checkout_url = serializers.SerializerMethodField()
    payment_instructions = serializers.SerializerMethodField(
        help_text="How to pay the deposit by hand (bank transfer...), while it is awaited; else null."
    )

    class Meta:
        model = Booking
        fields = [
            "id",
            "studio",
            "timezone",
            "service",
            "client_name",
            "starts_at",
            "ends_at",
            "status",
            "hold_expires_at",
            "deposit_amount",
            "next_step",
            "checkout_url",
            "payment_instructions",
        ]
        read_only_fields = fields

    def get_payment_instructions(self, booking: Booking) -> str | None:
        if booking.status != BookingStatus.AWAITING_PAYMENT or self.get_checkout_url(booking):
            return None
        return booking.studio.payment_instructions or None

    def get_next_step(self, booking: Booking) -> str:
        if booking.status == BookingStatus.HELD:
            return "checkout" if booking.deposit_amount > 0 else "confirm"
        if booking.status == BookingStatus.AWAITING_PAYMENT:
            return "pay"
        return "none"

    def get_checkout_url(self, booking: Booking) -> str | None:
        payment = next((p for p in booking.payments.all() if p.status == "pending" and p.checkout_url), None)
        return payment.checkout_url if payment else None


class HeldSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="The booking's secret; keep it for confirm, cancel, reschedule.")
    manage_url = serializers.CharField()
    booking = PublicBookingSerializer()


class ContactSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    email = serializers.EmailField()
    phone = serializers.CharField(max_length=40, required=False, allow_blank=True)
    message = serializers.CharField(max_length=5000)
    service = serializers.UUIDField(required=False, allow_null=True)
    website = serializers.CharField(required=False, allow_blank=True, help_text="Leave empty (spam trap).")
