"""Payment providers behind one interface.

- ``StripeProvider``: a Stripe Checkout Session per deposit; its webhook is
  handled by ``bookings.services.payments.handle_stripe_webhook``.
- ``ManualProvider``: the embedded default. No checkout page: staff mark the
  deposit as received (``services.payment_mark_paid``).

PAYMENT_PROVIDER picks one ("stripe" when STRIPE_SECRET_KEY is set)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.utils import timezone

from bookings.models import Payment


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
