"""Payment providers behind one interface.

- ``StripeProvider``: a Stripe Checkout Session per deposit; the webhook
  (``handle_stripe_webhook``) verifies the signature, ignores deliveries it
  has already handled (by event id) and tolerates any order.
- ``ManualProvider``: the embedded default. No checkout page: staff mark the
  deposit as received (``services.payment_mark_paid``).

PAYMENT_PROVIDER picks one ("stripe" when STRIPE_SECRET_KEY is set).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from bookings.models import Payment, WebhookEvent
from studio import context
from studio.tenancy import studio_scope, unscoped


@dataclass(frozen=True)
class Checkout:
    reference: str
    url: str


class PaymentProvider:
    name = ""

    def create_checkout(self, payment: Payment, *, success_url: str, cancel_url: str) -> Checkout:
        raise NotImplementedError


class ManualProvider(PaymentProvider):
    name = "manual"

    def create_checkout(self, payment: Payment, *, success_url: str, cancel_url: str) -> Checkout:
        return Checkout(reference="", url="")


class StripeProvider(PaymentProvider):
    name = "stripe"

    def __init__(self, client: Any = None) -> None:
        import stripe

        self.client = client or stripe.StripeClient(settings.STRIPE_SECRET_KEY)

    def create_checkout(self, payment: Payment, *, success_url: str, cancel_url: str) -> Checkout:
        booking = payment.booking
        cents = int((Decimal(str(payment.amount)) * 100).to_integral_value())
        session = self.client.v1.checkout.sessions.create(
            params={
                "mode": "payment",
                "customer_email": booking.client_email,
                "client_reference_id": str(payment.pk),
                "metadata": {"payment": str(payment.pk), "studio": str(payment.studio_id)},
                "line_items": [
                    {
                        "quantity": 1,
                        "price_data": {
                            "currency": payment.currency.lower(),
                            "unit_amount": cents,
                            "product_data": {"name": f"Deposit: {booking.service.name} ({booking.studio.name})"},
                        },
                    }
                ],
                # Stripe's minimum is 30 minutes; the hold lasts as long.
                "expires_at": int(timezone.now().timestamp()) + settings.BOOKING_CHECKOUT_MINUTES * 60,
                "success_url": success_url,
                "cancel_url": cancel_url,
            },
            options={"idempotency_key": f"checkout-{payment.pk}"},
        )
        return Checkout(reference=session.id, url=session.url)


def provider() -> PaymentProvider:
    if settings.PAYMENT_PROVIDER == "stripe":
        return StripeProvider()
    return ManualProvider()


class BadWebhook(Exception):
    pass


def handle_stripe_webhook(payload: bytes, signature: str) -> str:
    """Verify and apply one delivery. Returns what happened, for the log."""
    import stripe

    from bookings import services

    try:
        stripe.Webhook.construct_event(payload, signature, settings.STRIPE_WEBHOOK_SECRET)
    except (ValueError, stripe.SignatureVerificationError) as exc:
        raise BadWebhook(str(exc)) from exc
    event = json.loads(payload)  # verified: read it as plain data
    kind = event["type"]
    if kind not in (
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "checkout.session.expired",
    ):
        return "ignored"
    session = event["data"]["object"]
    with transaction.atomic():
        try:
            with transaction.atomic():
                WebhookEvent.objects.create(provider="stripe", event_id=event["id"], event_type=kind)
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
                services.payment_expired(payment=payment)
                return "expired"
            if session.get("payment_status") != "paid":
                return "not paid yet"  # async methods report again when settled
            if Decimal(session.get("amount_total") or 0) != (payment.amount * 100).to_integral_value():
                return "amount mismatch"
            services.payment_succeeded(payment=payment)
            return "paid"
