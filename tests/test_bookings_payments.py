"""Booking lifecycle and deposits: confirm, manual and Stripe payments, the
webhook in any order, expired holds, the client's cancel/reschedule window,
and the audit event each state change writes.

Emails go out on commit; tests that look at them capture the on-commit
callbacks (``django_capture_on_commit_callbacks``) to prove nothing is sent
before the transaction commits.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time as clock
import warnings
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs

import pytest
import stripe
from django.core import mail
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent
from bookings import availability, notifications, providers
from bookings import services as booking_services
from bookings.models import Booking, BookingStatus, Payment, PaymentStatus, WebhookEvent, WorkingHours
from studio import context
from studio.auditing import Action
from studio.models import Studio
from studio.roles import Role
from studio.tenancy import studio_scope, unscoped
from tests import factories
from tests.helpers import mail_to, studio_notices

WEBHOOK_SECRET = "whsec_payments_test"
WEBHOOK_URL = "/api/v1/public/payments/stripe/webhook/"


# --- helpers ------------------------------------------------------------------------------------------


def _bookable(studio: Studio, **fields: Any) -> Any:
    """A service of the studio as one resource, open 08:00-20:00 every day."""
    service = factories.service(studio, **fields)
    with studio_scope(studio):
        if not WorkingHours.objects.exists():
            WorkingHours.objects.bulk_create(
                [WorkingHours(studio=studio, weekday=d, start_time=time(8), end_time=time(20)) for d in range(7)]
            )
    return service


def _slots(service: Any, first_day: int, days: int = 1, exclude: Any = None) -> list[datetime]:
    today = timezone.now().astimezone(UTC).date()
    with studio_scope(service.studio):
        found = availability.available_slots(
            service, today + timedelta(days=first_day), today + timedelta(days=first_day + days - 1), exclude=exclude
        )
    return [s.start for s in found]


def _start(service: Any, days: int = 5) -> datetime:
    """The first slot from 12:00 UTC (the studio's zone) some days ahead."""
    return next(s for s in _slots(service, days) if s.hour >= 12)


def _start_within(service: Any, min_hours: float, max_hours: float) -> datetime:
    now = timezone.now()
    return next(s for s in _slots(service, 0, 4) if timedelta(hours=min_hours) <= s - now <= timedelta(hours=max_hours))


def _hold(studio: Studio, service: Any, start: datetime | None = None, email: str = "cleo@example.com") -> Any:
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        return booking_services.booking_hold(
            service=service, starts_at=start or _start(service), client_name="Cleo Client", client_email=email
        )


def _confirmed(studio: Studio, service: Any, start: datetime | None = None) -> tuple[Booking, str]:
    booking, raw = _hold(studio, service, start)
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        booking_services.booking_confirm(booking=booking)
    return _fresh(booking), raw


def _hold_api(studio: Studio, service: Any, start: datetime, email: str = "cleo@example.com") -> Any:
    return APIClient().post(
        f"/api/v1/public/studios/{studio.slug}/holds/",
        {"service": str(service.pk), "start": start.isoformat(), "name": "Cleo Client", "email": email},
        format="json",
    )


def _client(raw: str, suffix: str = "") -> str:
    return f"/api/v1/public/bookings/{raw}/{suffix}"


def _staff(studio: Studio, booking: Any, suffix: str) -> str:
    return f"/api/v1/studios/{studio.slug}/bookings/{booking.pk}/{suffix}"


def _fresh(obj: Any) -> Any:
    with unscoped():
        return type(obj).objects.get(pk=obj.pk)


def _events(studio: Studio, *, action: str | None = None, target: Any = None) -> list[AuditEvent]:
    with studio_scope(studio):
        events = AuditEvent.objects.order_by("seq")
        if action:
            events = events.filter(action=action)
        if target is not None:
            events = events.filter(target_id=str(target.pk))
        return list(events)


def _expire(booking: Any, ago: timedelta = timedelta(seconds=1)) -> None:
    with studio_scope(booking.studio):
        Booking.objects.filter(pk=booking.pk).update(hold_expires_at=timezone.now() - ago)


def _release(studio: Studio) -> int:
    with context.acting_as(context.Actor.system("tests")), studio_scope(studio), transaction.atomic():
        return booking_services.holds_release()


def _code(response: Any) -> str:
    return response.json()["error"]["code"]


def _payments(booking: Any) -> list[Payment]:
    with studio_scope(booking.studio):
        return list(Payment.objects.filter(booking=booking).order_by("created_at"))


# --- stripe helpers ---


class FakeStripe:
    """Stands in for stripe.StripeClient: records checkout.sessions.create calls."""

    def __init__(self) -> None:
        self.checkout = SimpleNamespace(sessions=self)
        self.v1 = SimpleNamespace(checkout=self.checkout)  # the namespace newer stripe-python prefers
        self.calls: list[dict[str, Any]] = []

    def create(self, params: dict, options: dict) -> Any:
        self.calls.append({"params": params, "options": options})
        ref = f"cs_test_{len(self.calls)}_{params['client_reference_id'][:8]}"
        return SimpleNamespace(id=ref, url=f"https://checkout.stripe.com/c/pay/{ref}")


@pytest.fixture
def fake_stripe(settings, monkeypatch) -> FakeStripe:
    settings.PAYMENT_PROVIDER = "stripe"
    settings.STRIPE_SECRET_KEY = "sk_test_x"
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    fake = FakeStripe()
    monkeypatch.setattr(providers, "provider", lambda: providers.StripeProvider(client=fake))
    return fake


class CannedHTTP(stripe.HTTPClient):
    """stripe-python's HTTP layer, answering a canned Checkout Session."""

    name = "canned"

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[str, str, dict, Any]] = []

    def request(self, method, url, headers, post_data=None, *, _usage=None):  # noqa: ANN001, ANN201
        self.requests.append((method, url, dict(headers or {}), post_data))
        body = {"id": "cs_test_http", "object": "checkout.session", "url": "https://checkout.stripe.com/c/pay/x"}
        return json.dumps(body), 200, {"Request-Id": "req_test"}

    def close(self) -> None:
        pass


def _stripe_checkout(studio: Studio, service: Any | None = None, start: datetime | None = None) -> Any:
    """A held booking with a 50.00 deposit, checked out through the API (provider patched)."""
    service = service or _bookable(studio, price=200, deposit=50)
    booking, raw = _hold(studio, service, start)
    response = APIClient().post(_client(raw, "checkout/"))
    assert response.status_code == 200, response.content
    (payment,) = _payments(booking)
    return _fresh(booking), raw, payment


def _event(
    kind: str,
    session_id: str,
    *,
    event_id: str | None = None,
    payment_status: str = "paid",
    amount_total: int | None = 5000,
) -> dict[str, Any]:
    return {
        "id": event_id or f"evt_{kind.rsplit('.', 1)[-1]}_{session_id}",
        "object": "event",
        "type": kind,
        "data": {
            "object": {
                "id": session_id,
                "object": "checkout.session",
                "payment_status": payment_status,
                "amount_total": amount_total,
            }
        },
    }


def _signature(payload: str, secret: str = WEBHOOK_SECRET, stamp: int | None = None) -> str:
    stamp = int(clock.time()) if stamp is None else stamp
    digest = hmac.new(secret.encode(), f"{stamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


def _deliver(body: dict[str, Any], *, signature: str | None = None, payload: str | None = None) -> Any:
    payload = payload if payload is not None else json.dumps(body)
    headers = {} if signature == "" else {"HTTP_STRIPE_SIGNATURE": signature or _signature(payload)}
    return APIClient().post(WEBHOOK_URL, data=payload, content_type="application/json", **headers)


def _state(booking: Any, payment: Any) -> tuple[Any, ...]:
    b, p = _fresh(booking), _fresh(payment)
    return (b.status, b.cancel_reason, b.sequence, b.hold_expires_at, p.status, p.paid_at)


# --- free bookings: hold and confirm ----------------------------------------------------------------


def test_free_booking_hold_confirm_and_the_email_after_commit(
    studio, settings, mailoutbox, django_capture_on_commit_callbacks
) -> None:
    service = _bookable(studio, name="Portrait")
    start = _start(service)
    before = timezone.now()
    response = _hold_api(studio, service, start)
    assert response.status_code == 201, response.content
    body = response.json()
    raw, booking_id = body["token"], body["booking"]["id"]
    assert body["manage_url"].endswith(f"/{raw}/") or raw in body["manage_url"]
    assert body["booking"]["status"] == "held"
    assert body["booking"]["next_step"] == "confirm"
    with studio_scope(studio):
        booking = Booking.objects.get(pk=booking_id)
    hold_for = timedelta(minutes=settings.BOOKING_HOLD_MINUTES)
    assert before + hold_for <= booking.hold_expires_at <= timezone.now() + hold_for
    (held,) = _events(studio, action="booking.held", target=booking)
    assert held.actor_type == "client"
    assert "cleo@example.com" in held.actor_label

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = APIClient().post(_client(raw, "confirm/"))
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "confirmed"
    assert response.json()["next_step"] == "none"
    booking = _fresh(booking)
    assert booking.status == BookingStatus.CONFIRMED
    assert booking.confirmed_at is not None
    assert booking.hold_expires_at is None
    assert booking.sequence == 1
    (confirmed,) = _events(studio, action="booking.confirmed", target=booking)
    assert confirmed.actor_type == "client"
    # The email waits for the commit.
    assert mailoutbox == []
    for callback in callbacks:
        callback()
    (email,) = mail_to(mailoutbox, "cleo@example.com")
    assert email.subject.startswith("Confirmed: Portrait")
    assert studio_notices(mailoutbox, "cleo@example.com") == ["New booking"]
    assert [a[0] for a in email.attachments] == ["invite.ics"]

    # Confirming again is harmless: same answer, no new event, no second email.
    events = len(_events(studio))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        again = APIClient().post(_client(raw, "confirm/"))
    assert again.status_code == 200
    assert again.json()["status"] == "confirmed"
    assert callbacks == []
    assert len(mailoutbox) == 2  # still the one confirmation and the one notice
    assert len(_events(studio)) == events
    assert _fresh(booking).sequence == 1


def test_a_rolled_back_confirmation_sends_no_email(studio, mailoutbox, django_capture_on_commit_callbacks) -> None:
    service = _bookable(studio)
    booking, _ = _hold(studio, service)
    with (
        django_capture_on_commit_callbacks(execute=False) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
            booking_services.booking_confirm(booking=booking)
        raise RuntimeError("rolled back")
    assert callbacks == []
    assert mailoutbox == []
    assert _fresh(booking).status == BookingStatus.HELD


def test_confirm_after_the_hold_expired_is_refused(studio) -> None:
    service = _bookable(studio)
    booking, raw = _hold(studio, service)
    _expire(booking)
    events = len(_events(studio))
    response = APIClient().post(_client(raw, "confirm/"))
    assert response.status_code == 409
    assert _code(response) == "HOLD_EXPIRED"
    assert _fresh(booking).status == BookingStatus.HELD
    assert len(_events(studio)) == events
    # Once released, the booking is no longer held at all.
    assert _release(studio) == 1
    response = APIClient().post(_client(raw, "confirm/"))
    assert response.status_code == 409
    assert _code(response) == "NOT_HELD"


def test_confirm_of_a_booking_that_needs_a_deposit_answers_402(studio) -> None:
    service = _bookable(studio, price=200, deposit=50)
    booking, raw = _hold(studio, service)
    response = APIClient().get(_client(raw))
    assert response.json()["next_step"] == "checkout"
    assert Decimal(response.json()["deposit_amount"]) == Decimal("50.00")
    response = APIClient().post(_client(raw, "confirm/"))
    assert response.status_code == 402
    assert _code(response) == "DEPOSIT_REQUIRED"
    assert _fresh(booking).status == BookingStatus.HELD
    assert _events(studio, action="booking.confirmed") == []


def test_checkout_of_a_free_booking_is_refused(studio) -> None:
    booking, raw = _hold(studio, _bookable(studio))
    response = APIClient().post(_client(raw, "checkout/"))
    assert response.status_code == 400
    assert _code(response) == "NO_DEPOSIT"
    assert _payments(booking) == []


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("get", "", None),
        ("post", "confirm/", None),
        ("post", "checkout/", None),
        ("post", "cancel/", {}),
        ("post", "reschedule/", {"start": "2030-01-01T12:00:00Z"}),
    ],
)
def test_an_unknown_token_answers_404(studio, method, suffix, body) -> None:
    _hold(studio, _bookable(studio))  # a real booking exists; the token is not its
    response = getattr(APIClient(), method)(_client("not-a-real-token-" + "x" * 30, suffix), body, format="json")
    assert response.status_code == 404
    assert _code(response) == "NOT_FOUND"


# --- deposits, manual provider ------------------------------------------------------------------------


def test_manual_checkout_then_staff_mark_paid(
    studio, settings, make_member, client_for, mailoutbox, django_capture_on_commit_callbacks
) -> None:
    assert settings.PAYMENT_PROVIDER == "manual"
    settings.BOOKING_CHECKOUT_MINUTES = 45  # Stripe's window: not a bank transfer's
    settings.BOOKING_MANUAL_PAYMENT_HOURS = 50
    studio.payment_instructions = "IBAN DE00 1234 5678, reference your name"
    studio.save()
    service = _bookable(studio, price=200, deposit=50, currency="EUR")
    booking, raw = _hold(studio, service)

    before = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        response = APIClient().post(_client(raw, "checkout/"))
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "awaiting_payment"
    assert response.json()["next_step"] == "pay"
    assert response.json()["checkout_url"] is None  # nothing to follow: staff record the payment
    booking = _fresh(booking)
    assert booking.status == BookingStatus.AWAITING_PAYMENT
    assert before + timedelta(hours=50) <= booking.hold_expires_at <= timezone.now() + timedelta(hours=50)
    # Both sides are told: the client what to pay, how, and by when; the studio to expect it.
    (asked,) = mail_to(mailoutbox, "cleo@example.com")
    assert asked.subject.startswith("Deposit to pay")
    assert "50.00 EUR" in asked.body and "IBAN DE00 1234 5678" in asked.body and "/book/manage/" in asked.body
    assert studio_notices(mailoutbox, "cleo@example.com") == ["Deposit awaited"]
    mailoutbox.clear()
    (payment,) = _payments(booking)
    assert (payment.provider, payment.status, payment.amount, payment.currency) == ("manual", "pending", 50, "EUR")
    assert (payment.provider_ref, payment.checkout_url) == ("", "")
    (started,) = _events(studio, action="booking.checkout_started", target=booking)
    assert started.actor_type == "client"
    assert started.after == {"payment": str(payment.pk), "provider": "manual"}

    # An assistant may not record money.
    assistant = make_member(Role.ASSISTANT)
    response = client_for(assistant).post(_staff(studio, booking, "mark-paid/"))
    assert response.status_code == 403
    assert _fresh(payment).status == PaymentStatus.PENDING
    assert _fresh(booking).status == BookingStatus.AWAITING_PAYMENT

    admin = make_member(Role.ADMIN)
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(admin).post(_staff(studio, booking, "mark-paid/"))
    assert response.status_code == 200, response.content
    assert response.json()["id"] == str(payment.pk)
    assert response.json()["status"] == "paid"
    payment = _fresh(payment)
    assert payment.status == PaymentStatus.PAID
    assert payment.marked_paid_by_id == admin.user.pk
    assert payment.paid_at is not None
    booking = _fresh(booking)
    assert booking.status == BookingStatus.CONFIRMED
    assert booking.hold_expires_at is None
    (received,) = _events(studio, action="payment.received", target=payment)
    assert received.actor_type == "user"
    assert received.actor_user_id == admin.user.pk
    assert received.after == {"status": "paid", "booking": str(booking.pk)}
    (confirmed,) = _events(studio, action="booking.confirmed", target=booking)
    assert confirmed.actor_type == "user"
    assert [m.subject.split(":")[0] for m in mail_to(mailoutbox, "cleo@example.com")] == ["Confirmed"]
    assert studio_notices(mailoutbox, "cleo@example.com") == ["New booking"]


def test_mark_paid_on_a_held_booking_records_the_deposit_directly(studio, owner, client_for) -> None:
    booking, _ = _hold(studio, _bookable(studio, price=200, deposit=80))
    response = client_for(owner).post(_staff(studio, booking, "mark-paid/"))
    assert response.status_code == 200, response.content
    (payment,) = _payments(booking)
    assert (payment.provider, payment.status, payment.amount) == ("manual", "paid", 80)
    assert payment.marked_paid_by_id == owner.user.pk
    assert _fresh(booking).status == BookingStatus.CONFIRMED


def test_mark_paid_without_a_deposit_is_refused(studio, owner, client_for) -> None:
    booking, _ = _hold(studio, _bookable(studio))
    response = client_for(owner).post(_staff(studio, booking, "mark-paid/"))
    assert response.status_code == 400
    assert _code(response) == "NO_DEPOSIT"
    assert _payments(booking) == []


def test_marking_paid_twice_records_the_deposit_once(studio, owner, client_for) -> None:
    booking, _ = _hold(studio, _bookable(studio, price=200, deposit=50))
    client = client_for(owner)
    assert client.post(_staff(studio, booking, "mark-paid/")).status_code == 200
    events = len(_events(studio))
    response = client.post(_staff(studio, booking, "mark-paid/"))  # a double click
    assert response.status_code == 409
    assert _code(response) == "ALREADY_PAID"
    assert [(p.status, p.amount) for p in _payments(booking)] == [("paid", 50)]
    assert len(_events(studio)) == events


def test_repeating_a_manual_checkout_neither_duplicates_the_payment_nor_extends_the_hold(studio) -> None:
    booking, raw = _hold(studio, _bookable(studio, price=200, deposit=50))
    assert APIClient().post(_client(raw, "checkout/")).status_code == 200
    near_expiry = timezone.now() + timedelta(minutes=1)
    with studio_scope(studio):
        Booking.objects.filter(pk=booking.pk).update(hold_expires_at=near_expiry)
    assert APIClient().post(_client(raw, "checkout/")).status_code == 200
    assert len(_payments(booking)) == 1
    assert _fresh(booking).hold_expires_at == near_expiry


# --- deposits, Stripe ----------------------------------------------------------------------------------


def test_provider_follows_the_setting(settings) -> None:
    settings.PAYMENT_PROVIDER = "manual"
    assert isinstance(providers.provider(), providers.ManualProvider)
    settings.PAYMENT_PROVIDER = "stripe"
    settings.STRIPE_SECRET_KEY = "sk_test_x"
    chosen = providers.provider()
    assert isinstance(chosen, providers.StripeProvider)
    assert isinstance(chosen.client, stripe.StripeClient)


def test_stripe_checkout_sends_the_right_params_and_records_the_session(studio, fake_stripe, settings) -> None:
    service = _bookable(studio, name="Wedding", price=Decimal("400.00"), deposit=Decimal("49.99"), currency="EUR")
    booking, raw = _hold(studio, service, email="dana@example.com")
    before = int(clock.time())
    response = APIClient().post(_client(raw, "checkout/"))
    assert response.status_code == 200, response.content

    (payment,) = _payments(booking)
    (call,) = fake_stripe.calls
    params, options = call["params"], call["options"]
    assert params["mode"] == "payment"
    assert params["customer_email"] == "dana@example.com"
    assert params["client_reference_id"] == str(payment.pk)
    assert params["metadata"] == {"payment": str(payment.pk), "studio": str(studio.pk)}
    (item,) = params["line_items"]
    assert item["quantity"] == 1
    assert item["price_data"]["currency"] == "eur"
    assert item["price_data"]["unit_amount"] == 4999  # cents, exactly
    assert item["price_data"]["product_data"]["name"] == f"Deposit: Wedding ({studio.name})"
    expires = before + settings.BOOKING_CHECKOUT_MINUTES * 60
    assert expires <= params["expires_at"] <= int(clock.time()) + settings.BOOKING_CHECKOUT_MINUTES * 60
    manage = f"{settings.SITE_URL.rstrip('/')}/"
    assert params["success_url"].startswith(manage) and raw in params["success_url"]
    assert params["success_url"].endswith("?paid=1")
    assert params["cancel_url"] == params["success_url"].removesuffix("?paid=1")
    assert options == {"idempotency_key": f"checkout-{payment.pk}"}

    assert (payment.provider, payment.status, payment.amount, payment.currency) == (
        "stripe",
        "pending",
        Decimal("49.99"),
        "EUR",
    )
    assert payment.provider_ref.startswith("cs_test_")
    assert payment.checkout_url == f"https://checkout.stripe.com/c/pay/{payment.provider_ref}"
    assert response.json()["checkout_url"] == payment.checkout_url
    assert response.json()["status"] == "awaiting_payment"

    # A second checkout reuses the live session: no new call, no new payment.
    again = APIClient().post(_client(raw, "checkout/"))
    assert again.status_code == 200
    assert again.json()["checkout_url"] == payment.checkout_url
    assert len(fake_stripe.calls) == 1
    assert len(_payments(booking)) == 1


def test_stripe_provider_through_the_real_client_sends_a_form_encoded_request(studio, settings) -> None:
    """The provider against stripe's own client, with its HTTP layer replaced:
    no network, but the library's real encoding and headers."""
    settings.STRIPE_SECRET_KEY = "sk_test_x"
    http = CannedHTTP()
    provider = providers.StripeProvider(
        client=stripe.StripeClient("sk_test_x", http_client=http, max_network_retries=0)
    )
    booking, _ = _hold(studio, _bookable(studio, price=200, deposit=Decimal("12.50")))
    with studio_scope(studio):
        payment = Payment.objects.create(
            studio=studio, booking=booking, provider="stripe", amount=Decimal("12.50"), currency="USD"
        )
        checkout = provider.create_checkout(payment, success_url="https://x/ok", cancel_url="https://x/back")
    assert checkout == providers.Checkout(reference="cs_test_http", url="https://checkout.stripe.com/c/pay/x")

    ((method, url, headers, post_data),) = http.requests
    assert method == "post"
    assert url == "https://api.stripe.com/v1/checkout/sessions"
    assert headers["Authorization"] == "Bearer sk_test_x"
    assert headers["Idempotency-Key"] == f"checkout-{payment.pk}"
    form = parse_qs(post_data if isinstance(post_data, str) else post_data.decode())
    assert form["line_items[0][price_data][unit_amount]"] == ["1250"]
    assert form["line_items[0][price_data][currency]"] == ["usd"]
    assert form["client_reference_id"] == [str(payment.pk)]
    assert form["metadata[payment]"] == [str(payment.pk)]
    assert form["success_url"] == ["https://x/ok"]


def test_stripe_provider_uses_no_deprecated_client_api(studio) -> None:
    provider = providers.StripeProvider(client=stripe.StripeClient("sk_test_x", http_client=CannedHTTP()))
    booking, _ = _hold(studio, _bookable(studio, price=200, deposit=50))
    with studio_scope(studio):
        payment = Payment.objects.create(
            studio=studio, booking=booking, provider="stripe", amount=Decimal("50.00"), currency="USD"
        )
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            provider.create_checkout(payment, success_url="https://x/ok", cancel_url="https://x/back")


def test_webhook_completed_confirms_the_booking(
    studio, fake_stripe, mailoutbox, django_capture_on_commit_callbacks
) -> None:
    booking, _, payment = _stripe_checkout(studio)
    with django_capture_on_commit_callbacks(execute=True):
        response = _deliver(_event("checkout.session.completed", payment.provider_ref, event_id="evt_1"))
    assert response.status_code == 200, response.content
    assert response.json() == {"outcome": "paid"}
    booking, payment = _fresh(booking), _fresh(payment)
    assert booking.status == BookingStatus.CONFIRMED
    assert payment.status == PaymentStatus.PAID
    assert payment.paid_at is not None
    assert WebhookEvent.objects.filter(provider="stripe", event_id="evt_1").exists()
    (received,) = _events(studio, action="payment.received", target=payment)
    (confirmed,) = _events(studio, action="booking.confirmed", target=booking)
    for event in (received, confirmed):
        assert event.actor_type == "system"
        assert event.actor_label == "webhook:stripe"
    assert [m.subject.split(":")[0] for m in mail_to(mailoutbox, "cleo@example.com")] == ["Confirmed"]
    assert studio_notices(mailoutbox, "cleo@example.com") == ["New booking"]


@pytest.mark.parametrize(
    "tamper",
    ["wrong secret", "no header", "stale timestamp", "payload changed", "garbage header", "no secret configured"],
)
def test_webhook_with_a_bad_signature_changes_nothing(studio, fake_stripe, settings, tamper) -> None:
    booking, _, payment = _stripe_checkout(studio)
    body = _event("checkout.session.completed", payment.provider_ref, event_id="evt_bad")
    payload = json.dumps(body)
    signature = {
        "wrong secret": _signature(payload, secret="whsec_someone_else"),
        "no header": "",
        "stale timestamp": _signature(payload, stamp=int(clock.time()) - 600),
        "payload changed": _signature(payload.replace("5000", "1")),
        "garbage header": "nonsense",
        "no secret configured": _signature(payload, secret=""),
    }[tamper]
    if tamper == "no secret configured":
        settings.STRIPE_WEBHOOK_SECRET = ""  # an unset secret must not make "" a valid key
    state = _state(booking, payment)
    events = len(_events(studio))
    response = _deliver(body, signature=signature, payload=payload)
    assert response.status_code == 400
    assert _code(response) == "INVALID_WEBHOOK"
    assert _state(booking, payment) == state
    assert not WebhookEvent.objects.exists()
    assert len(_events(studio)) == events


def test_webhook_duplicate_delivery_has_no_second_effect(
    studio, fake_stripe, mailoutbox, django_capture_on_commit_callbacks
) -> None:
    booking, _, payment = _stripe_checkout(studio)
    body = _event("checkout.session.completed", payment.provider_ref, event_id="evt_dup")
    with django_capture_on_commit_callbacks(execute=True):
        assert _deliver(body).json() == {"outcome": "paid"}
    state, events = _state(booking, payment), len(_events(studio))
    with django_capture_on_commit_callbacks(execute=True):
        response = _deliver(body)  # Stripe retries: same event id, fresh signature
    assert response.status_code == 200
    assert response.json() == {"outcome": "duplicate"}
    assert _state(booking, payment) == state
    assert len(_events(studio)) == events
    assert len(mailoutbox) == 2  # the client's confirmation and the studio's notice, once
    assert WebhookEvent.objects.filter(event_id="evt_dup").count() == 1


def test_webhook_expired_after_completed_changes_nothing(studio, fake_stripe) -> None:
    booking, _, payment = _stripe_checkout(studio)
    assert _deliver(_event("checkout.session.completed", payment.provider_ref)).json() == {"outcome": "paid"}
    state, events = _state(booking, payment), len(_events(studio))
    response = _deliver(_event("checkout.session.expired", payment.provider_ref, payment_status="unpaid"))
    assert response.json() == {"outcome": "expired"}
    assert _state(booking, payment) == state
    assert _fresh(booking).status == BookingStatus.CONFIRMED
    assert _fresh(payment).status == PaymentStatus.PAID
    assert len(_events(studio)) == events


def test_webhook_expired_cancels_the_checkout(studio, fake_stripe) -> None:
    booking, _, payment = _stripe_checkout(studio)
    response = _deliver(_event("checkout.session.expired", payment.provider_ref, payment_status="unpaid"))
    assert response.json() == {"outcome": "expired"}
    booking = _fresh(booking)
    assert (booking.status, booking.cancel_reason) == (BookingStatus.CANCELLED, "payment_expired")
    assert _fresh(payment).status == PaymentStatus.EXPIRED
    (expired,) = _events(studio, action="payment.expired", target=payment)
    assert expired.actor_type == "system"
    # The slot is free again.
    assert booking.starts_at in _slots(booking.service, (booking.starts_at.date() - timezone.now().date()).days)


def test_payment_after_the_hold_lapsed_retakes_the_free_slot(
    studio, fake_stripe, mailoutbox, django_capture_on_commit_callbacks
) -> None:
    booking, _, payment = _stripe_checkout(studio)
    _expire(booking)
    assert _release(studio) == 1
    assert (_fresh(booking).status, _fresh(booking).cancel_reason) == (BookingStatus.CANCELLED, "hold_expired")
    with django_capture_on_commit_callbacks(execute=True):
        response = _deliver(_event("checkout.session.completed", payment.provider_ref))
    assert response.json() == {"outcome": "paid"}
    booking = _fresh(booking)
    assert booking.status == BookingStatus.CONFIRMED
    assert (booking.cancelled_at, booking.cancel_reason) == (None, "")
    assert _fresh(payment).status == PaymentStatus.PAID
    assert [m.subject.split(":")[0] for m in mail_to(mailoutbox, "cleo@example.com")] == ["Confirmed"]
    assert studio_notices(mailoutbox, "cleo@example.com") == ["New booking"]


def test_webhook_completed_after_expired_retakes_the_free_slot(studio, fake_stripe) -> None:
    booking, _, payment = _stripe_checkout(studio)
    assert _deliver(_event("checkout.session.expired", payment.provider_ref, payment_status="unpaid")).json() == {
        "outcome": "expired"
    }
    assert _fresh(booking).status == BookingStatus.CANCELLED
    assert _deliver(_event("checkout.session.completed", payment.provider_ref)).json() == {"outcome": "paid"}
    assert _fresh(payment).status == PaymentStatus.PAID
    assert _fresh(booking).status == BookingStatus.CONFIRMED


@pytest.mark.parametrize("lapse", ["hold released", "expired delivered"])
def test_payment_for_a_slot_taken_meanwhile_is_flagged_for_refund(
    studio, owner, fake_stripe, mailoutbox, django_capture_on_commit_callbacks, lapse
) -> None:
    service = _bookable(studio, price=200, deposit=50)
    start = _start(service)
    booking, _, payment = _stripe_checkout(studio, service, start)
    if lapse == "hold released":
        _expire(booking)
    else:
        _deliver(_event("checkout.session.expired", payment.provider_ref, payment_status="unpaid"))
    taker, _ = _hold(studio, service, start, email="eve@example.com")  # releases the lapsed hold first
    assert _fresh(booking).status == BookingStatus.CANCELLED

    with django_capture_on_commit_callbacks(execute=True):
        response = _deliver(_event("checkout.session.completed", payment.provider_ref))
    assert response.status_code == 200
    payment = _fresh(payment)
    assert payment.status == PaymentStatus.REFUND_NEEDED
    assert payment.paid_at is not None
    assert _fresh(booking).status == BookingStatus.CANCELLED
    assert _fresh(taker).status == BookingStatus.HELD
    (refund,) = [m for m in mailoutbox if m.subject == "A deposit needs refunding"]
    assert refund.to == [owner.user.email]
    assert payment.provider_ref in refund.body
    (received,) = _events(studio, action="payment.received", target=payment)
    assert received.after["status"] == "refund_needed"
    assert received.actor_type == "system"


def test_refund_notice_goes_to_the_studio_contact_address(
    studio, fake_stripe, mailoutbox, django_capture_on_commit_callbacks
) -> None:
    Studio.objects.filter(pk=studio.pk).update(contact_email="desk@studio.example")
    service = _bookable(studio, price=200, deposit=50)
    start = _start(service)
    booking, _, payment = _stripe_checkout(studio, service, start)
    _expire(booking)
    _hold(studio, service, start, email="eve@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        _deliver(_event("checkout.session.completed", payment.provider_ref))
    assert [m.to for m in mailoutbox] == [["desk@studio.example"]]


def test_webhook_unpaid_session_changes_nothing_until_the_async_payment_succeeds(studio, fake_stripe) -> None:
    booking, _, payment = _stripe_checkout(studio)
    state, events = _state(booking, payment), len(_events(studio))
    response = _deliver(_event("checkout.session.completed", payment.provider_ref, payment_status="unpaid"))
    assert response.json() == {"outcome": "not paid yet"}
    assert _state(booking, payment) == state
    assert len(_events(studio)) == events
    response = _deliver(_event("checkout.session.async_payment_succeeded", payment.provider_ref))
    assert response.json() == {"outcome": "paid"}
    assert _fresh(booking).status == BookingStatus.CONFIRMED
    assert _fresh(payment).status == PaymentStatus.PAID


@pytest.mark.parametrize("amount_total", [4999, 500000, None])
def test_webhook_amount_mismatch_confirms_nothing_and_tells_the_studio(
    studio, fake_stripe, amount_total, django_capture_on_commit_callbacks
) -> None:
    booking, _, payment = _stripe_checkout(studio)
    state, events = _state(booking, payment), len(_events(studio))
    mail.outbox.clear()
    event = _event("checkout.session.completed", payment.provider_ref, amount_total=amount_total)
    with django_capture_on_commit_callbacks(execute=True):
        response = _deliver(event)
    assert response.status_code == 200
    assert response.json() == {"outcome": "amount mismatch"}
    assert _state(booking, payment) == state
    # Audited, and the studio is told (before: recorded as handled, silently).
    new = _events(studio)[events:] if len(_events(studio)) > events else []
    assert [e.action for e in new] == [Action.PAYMENT_AMOUNT_MISMATCH]
    assert new[0].after["received_cents"] == (amount_total or 0)
    with studio_scope(studio):
        told = notifications.studio_recipients(studio)
    assert told and sorted(m.to[0] for m in mail.outbox) == sorted(told)
    assert all("wrong amount" in m.subject for m in mail.outbox)
    # The same delivery again is a duplicate: no second alert.
    with django_capture_on_commit_callbacks(execute=True):
        assert _deliver(event).json() == {"outcome": "duplicate"}
    assert len(mail.outbox) == len(told)


def test_webhook_unknown_session_and_other_event_types(studio, fake_stripe) -> None:
    booking, _, payment = _stripe_checkout(studio)
    state = _state(booking, payment)
    response = _deliver(_event("checkout.session.completed", "cs_test_nobody_knows"))
    assert response.status_code == 200
    assert response.json() == {"outcome": "unknown session"}
    response = _deliver(_event("payment_intent.succeeded", payment.provider_ref))
    assert response.status_code == 200
    assert response.json() == {"outcome": "ignored"}
    assert _state(booking, payment) == state


def test_webhook_never_touches_a_manual_payment(studio, settings) -> None:
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    booking, raw = _hold(studio, _bookable(studio, price=200, deposit=50))
    APIClient().post(_client(raw, "checkout/"))
    (payment,) = _payments(booking)
    with studio_scope(studio):
        Payment.objects.filter(pk=payment.pk).update(provider_ref="cs_test_lookalike")
    response = _deliver(_event("checkout.session.completed", "cs_test_lookalike"))
    assert response.json() == {"outcome": "unknown session"}
    assert _fresh(payment).status == PaymentStatus.PENDING


# --- expired holds ------------------------------------------------------------------------------------


def test_holds_release_cancels_expired_holds_and_checkouts(studio, other_studio) -> None:
    service = _bookable(studio, price=200, deposit=50)
    free = _bookable(studio)
    starts = _slots(service, 5)
    expired_hold, _ = _hold(studio, free, starts[0])
    checkout, raw = _hold(studio, service, starts[4])
    APIClient().post(_client(raw, "checkout/"))
    live_hold, _ = _hold(studio, free, starts[8])
    confirmed, _ = _confirmed(studio, free, starts[12])
    theirs, _ = _hold(other_studio, _bookable(other_studio))
    for booking in (expired_hold, checkout, theirs):
        _expire(booking)
    sequences = {b.pk: _fresh(b).sequence for b in (expired_hold, checkout)}

    now = timezone.now()
    with context.acting_as(context.Actor.system("beat")), studio_scope(studio), transaction.atomic():
        assert booking_services.holds_release(now=now) == 2
    for booking in (expired_hold, checkout):
        booking = _fresh(booking)
        assert booking.status == BookingStatus.CANCELLED
        assert booking.cancel_reason == "hold_expired"
        assert booking.cancelled_at == now
        assert booking.sequence == sequences[booking.pk] + 1
        (event,) = _events(studio, action="booking.hold_expired", target=booking)
        assert event.actor_type == "system"
    assert _fresh(live_hold).status == BookingStatus.HELD
    assert _fresh(confirmed).status == BookingStatus.CONFIRMED
    assert _fresh(theirs).status == BookingStatus.HELD  # another studio's: its own run releases it
    # Their times are free again.
    assert starts[0] in _slots(free, 5) and starts[4] in _slots(service, 5)
    # A later "now" releases the hold that was still live.
    with context.acting_as(context.Actor.system("beat")), studio_scope(studio), transaction.atomic():
        assert booking_services.holds_release(now=now + timedelta(hours=1)) == 1
    assert _fresh(live_hold).status == BookingStatus.CANCELLED


def test_holds_release_audits_the_real_previous_status(studio) -> None:
    booking, raw = _hold(studio, _bookable(studio, price=200, deposit=50))
    APIClient().post(_client(raw, "checkout/"))
    _expire(booking)
    assert _release(studio) == 1
    (event,) = _events(studio, action="booking.hold_expired", target=booking)
    assert event.before == {"status": "awaiting_payment"}


@pytest.mark.django_db(transaction=True)
def test_holds_release_works_on_its_own() -> None:
    studio = factories.studio()
    booking, _ = _hold(studio, _bookable(studio))
    _expire(booking)
    with context.acting_as(context.Actor.system("shell")), studio_scope(studio):
        assert booking_services.holds_release() == 1
    assert _fresh(booking).status == BookingStatus.CANCELLED


def test_release_task_runs_for_each_active_studio_with_expired_holds(studio, other_studio) -> None:
    from bookings.tasks import release_expired_holds

    asleep = factories.studio()
    held = {}
    for s in (studio, other_studio, asleep):
        held[s.pk], _ = _hold(s, _bookable(s))
        _expire(held[s.pk])
    Studio.objects.filter(pk=asleep.pk).update(is_active=False)

    assert release_expired_holds.delay().get() == 2  # eager in tests: one task per studio with work ran inline
    for s in (studio, other_studio):
        booking = _fresh(held[s.pk])
        assert (booking.status, booking.cancel_reason) == (BookingStatus.CANCELLED, "hold_expired")
        (event,) = _events(s, action="booking.hold_expired", target=booking)
        assert event.actor_type == "system"
        assert event.actor_label == "task:bookings.release_expired_holds_for"
    assert _fresh(held[asleep.pk]).status == BookingStatus.HELD


def test_a_new_hold_releases_expired_ones_first(studio) -> None:
    service = _bookable(studio)
    start = _start(service)
    old, _ = _hold(studio, service, start)
    assert _hold_api(studio, service, start).status_code == 409
    _expire(old)
    response = _hold_api(studio, service, start, email="next@example.com")
    assert response.status_code == 201
    assert (_fresh(old).status, _fresh(old).cancel_reason) == (BookingStatus.CANCELLED, "hold_expired")


# --- the client's cancel and reschedule window ------------------------------------------------------


def test_client_cancels_inside_the_window(studio, mailoutbox, django_capture_on_commit_callbacks) -> None:
    assert studio.booking_cancellation_hours == 48
    service = _bookable(studio, name="Family")
    booking, raw = _confirmed(studio, service, _start(service, days=5))
    with django_capture_on_commit_callbacks(execute=True):
        response = APIClient().post(_client(raw, "cancel/"), {}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "cancelled"
    booking = _fresh(booking)
    assert (booking.status, booking.cancel_reason) == (BookingStatus.CANCELLED, "cancelled_by_client")
    (event,) = _events(studio, action="booking.cancelled", target=booking)
    assert event.actor_type == "client"
    assert event.before == {"status": "confirmed"}
    assert event.after == {"status": "cancelled", "reason": "cancelled_by_client"}
    cancellation = [m for m in mailoutbox if m.subject.startswith("Cancelled: Family")]
    assert [m.to for m in cancellation] == [["cleo@example.com"]]
    # Cancelling again is harmless.
    again = APIClient().post(_client(raw, "cancel/"), {}, format="json")
    assert again.status_code == 200
    assert len(_events(studio, action="booking.cancelled")) == 1


def test_client_cannot_cancel_outside_the_window_but_staff_can(studio, make_member, client_for) -> None:
    service = _bookable(studio)
    booking, raw = _confirmed(studio, service, _start_within(service, 26, 46))
    response = APIClient().post(_client(raw, "cancel/"), {}, format="json")
    assert response.status_code == 403
    assert _code(response) == "OUTSIDE_CANCELLATION_WINDOW"
    assert "48 hours" in response.json()["error"]["message"]
    assert _fresh(booking).status == BookingStatus.CONFIRMED
    assert _events(studio, action="booking.cancelled") == []

    assistant = make_member(Role.ASSISTANT)
    response = client_for(assistant).post(_staff(studio, booking, "cancel/"), {"reason": "storm"}, format="json")
    assert response.status_code == 200, response.content
    booking = _fresh(booking)
    assert (booking.status, booking.cancel_reason) == (BookingStatus.CANCELLED, "storm")
    (event,) = _events(studio, action="booking.cancelled", target=booking)
    assert event.actor_type == "user"
    assert event.actor_user_id == assistant.user.pk


def test_client_may_let_go_of_an_unconfirmed_hold_at_any_time(studio) -> None:
    service = _bookable(studio)
    booking, raw = _hold(studio, service, _start_within(service, 26, 46))
    response = APIClient().post(_client(raw, "cancel/"), {}, format="json")
    assert response.status_code == 200
    assert _fresh(booking).status == BookingStatus.CANCELLED


def test_the_window_follows_the_studio_setting(studio) -> None:
    service = _bookable(studio)
    far, far_raw = _confirmed(studio, service, _start(service, days=5))
    near, near_raw = _confirmed(studio, service, _start_within(service, 26, 46))
    Studio.objects.filter(pk=studio.pk).update(booking_cancellation_hours=24 * 10)
    response = APIClient().post(_client(far_raw, "cancel/"), {}, format="json")
    assert response.status_code == 403
    assert "240 hours" in response.json()["error"]["message"]
    Studio.objects.filter(pk=studio.pk).update(booking_cancellation_hours=12)
    assert APIClient().post(_client(near_raw, "cancel/"), {}, format="json").status_code == 200
    assert _fresh(near).status == BookingStatus.CANCELLED
    assert _fresh(far).status == BookingStatus.CONFIRMED


def test_client_reschedules_inside_the_window(studio, mailoutbox, django_capture_on_commit_callbacks) -> None:
    service = _bookable(studio, name="Headshots", buffer_before_minutes=10, buffer_after_minutes=20)
    booking, raw = _confirmed(studio, service, _start(service, days=5))
    target = next(s for s in _slots(service, 6, exclude=booking.pk) if s.hour >= 14)
    sequence = booking.sequence
    with django_capture_on_commit_callbacks(execute=True):
        response = APIClient().post(_client(raw, "reschedule/"), {"start": target.isoformat()}, format="json")
    assert response.status_code == 200, response.content
    booking = _fresh(booking)
    assert booking.starts_at == target
    assert booking.ends_at == target + timedelta(minutes=60)
    assert (booking.blocked_start, booking.blocked_end) == (
        target - timedelta(minutes=10),
        target + timedelta(minutes=80),
    )
    assert booking.status == BookingStatus.CONFIRMED
    assert booking.sequence == sequence + 1
    (event,) = _events(studio, action="booking.rescheduled", target=booking)
    assert event.actor_type == "client"
    assert event.before["starts_at"] != event.after["starts_at"]
    assert [m.subject.split(":")[0] for m in mail_to(mailoutbox, booking.client_email)] == ["Rescheduled"]
    assert studio_notices(mailoutbox, booking.client_email) == ["Booking moved"]


def test_client_cannot_reschedule_outside_the_window_but_staff_can(studio, make_member, client_for) -> None:
    service = _bookable(studio)
    booking, raw = _confirmed(studio, service, _start_within(service, 26, 46))
    target = _start(service, days=6)
    response = APIClient().post(_client(raw, "reschedule/"), {"start": target.isoformat()}, format="json")
    assert response.status_code == 403
    assert _code(response) == "OUTSIDE_CANCELLATION_WINDOW"
    assert _fresh(booking).starts_at != target
    assert _events(studio, action="booking.rescheduled") == []

    staff = client_for(make_member(Role.ASSISTANT))
    response = staff.post(_staff(studio, booking, "reschedule/"), {"start": target.isoformat()}, format="json")
    assert response.status_code == 200, response.content
    assert _fresh(booking).starts_at == target
    (event,) = _events(studio, action="booking.rescheduled", target=booking)
    assert event.actor_type == "user"


def test_reschedule_to_a_taken_time_is_refused(studio) -> None:
    service = _bookable(studio)
    booking, raw = _confirmed(studio, service, _start(service, days=5))
    taken = _start(service, days=6)
    other, _ = _hold(studio, service, taken, email="eve@example.com")
    overlapping = taken + timedelta(minutes=30)
    for start in (taken, overlapping):
        response = APIClient().post(_client(raw, "reschedule/"), {"start": start.isoformat()}, format="json")
        assert response.status_code == 409
        assert _code(response) == "SLOT_UNAVAILABLE"
    assert _fresh(booking).starts_at != taken
    assert _fresh(other).status == BookingStatus.HELD
    assert _events(studio, action="booking.rescheduled") == []


# --- one journey, every state change audited ----------------------------------------------------------


def test_every_state_change_of_a_paid_booking_is_audited(studio, fake_stripe) -> None:
    service = _bookable(studio, price=200, deposit=50)
    response = _hold_api(studio, service, _start(service, days=5))
    raw = response.json()["token"]
    with studio_scope(studio):
        booking = Booking.objects.get(pk=response.json()["booking"]["id"])
    APIClient().post(_client(raw, "checkout/"))
    (payment,) = _payments(booking)
    _deliver(_event("checkout.session.completed", payment.provider_ref))
    target = _start(service, days=6)
    APIClient().post(_client(raw, "reschedule/"), {"start": target.isoformat()}, format="json")
    APIClient().post(_client(raw, "cancel/"), {}, format="json")

    trail = [(e.action, e.actor_type) for e in _events(studio) if e.target_id in (str(booking.pk), str(payment.pk))]
    assert trail == [
        ("booking.held", "client"),
        ("booking.checkout_started", "client"),
        ("booking.confirmed", "system"),
        ("payment.received", "system"),
        ("booking.rescheduled", "client"),
        ("booking.cancelled", "client"),
    ]


# --- a deposit paid twice ---------------------------------------------------------------------------------


def test_a_deposit_paid_twice_is_flagged_for_refund_and_the_studio_told(
    studio, owner, client_for, fake_stripe, mailoutbox, django_capture_on_commit_callbacks
) -> None:
    """Staff mark the deposit paid (the client paid at the desk), then the
    client also completes the Stripe checkout they had started."""
    booking, _, stripe_payment = _stripe_checkout(studio)
    response = client_for(owner).post(_staff(studio, booking, "mark-paid/"))
    assert response.status_code == 200, response.content
    manual_id = response.json()["id"]
    assert manual_id != str(stripe_payment.pk)  # staff's receipt is a payment of its own
    assert response.json()["provider"] == "manual"
    assert _fresh(booking).status == BookingStatus.CONFIRMED
    assert _fresh(stripe_payment).status == PaymentStatus.PENDING
    mailoutbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        response = _deliver(_event("checkout.session.completed", stripe_payment.provider_ref))

    assert response.status_code == 200
    assert response.json() == {"outcome": "refund needed"}  # not "paid"
    second = _fresh(stripe_payment)
    assert second.status == PaymentStatus.REFUND_NEEDED
    assert second.paid_at is not None
    statuses = {str(p.pk): p.status for p in _payments(booking)}
    assert statuses == {manual_id: PaymentStatus.PAID, str(second.pk): PaymentStatus.REFUND_NEEDED}
    assert _fresh(booking).status == BookingStatus.CONFIRMED
    (notice,) = mailoutbox  # the studio is told; the client gets no second confirmation
    assert notice.subject == "A deposit needs refunding"
    assert notice.to == [owner.user.email]
    assert "already been paid" in notice.body
    assert second.provider_ref in notice.body
    assert f"marked paid by {owner.user.email}" in notice.body
    (received,) = _events(studio, action="payment.received", target=second)
    assert received.after == {"status": "refund_needed", "booking": str(booking.pk), "refund_reason": "already_paid"}
    assert received.actor_label == "webhook:stripe"

    # Stripe reporting the same money again changes nothing and says so again.
    with django_capture_on_commit_callbacks(execute=True):
        again = _deliver(_event("checkout.session.async_payment_succeeded", stripe_payment.provider_ref))
    assert again.json() == {"outcome": "refund needed"}
    assert len(mailoutbox) == 1
    assert len(_events(studio, action="payment.received", target=second)) == 1


def test_paid_on_stripe_first_then_marked_paid_is_refused(studio, owner, client_for, fake_stripe) -> None:
    booking, _, payment = _stripe_checkout(studio)
    assert _deliver(_event("checkout.session.completed", payment.provider_ref)).json() == {"outcome": "paid"}
    response = client_for(owner).post(_staff(studio, booking, "mark-paid/"))
    assert response.status_code == 409
    assert _code(response) == "ALREADY_PAID"
    assert [p.status for p in _payments(booking)] == [PaymentStatus.PAID]


@pytest.mark.parametrize("lapse", ["hold released", "expired delivered"])
def test_the_webhook_outcome_says_refund_needed_when_the_slot_was_taken(studio, fake_stripe, lapse) -> None:
    service = _bookable(studio, price=200, deposit=50)
    start = _start(service)
    booking, _, payment = _stripe_checkout(studio, service, start)
    if lapse == "hold released":
        _expire(booking)
    else:
        _deliver(_event("checkout.session.expired", payment.provider_ref, payment_status="unpaid"))
    _hold(studio, service, start, email="eve@example.com")
    response = _deliver(_event("checkout.session.completed", payment.provider_ref))
    assert response.json() == {"outcome": "refund needed"}
    (received,) = _events(studio, action="payment.received", target=payment)
    assert received.after["refund_reason"] == "slot_taken"


def test_a_deposit_for_a_booking_the_client_cancelled_is_flagged_for_refund(
    studio, fake_stripe, mailoutbox, django_capture_on_commit_callbacks
) -> None:
    booking, raw, payment = _stripe_checkout(studio)
    assert APIClient().post(_client(raw, "cancel/"), {}, format="json").status_code == 200
    mailoutbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = _deliver(_event("checkout.session.completed", payment.provider_ref))
    assert response.json() == {"outcome": "refund needed"}
    assert _fresh(booking).status == BookingStatus.CANCELLED
    (notice,) = mailoutbox
    assert "cancelled or completed" in notice.body


@pytest.mark.django_db(transaction=True)
def test_marking_paid_while_the_stripe_payment_arrives_records_one_deposit(threaded_db, settings, monkeypatch) -> None:
    """Staff's transaction is still open (the booking locked) when Stripe's
    delivery comes in: the delivery waits, then sees the deposit and flags
    its own money for a refund."""
    import threading

    from django.db import connection

    from tests.conftest import ON_POSTGRES

    settings.PAYMENT_PROVIDER, settings.STRIPE_SECRET_KEY = "stripe", "sk_test_x"
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    fake = FakeStripe()
    monkeypatch.setattr(providers, "provider", lambda: providers.StripeProvider(client=fake))
    studio = factories.studio()
    owner = factories.owner_membership(studio)
    booking, _, payment = _stripe_checkout(studio)
    request_pid = None
    if ON_POSTGRES:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            (request_pid,) = cursor.fetchone()
    recorded, outcome = threading.Event(), {}

    def staff() -> None:
        try:
            with transaction.atomic():
                with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
                    booking_services.payment_mark_paid(booking=booking, user=owner.user)
                recorded.set()
                deadline = clock.monotonic() + (20 if ON_POSTGRES else 0.5)
                while clock.monotonic() < deadline:  # commit once the delivery waits for our lock
                    if ON_POSTGRES:
                        with connection.cursor() as cursor:
                            cursor.execute("SELECT 1 FROM pg_locks WHERE pid = %s AND NOT granted", [request_pid])
                            if cursor.fetchone():
                                outcome["delivery waited"] = True
                                break
                    clock.sleep(0.01)
            outcome["staff"] = "committed"
        except BaseException as exc:  # noqa: BLE001 - checked below
            outcome["staff"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=staff, daemon=True)
    thread.start()
    assert recorded.wait(timeout=20)
    response = _deliver(_event("checkout.session.completed", payment.provider_ref))
    thread.join(timeout=30)
    assert outcome.get("staff") == "committed", outcome
    assert outcome.get("delivery waited") or not ON_POSTGRES  # the race really happened
    assert response.json() == {"outcome": "refund needed"}
    statuses = sorted((p.provider, p.status) for p in _payments(booking))
    assert statuses == [("manual", PaymentStatus.PAID), ("stripe", PaymentStatus.REFUND_NEEDED)]
    assert _fresh(booking).status == BookingStatus.CONFIRMED


# --- webhooks that are signed but malformed -------------------------------------------------------------------


def _signed(body: Any) -> Any:
    payload = body if isinstance(body, str) else json.dumps(body)
    return APIClient().post(
        WEBHOOK_URL, data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=_signature(payload)
    )


def _completed(**session: Any) -> dict[str, Any]:
    body = _event("checkout.session.completed", "cs_test_x", event_id="evt_malformed")
    body["data"]["object"].update(session)
    return body


@pytest.mark.parametrize(
    "body",
    [
        {"id": "evt_1", "object": "event", "type": "checkout.session.completed"},
        {"id": "evt_1", "object": "event", "type": "checkout.session.completed", "data": None},
        {"id": "evt_1", "object": "event", "type": "checkout.session.expired", "data": {}},
        {"id": "evt_1", "object": "event", "type": "checkout.session.completed", "data": {"object": None}},
        {"id": "evt_1", "object": "event", "type": "checkout.session.completed", "data": {"object": "cs_1"}},
        {"id": "evt_1", "object": "event", "type": "checkout.session.completed", "data": {"object": {}}},
        {"id": "evt_1", "object": "event", "type": "checkout.session.completed", "data": {"object": {"id": 7}}},
        {"id": "evt_1", "object": "event", "type": "checkout.session.completed", "data": []},
        _completed(amount_total="fifty"),
        _completed(amount_total=50.5),
        _completed(amount_total=True),
        {"object": "event", "type": "checkout.session.completed", "data": {"object": {"id": "cs_1"}}},
        {"id": "evt_" + "x" * 300, "object": "event", "type": "checkout.session.completed"},
        {"id": "evt_1", "object": "event", "data": {"object": {"id": "cs_1"}}},
        {"id": ["evt_1"], "object": "event", "type": "checkout.session.completed"},
        [],
        "null",
        '"evt"',
        "{not json",
    ],
)
def test_a_signed_webhook_of_the_wrong_shape_is_a_400(studio, fake_stripe, body) -> None:
    booking, _, payment = _stripe_checkout(studio)
    state, events = _state(booking, payment), len(_events(studio))
    response = _signed(body)
    assert response.status_code == 400, response.content
    assert _code(response) == "INVALID_WEBHOOK"
    assert not WebhookEvent.objects.exists()
    assert _state(booking, payment) == state
    assert len(_events(studio)) == events


def test_a_signed_webhook_of_another_type_without_data_is_ignored(fake_stripe) -> None:
    response = _signed({"id": "evt_2", "object": "event", "type": "customer.created"})
    assert response.status_code == 200
    assert response.json() == {"outcome": "ignored"}


# --- Stripe unreachable at checkout ----------------------------------------------------------------------


class FailingHTTP(CannedHTTP):
    """stripe-python's HTTP layer failing as it does: a connection error, or
    an answer from Stripe that is an outage (5xx) or a rate limit (429)."""

    def __init__(self, failure: str) -> None:
        super().__init__()
        self.failure = failure

    def request(self, method, url, headers, post_data=None, *, _usage=None):  # noqa: ANN001, ANN201
        self.requests.append((method, url, dict(headers or {}), post_data))
        if self.failure == "connection":
            raise stripe.APIConnectionError("Could not connect to Stripe (connection refused).")
        status = {"outage": 503, "rate limit": 429}[self.failure]
        body = {"error": {"type": "api_error", "message": "Stripe is having a bad day."}}
        return json.dumps(body), status, {"Request-Id": "req_down"}


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nobody listens once it is closed


@pytest.mark.parametrize("failure", ["connection", "outage", "rate limit", "closed port"])
def test_an_unreachable_stripe_answers_503_and_keeps_the_hold(studio, settings, monkeypatch, failure) -> None:
    settings.PAYMENT_PROVIDER, settings.STRIPE_SECRET_KEY = "stripe", "sk_test_x"
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    if failure == "closed port":  # the real HTTP client, a real refused connection
        client = stripe.StripeClient(
            "sk_test_x", base_addresses={"api": f"http://127.0.0.1:{_closed_port()}"}, max_network_retries=0
        )
    else:
        client = stripe.StripeClient("sk_test_x", http_client=FailingHTTP(failure), max_network_retries=0)
    monkeypatch.setattr(providers, "provider", lambda: providers.StripeProvider(client=client))
    booking, raw = _hold(studio, _bookable(studio, price=200, deposit=50))
    held = _fresh(booking)

    response = APIClient().post(_client(raw, "checkout/"))

    assert response.status_code == 503, response.content
    assert _code(response) == "PAYMENT_PROVIDER_UNAVAILABLE"
    assert "still held" in response.json()["error"]["message"]
    after = _fresh(booking)
    assert (after.status, after.hold_expires_at, after.sequence) == (
        BookingStatus.HELD,
        held.hold_expires_at,
        held.sequence,
    )
    (payment,) = _payments(booking)
    assert (payment.status, payment.provider_ref, payment.checkout_url) == (PaymentStatus.PENDING, "", "")
    assert _events(studio, action="booking.checkout_started") == []
    assert booking.starts_at not in _slots(booking.service, (booking.starts_at.date() - timezone.now().date()).days)

    # Stripe is back: the same payment (and idempotency key) is used.
    fake = FakeStripe()
    monkeypatch.setattr(providers, "provider", lambda: providers.StripeProvider(client=fake))
    retry = APIClient().post(_client(raw, "checkout/"))
    assert retry.status_code == 200, retry.content
    assert retry.json()["status"] == "awaiting_payment"
    (call,) = fake.calls
    assert call["options"] == {"idempotency_key": f"checkout-{payment.pk}"}
    assert [p.pk for p in _payments(booking)] == [payment.pk]


def test_a_refused_stripe_key_is_not_reported_as_an_outage(studio, settings, monkeypatch) -> None:
    """Retrying would not help: a server error (500, logged), not 503."""

    class Refused(CannedHTTP):
        def request(self, method, url, headers, post_data=None, *, _usage=None):  # noqa: ANN001, ANN201
            body = {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided."}}
            return json.dumps(body), 401, {"Request-Id": "req_key"}

    settings.PAYMENT_PROVIDER, settings.STRIPE_SECRET_KEY = "stripe", "sk_test_wrong"
    client = stripe.StripeClient("sk_test_wrong", http_client=Refused(), max_network_retries=0)
    monkeypatch.setattr(providers, "provider", lambda: providers.StripeProvider(client=client))
    _, raw = _hold(studio, _bookable(studio, price=200, deposit=50))
    api = APIClient()
    api.raise_request_exception = False
    response = api.post(_client(raw, "checkout/"))
    assert response.status_code == 500


# --- the system check: Stripe without its webhook secret ----------------------------------------------------


def _check_ids(**kwargs: Any) -> set[str]:
    from django.core.checks import run_checks

    return {message.id for message in run_checks(**kwargs) if message.id and message.id.startswith("studio.")}


@pytest.mark.parametrize(
    ("provider", "key", "webhook_secret", "expected"),
    [
        ("stripe", "sk_live_x", "", {"studio.E002"}),
        ("stripe", "", "whsec_x", {"studio.E001"}),
        ("stripe", "", "", {"studio.E001", "studio.E002"}),
        ("stripe", "sk_live_x", "whsec_x", set()),
        ("manual", "sk_live_x", "", set()),  # Stripe not used: nothing to sign
        ("manual", "", "", set()),
    ],
)
def test_the_stripe_settings_are_checked(settings, provider, key, webhook_secret, expected) -> None:
    settings.PAYMENT_PROVIDER, settings.STRIPE_SECRET_KEY, settings.STRIPE_WEBHOOK_SECRET = (
        provider,
        key,
        webhook_secret,
    )
    assert _check_ids() == expected
    assert _check_ids(include_deployment_checks=True) == expected


def test_check_deploy_fails_on_stripe_without_its_webhook_secret(settings) -> None:
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    settings.PAYMENT_PROVIDER, settings.STRIPE_SECRET_KEY, settings.STRIPE_WEBHOOK_SECRET = "stripe", "sk_live_x", ""
    with pytest.raises(SystemCheckError) as refused:
        call_command("check", "--deploy")
    assert "studio.E002" in str(refused.value)
    assert "STRIPE_WEBHOOK_SECRET" in str(refused.value)
    settings.STRIPE_WEBHOOK_SECRET = "whsec_x"
    call_command("check", "--tag", "payments")  # no error left
