"""The emails bookings send. Each is queued in the transaction of the change
(studio.emails: logged, sent by a worker after commit, retried, exactly once
per key), so a rolled-back change sends nothing and a dead SMTP server never
fails the client's request. Confirmations carry an .ics invitation."""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from typing import Any

from django.template.loader import render_to_string

from bookings import ics
from studio.emails import Attachment, email_queue
from studio.models import Membership
from studio.roles import Role

CONFIRMATION = "booking.confirmation"
RESCHEDULED = "booking.rescheduled"
CANCELLATION = "booking.cancellation"
REMINDER = "booking.reminder"
CONTACT = "contact.received"
REFUND_NEEDED = "payment.refund_needed"
AMOUNT_MISMATCH = "payment.amount_mismatch"


def _local(booking: Any) -> str:
    tz = zoneinfo.ZoneInfo(booking.studio.timezone)
    return booking.starts_at.astimezone(tz).strftime("%A %d %B %Y, %H:%M %Z")


def _invite(booking: Any, method: str = "REQUEST") -> Attachment:
    # RFC 6047: the MIME method must match the calendar's METHOD.
    content = ics.invitation(booking).decode()
    return Attachment("invite.ics", content, f"text/calendar; method={method}")


def studio_recipients(studio: Any) -> list[str]:
    """The studio's contact address, or else its owners'."""
    if studio.contact_email:
        return [studio.contact_email]
    return list(Membership.objects.filter(studio=studio, role=Role.OWNER).values_list("user__email", flat=True))


def queue_confirmation(booking: Any, *, rescheduled: bool = False, manage_url: str = "") -> None:
    context = {"booking": booking, "when": _local(booking), "rescheduled": rescheduled, "manage_url": manage_url}
    verb = "Rescheduled" if rescheduled else "Confirmed"
    email_queue(
        kind=RESCHEDULED if rescheduled else CONFIRMATION,
        to=[booking.client_email],
        subject=f"{verb}: {booking.service.name} with {booking.studio.name}",
        body=render_to_string("bookings/email_confirmation.txt", context),
        attachments=[_invite(booking)],
        # Each change has its own SEQUENCE, and so its own email.
        key=f"booking:{booking.pk}:{'rescheduled' if rescheduled else 'confirmed'}:{booking.sequence}",
        sensitive=bool(manage_url),  # the link is the client's key to their booking
        target=booking,
    )


def queue_cancellation(booking: Any) -> None:
    email_queue(
        kind=CANCELLATION,
        to=[booking.client_email],
        subject=f"Cancelled: {booking.service.name} with {booking.studio.name}",
        body=render_to_string("bookings/email_cancellation.txt", {"booking": booking, "when": _local(booking)}),
        attachments=[_invite(booking, method="CANCEL")],
        key=f"booking:{booking.pk}:cancelled",
        target=booking,
    )


def queue_reminder(booking: Any) -> bool:
    """False when this time's reminder was queued before."""
    return bool(
        email_queue(
            kind=REMINDER,
            to=[booking.client_email],
            subject=f"Tomorrow: {booking.service.name} with {booking.studio.name}",
            body=render_to_string("bookings/email_reminder.txt", {"booking": booking, "when": _local(booking)}),
            # A rescheduled booking gets a reminder for its new time.
            key=f"booking:{booking.pk}:reminder:{booking.starts_at.isoformat()}",
            target=booking,
            meta={"starts_at": booking.starts_at.isoformat()},
        )
    )


def queue_contact(submission: Any) -> None:
    email_queue(
        kind=CONTACT,
        to=studio_recipients(submission.studio),
        subject=f"New enquiry from {submission.name}",
        body=render_to_string("bookings/email_contact.txt", {"submission": submission}),
        key=f"contact:{submission.pk}",
        target=submission,
    )


def queue_refund_needed(payment: Any) -> None:
    email_queue(
        kind=REFUND_NEEDED,
        to=studio_recipients(payment.studio),
        subject="A deposit needs refunding",
        body=render_to_string("bookings/email_refund_needed.txt", {"payment": payment, "booking": payment.booking}),
        key=f"payment:{payment.pk}:refund_needed",
        target=payment,
    )


def queue_amount_mismatch(payment: Any, *, event_id: str, received_cents: int) -> None:
    context = {"payment": payment, "booking": payment.booking, "received": received_cents / 100}
    email_queue(
        kind=AMOUNT_MISMATCH,
        to=studio_recipients(payment.studio),
        subject="A deposit arrived with the wrong amount",
        body=render_to_string("bookings/email_amount_mismatch.txt", context),
        key=f"payment:{payment.pk}:amount_mismatch:{event_id}",
        target=payment,
    )


def reminder_delivered(sender: Any, email: Any, **kwargs: Any) -> None:
    """studio.emails.email_sent receiver: the booking's reminder is marked
    sent once its email was, and only for the time it announced."""
    if email.kind != REMINDER:
        return
    from bookings.models import Booking

    Booking.objects.filter(
        pk=email.target_id, starts_at=datetime.fromisoformat(email.meta["starts_at"]), reminder_sent_at__isnull=True
    ).update(reminder_sent_at=email.sent_at)
