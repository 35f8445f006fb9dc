"""The emails bookings send. Each is queued in the transaction of the change
(studio.emails: logged, sent by a worker after commit, retried, exactly once
per key), so a rolled-back change sends nothing and a dead SMTP server never
fails the client's request. Confirmations carry an .ics invitation.

Every email to a client carries the link to their booking; the studio (and
the members assigned) hear about new, moved, cancelled and unpaid bookings."""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings

from bookings import ics
from bookings.links import booking_manage_url
from studio.email_templates import render_email
from studio.emails import Attachment, email_queue, studio_recipients

CONFIRMATION = "booking.confirmation"
RESCHEDULED = "booking.rescheduled"
CANCELLATION = "booking.cancellation"
REMINDER = "booking.reminder"
DEPOSIT_REQUESTED = "booking.deposit_requested"
HOLD_LAPSED = "booking.hold_lapsed"
STUDIO_NOTICE = "booking.studio_notice"
CONTACT = "contact.received"
REFUND_NEEDED = "payment.refund_needed"
AMOUNT_MISMATCH = "payment.amount_mismatch"


def local_time(booking: Any, value: datetime | None = None) -> str:
    """A time as the studio's clients and staff read it: in the studio's zone,
    named ("Monday 30 November 2026, 16:00 PST")."""
    tz = zoneinfo.ZoneInfo(booking.studio.timezone)
    return (value or booking.starts_at).astimezone(tz).strftime("%A %d %B %Y, %H:%M %Z")


def _invite(booking: Any, method: str = "REQUEST") -> Attachment:
    # RFC 6047: the MIME method must match the calendar's METHOD.
    content = ics.invitation(booking).decode()
    return Attachment("invite.ics", content, f"text/calendar; method={method}")


def booking_staff(booking: Any) -> list[str]:
    """Who at the studio hears about a booking: the studio's address (or its
    owners) and the members assigned to it who can still sign in."""
    assigned = booking.assigned_members.filter(user__is_active=True).values_list("user__email", flat=True)
    return [*studio_recipients(booking.studio), *assigned]


def _render(template: str, context: dict[str, Any], studio: Any) -> dict[str, str]:
    """The plain-text template, as text and as HTML on the studio's email layout."""
    text, html = render_email(template.removesuffix(".txt"), context, studio=studio)
    return {"body": text, "html_body": html}


def _to_client(booking: Any, *, kind: str, subject: str, template: str, key: str, **extra: Any) -> list[Any]:
    """Every email to a client carries the link to their booking (to cancel,
    reschedule or see what is owed). The link is their key, so the email is
    kept out of logs and the admin (``sensitive``)."""
    manage_url = booking_manage_url(booking)
    attachments = extra.pop("attachments", ())
    meta = extra.pop("meta", None)
    context = {"booking": booking, "when": local_time(booking), "manage_url": manage_url, **extra}
    return email_queue(
        kind=kind,
        to=[booking.client_email],
        subject=f"{subject}: {booking.service.name} with {booking.studio.name}",
        **_render(template, context, booking.studio),
        attachments=attachments,
        key=key,
        sensitive=bool(manage_url),
        target=booking,
        meta=meta,
    )


def queue_confirmation(booking: Any, *, rescheduled: bool = False) -> None:
    event = "rescheduled" if rescheduled else "confirmed"
    _to_client(
        booking,
        kind=RESCHEDULED if rescheduled else CONFIRMATION,
        subject="Rescheduled" if rescheduled else "Confirmed",
        template="bookings/email_confirmation.txt",
        rescheduled=rescheduled,
        deposit_due=deposit_due(booking),
        attachments=[_invite(booking)],
        # Each change has its own SEQUENCE, and so its own email.
        key=f"booking:{booking.pk}:{event}:{booking.sequence}",
    )


def queue_cancellation(booking: Any) -> None:
    _to_client(
        booking,
        kind=CANCELLATION,
        subject="Cancelled",
        template="bookings/email_cancellation.txt",
        attachments=[_invite(booking, method="CANCEL")],
        key=f"booking:{booking.pk}:cancelled",
    )


def queue_reminder(booking: Any) -> bool:
    """False when this time's reminder was queued before."""
    return bool(
        _to_client(
            booking,
            kind=REMINDER,
            subject="Tomorrow",
            template="bookings/email_reminder.txt",
            # A rescheduled booking gets a reminder for its new time.
            key=f"booking:{booking.pk}:reminder:{booking.starts_at.isoformat()}",
            meta={"starts_at": booking.starts_at.isoformat()},
        )
    )


def deposit_due(booking: Any) -> Decimal:
    """What the client still owes: the deposit, unless a payment of it arrived."""
    if booking.deposit_amount <= 0 or booking.payments.filter(status="paid").exists():
        return Decimal(0)
    return booking.deposit_amount


def queue_deposit_requested(booking: Any) -> None:
    """A deposit paid by hand: the client learns how much, how and by when;
    the studio, that a payment is on its way and where to mark it paid."""
    held_until = local_time(booking, booking.hold_expires_at)
    _to_client(
        booking,
        kind=DEPOSIT_REQUESTED,
        subject="Deposit to pay",
        template="bookings/email_deposit_requested.txt",
        amount=booking.deposit_amount,
        held_until=held_until,
        key=f"booking:{booking.pk}:deposit_requested:{booking.sequence}",
    )
    queue_studio_notice(booking, "deposit_awaited", held_until=held_until)


def queue_hold_lapsed(booking: Any) -> None:
    """The deposit never came and the time was released: both sides know."""
    _to_client(
        booking,
        kind=HOLD_LAPSED,
        subject="Time released",
        template="bookings/email_hold_lapsed.txt",
        key=f"booking:{booking.pk}:lapsed",
    )
    queue_studio_notice(booking, "lapsed")


CANCEL_REASONS = {
    "cancelled_by_client": "by the client",
    "cancelled_by_studio": "by the studio",
    "hold_expired": "because its hold expired",
    "payment_expired": "because the deposit was not paid in time",
}

STUDIO_SUBJECTS = {
    "confirmed": "New booking",
    "rescheduled": "Booking moved",
    "cancelled": "Booking cancelled",
    "deposit_awaited": "Deposit awaited",
    "lapsed": "Unpaid booking released",
}


def queue_studio_notice(booking: Any, event: str, *, previous: datetime | None = None, **extra: Any) -> None:
    """Tell the studio (and the assigned members) what happened to a booking.
    The client's link is never in these: staff have the admin."""
    from django.urls import reverse

    admin_url = settings.SITE_URL.rstrip("/") + reverse("admin:bookings_booking_change", args=[booking.pk])
    context = {
        "booking": booking,
        "event": event,
        "when": local_time(booking),
        "previous": local_time(booking, previous) if previous else "",
        "admin_url": admin_url,
        "deposit_due": deposit_due(booking),
        "reason": CANCEL_REASONS.get(booking.cancel_reason, f"({booking.cancel_reason})"),
        **extra,
    }
    email_queue(
        kind=STUDIO_NOTICE,
        to=booking_staff(booking),
        subject=f"{STUDIO_SUBJECTS[event]}: {booking.client_name}, {booking.service.name}, {local_time(booking)}",
        **_render("bookings/email_studio_notice.txt", context, booking.studio),
        key=f"booking:{booking.pk}:studio:{event}:{booking.sequence}",
        target=booking,
        meta={"event": event},
    )


def queue_contact(submission: Any) -> None:
    email_queue(
        kind=CONTACT,
        to=studio_recipients(submission.studio),
        subject=f"New enquiry from {submission.name}",
        **_render("bookings/email_contact.txt", {"submission": submission}, submission.studio),
        key=f"contact:{submission.pk}",
        target=submission,
        # Answering an enquiry answers the client who wrote it.
        reply_to=submission.email,
    )


def queue_refund_needed(payment: Any, *, reason: str, paid_before: Any = None) -> None:
    """``reason``: "already_paid" (``paid_before`` is the deposit recorded
    first), "slot_taken" (the hold lapsed and the time went to someone else)
    or "booking_closed" (cancelled or completed meanwhile)."""
    context = {"payment": payment, "booking": payment.booking, "reason": reason, "paid_before": paid_before}
    email_queue(
        kind=REFUND_NEEDED,
        to=studio_recipients(payment.studio),
        subject="A deposit needs refunding",
        **_render("bookings/email_refund_needed.txt", context, payment.studio),
        key=f"payment:{payment.pk}:refund_needed",
        target=payment,
    )


def queue_amount_mismatch(payment: Any, *, event_id: str, received_cents: int) -> None:
    context = {"payment": payment, "booking": payment.booking, "received": received_cents / 100}
    email_queue(
        kind=AMOUNT_MISMATCH,
        to=studio_recipients(payment.studio),
        subject="A deposit arrived with the wrong amount",
        **_render("bookings/email_amount_mismatch.txt", context, payment.studio),
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
