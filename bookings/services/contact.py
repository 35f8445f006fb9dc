"""The contact form: an enquiry, and staff turning it into a booking."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from bookings import notifications
from bookings.models import Booking, ContactSubmission, Service
from bookings.services.bookings import booking_create
from studio.auditing import Action, audit_record
from studio.errors import Conflict
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
    """Turn an enquiry into a confirmed booking. Staff agreed the time and
    the terms with the client: working hours and notice do not apply, only
    another booking of the same resource does, and no deposit is asked."""
    submission = ContactSubmission.objects.select_for_update().get(pk=submission.pk)
    if submission.booking_id:
        raise Conflict("This enquiry already became a booking.", code="ALREADY_CONVERTED")
    booking = booking_create(
        service=service,
        starts_at=starts_at,
        client_name=submission.name,
        client_email=submission.email,
        client_phone=submission.phone,
        notes=submission.message[:2000],
        anytime=True,
        deposit=Decimal(0),
    )
    submission.booking, submission.handled_at = booking, timezone.now()
    submission.save(update_fields=["booking", "handled_at", "updated_at"])
    audit_record(action=Action.CONTACT_CONVERTED, target=submission, after={"booking": str(booking.pk)})
    return booking
