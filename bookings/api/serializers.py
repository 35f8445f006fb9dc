from __future__ import annotations

from typing import Any

from django.urls import reverse
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


class ServiceSerializer(serializers.ModelSerializer):
    members = StudioObjectsField(model=Membership, required=False, help_text="Who performs it (each is a calendar).")

    class Meta:
        model = Service
        fields = ["id", *Service.EDITABLE_FIELDS, "members", "created_at"]
        read_only_fields = ["id", "created_at"]


class _MemberScoped(serializers.ModelSerializer):
    member = StudioObjectField(model=Membership, required=False, allow_null=True, help_text="Empty: the studio's.")


class WorkingHoursSerializer(_MemberScoped):
    class Meta:
        model = WorkingHours
        fields = ["id", *WorkingHours.EDITABLE_FIELDS]


class DateOverrideSerializer(_MemberScoped):
    class Meta:
        model = DateOverride
        fields = ["id", *DateOverride.EDITABLE_FIELDS]


class TimeOffSerializer(_MemberScoped):
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
    start = serializers.DateTimeField(help_text="The new start, with its offset (ISO 8601).")


class ConvertSerializer(serializers.Serializer):
    service = StudioObjectField(model=Service)
    start = serializers.DateTimeField()


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
    start = serializers.DateField(help_text="First date (studio's local date).")
    end = serializers.DateField(help_text="Last date, inclusive; at most 62 days after start.")

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if data["end"] < data["start"]:
            raise serializers.ValidationError({"end": ["Must not be before start."]})
        if (data["end"] - data["start"]).days > 62:
            raise serializers.ValidationError({"end": ["At most 62 days at a time."]})
        return data


class HoldSerializer(serializers.Serializer):
    service = serializers.UUIDField()
    start = serializers.DateTimeField(help_text="One of the slots' start values.")
    name = serializers.CharField(max_length=200)
    email = serializers.EmailField()
    phone = serializers.CharField(max_length=40, required=False, allow_blank=True)
    notes = serializers.CharField(max_length=2000, required=False, allow_blank=True)


class PublicBookingSerializer(serializers.ModelSerializer):
    service = PublicServiceSerializer(read_only=True)
    studio = serializers.CharField(source="studio.name", read_only=True)
    next_step = serializers.SerializerMethodField()
    checkout_url = serializers.SerializerMethodField()

    class Meta:
        model = Booking
        fields = [
            "id",
            "studio",
            "service",
            "client_name",
            "starts_at",
            "ends_at",
            "status",
            "hold_expires_at",
            "deposit_amount",
            "next_step",
            "checkout_url",
        ]
        read_only_fields = fields

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
