"""The contact form: an enquiry, and staff turning it into a booking."""

from __future__ import annotations

import secrets
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from bookings import availability, notifications
from bookings.models import STUDIO_RESOURCE, Booking, BookingStatus, ContactSubmission, Service
from bookings.services.bookings import (
    SlotUnavailable,
    blocked_times,
    booking_snapshot,
    holds_release,
    insert_booking,
    manage_url,
    resource_free,
    serialise_writers,
)
from studio.auditing import Action, audit_record
from studio.errors import Conflict
from studio.models import hash_token
from studio.tenancy import current_studio


@transaction.atomic
def contact_submit(
    *, name: str, email: str, message: str, phone: str = "", service: Service | None = None, ip: str | None = None
) -> ContactSubmission:
    submission = ContactSubmission.objects.create(
        studio=current_studio(), name=name, email=email, phone=phone, message=message, service=service, ip=ip
    )
    audit_record(
        action=Action.CONTACT_RECEIVED,
        target=submission,
        after={"email": email, "service": str(service.pk) if service else None},
    )
    notifications.queue_contact(submission)
    return submission


@transaction.atomic
def contact_convert(*, submission: ContactSubmission, service: Service, starts_at: datetime) -> Booking:
    """Turn an enquiry into a confirmed booking (staff agreed it with the client)."""
    if submission.booking_id:
        raise Conflict("This enquiry already became a booking.", code="ALREADY_CONVERTED")
    raw = secrets.token_urlsafe(32)
    ends_at, blocked_start, blocked_end = blocked_times(service, starts_at)
    now = timezone.now()
    serialise_writers(service.studio)
    holds_release(now=now)  # an expired hold must not keep the time taken
    booking = None
    for resource in availability.resources_of(service):
        candidate = Booking(
            studio=service.studio,
            service=service,
            client_name=submission.name,
            client_email=submission.email,
            client_phone=submission.phone,
            starts_at=starts_at,
            ends_at=ends_at,
            blocked_start=blocked_start,
            blocked_end=blocked_end,
            resource=resource,
            status=BookingStatus.CONFIRMED,
            confirmed_at=timezone.now(),
            token_hash=hash_token(raw),
            deposit_amount=Decimal(0),
            notes=submission.message[:2000],
        )
        # Staff agreed the time with the client: hours and notice do not apply,
        # only another booking of the same resource does.
        if resource_free(resource, blocked_start, blocked_end, now):
            booking = candidate
            break
    if booking is None:
        raise SlotUnavailable()
    insert_booking(booking)
    if booking.resource != STUDIO_RESOURCE:
        booking.assigned_members.set([booking.resource])
    submission.booking, submission.handled_at = booking, timezone.now()
    submission.save(update_fields=["booking", "handled_at", "updated_at"])
    audit_record(action=Action.CONTACT_CONVERTED, target=submission, after={"booking": str(booking.pk)})
    audit_record(action=Action.BOOKING_CONFIRMED, target=booking, after=booking_snapshot(booking))
    # The client never saw a booking page: the email carries their link.
    notifications.queue_confirmation(booking, manage_url=manage_url(raw))
    return booking
