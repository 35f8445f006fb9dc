"""Nothing a client did is lost because mail or the broker is down.

Faults are real: an SMTP server on loopback that refuses (aiosmtpd), a
closed SMTP port, and a Celery broker URL where nothing listens, driven
through the public endpoints. The email log proves exactly-once delivery
across retries, duplicated tasks, concurrent tasks and repeated queueing.

Tests that need the request's own commit (on_commit callbacks running as in
production) use ``transaction=True``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from celery.exceptions import Retry
from django.core import mail
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from bookings import notifications, providers
from bookings import services as booking_services
from bookings.models import Booking, BookingStatus, ContactSubmission
from galleries.models import Asset, AssetStatus
from galleries.tasks import sweep_stuck_assets
from studio import context, emails, tasks
from studio.models import EmailLog, EmailStatus, User
from studio.roles import Role
from studio.tenancy import studio_scope, unscoped
from tests import factories
from tests.gallery_helpers import jpeg, make_gallery, upload
from tests.mail_server import ACCEPT, PERMANENT, TEMPORARY, MailServer, free_port, point_mail_at
from tests.test_bookings_api import _anon, _bookable, _public

pytestmark = pytest.mark.django_db


@pytest.fixture
def smtp(settings) -> Iterator[MailServer]:
    server = MailServer().start()
    point_mail_at(settings, server.port)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smtp_closed(settings) -> int:
    """Mail pointed at a port where nothing listens: connection refused."""
    port = free_port()
    point_mail_at(settings, port)
    return port


def _reset_broker_pools() -> None:
    from studio.celery import app

    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def broker_down(settings) -> Iterator[None]:
    """Tasks really go to a broker (not eager), and nothing listens there."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"
    _reset_broker_pools()
    try:
        yield
    finally:
        _reset_broker_pools()


@contextlib.contextmanager
def broker_back(settings: Any) -> Iterator[None]:
    settings.CELERY_TASK_ALWAYS_EAGER = True
    _reset_broker_pools()
    yield


def _rows(**filters: Any) -> list[EmailLog]:
    with unscoped():
        return list(EmailLog.objects.filter(**filters).order_by("created_at"))


def _row(**filters: Any) -> EmailLog:
    rows = _rows(**filters)
    assert len(rows) == 1, rows
    return rows[0]


def _time_passes(row: EmailLog) -> None:
    """The row's next attempt is due (instead of waiting for its backoff)."""
    with unscoped():
        EmailLog.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now() - timedelta(hours=1))


def _held_booking(studio: Any, *, deposit: int = 0) -> tuple[Booking, str]:
    """A slot held through the public API; returns the booking and its token."""
    service, start = _bookable(studio, price=100, deposit=deposit)
    response = _anon().post(
        _public(studio, "holds/"),
        {"service": str(service.pk), "start": start.isoformat(), "name": "Casey", "email": "casey@example.com"},
        format="json",
    )
    assert response.status_code == 201, response.content
    with unscoped():
        booking = Booking.objects.get(pk=response.json()["booking"]["id"])
    return booking, response.json()["token"]


def _confirm(token: str) -> Any:
    return _anon().post(f"/api/v1/public/bookings/{token}/confirm/", format="json")


# --- SMTP down: the request answers as usual, the email goes out later ------------------------------


@pytest.mark.django_db(transaction=True)
def test_booking_confirm_with_smtp_refused_answers_200_and_sends_once_later(settings, smtp_closed):
    studio = factories.studio()
    booking, token = _held_booking(studio)

    response = _confirm(token)

    assert response.status_code == 200, response.content
    assert response.json()["status"] == BookingStatus.CONFIRMED
    row = _row(kind=notifications.CONFIRMATION)
    assert (row.status, row.attempts, row.recipient) == (EmailStatus.QUEUED, 1, "casey@example.com")
    assert "Connection refused" in row.last_error or "ConnectionRefused" in row.last_error
    assert row.next_attempt_at > timezone.now() + timedelta(seconds=20)  # backed off, not hammering

    # The server comes back; the sweeper (Celery beat) finds the row due.
    server = MailServer().start()
    try:
        point_mail_at(settings, server.port)
        assert tasks.sweep_email() == 0  # not due yet: its backoff runs
        _time_passes(row)
        assert tasks.sweep_email() == 1
        row.refresh_from_db()
        assert (row.status, row.attempts, row.last_error) == (EmailStatus.SENT, 2, "")
        assert len(server.messages) == 1
        assert server.messages[0]["Subject"].startswith("Confirmed:")
        assert server.messages[0]["Message-ID"] == f"<{row.pk}@localhost>"
        # Sweeping again, or a duplicated task, sends nothing more.
        _time_passes(row)
        assert tasks.sweep_email() == 0
        assert tasks.send_email.apply(args=[str(row.pk)]).get() == "skipped"
        assert len(server.messages) == 1
    finally:
        server.stop()


@pytest.mark.django_db(transaction=True)
def test_contact_form_with_smtp_refusing_answers_202_and_keeps_the_enquiry(smtp):
    smtp.answer(TEMPORARY)
    studio = factories.studio()
    response = _anon().post(
        _public(studio, "contact/"),
        {"name": "Robin", "email": "robin@example.com", "message": "Do you shoot weddings in June?"},
        format="json",
    )
    assert response.status_code == 202, response.content
    with studio_scope(studio):
        assert ContactSubmission.objects.filter(email="robin@example.com").exists()
    row = _row(kind=notifications.CONTACT)
    assert (row.status, row.attempts) == (EmailStatus.QUEUED, 1)
    assert "451" in row.last_error
    assert smtp.messages == []

    smtp.answer(ACCEPT)
    _time_passes(row)
    tasks.sweep_email()
    row.refresh_from_db()
    assert row.status == EmailStatus.SENT
    assert [m["Subject"] for m in smtp.messages] == ["New enquiry from Robin"]


@pytest.mark.django_db(transaction=True)
def test_invitation_with_smtp_down_answers_201_and_the_link_arrives_later(settings, smtp_closed, client_for):
    studio = factories.studio()
    owner = factories.owner_membership(studio)
    response = client_for(owner).post(
        f"/api/v1/studios/{studio.slug}/invitations/", {"email": "new@example.com", "role": "viewer"}, format="json"
    )
    assert response.status_code == 201, response.content
    row = _row(kind="member.invitation")
    assert row.status == EmailStatus.QUEUED and row.sensitive and "/invitations/" in row.body

    server = MailServer().start()
    try:
        point_mail_at(settings, server.port)
        _time_passes(row)
        tasks.sweep_email()
        row.refresh_from_db()
        assert row.status == EmailStatus.SENT
        # HTML and plain text since the emails moved onto the shared templates.
        text, html = (part.get_payload(decode=True).decode() for part in server.messages[0].get_payload())
        assert "/invitations/" in text and "/invitations/" in html
        # The raw token lived only until the email went: the log keeps no copy.
        assert (row.body, row.attachments) == ("", [])
    finally:
        server.stop()


@pytest.mark.django_db(transaction=True)
def test_signup_with_smtp_down_still_signs_up_and_verification_mail_is_queued(smtp_closed, settings):
    settings.SIGNUP_MODE = "open"
    response = Client(REMOTE_ADDR="10.77.1.1").post(
        reverse("account_signup"),
        {"email": "late-mail@example.com", "password1": "a-long-unusual-phrase", "password2": "a-long-unusual-phrase"},
    )
    assert response.status_code == 302
    assert User.objects.filter(email="late-mail@example.com").exists()
    row = _row(recipient="late-mail@example.com")
    assert row.studio_id is None and row.kind == "account.email_confirmation_signup"
    assert row.status == EmailStatus.QUEUED and row.attempts == 1


def test_reminder_is_marked_sent_only_when_the_log_says_so(smtp, settings, django_capture_on_commit_callbacks):
    studio = factories.studio()
    start = timezone.now() + timedelta(hours=5)
    booking = factories.booking(studio, start=start, status="confirmed")
    smtp.answer(TEMPORARY)
    with (
        context.acting_as(factories.TEST_ACTOR),
        studio_scope(studio),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert booking_services.reminders_send() == 1
    booking.refresh_from_db()
    assert booking.reminder_sent_at is None  # before: stamped here, then the send raised
    row = _row(kind=notifications.REMINDER)
    assert row.status == EmailStatus.QUEUED

    # The next beat run does not queue it twice; the retry sends it.
    with (
        context.acting_as(factories.TEST_ACTOR),
        studio_scope(studio),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert booking_services.reminders_send() == 0
    smtp.answer(ACCEPT)
    _time_passes(row)
    emails.email_send(email_id=row.pk)
    row.refresh_from_db()
    booking.refresh_from_db()
    assert row.status == EmailStatus.SENT
    assert booking.reminder_sent_at == row.sent_at
    assert [m["To"] for m in smtp.messages] == [booking.client_email]


def test_a_permanent_rejection_fails_at_once_and_is_not_retried(smtp, django_capture_on_commit_callbacks):
    smtp.answer(PERMANENT)
    studio = factories.studio()
    with studio_scope(studio), django_capture_on_commit_callbacks(execute=True):
        (row,) = emails.email_queue(kind="test.kind", to=["nobody@example.com"], subject="Hi", body="x", key="k1")
    row.refresh_from_db()
    assert (row.status, row.attempts) == (EmailStatus.FAILED, 1)
    assert "550" in row.last_error
    _time_passes(row)
    assert tasks.sweep_email() == 0


def test_attempts_stop_at_the_limit_with_backoff_between(smtp_closed, settings, django_capture_on_commit_callbacks):
    settings.EMAIL_MAX_ATTEMPTS = 3
    studio = factories.studio()
    with studio_scope(studio), django_capture_on_commit_callbacks(execute=True):
        (row,) = emails.email_queue(
            kind="test.kind", to=["a@example.com"], subject="Hi", body="secret link", key="k2", sensitive=True
        )
    delays = []
    for _ in range(2):
        row.refresh_from_db()
        delays.append(round((row.next_attempt_at - row.updated_at).total_seconds()))
        _time_passes(row)
        emails.email_send(email_id=row.pk)
    row.refresh_from_db()
    assert delays == [30, 60]
    assert (row.status, row.attempts) == (EmailStatus.FAILED, 3)
    assert row.body == ""  # a sensitive body is not kept once given up
    assert [emails.retry_delay(n) for n in (1, 2, 3, 8, 9, 20)] == [30, 60, 120, 3600, 3600, 3600]


# --- exactly once -----------------------------------------------------------------------------------


def test_the_same_email_queued_twice_is_one_row_and_one_message(smtp, django_capture_on_commit_callbacks):
    studio = factories.studio()
    with studio_scope(studio), django_capture_on_commit_callbacks(execute=True):
        first = emails.email_queue(kind="t", to=["x@example.com", "X@example.com "], subject="s", body="b", key="same")
        again = emails.email_queue(kind="t", to=["x@example.com"], subject="s", body="b", key="same")
    assert len(first) == 1 and again == []
    assert len(smtp.messages) == 1


def test_a_task_run_twice_sends_once(smtp, django_capture_on_commit_callbacks):
    studio = factories.studio()
    with studio_scope(studio), django_capture_on_commit_callbacks() as queued:
        (row,) = emails.email_queue(kind="t", to=["y@example.com"], subject="s", body="b", key="twice")
    assert len(queued) == 1  # one task asked for, after commit
    assert tasks.send_email.apply(args=[str(row.pk)]).get() == EmailStatus.SENT
    assert tasks.send_email.apply(args=[str(row.pk)]).get() == "skipped"
    assert emails.email_send(email_id=row.pk).status == "skipped"
    assert len(smtp.messages) == 1
    row.refresh_from_db()
    assert (row.status, row.attempts) == (EmailStatus.SENT, 1)


@pytest.mark.django_db(transaction=True)
def test_concurrent_tasks_for_one_email_send_it_once(smtp, threaded_db):
    studio = factories.studio()
    with studio_scope(studio), transaction.atomic():
        (row,) = emails.email_queue(kind="t", to=["z@example.com"], subject="s", body="b", key="race")
    smtp.messages.clear()  # the commit above already sent it through the eager task
    with unscoped():
        EmailLog.objects.filter(pk=row.pk).update(status=EmailStatus.QUEUED, attempts=0, sent_at=None)
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        try:
            barrier.wait()
            outcomes.append(emails.email_send(email_id=row.pk).status)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [EmailStatus.SENT] + ["skipped"] * 7
    assert len(smtp.messages) == 1


def test_a_rolled_back_change_queues_nothing(smtp, django_capture_on_commit_callbacks):
    studio = factories.studio()
    with (
        studio_scope(studio),
        django_capture_on_commit_callbacks(execute=True) as queued,
        contextlib.suppress(RuntimeError),
        transaction.atomic(),
    ):
        emails.email_queue(kind="t", to=["r@example.com"], subject="s", body="b", key="rollback")
        raise RuntimeError("the change failed")
    assert queued == [] and _rows(idempotency_key__startswith="rollback") == [] and smtp.messages == []


def test_a_worker_that_died_mid_send_is_swept_and_the_repeat_keeps_the_message_id(
    smtp, settings, django_capture_on_commit_callbacks
):
    """The one case of two deliveries (documented in studio.emails): both
    carry the same Message-ID, so mail clients show one message."""
    studio = factories.studio()
    with studio_scope(studio), django_capture_on_commit_callbacks(execute=True):
        (row,) = emails.email_queue(kind="t", to=["w@example.com"], subject="s", body="b", key="died")
    # The server accepted it, then the worker died before recording "sent".
    with unscoped():
        EmailLog.objects.filter(pk=row.pk).update(
            status=EmailStatus.SENDING, sent_at=None, claimed_at=timezone.now() - timedelta(hours=1)
        )
    assert tasks.sweep_email() == 1
    row.refresh_from_db()
    assert row.status == EmailStatus.SENT and row.attempts == 2
    assert [m["Message-ID"] for m in smtp.messages] == [f"<{row.pk}@localhost>"] * 2


def test_a_retry_is_scheduled_on_a_worker_with_the_backoff(
    smtp_closed, monkeypatch, django_capture_on_commit_callbacks
):
    studio = factories.studio()
    with studio_scope(studio), django_capture_on_commit_callbacks():
        (row,) = emails.email_queue(kind="t", to=["q@example.com"], subject="s", body="b", key="retry")
    asked: list[float] = []

    def retry(countdown: float) -> Retry:
        asked.append(countdown)
        return Retry("again", when=countdown)

    monkeypatch.setattr(tasks.send_email, "retry", retry)
    tasks.send_email.push_request(is_eager=False, id="worker-run", retries=0)
    try:
        with pytest.raises(Retry):
            tasks.send_email.run(str(row.pk))
    finally:
        tasks.send_email.pop_request()
    assert asked == [30]


# --- the broker down ----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_booking_confirm_with_the_broker_down_answers_200_and_the_sweeper_sends_later(settings, smtp, broker_down):
    studio = factories.studio()
    booking, token = _held_booking(studio)
    response = _confirm(token)
    assert response.status_code == 200, response.content
    with studio_scope(studio):
        assert Booking.objects.get(pk=booking.pk).status == BookingStatus.CONFIRMED
    row = _row(kind=notifications.CONFIRMATION)
    assert (row.status, row.attempts) == (EmailStatus.QUEUED, 0)  # recorded, never handed over
    assert tasks.sweep_email() == 0  # the sweeper itself survives a dead broker

    with broker_back(settings):
        with unscoped():
            EmailLog.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now() - timedelta(minutes=5))
        assert tasks.sweep_email() == 1
    row.refresh_from_db()
    assert row.status == EmailStatus.SENT
    assert len(smtp.messages) == 1


@pytest.mark.django_db(transaction=True)
def test_upload_complete_with_the_broker_down_answers_200_and_the_sweeper_makes_derivatives(settings, broker_down):
    studio = factories.studio()
    gallery = make_gallery(studio)
    staff = APIClient()
    staff.force_authenticate(factories.owner_membership(studio).user)
    done = upload(staff, studio, gallery, [("a.jpg", jpeg(), "image/jpeg"), ("b.jpg", jpeg(320, 200), "image/jpeg")])
    assert len(done["processing"]) == 2
    with studio_scope(studio):
        assets = list(Asset.objects.filter(gallery=gallery))
    assert {(a.status, a.derivatives_queued_at) for a in assets} == {(AssetStatus.PROCESSING, None)}
    assert sweep_stuck_assets() == 0  # too fresh, and the broker is still down

    with broker_back(settings):
        with unscoped():
            Asset.objects.filter(gallery=gallery).update(updated_at=timezone.now() - timedelta(minutes=5))
        assert sweep_stuck_assets() == 2
    with studio_scope(studio):
        assert set(Asset.objects.filter(gallery=gallery).values_list("status", flat=True)) == {AssetStatus.READY}


def test_every_studio_role_can_still_be_told(settings):
    """Studio alerts go to the contact address, or else to every owner."""
    studio = factories.studio()
    owner = factories.owner_membership(studio)
    factories.member(studio, Role.ADMIN)
    with studio_scope(studio):
        assert notifications.studio_recipients(studio) == [owner.user.email]
    # A deactivated owner's mailbox hears nothing (bookings used to mail it).
    gone = factories.member(studio, Role.OWNER)
    gone.user.is_active = False
    gone.user.save(update_fields=["is_active"])
    assert notifications.studio_recipients(studio) == [owner.user.email]
    studio.contact_email = "desk@example.com"
    assert notifications.studio_recipients(studio) == ["desk@example.com"]


def test_mail_in_tests_defaults_to_the_outbox(django_capture_on_commit_callbacks):
    """The locmem backend still sees every message through the same path."""
    studio = factories.studio()
    with studio_scope(studio), django_capture_on_commit_callbacks(execute=True):
        emails.email_queue(kind="t", to=["o@example.com"], subject="Outbox", body="b", key="outbox")
    assert [m.subject for m in mail.outbox] == ["Outbox"]


# --- no network call while a row lock is held ---------------------------------------------------------


def _locked_elsewhere(model: type, pk: Any, studio: Any) -> bool:
    """On PostgreSQL: is the row locked by another transaction? Asked from a
    second connection with NOWAIT, in a thread of its own."""
    from django.db import DatabaseError

    answer: list[bool] = []

    def probe() -> None:
        try:
            with studio_scope(studio), transaction.atomic():
                list(model.objects.select_for_update(nowait=True).filter(pk=pk))
            answer.append(False)
        except DatabaseError:
            answer.append(True)
        finally:
            connection.close()

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    return answer[0]


@pytest.mark.django_db(transaction=True)
def test_upload_complete_checks_storage_with_no_transaction_open(monkeypatch):
    from django.db import connections

    from galleries.storage import LocalMediaStore

    studio = factories.studio()
    gallery = make_gallery(studio)
    staff = APIClient()
    staff.force_authenticate(factories.owner_membership(studio).user)
    request_connection = connections["default"]
    seen: list[tuple[str, bool, bool]] = []
    real_peek, real_copy = LocalMediaStore.peek, LocalMediaStore.copy

    def watched(name: str, real: Any) -> Any:
        def call(self: Any, key: str, *args: Any, **kwargs: Any) -> Any:
            # Upload keys are "<asset id>-<random>.<ext>": the asset's row is the one to probe.
            asset_id = key.rsplit("/", 1)[-1][:36]
            locked = connection.vendor == "postgresql" and _locked_elsewhere(Asset, asset_id, studio)
            seen.append((name, request_connection.in_atomic_block, locked))
            return real(self, key, *args, **kwargs)

        return call

    monkeypatch.setattr(LocalMediaStore, "peek", watched("peek", real_peek))
    monkeypatch.setattr(LocalMediaStore, "copy", watched("copy", real_copy))
    files = [(f"p{i}.jpg", jpeg(64 + i, 48), "image/jpeg") for i in range(5)]
    done = upload(staff, studio, gallery, files)

    assert len(done["processing"]) == 5
    # One ranged read and one copy to the final key per file.
    assert len(seen) == 10 and {name for name, _, _ in seen} == {"peek", "copy"}
    # Before: every HEAD and read ran inside the transaction, the rows locked.
    assert not any(in_transaction or locked for _, in_transaction, locked in seen), seen


class _WatchingProvider(providers.PaymentProvider):
    """A provider that notes, during its network call, whether the booking is
    locked (PostgreSQL) or a transaction is open; one checkout per payment,
    as Stripe's idempotency key gives."""

    name = "stripe"

    def __init__(self, request_connection: Any, during: Any = None) -> None:
        self.request_connection = request_connection
        self.during = during
        self.calls: list[tuple[str, bool, bool]] = []
        self.lock = threading.Lock()

    def create_checkout(self, payment: Any, *, success_url: str, cancel_url: str) -> Any:
        from bookings.providers import Checkout

        locked = connection.vendor == "postgresql" and _locked_elsewhere(
            Booking, payment.booking_id, payment.booking.studio
        )
        with self.lock:
            self.calls.append((str(payment.pk), self.request_connection.in_atomic_block, locked))
        if self.during is not None:
            self.during(payment)
        ref = f"cs_test_{payment.pk}"
        return Checkout(reference=ref, url=f"https://checkout.example/{ref}")


@pytest.mark.django_db(transaction=True)
def test_checkout_calls_the_provider_with_no_lock_held(monkeypatch):
    from django.db import connections

    studio = factories.studio()
    booking, token = _held_booking(studio, deposit=50)
    provider = _WatchingProvider(connections["default"])
    monkeypatch.setattr(providers, "provider", lambda: provider)

    response = _anon().post(f"/api/v1/public/bookings/{token}/checkout/", format="json")

    assert response.status_code == 200, response.content
    assert response.json()["status"] == BookingStatus.AWAITING_PAYMENT
    assert [(in_tx, locked) for _, in_tx, locked in provider.calls] == [(False, False)]
    # Checking out again reuses the checkout: no second call, no longer hold.
    with studio_scope(studio):
        hold_until = Booking.objects.get(pk=booking.pk).hold_expires_at
    again = _anon().post(f"/api/v1/public/bookings/{token}/checkout/", format="json")
    assert again.status_code == 200 and len(provider.calls) == 1
    with studio_scope(studio):
        assert Booking.objects.get(pk=booking.pk).hold_expires_at == hold_until


@pytest.mark.django_db(transaction=True)
def test_racing_checkouts_share_one_payment_and_one_checkout(monkeypatch, threaded_db):
    from django.db import connections

    from audit.models import AuditEvent
    from bookings.models import Payment
    from studio.auditing import Action

    studio = factories.studio()
    booking, _ = _held_booking(studio, deposit=50)
    barrier = threading.Barrier(4)
    provider = _WatchingProvider(connections["default"], during=lambda payment: None)
    monkeypatch.setattr(providers, "provider", lambda: provider)
    results: list[str] = []

    def checkout() -> None:
        try:
            barrier.wait()
            with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
                payment = booking_services.booking_checkout(booking=booking, success_url="s", cancel_url="c")
            results.append(str(payment.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=checkout) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 4 and len(set(results)) == 1
    assert {payment_id for payment_id, _, _ in provider.calls} == set(results)  # one idempotency key
    with studio_scope(studio):
        (payment,) = Payment.objects.filter(booking=booking)
        fresh = Booking.objects.get(pk=booking.pk)
        started = AuditEvent.objects.filter(action=Action.BOOKING_CHECKOUT_STARTED, target_id=str(booking.pk))
        assert started.count() == 1  # the hold was extended once
    assert payment.provider_ref == f"cs_test_{payment.pk}"
    assert fresh.status == BookingStatus.AWAITING_PAYMENT


@pytest.mark.django_db(transaction=True)
def test_a_hold_that_lapses_during_the_provider_call_keeps_the_checkout_reference(monkeypatch):
    from django.db import connections

    from bookings.models import Payment

    studio = factories.studio()
    booking, token = _held_booking(studio, deposit=50)

    def lapse(payment: Any) -> None:
        with studio_scope(studio):
            Booking.objects.filter(pk=booking.pk).update(hold_expires_at=timezone.now() - timedelta(seconds=1))

    provider = _WatchingProvider(connections["default"], during=lapse)
    monkeypatch.setattr(providers, "provider", lambda: provider)
    response = _anon().post(f"/api/v1/public/bookings/{token}/checkout/", format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "HOLD_EXPIRED"
    with studio_scope(studio):
        (payment,) = Payment.objects.filter(booking=booking)
        assert Booking.objects.get(pk=booking.pk).status == BookingStatus.HELD
    # A payment made on that checkout is still recognised by the webhook.
    assert payment.provider_ref == f"cs_test_{payment.pk}"
