"""Payment providers behind one interface.

- ``StripeProvider``: a Stripe Checkout Session per deposit; its webhook is
  handled by ``bookings.services.payments.handle_stripe_webhook``.
- ``ManualProvider``: the embedded default. No checkout page: the client is
  emailed the amount and the studio's payment instructions, the slot stays
  held for BOOKING_MANUAL_PAYMENT_HOURS, and staff mark the deposit as
  received (``services.payment_mark_paid``, an admin action).

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


class ProviderUnavailable(Exception):
    """The provider could not be reached or failed on its side (network,
    5xx, rate limit): worth trying again shortly. Errors that trying again
    would not fix (a refused key, invalid parameters) are not this."""


class PaymentProvider:
    name = ""

    def hold_minutes(self) -> int:
        """How long a checkout keeps the slot held."""
        return settings.BOOKING_CHECKOUT_MINUTES

    def create_checkout(self, payment: Payment, *, success_url: str, cancel_url: str) -> Checkout:
        raise NotImplementedError


class ManualProvider(PaymentProvider):
    name = "manual"

    def hold_minutes(self) -> int:
        # A bank transfer takes days: the client is emailed the amount and the
        # studio's instructions, and the slot waits for staff to mark it paid.
        return settings.BOOKING_MANUAL_PAYMENT_HOURS * 60

    def create_checkout(self, payment: Payment, *, success_url: str, cancel_url: str) -> Checkout:
        return Checkout(reference="", url="")


class StripeProvider(PaymentProvider):
    name = "stripe"

    def __init__(self, client: Any = None) -> None:
        import stripe

        self.client = client or stripe.StripeClient(
            settings.STRIPE_SECRET_KEY,
            # Bounded, so a hanging Stripe cannot hold a web worker for 80 s.
            max_network_retries=settings.STRIPE_MAX_NETWORK_RETRIES,
            http_client=stripe.new_default_http_client(timeout=settings.STRIPE_TIMEOUT_SECONDS),
        )

    def create_checkout(self, payment: Payment, *, success_url: str, cancel_url: str) -> Checkout:
        import stripe

        try:
            session = self._create_session(payment, success_url=success_url, cancel_url=cancel_url)
        except (stripe.APIConnectionError, stripe.APIError, stripe.RateLimitError) as exc:
            raise ProviderUnavailable(f"Stripe: {exc.__class__.__name__}: {exc.user_message or exc}") from exc
        return Checkout(reference=session.id, url=session.url)

    def _create_session(self, payment: Payment, *, success_url: str, cancel_url: str) -> Any:
        booking = payment.booking
        cents = int((Decimal(str(payment.amount)) * 100).to_integral_value())
        return self.client.v1.checkout.sessions.create(
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


def provider() -> PaymentProvider:
    if settings.PAYMENT_PROVIDER == "stripe":
        return StripeProvider()
    return ManualProvider()
