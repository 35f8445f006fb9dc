"""Emails about bookings, always sent after commit (a rolled-back change
sends nothing). Confirmations carry an .ics invitation."""

from __future__ import annotations

import zoneinfo
from typing import Any

from django.core.mail import EmailMessage
from django.db import transaction
from django.template.loader import render_to_string

from bookings import ics


def _local(booking: Any) -> str:
    tz = zoneinfo.ZoneInfo(booking.studio.timezone)
    return booking.starts_at.astimezone(tz).strftime("%A %d %B %Y, %H:%M %Z")


def _send(
    subject: str,
    template: str,
    to: list[str],
    context: dict[str, Any],
    ics_bytes: bytes | None = None,
    method: str = "REQUEST",
) -> None:
    # Names typed into forms may hold newlines: a header must be one line.
    subject = " ".join(subject.split())
    message = EmailMessage(subject=subject, body=render_to_string(template, context), to=[t for t in to if t])
    if ics_bytes is not None:
        # RFC 6047: the MIME method must match the calendar's METHOD.
        message.attach("invite.ics", ics_bytes, f"text/calendar; method={method}")
    if message.to:
        message.send()


def _studio_recipients(studio: Any) -> list[str]:
    from studio.models import Membership
    from studio.roles import Role
    from studio.tenancy import studio_scope

    if studio.contact_email:
        return [studio.contact_email]
    with studio_scope(studio):
        return list(Membership.objects.filter(role=Role.OWNER).values_list("user__email", flat=True))


def confirmation_on_commit(booking: Any, *, rescheduled: bool = False, manage_url: str = "") -> None:
    def send() -> None:
        context = {"booking": booking, "when": _local(booking), "rescheduled": rescheduled, "manage_url": manage_url}
        subject = f"{'Rescheduled' if rescheduled else 'Confirmed'}: {booking.service.name} with {booking.studio.name}"
        _send(subject, "bookings/email_confirmation.txt", [booking.client_email], context, ics.invitation(booking))

    transaction.on_commit(send)


def cancellation_on_commit(booking: Any) -> None:
    def send() -> None:
        context = {"booking": booking, "when": _local(booking)}
        _send(
            f"Cancelled: {booking.service.name} with {booking.studio.name}",
            "bookings/email_cancellation.txt",
            [booking.client_email],
            context,
            ics.invitation(booking),
            method="CANCEL",
        )

    transaction.on_commit(send)


def reminder_on_commit(booking: Any) -> None:
    def send() -> None:
        context = {"booking": booking, "when": _local(booking)}
        _send(
            f"Tomorrow: {booking.service.name} with {booking.studio.name}",
            "bookings/email_reminder.txt",
            [booking.client_email],
            context,
        )

    transaction.on_commit(send)


def contact_on_commit(submission: Any) -> None:
    def send() -> None:
        _send(
            f"New enquiry from {submission.name}",
            "bookings/email_contact.txt",
            _studio_recipients(submission.studio),
            {"submission": submission},
        )

    transaction.on_commit(send)


def refund_needed_on_commit(payment: Any) -> None:
    def send() -> None:
        _send(
            "A deposit needs refunding",
            "bookings/email_refund_needed.txt",
            _studio_recipients(payment.studio),
            {"payment": payment, "booking": payment.booking},
        )

    transaction.on_commit(send)
