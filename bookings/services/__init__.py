"""Writes for bookings, by sub-domain:

- ``bookings``: holds, confirmation, cancel and reschedule, staff actions, reminders;
- ``payments``: deposits, checkout and the provider's webhook;
- ``contact``: enquiries and turning them into bookings;
- ``feeds``: secret calendar URLs;
- ``settings``: the studio's booking settings: services and availability.

Reads are in ``bookings.selectors``. The names below are the public surface,
so callers write ``services.booking_hold(...)``.
"""

from bookings.links import booking_manage_url, manage_url
from bookings.services.bookings import (
    SlotUnavailable,
    booking_assign,
    booking_cancel,
    booking_complete,
    booking_confirm,
    booking_create,
    booking_hold,
    booking_reschedule,
    booking_staff_confirm,
    holds_release,
    reminders_send,
)
from bookings.services.contact import contact_convert, contact_submit
from bookings.services.feeds import feed_create, feed_revoke, feed_rotate
from bookings.services.payments import (
    BadWebhook,
    booking_checkout,
    handle_stripe_webhook,
    payment_expired,
    payment_mark_paid,
    payment_succeeded,
)
from bookings.services.settings import availability_delete, availability_save, service_delete, service_save

__all__ = [
    "BadWebhook",
    "SlotUnavailable",
    "availability_delete",
    "availability_save",
    "booking_assign",
    "booking_cancel",
    "booking_checkout",
    "booking_complete",
    "booking_confirm",
    "booking_create",
    "booking_hold",
    "booking_reschedule",
    "booking_staff_confirm",
    "contact_convert",
    "contact_submit",
    "feed_create",
    "feed_revoke",
    "feed_rotate",
    "handle_stripe_webhook",
    "holds_release",
    "booking_manage_url",
    "manage_url",
    "payment_expired",
    "payment_mark_paid",
    "payment_succeeded",
    "reminders_send",
    "service_delete",
    "service_save",
]
