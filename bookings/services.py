"""Writes for bookings: holds, confirmation, payment, cancel/reschedule, staff
actions, reminders, contact submissions, calendar feeds.

Every change that a calendar should notice bumps ``Booking.sequence`` (the
iCalendar SEQUENCE). Emails go out on commit.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone

from bookings import availability, notifications
from bookings.models import (
    LIVE_STATUSES,
    STUDIO_RESOURCE,
    Booking,
    BookingStatus,
    CalendarFeed,
    ContactSubmission,
    FeedScope,
    Payment,
    PaymentStatus,
    Service,
)
from studio.auditing import Action, audit_record, snapshot
from studio.errors import Conflict, DomainError, Forbidden
from studio.models import hash_token
from studio.roles import scopes_for
from studio.tenancy import current_studio


class SlotUnavailable(Conflict):
    code = "SLOT_UNAVAILABLE"
    default_message = "That time is not available (any more). Pick another slot."


def _booking_snapshot(booking: Booking) -> dict[str, Any]:
    return snapshot(booking, ["service", "starts_at", "ends_at", "status", "resource", "client_email"])


def _touch(booking: Booking, *fields: str) -> None:
    booking.sequence += 1
    booking.save(update_fields=[*fields, "sequence", "updated_at"])


@transaction.atomic
def holds_release(*, now: datetime | None = None) -> int:
    """Holds and unpaid checkouts past their time stop taking their slot
    (status cancelled, reason hold_expired). Runs before every new hold and
    every minute from Celery beat."""
    now = now or timezone.now()
    expired = list(
        Booking.objects.filter(
            status__in=[BookingStatus.HELD, BookingStatus.AWAITING_PAYMENT], hold_expires_at__lte=now
        ).select_for_update()
    )
    for booking in expired:
        before = {"status": booking.status}
        booking.status, booking.cancelled_at, booking.cancel_reason = BookingStatus.CANCELLED, now, "hold_expired"
        _touch(booking, "status", "cancelled_at", "cancel_reason")
        audit_record(action=Action.BOOKING_HOLD_EXPIRED, target=booking, before=before, after={"status": "cancelled"})
    return len(expired)


def _blocked(service: Service, start: datetime) -> tuple[datetime, datetime, datetime]:
    end = start + timedelta(minutes=service.duration_minutes)
    return (
        end,
        start - timedelta(minutes=service.buffer_before_minutes),
        end + timedelta(minutes=service.buffer_after_minutes),
    )


def _serialise_writers(studio: Any) -> None:
    """PostgreSQL: booking writes of one studio take turns (a transaction-level
    advisory lock), so the exclusion constraint is a backstop rather than the
    referee: racing writers checking each other's uncommitted rows deadlock,
    and PostgreSQL only breaks that after deadlock_timeout. SQLite already
    serialises writers."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"bookings:{studio.pk}"])


def _slot_taken(exc: Exception) -> bool:
    """The database refused the time: an exclusion violation, or (PostgreSQL)
    a deadlock between two writers checking each other's uncommitted rows,
    of which it fails one (SQLSTATE 40P01)."""
    if isinstance(exc, IntegrityError):
        return True
    return getattr(exc.__cause__, "sqlstate", None) in ("40P01", "40001")


def _save_or_unavailable(booking: Booking, **save: Any) -> None:
    """Save in a savepoint; a refusal from the database becomes 409."""
    try:
        with transaction.atomic():
            booking.save(**save)
    except (IntegrityError, OperationalError) as exc:
        if not _slot_taken(exc):
            raise
        raise SlotUnavailable() from exc


def _insert(booking: Booking) -> None:
    """The database has the last word: on PostgreSQL the exclusion constraint
    refuses an overlapping live booking that a concurrent request inserted
    after our check."""
    _save_or_unavailable(booking)


@transaction.atomic
def booking_hold(
    *,
    service: Service,
    starts_at: datetime,
    client_name: str,
    client_email: str,
    client_phone: str = "",
    notes: str = "",
    now: datetime | None = None,
) -> tuple[Booking, str]:
    """Hold a slot for BOOKING_HOLD_MINUTES while the client confirms or pays.
    Returns the booking and the raw token of the client's link."""
    now = now or timezone.now()
    if not service.is_active:
        raise DomainError("This service cannot be booked.", code="SERVICE_INACTIVE")
    _serialise_writers(service.studio)
    holds_release(now=now)
    slot = availability.slot_for(service, starts_at, now=now)
    if slot is None:
        raise SlotUnavailable()
    ends_at, blocked_start, blocked_end = _blocked(service, starts_at)
    raw = secrets.token_urlsafe(32)
    booking = Booking(
        studio=service.studio,
        service=service,
        client_name=client_name,
        client_email=client_email,
        client_phone=client_phone,
        notes=notes,
        starts_at=starts_at,
        ends_at=ends_at,
        blocked_start=blocked_start,
        blocked_end=blocked_end,
        resource=slot.resources[0],
        status=BookingStatus.HELD,
        hold_expires_at=now + timedelta(minutes=settings.BOOKING_HOLD_MINUTES),
        token_hash=hash_token(raw),
        deposit_amount=service.deposit,
    )
    _insert(booking)
    if slot.resources[0] != "studio":
        booking.assigned_members.set([slot.resources[0]])
    audit_record(action=Action.BOOKING_HELD, target=booking, after=_booking_snapshot(booking))
    return booking, raw


def _require_hold(booking: Booking, now: datetime) -> None:
    if booking.status not in (BookingStatus.HELD, BookingStatus.AWAITING_PAYMENT):
        raise Conflict(f"This booking is {booking.get_status_display().lower()}.", code="NOT_HELD")
    if booking.hold_expires_at and booking.hold_expires_at <= now:
        raise Conflict("The hold expired. Pick the time again.", code="HOLD_EXPIRED")


def _confirm(booking: Booking, now: datetime) -> Booking:
    booking.status, booking.confirmed_at, booking.hold_expires_at = BookingStatus.CONFIRMED, now, None
    _touch(booking, "status", "confirmed_at", "hold_expires_at")
    audit_record(action=Action.BOOKING_CONFIRMED, target=booking, after={"status": "confirmed"})
    notifications.confirmation_on_commit(booking)
    return booking


@transaction.atomic
def booking_confirm(*, booking: Booking, now: datetime | None = None) -> Booking:
    """Confirm a held booking that needs no deposit."""
    now = now or timezone.now()
    booking = Booking.objects.select_for_update().get(pk=booking.pk)
    if booking.status == BookingStatus.CONFIRMED:
        return booking
    _require_hold(booking, now)
    if booking.deposit_amount > 0:
        raise DomainError("This booking needs its deposit first.", code="DEPOSIT_REQUIRED", status_code=402)
    return _confirm(booking, now)


@transaction.atomic
def booking_checkout(*, booking: Booking, success_url: str, cancel_url: str, now: datetime | None = None) -> Payment:
    """Start paying the deposit. The slot stays held while the checkout lives."""
    from bookings.payments import provider

    now = now or timezone.now()
    booking = Booking.objects.select_for_update().get(pk=booking.pk)
    _require_hold(booking, now)
    if booking.deposit_amount <= 0:
        raise DomainError("This booking needs no deposit: confirm it.", code="NO_DEPOSIT")
    existing = booking.payments.filter(status=PaymentStatus.PENDING).first()
    if existing is not None and booking.status == BookingStatus.AWAITING_PAYMENT:
        # Checking out again reuses the checkout and never extends the hold,
        # or a client could keep a slot held for ever.
        return existing
    payments = provider()
    payment = Payment.objects.create(
        studio=booking.studio,
        booking=booking,
        provider=payments.name,
        amount=booking.deposit_amount,
        currency=booking.service.currency,
    )
    checkout = payments.create_checkout(payment, success_url=success_url, cancel_url=cancel_url)
    payment.provider_ref, payment.checkout_url = checkout.reference, checkout.url
    payment.save(update_fields=["provider_ref", "checkout_url", "updated_at"])
    booking.status = BookingStatus.AWAITING_PAYMENT
    booking.hold_expires_at = now + timedelta(minutes=settings.BOOKING_CHECKOUT_MINUTES)
    _touch(booking, "status", "hold_expires_at")
    audit_record(
        action=Action.BOOKING_CHECKOUT_STARTED,
        target=booking,
        after={"payment": str(payment.pk), "provider": payments.name},
    )
    return payment


@transaction.atomic
def payment_succeeded(*, payment: Payment, now: datetime | None = None) -> Payment:
    """Idempotent: a second delivery changes nothing. If the hold expired
    before the money arrived, the slot is taken back when it is still free;
    otherwise the payment is flagged for a refund."""
    now = now or timezone.now()
    payment = Payment.objects.select_for_update().select_related("booking").get(pk=payment.pk)
    if payment.status in (PaymentStatus.PAID, PaymentStatus.REFUND_NEEDED):
        return payment
    booking = Booking.objects.select_for_update().get(pk=payment.booking_id)
    payment.status, payment.paid_at = PaymentStatus.PAID, now
    if booking.status in (BookingStatus.HELD, BookingStatus.AWAITING_PAYMENT) or (
        booking.status == BookingStatus.CANCELLED
        and booking.cancel_reason in ("hold_expired", "payment_expired")  # the client did not give it up
        and _retake(booking, now)
    ):
        payment.save(update_fields=["status", "paid_at", "updated_at"])
        _confirm(booking, now)
    elif booking.status == BookingStatus.CONFIRMED:
        payment.save(update_fields=["status", "paid_at", "updated_at"])
    else:
        payment.status = PaymentStatus.REFUND_NEEDED
        payment.save(update_fields=["status", "paid_at", "updated_at"])
        notifications.refund_needed_on_commit(payment)
    audit_record(
        action=Action.PAYMENT_RECEIVED, target=payment, after={"status": payment.status, "booking": str(booking.pk)}
    )
    return payment


def _resource_free(resource: str, start: datetime, end: datetime, now: datetime, exclude: Any = None) -> bool:
    clash = Booking.objects.filter(
        availability.live_filter(now), resource=resource, blocked_start__lt=end, blocked_end__gt=start
    )
    if exclude is not None:
        clash = clash.exclude(pk=exclude)
    return not clash.exists()


def _retake(booking: Booking, now: datetime) -> bool:
    """The client chose and paid for this time: take it back if nobody else did."""
    _serialise_writers(booking.studio)
    if not _resource_free(booking.resource, booking.blocked_start, booking.blocked_end, now, exclude=booking.pk):
        return False
    booking.status, booking.cancelled_at, booking.cancel_reason = BookingStatus.AWAITING_PAYMENT, None, ""
    try:
        _save_or_unavailable(booking, update_fields=["status", "cancelled_at", "cancel_reason", "updated_at"])
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
        _touch(booking, "status", "cancelled_at", "cancel_reason")
    audit_record(action=Action.PAYMENT_EXPIRED, target=payment, after={"booking": str(booking.pk)})
    return payment


@transaction.atomic
def payment_mark_paid(*, booking: Booking, user: Any) -> Payment:
    """The manual/offline provider: staff record the deposit as received."""
    # Lock the booking first: two clicks must not record the deposit twice.
    booking = Booking.objects.select_for_update().get(pk=booking.pk)
    if booking.payments.filter(status=PaymentStatus.PAID).exists():
        raise Conflict("The deposit of this booking is already paid.", code="ALREADY_PAID")
    payment = booking.payments.filter(status=PaymentStatus.PENDING).first()
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


def _client_window(booking: Booking, now: datetime) -> None:
    hours = booking.studio.booking_cancellation_hours
    if booking.starts_at - now < timedelta(hours=hours):
        raise Forbidden(
            f"Changes are possible up to {hours} hours before the session. Please contact the studio.",
            code="OUTSIDE_CANCELLATION_WINDOW",
        )


@transaction.atomic
def booking_cancel(*, booking: Booking, by_client: bool, reason: str = "", now: datetime | None = None) -> Booking:
    now = now or timezone.now()
    booking = Booking.objects.select_for_update().get(pk=booking.pk)
    if booking.status == BookingStatus.CANCELLED:
        return booking
    if booking.status == BookingStatus.COMPLETED:
        raise Conflict("A completed booking cannot be cancelled.", code="ALREADY_COMPLETED")
    if by_client and booking.status == BookingStatus.CONFIRMED:
        _client_window(booking, now)
    before = {"status": booking.status}
    booking.status, booking.cancelled_at = BookingStatus.CANCELLED, now
    booking.cancel_reason = reason or ("cancelled_by_client" if by_client else "cancelled_by_studio")
    _touch(booking, "status", "cancelled_at", "cancel_reason")
    audit_record(
        action=Action.BOOKING_CANCELLED,
        target=booking,
        before=before,
        after={"status": "cancelled", "reason": booking.cancel_reason},
    )
    notifications.cancellation_on_commit(booking)
    return booking


@transaction.atomic
def booking_reschedule(
    *, booking: Booking, starts_at: datetime, by_client: bool, now: datetime | None = None
) -> Booking:
    now = now or timezone.now()
    _serialise_writers(booking.studio)
    holds_release(now=now)  # an expired hold must not keep the new time taken
    booking = Booking.objects.select_for_update().select_related("service").get(pk=booking.pk)
    if booking.status not in LIVE_STATUSES:
        raise Conflict(f"This booking is {booking.get_status_display().lower()}.", code="NOT_LIVE")
    if by_client:
        _client_window(booking, now)
    slot = availability.slot_for(booking.service, starts_at, now=now, exclude=booking.pk)
    if slot is None:
        raise SlotUnavailable()
    before = _booking_snapshot(booking)
    booking.starts_at = starts_at
    booking.ends_at, booking.blocked_start, booking.blocked_end = _blocked(booking.service, starts_at)
    resource = booking.resource if booking.resource in slot.resources else slot.resources[0]
    booking.resource = resource
    booking.reminder_sent_at = None  # the new time gets its own reminder
    booking.sequence += 1
    _save_or_unavailable(booking)
    audit_record(action=Action.BOOKING_RESCHEDULED, target=booking, before=before, after=_booking_snapshot(booking))
    if booking.status == BookingStatus.CONFIRMED:
        notifications.confirmation_on_commit(booking, rescheduled=True)
    return booking


@transaction.atomic
def booking_staff_confirm(*, booking: Booking, now: datetime | None = None) -> Booking:
    now = now or timezone.now()
    booking = Booking.objects.select_for_update().get(pk=booking.pk)
    if booking.status == BookingStatus.CONFIRMED:
        return booking
    # An expired hold's time may already be someone else's (holds_release runs each minute).
    _require_hold(booking, now)
    return _confirm(booking, now)


@transaction.atomic
def booking_complete(*, booking: Booking) -> Booking:
    if booking.status != BookingStatus.CONFIRMED:
        raise Conflict("Only a confirmed booking can be completed.", code="NOT_CONFIRMED")
    booking.status = BookingStatus.COMPLETED
    _touch(booking, "status")
    audit_record(action=Action.BOOKING_COMPLETED, target=booking, after={"status": "completed"})
    return booking


@transaction.atomic
def booking_assign(
    *, booking: Booking, members: list[Any] | None = None, team: Any = ..., notes: str | None = None
) -> Booking:
    before = {
        "members": sorted(str(m) for m in booking.assigned_members.values_list("pk", flat=True)),
        "team": str(booking.assigned_team_id) if booking.assigned_team_id else None,
        "notes": booking.notes,
    }
    if members is not None:
        booking.assigned_members.set(members)
    if team is not ...:
        booking.assigned_team = team
    if notes is not None:
        booking.notes = notes
    _touch(booking, "assigned_team", "notes")
    after = {
        "members": sorted(str(m) for m in booking.assigned_members.values_list("pk", flat=True)),
        "team": str(booking.assigned_team_id) if booking.assigned_team_id else None,
        "notes": booking.notes,
    }
    audit_record(action=Action.BOOKING_UPDATED, target=booking, before=before, after=after)
    return booking


def booking_for_token(raw: str) -> Booking:
    from studio.tenancy import unscoped

    with unscoped():  # the token names the booking, whichever studio it is in
        booking = (
            Booking.objects.select_related("studio", "service")
            .filter(token_hash=hash_token(raw), studio__is_active=True)
            .first()
        )
    if booking is None:
        raise DomainError("This booking link is not valid.", code="NOT_FOUND", status_code=404)
    return booking


# --- reminders ------------------------------------------------------------------------------------


def reminders_send(*, now: datetime | None = None) -> int:
    """Reminders for confirmed bookings starting within the next 24 hours,
    once each (reminder_sent_at), whatever the beat interval."""
    now = now or timezone.now()
    due = list(
        Booking.objects.filter(
            status=BookingStatus.CONFIRMED,
            reminder_sent_at__isnull=True,
            starts_at__gt=now,
            starts_at__lte=now + timedelta(hours=settings.BOOKING_REMINDER_HOURS),
        ).select_related("service", "studio")
    )
    for booking in due:
        with transaction.atomic():
            claimed = Booking.objects.filter(pk=booking.pk, reminder_sent_at__isnull=True).update(reminder_sent_at=now)
            if claimed:  # another worker did not get there first
                notifications.reminder_on_commit(booking)
    return len(due)


# --- contact ------------------------------------------------------------------------------------------


@transaction.atomic
def contact_submit(
    *, name: str, email: str, message: str, phone: str = "", service: Service | None = None, ip: str | None = None
) -> ContactSubmission:
    submission = ContactSubmission.objects.create(
        studio=current_studio(), name=name, email=email, phone=phone, message=message, service=service, ip=ip
    )
    audit_record(
        action=Action.CONTACT_RECEIVED,
        target=submission,
        after={"email": email, "service": str(service.pk) if service else None},
    )
    notifications.contact_on_commit(submission)
    return submission


@transaction.atomic
def contact_convert(*, submission: ContactSubmission, service: Service, starts_at: datetime) -> Booking:
    """Turn an enquiry into a confirmed booking (staff agreed it with the client)."""
    if submission.booking_id:
        raise Conflict("This enquiry already became a booking.", code="ALREADY_CONVERTED")
    raw = secrets.token_urlsafe(32)
    ends_at, blocked_start, blocked_end = _blocked(service, starts_at)
    now = timezone.now()
    _serialise_writers(service.studio)
    holds_release(now=now)  # an expired hold must not keep the time taken
    booking = None
    for resource in availability.resources_of(service):
        candidate = Booking(
            studio=service.studio,
            service=service,
            client_name=submission.name,
            client_email=submission.email,
            client_phone=submission.phone,
            starts_at=starts_at,
            ends_at=ends_at,
            blocked_start=blocked_start,
            blocked_end=blocked_end,
            resource=resource,
            status=BookingStatus.CONFIRMED,
            confirmed_at=timezone.now(),
            token_hash=hash_token(raw),
            deposit_amount=Decimal(0),
            notes=submission.message[:2000],
        )
        # Staff agreed the time with the client: hours and notice do not apply,
        # only another booking of the same resource does.
        if _resource_free(resource, blocked_start, blocked_end, now):
            booking = candidate
            break
    if booking is None:
        raise SlotUnavailable()
    _insert(booking)
    if booking.resource != STUDIO_RESOURCE:
        booking.assigned_members.set([booking.resource])
    submission.booking, submission.handled_at = booking, timezone.now()
    submission.save(update_fields=["booking", "handled_at", "updated_at"])
    audit_record(action=Action.CONTACT_CONVERTED, target=submission, after={"booking": str(booking.pk)})
    audit_record(action=Action.BOOKING_CONFIRMED, target=booking, after=_booking_snapshot(booking))
    # The client never saw a booking page: the email carries their link.
    notifications.confirmation_on_commit(booking, manage_url=manage_url(raw))
    return booking


def manage_url(raw: str) -> str:
    from django.urls import reverse

    return settings.SITE_URL.rstrip("/") + reverse("bookings:manage", kwargs={"token": raw})


# --- calendar feeds ---------------------------------------------------------------------------------


def _check_feed_scope(owner: Any, scope: str) -> None:
    if scope == FeedScope.STUDIO and "booking:admin" not in scopes_for(owner.role):
        raise Forbidden("A feed of every booking needs the booking:admin scope.", code="PERMISSION_DENIED")


@transaction.atomic
def feed_create(*, owner: Any, scope: str, name: str = "Bookings") -> tuple[CalendarFeed, str]:
    _check_feed_scope(owner, scope)
    raw = secrets.token_urlsafe(32)  # 256 bits
    feed = CalendarFeed.objects.create(
        studio=owner.studio, owner=owner, scope=scope, name=name, token_hash=hash_token(raw)
    )
    audit_record(action=Action.CALENDAR_FEED_CREATED, target=feed, after={"scope": scope})
    return feed, raw


@transaction.atomic
def feed_rotate(*, feed: CalendarFeed) -> tuple[CalendarFeed, str]:
    raw = secrets.token_urlsafe(32)
    feed.token_hash = hash_token(raw)
    feed.save(update_fields=["token_hash", "updated_at"])
    audit_record(action=Action.CALENDAR_FEED_ROTATED, target=feed)
    return feed, raw


@transaction.atomic
def feed_revoke(*, feed: CalendarFeed) -> CalendarFeed:
    if feed.revoked_at is None:
        feed.revoked_at = timezone.now()
        feed.save(update_fields=["revoked_at", "updated_at"])
        audit_record(action=Action.CALENDAR_FEED_REVOKED, target=feed)
    return feed


# --- configuration: services and availability -------------------------------------------------------

_SERVICE_FIELDS = [
    "name",
    "duration_minutes",
    "buffer_before_minutes",
    "buffer_after_minutes",
    "price",
    "deposit",
    "min_notice_minutes",
    "max_advance_days",
    "daily_limit",
    "is_active",
]


@transaction.atomic
def service_save(*, service: Service, members: list[Any] | None = None) -> Service:
    creating = service._state.adding
    before = None if creating else snapshot(Service.objects.get(pk=service.pk), _SERVICE_FIELDS)
    service.studio = current_studio()
    service.save()
    if members is not None:
        service.members.set(members)
    after = snapshot(service, _SERVICE_FIELDS)
    action = Action.SERVICE_CREATED if creating else Action.SERVICE_UPDATED
    audit_record(action=action, target=service, before=before, after=after)
    return service


@transaction.atomic
def service_delete(*, service: Service) -> None:
    """Services with bookings are kept (deactivated): bookings point at them."""
    if service.bookings.exists():
        raise Conflict("This service has bookings: deactivate it instead.", code="SERVICE_IN_USE")
    audit_record(action=Action.SERVICE_DELETED, target=service, before=snapshot(service, _SERVICE_FIELDS))
    service.delete()


def _config_snapshot(obj: Any) -> dict[str, Any]:
    fields = [f.name for f in obj._meta.concrete_fields if f.name not in ("id", "studio", "created_at", "updated_at")]
    return snapshot(obj, fields)


@transaction.atomic
def availability_save(*, obj: Any) -> Any:
    """Working hours, date overrides and time off: one audited write path."""
    creating = obj._state.adding
    before = None if creating else _config_snapshot(type(obj).objects.get(pk=obj.pk))
    obj.studio = current_studio()
    obj.save()
    audit_record(action=Action.AVAILABILITY_CHANGED, target=obj, before=before, after=_config_snapshot(obj))
    return obj


@transaction.atomic
def availability_delete(*, obj: Any) -> None:
    audit_record(action=Action.AVAILABILITY_CHANGED, target=obj, before=_config_snapshot(obj), after=None)
    obj.delete()
