"""The client's link to their booking.

Its secret is derived (an HMAC of the booking's id under SECRET_KEY), so any
email about the booking can carry it, whoever sends it; the database keeps
only its hash, as it would a random token. Rotating SECRET_KEY ends the links
issued before."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from django.conf import settings
from django.urls import reverse

from studio.models import hash_token


def manage_token(booking: Any) -> str:
    digest = hmac.new(settings.SECRET_KEY.encode(), f"booking-manage:{booking.pk}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def manage_url(raw: str) -> str:
    return settings.SITE_URL.rstrip("/") + reverse("bookings:manage", kwargs={"token": raw})


def booking_manage_url(booking: Any) -> str:
    """The client's link, or "" for a booking whose link predates derived
    tokens (it cannot be rebuilt from its hash)."""
    raw = manage_token(booking)
    return manage_url(raw) if hash_token(raw) == booking.token_hash else ""
