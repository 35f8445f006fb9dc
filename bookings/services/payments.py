"""Deposits: checkout, the provider's webhook, paid/expired outcomes and
staff marking a deposit paid. Providers themselves are in
``bookings.providers``."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from bookings import notifications, providers
from bookings.models import Booking, BookingStatus, Payment, PaymentStatus, WebhookEvent
from bookings.services.bookings import (
    SlotUnavailable,
    mark_confirmed,
    require_live_hold,
    resource_free,
    save_or_unavailable,
    save_with_sequence,
    serialise_writers,
)
from studio import context
from studio.auditing import Action, audit_record
from studio.errors import Conflict, DomainError
from studio.tenancy import studio_scope, unscoped

logger = logging.getLogger(__name__)


def booking_checkout(*, booking: Booking, success_url: str, cancel_url: str, now: datetime | None = None) -> Payment:
    """Start paying the deposit. The slot stays held while the checkout lives.

    Three steps, so the provider's network call holds no lock: the payment
    row is found or made with the booking locked; the checkout is created
    with nothing locked; the result is recorded with the booking locked again.
    Two racing requests share one payment row, and the provider's idempotency
    key (the payment id) gives them one checkout; the hold is extended once.
    Checking out again reuses the checkout and never extends the hold, or a
    client could keep a slot held for ever.

    A provider that cannot be reached answers 503 and changes nothing: the
    hold keeps its slot until it expires, and trying again reuses the same
    payment (and so the same idempotency key)."""
    now = now or timezone.now()
    provider = providers.provider()
    payment = _checkout_payment(booking, provider.name, now)
    if payment.provider_ref or payment.booking.status == BookingStatus.AWAITING_PAYMENT:
        return payment
    try:
        checkout = provider.create_checkout(payment, success_url=success_url, cancel_url=cancel_url)
    except providers.ProviderUnavailable as exc:
        logger.warning("Checkout of payment %s failed: %s", payment.pk, exc)
        raise DomainError(
            "The payment provider cannot be reached right now. Your time is still held: please try again shortly.",
            code="PAYMENT_PROVIDER_UNAVAILABLE",
            status_code=503,
        ) from exc
    payment, started = _record_checkout(payment, checkout, now, hold_minutes=provider.hold_minutes())
    if not started:
        raise Conflict("The hold expired. Pick the time again.", code="HOLD_EXPIRED")
    return payment


@transaction.atomic
def _checkout_payment(booking: Booking, provider_name: str, now: datetime) -> Payment:
    booking = Booking.objects.select_for_update().get(pk=booking.pk)
    require_live_hold(booking, now)
    if booking.deposit_amount <= 0:
        raise DomainError("This booking needs no deposit: confirm it.", code="NO_DEPOSIT")
    payment = booking.payments.filter(status=PaymentStatus.PENDING).order_by("created_at").first()
    if payment is None:
        payment = Payment.objects.create(
            studio=booking.studio,
            booking=booking,
            provider=provider_name,
            amount=booking.deposit_amount,
            currency=booking.service.currency,
        )
    payment.booking = booking
    return payment


def _record_checkout(
    payment: Payment, checkout: providers.Checkout, now: datetime, *, hold_minutes: int
) -> tuple[Payment, bool]:
    """Keep the checkout's reference even when the hold lapsed meanwhile: a
    payment made on it must still be recognised (and refunded or retaken)."""
    with transaction.atomic():
        booking = Booking.objects.select_for_update().get(pk=payment.booking_id)
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        if checkout.reference and not payment.provider_ref:
            payment.provider_ref, payment.checkout_url = checkout.reference, checkout.url
            payment.save(update_fields=["provider_ref", "checkout_url", "updated_at"])
        payment.booking = booking
        if booking.status == BookingStatus.AWAITING_PAYMENT:
            return payment, True  # a racing request started it: one extension only
        if booking.status != BookingStatus.HELD or (booking.hold_expires_at and booking.hold_expires_at <= now):
            return payment, False
        booking.status = BookingStatus.AWAITING_PAYMENT
        booking.hold_expires_at = now + timedelta(minutes=hold_minutes)
        save_with_sequence(booking, "status", "hold_expires_at")
        audit_record(
            action=Action.BOOKING_CHECKOUT_STARTED,
            target=booking,
            after={"payment": str(payment.pk), "provider": payment.provider},
        )
        if not checkout.url:  # paid by hand: nobody is sent to a payment page
            notifications.queue_deposit_requested(booking)
    return payment, True


@transaction.atomic
def payment_succeeded(*, payment: Payment, now: datetime | None = None) -> Payment:
    """Idempotent: a second delivery changes nothing. If the hold expired
    before the money arrived, the slot is taken back when it is still free;
    otherwise the payment is flagged for a refund. So is a second deposit for
    one booking (staff marked it paid, then the client's checkout completed):
    the studio is told either way."""
    now = now or timezone.now()
    payment = Payment.objects.select_for_update().select_related("booking").get(pk=payment.pk)
    if payment.status in (PaymentStatus.PAID, PaymentStatus.REFUND_NEEDED):
        return payment
    booking = Booking.objects.select_for_update().get(pk=payment.booking_id)
    payment.status, payment.paid_at = PaymentStatus.PAID, now
    # Another payment is recorded under the same booking lock, so of two
    # racing deposits the second to take the lock sees the first.
    paid_before = booking.payments.filter(status=PaymentStatus.PAID).exclude(pk=payment.pk).first()
    refund_reason = ""
    if paid_before is not None:
        refund_reason = "already_paid"
    elif booking.status in (BookingStatus.HELD, BookingStatus.AWAITING_PAYMENT) or (
        booking.status == BookingStatus.CANCELLED
        and booking.cancel_reason in ("hold_expired", "payment_expired")  # the client did not give it up
        and _retake(booking, now)
    ):
        payment.save(update_fields=["status", "paid_at", "updated_at"])
        mark_confirmed(booking, now)
    elif booking.status == BookingStatus.CONFIRMED:
        payment.save(update_fields=["status", "paid_at", "updated_at"])
    elif booking.status == BookingStatus.CANCELLED and booking.cancel_reason in ("hold_expired", "payment_expired"):
        refund_reason = "slot_taken"
    else:
        refund_reason = "booking_closed"  # cancelled by the client or the studio, or completed
    if refund_reason:
        payment.status = PaymentStatus.REFUND_NEEDED
        payment.save(update_fields=["status", "paid_at", "updated_at"])
        payment.booking = booking
        notifications.queue_refund_needed(payment, reason=refund_reason, paid_before=paid_before)
    after = {"status": payment.status, "booking": str(booking.pk)}
    if refund_reason:
        after["refund_reason"] = refund_reason
    audit_record(action=Action.PAYMENT_RECEIVED, target=payment, after=after)
    return payment


def _retake(booking: Booking, now: datetime) -> bool:
    """The client chose and paid for this time: take it back if nobody else did."""
    serialise_writers(booking.studio)
    if not resource_free(booking.resource, booking.blocked_start, booking.blocked_end, now, exclude=booking.pk):
        return False
    booking.status, booking.cancelled_at, booking.cancel_reason = BookingStatus.AWAITING_PAYMENT, None, ""
    try:
        save_or_unavailable(booking, update_fields=["status", "cancelled_at", "cancel_reason", "updated_at"])
    except SlotUnavailable:
        return False
    return True


@transaction.atomic
def payment_expired(*, payment: Payment, now: datetime | None = None) -> Payment:
    """The checkout lapsed unpaid. Out-of-order deliveries (expired after
    completed) are ignored."""
    now = now or timezone.now()
    payment = Payment.objects.select_for_update().get(pk=payment.pk)
    if payment.status != PaymentStatus.PENDING:
        return payment
    payment.status = PaymentStatus.EXPIRED
    payment.save(update_fields=["status", "updated_at"])
    booking = Booking.objects.select_for_update().get(pk=payment.booking_id)
    if booking.status == BookingStatus.AWAITING_PAYMENT:
        booking.status, booking.cancelled_at, booking.cancel_reason = BookingStatus.CANCELLED, now, "payment_expired"
        save_with_sequence(booking, "status", "cancelled_at", "cancel_reason")
    audit_record(action=Action.PAYMENT_EXPIRED, target=payment, after={"booking": str(booking.pk)})
    return payment


@transaction.atomic
def payment_amount_mismatch(*, payment: Payment, event_id: str, received_cents: int) -> None:
    """The provider says the client paid another amount than the deposit: the
    booking is not confirmed on it; the studio is told and decides."""
    audit_record(
        action=Action.PAYMENT_AMOUNT_MISMATCH,
        target=payment,
        after={"expected": str(payment.amount), "received_cents": received_cents, "event": event_id},
    )
    notifications.queue_amount_mismatch(payment, event_id=event_id, received_cents=received_cents)


@transaction.atomic
def payment_mark_paid(*, booking: Booking, user: Any) -> Payment:
    """Staff record the deposit as received (the manual provider, or money
    taken offline). It is a manual payment of its own, never the client's
    pending Stripe checkout: if the client also pays there, that payment is
    told apart, and flagged for a refund (payment_succeeded)."""
    # Lock the booking first: two clicks must not record the deposit twice.
    booking = Booking.objects.select_for_update().get(pk=booking.pk)
    if booking.payments.filter(status=PaymentStatus.PAID).exists():
        raise Conflict("The deposit of this booking is already paid.", code="ALREADY_PAID")
    payment = booking.payments.filter(status=PaymentStatus.PENDING, provider="manual").first()
    if payment is None:
        if booking.deposit_amount <= 0:
            raise DomainError("This booking has no deposit to pay.", code="NO_DEPOSIT")
        payment = Payment.objects.create(
            studio=booking.studio,
            booking=booking,
            provider="manual",
            amount=booking.deposit_amount,
            currency=booking.service.currency,
        )
    payment.marked_paid_by = user
    payment.save(update_fields=["marked_paid_by", "updated_at"])
    return payment_succeeded(payment=payment)


class BadWebhook(Exception):
    pass


_HANDLED = ("checkout.session.completed", "checkout.session.async_payment_succeeded", "checkout.session.expired")


def _verified_event(payload: bytes, signature: str) -> tuple[str, str, dict[str, Any]]:
    """The delivery's event id, type and object, once its signature is
    verified. A signed payload is Stripe's, but it is still read as
    untrusted input: a shape we do not expect is a 400, never a 500."""
    import stripe

    try:
        stripe.WebhookSignature.verify_header(
            payload, signature, settings.STRIPE_WEBHOOK_SECRET, stripe.Webhook.DEFAULT_TOLERANCE
        )
        event = json.loads(payload)
    except (ValueError, stripe.SignatureVerificationError) as exc:  # UnicodeDecodeError and JSON errors too
        raise BadWebhook(str(exc)) from exc
    if not isinstance(event, dict):
        raise BadWebhook("The event is not a JSON object.")
    event_id, kind = event.get("id"), event.get("type")
    if not (isinstance(event_id, str) and 0 < len(event_id) <= 255 and isinstance(kind, str)):
        raise BadWebhook("The event has no valid id or type.")
    if kind not in _HANDLED:
        return event_id, kind, {}
    data = event.get("data")
    session = data.get("object") if isinstance(data, dict) else None
    if not isinstance(session, dict) or not isinstance(session.get("id"), str) or not session["id"]:
        raise BadWebhook("The event has no data.object with an id.")
    amount = session.get("amount_total")
    if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int)):
        raise BadWebhook("amount_total is not a whole number of cents.")
    return event_id, kind, session


def handle_stripe_webhook(payload: bytes, signature: str) -> str:
    """Verify and apply one delivery. Returns what happened, for the log."""
    event_id, kind, session = _verified_event(payload, signature)
    if kind not in _HANDLED:
        return "ignored"
    with transaction.atomic():
        try:
            with transaction.atomic():
                WebhookEvent.objects.create(provider="stripe", event_id=event_id, event_type=kind)
        except IntegrityError:
            return "duplicate"
        with unscoped():  # the session names the payment; its studio comes from it
            payment = (
                Payment.objects.select_related("studio", "booking")
                .filter(provider="stripe", provider_ref=session["id"])
                .first()
            )
        if payment is None:
            return "unknown session"
        with studio_scope(payment.studio), context.acting_as(context.Actor.system("webhook:stripe")):
            if kind == "checkout.session.expired":
                payment_expired(payment=payment)
                return "expired"
            if session.get("payment_status") != "paid":
                return "not paid yet"  # async methods report again when settled
            received = Decimal(session.get("amount_total") or 0)
            if received != (payment.amount * 100).to_integral_value():
                payment_amount_mismatch(payment=payment, event_id=event_id, received_cents=int(received))
                return "amount mismatch"
            payment = payment_succeeded(payment=payment)
            return "refund needed" if payment.status == PaymentStatus.REFUND_NEEDED else "paid"
