"""Public booking API, no sign-in: /api/v1/public/...

A studio's public endpoints resolve the studio from the URL once (404 if it
does not exist or is inactive) and run in its scope; the client's own
booking is reached only through the secret token of its link.
"""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bookings import availability, selectors, services
from bookings.api.serializers import (
    CancelSerializer,
    ContactSerializer,
    HeldSerializer,
    HoldSerializer,
    PublicBookingSerializer,
    PublicServiceSerializer,
    RescheduleSerializer,
    SlotQuerySerializer,
    SlotSerializer,
)
from bookings.models import Booking, Service
from studio import context
from studio.api.base import ScopedEndpoint
from studio.errors import DomainError
from studio.middleware import client_ip
from studio.models import Studio
from studio.tenancy import studio_scope
from studio.throttling import AnonRateThrottle, ScopedRateThrottle


class PublicThrottle(ScopedRateThrottle):
    scope = "booking_public"


class PublicStudioView(ScopedEndpoint, APIView, flavour=True):
    """The public flavour of the scoped endpoint (studio.api.base): no
    sign-in; the studio of ``public_slug``, active, or 404."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes = [PublicThrottle]
    throttle_scope = "booking_public"

    def resolve(self, request: Request) -> None:
        self.studio = get_object_or_404(Studio, slug=self.kwargs["public_slug"], is_active=True)
        self.enter(studio_scope(self.studio))

    def service(self, pk: Any) -> Service:
        return get_object_or_404(Service, pk=pk, is_active=True)


@extend_schema(tags=["public booking"])
class PublicServicesView(PublicStudioView):
    @extend_schema(responses=PublicServiceSerializer(many=True))
    def get(self, request: Request, public_slug: str) -> Response:
        return Response(PublicServiceSerializer(Service.objects.filter(is_active=True), many=True).data)


@extend_schema(tags=["public booking"])
class PublicSlotsView(PublicStudioView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "start", OpenApiTypes.DATE, required=True, description="First date (studio's local date)."
            ),
            OpenApiParameter(
                "end",
                OpenApiTypes.DATE,
                required=True,
                description="Last date, inclusive; at most 62 days after start.",
            ),
        ],
        responses=SlotSerializer(many=True),
    )
    def get(self, request: Request, public_slug: str, pk: Any) -> Response:
        """Free start times between two dates (inclusive, studio-local)."""
        query = SlotQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        slots = availability.available_slots(
            self.service(pk), query.validated_data["start"], query.validated_data["end"]
        )
        return Response([{"start": s.start, "end": s.end} for s in slots])


def _manage_url(raw: str) -> str:
    return services.manage_url(raw)


@extend_schema(tags=["public booking"])
class PublicHoldView(PublicStudioView):
    @extend_schema(request=HoldSerializer, responses={201: HeldSerializer})
    def post(self, request: Request, public_slug: str) -> Response:
        """Hold a slot for a few minutes; then confirm (no deposit) or check out."""
        serializer = HoldSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        service = self.service(data["service"])
        with context.acting_as(context.Actor.client(data["email"], data["name"])):
            booking, raw = services.booking_hold(
                service=service,
                starts_at=data["start"],
                client_name=data["name"],
                client_email=data["email"],
                client_phone=data.get("phone", ""),
                notes=data.get("notes", ""),
            )
        body = {"token": raw, "manage_url": _manage_url(raw), "booking": PublicBookingSerializer(booking).data}
        return Response(body, status=status.HTTP_201_CREATED)


@extend_schema(tags=["public booking"])
class PublicContactView(PublicStudioView):
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "contact"

    @extend_schema(request=ContactSerializer, responses={202: None})
    def post(self, request: Request, public_slug: str) -> Response:
        serializer = ContactSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if data.get("website"):
            # The hidden field only robots fill in: answer as usual, keep nothing.
            return Response(status=status.HTTP_202_ACCEPTED)
        service = self.service(data["service"]) if data.get("service") else None
        with context.acting_as(context.Actor.client(data["email"], data["name"])):
            services.contact_submit(
                name=data["name"],
                email=data["email"],
                phone=data.get("phone", ""),
                message=data["message"],
                service=service,
                ip=client_ip(request._request),
            )
        return Response(status=status.HTTP_202_ACCEPTED)


class ClientBookingView(ScopedEndpoint, APIView, flavour=True):
    """The client's own booking, by the secret token of their link; its
    studio's scope, with the client as audit actor."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes = [AnonRateThrottle]

    def resolve(self, request: Request) -> None:
        self.booking = selectors.booking_for_token(self.kwargs["token"])
        self.studio = self.booking.studio
        self.enter(studio_scope(self.studio))
        self.enter(context.acting_as(context.Actor.client(self.booking.client_email, self.booking.client_name)))

    def respond(self, booking: Booking, code: int = 200) -> Response:
        fresh = Booking.objects.select_related("service", "studio").prefetch_related("payments").get(pk=booking.pk)
        return Response(PublicBookingSerializer(fresh).data, status=code)


@extend_schema(tags=["public booking"])
class ClientBookingDetailView(ClientBookingView):
    @extend_schema(responses=PublicBookingSerializer)
    def get(self, request: Request, token: str) -> Response:
        return self.respond(self.booking)


@extend_schema(tags=["public booking"])
class ClientConfirmView(ClientBookingView):
    @extend_schema(request=None, responses=PublicBookingSerializer)
    def post(self, request: Request, token: str) -> Response:
        """Confirm a held booking that needs no deposit."""
        return self.respond(services.booking_confirm(booking=self.booking))


@extend_schema(tags=["public booking"])
class ClientCheckoutView(ClientBookingView):
    @extend_schema(request=None, responses=PublicBookingSerializer)
    def post(self, request: Request, token: str) -> Response:
        """Start paying the deposit; follow checkout_url (none with the manual provider)."""
        manage = _manage_url(token)
        services.booking_checkout(booking=self.booking, success_url=f"{manage}?paid=1", cancel_url=manage)
        return self.respond(self.booking)


@extend_schema(tags=["public booking"])
class ClientCancelView(ClientBookingView):
    @extend_schema(request=CancelSerializer, responses=PublicBookingSerializer)
    def post(self, request: Request, token: str) -> Response:
        serializer = CancelSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        booking = services.booking_cancel(
            booking=self.booking, by_client=True, reason=serializer.validated_data.get("reason", "")
        )
        return self.respond(booking)


@extend_schema(tags=["public booking"])
class ClientRescheduleView(ClientBookingView):
    @extend_schema(request=RescheduleSerializer, responses=PublicBookingSerializer)
    def post(self, request: Request, token: str) -> Response:
        serializer = RescheduleSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        booking = services.booking_reschedule(
            booking=self.booking, starts_at=serializer.validated_data["start"], by_client=True
        )
        return self.respond(booking)


@extend_schema(tags=["payments"])
class StripeWebhookView(APIView):
    """Stripe's deliveries: signature checked, repeats and any order harmless."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes: list[Any] = []

    @extend_schema(request=None, responses={200: None})
    def post(self, request: Request) -> Response:
        try:
            outcome = services.handle_stripe_webhook(request.body, request.headers.get("Stripe-Signature", ""))
        except services.BadWebhook as exc:
            raise DomainError("The webhook signature or payload is invalid.", code="INVALID_WEBHOOK") from exc
        return Response({"outcome": outcome})
