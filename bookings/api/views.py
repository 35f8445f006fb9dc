"""Staff API for bookings: /api/v1/studios/{studio_slug}/..."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from bookings import services
from bookings.api.serializers import (
    BookingSerializer,
    CalendarFeedSerializer,
    CancelSerializer,
    ContactSubmissionSerializer,
    ConvertSerializer,
    DateOverrideSerializer,
    PaymentSerializer,
    RescheduleSerializer,
    ServiceSerializer,
    StaffBookingSerializer,
    TimeOffSerializer,
    WorkingHoursSerializer,
)
from bookings.filtersets import BookingFilterSet
from bookings.models import Booking, CalendarFeed, ContactSubmission, DateOverride, Service, TimeOff, WorkingHours
from studio.api.base import StudioViewSet

_CRUD = (
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
)
_ADMIN_WRITES = {
    "GET": "booking:read",
    "POST": "booking:admin",
    "PUT": "booking:admin",
    "PATCH": "booking:admin",
    "DELETE": "booking:admin",
}


@extend_schema(tags=["bookings"])
class ServiceViewSet(*_CRUD, StudioViewSet):
    """Bookable services. A service with bookings cannot be deleted: deactivate it."""

    model = Service
    serializer_class = ServiceSerializer
    scope_map = _ADMIN_WRITES

    def scope_queryset(self, queryset: QuerySet) -> QuerySet:
        return queryset.prefetch_related("members")

    def perform_create(self, serializer: ServiceSerializer) -> None:
        members = serializer.validated_data.pop("members", None)
        serializer.instance = services.service_save(service=Service(**serializer.validated_data), members=members)

    def perform_update(self, serializer: ServiceSerializer) -> None:
        members = serializer.validated_data.pop("members", None)
        for name, value in serializer.validated_data.items():
            setattr(serializer.instance, name, value)
        services.service_save(service=serializer.instance, members=members)

    def perform_destroy(self, instance: Service) -> None:
        services.service_delete(service=instance)


class _AvailabilityViewSet(*_CRUD, StudioViewSet):
    abstract = True
    scope_map = _ADMIN_WRITES

    def perform_create(self, serializer: Any) -> None:
        serializer.instance = services.availability_save(obj=self.model(**serializer.validated_data))

    def perform_update(self, serializer: Any) -> None:
        for name, value in serializer.validated_data.items():
            setattr(serializer.instance, name, value)
        services.availability_save(obj=serializer.instance)

    def perform_destroy(self, instance: Any) -> None:
        services.availability_delete(obj=instance)


@extend_schema(tags=["availability"])
class WorkingHoursViewSet(_AvailabilityViewSet):
    """Weekly hours in the studio's time zone; per member, or the studio's (member empty)."""

    model = WorkingHours
    serializer_class = WorkingHoursSerializer
    ordering = ("weekday", "start_time")


@extend_schema(tags=["availability"])
class DateOverrideViewSet(_AvailabilityViewSet):
    """Other hours on one date; no times means closed that day."""

    model = DateOverride
    serializer_class = DateOverrideSerializer
    ordering = ("date", "start_time")


@extend_schema(tags=["availability"])
class TimeOffViewSet(_AvailabilityViewSet):
    model = TimeOff
    serializer_class = TimeOffSerializer
    ordering = "starts_at"


@extend_schema(tags=["bookings"])
class BookingViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, mixins.UpdateModelMixin, StudioViewSet
):
    """Bookings by date range, status, service or member. POST enters a
    booking taken by phone (confirmed at once, under the hold and overlap
    rules). PATCH assigns members, a team, or notes; actions confirm, cancel,
    complete, reschedule and mark-paid (a deposit received by hand)."""

    model = Booking
    serializer_class = BookingSerializer
    filterset_class = BookingFilterSet
    scope_map = {"GET": "booking:read", "POST": "booking:write", "PATCH": "booking:write", "PUT": "booking:write"}
    action_scopes = {
        "confirm": "booking:write",
        "cancel": "booking:write",
        "complete": "booking:write",
        "reschedule": "booking:write",
        "mark_paid": "booking:admin",
    }
    ordering = ("starts_at", "created_at")
    http_method_names = ["get", "post", "patch", "head", "options"]

    def scope_queryset(self, queryset: QuerySet) -> QuerySet:
        return queryset.select_related("service", "assigned_team").prefetch_related("assigned_members", "payments")

    @extend_schema(request=StaffBookingSerializer, responses={201: BookingSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = StaffBookingSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        booking = services.booking_create(
            service=data["service"],
            starts_at=data["start"],
            client_name=data["client_name"],
            client_email=data["client_email"],
            client_phone=data["client_phone"],
            notes=data["notes"],
            member=data["member"],
            anytime=data["anytime"],
        )
        response = self._respond(booking)
        response.status_code = status.HTTP_201_CREATED
        return response

    def perform_update(self, serializer: BookingSerializer) -> None:
        data = serializer.validated_data
        serializer.instance = services.booking_assign(
            booking=serializer.instance,
            members=data.get("assigned_members"),
            team=data.get("assigned_team", ...),
            notes=data.get("notes"),
        )

    def _respond(self, booking: Booking) -> Response:
        return Response(self.get_serializer(self.get_queryset().get(pk=booking.pk)).data)

    @extend_schema(request=None, responses=BookingSerializer)
    @action(detail=True, methods=["post"])
    def confirm(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._respond(services.booking_staff_confirm(booking=self.get_object()))

    @extend_schema(request=CancelSerializer, responses=BookingSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = CancelSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        booking = services.booking_cancel(
            booking=self.get_object(), by_client=False, reason=serializer.validated_data.get("reason", "")
        )
        return self._respond(booking)

    @extend_schema(request=None, responses=BookingSerializer)
    @action(detail=True, methods=["post"])
    def complete(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._respond(services.booking_complete(booking=self.get_object()))

    @extend_schema(request=RescheduleSerializer, responses=BookingSerializer)
    @action(detail=True, methods=["post"])
    def reschedule(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = RescheduleSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        booking = services.booking_reschedule(
            booking=self.get_object(), starts_at=serializer.validated_data["start"], by_client=False
        )
        return self._respond(booking)

    @extend_schema(request=None, responses=PaymentSerializer)
    @action(detail=True, methods=["post"], url_path="mark-paid")
    def mark_paid(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Record the deposit as received (offline payment)."""
        payment = services.payment_mark_paid(booking=self.get_object(), user=request.user)
        return Response(PaymentSerializer(payment).data)


@extend_schema(tags=["bookings"])
class ContactSubmissionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, StudioViewSet):
    model = ContactSubmission
    serializer_class = ContactSubmissionSerializer
    scope_map = {"GET": "booking:read"}
    action_scopes = {"convert": "booking:write"}

    @extend_schema(request=ConvertSerializer, responses={201: BookingSerializer})
    @action(detail=True, methods=["post"])
    def convert(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Turn the enquiry into a confirmed booking at the agreed time."""
        serializer = ConvertSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        booking = services.contact_convert(
            submission=self.get_object(),
            service=serializer.validated_data["service"],
            starts_at=serializer.validated_data["start"],
        )
        return Response(
            BookingSerializer(booking, context=self.get_serializer_context()).data, status=status.HTTP_201_CREATED
        )


@extend_schema(tags=["calendar"])
class CalendarFeedViewSet(mixins.ListModelMixin, mixins.CreateModelMixin, mixins.DestroyModelMixin, StudioViewSet):
    """Your secret calendar (ICS) URLs. The URL is shown on create and rotate
    only; DELETE revokes it. A studio-wide feed needs booking:admin."""

    model = CalendarFeed
    serializer_class = CalendarFeedSerializer
    scope_map = {"GET": "booking:read", "POST": "booking:read", "DELETE": "booking:read"}

    def scope_queryset(self, queryset: QuerySet) -> QuerySet:
        return queryset.filter(owner=self.membership)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        feed, raw = services.feed_create(owner=self.membership, **serializer.validated_data)
        body = CalendarFeedSerializer(feed, context={**self.get_serializer_context(), "raw_token": raw}).data
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=CalendarFeedSerializer)
    @action(detail=True, methods=["post"])
    def rotate(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """A new URL; the old one stops working."""
        feed, raw = services.feed_rotate(feed=self.get_object())
        return Response(CalendarFeedSerializer(feed, context={**self.get_serializer_context(), "raw_token": raw}).data)

    def perform_destroy(self, instance: CalendarFeed) -> None:
        services.feed_revoke(feed=instance)
