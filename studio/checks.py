"""System checks of the platform's own settings (``manage.py check``, and so
``check --deploy``): configurations that start fine and fail later, quietly."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, register


@register("payments")
def stripe_configured(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """With Stripe as the payment provider, checkouts need the secret key and
    their outcomes need the webhook secret: without it every delivery is
    refused as unsigned, so no deposit is ever recorded and every checkout
    lapses, its client charged for a slot they lose."""
    if settings.PAYMENT_PROVIDER != "stripe":
        return []
    errors = []
    if not settings.STRIPE_SECRET_KEY:
        errors.append(
            Error(
                "PAYMENT_PROVIDER is 'stripe' but STRIPE_SECRET_KEY is not set: no checkout can be created.",
                hint="Set STRIPE_SECRET_KEY, or PAYMENT_PROVIDER=manual.",
                id="studio.E001",
            )
        )
    if not settings.STRIPE_WEBHOOK_SECRET:
        errors.append(
            Error(
                "Stripe payments are on but STRIPE_WEBHOOK_SECRET is not set: every webhook would be refused, "
                "so no deposit would be recorded and every paid booking would lapse.",
                hint=(
                    "Set STRIPE_WEBHOOK_SECRET to the signing secret (whsec_...) of the endpoint "
                    "/api/v1/public/payments/stripe/webhook/ in the Stripe dashboard."
                ),
                id="studio.E002",
            )
        )
    return errors
