"""Writes for bookings: holds, confirmation, cancel and reschedule, staff
actions and reminders.

Every change that a calendar should notice bumps ``Booking.sequence`` (the
iCalendar SEQUENCE). Emails go out after commit."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone

from bookings import availability, notifications
from bookings.links import manage_token
from bookings.models import LIVE_STATUSES, STUDIO_RESOURCE, Booking, BookingStatus, Service
from studio.auditing import Action, audit_record, snapshot
from studio.errors import Conflict, DomainError, Forbidden
from studio.models import hash_token


class SlotUnavailable(Conflict):
    code = "SLOT_UNAVAILABLE"
    default_message = "That time is not available (any more). Pick another slot."


def booking_snapshot(booking: Booking) -> dict[str, Any]:
    return snapshot(booking, ["service", "starts_at", "ends_at", "status", "resource", "client_email"])


def save_with_sequence(booking: Booking, *fields: str) -> None:
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
        # A deposit promised by hand (the manual provider) was expected by
        # both sides, so both hear that the time went; an abandoned hold or
        # Stripe checkout page concerns nobody.
        awaited_by_hand = (
            booking.status == BookingStatus.AWAITING_PAYMENT
            and booking.payments.filter(provider="manual", status="pending").exists()
        )
        booking.status, booking.cancelled_at, booking.cancel_reason = BookingStatus.CANCELLED, now, "hold_expired"
        save_with_sequence(booking, "status", "cancelled_at", "cancel_reason")
        audit_record(action=Action.BOOKING_HOLD_EXPIRED, target=booking, before=before, after={"status": "cancelled"})
        if awaited_by_hand:
            notifications.queue_hold_lapsed(booking)
    return len(expired)


def blocked_times(service: Service, start: datetime) -> tuple[datetime, datetime, datetime]:
    end = start + timedelta(minutes=service.duration_minutes)
    return (
        end,
        start - timedelta(minutes=service.buffer_before_minutes),
        end + timedelta(minutes=service.buffer_after_minutes),
    )


def serialise_writers(studio: Any) -> None:
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


def save_or_unavailable(booking: Booking, **save: Any) -> None:
    """Save in a savepoint; a refusal from the database becomes 409."""
    try:
        with transaction.atomic():
            booking.save(**save)
    except (IntegrityError, OperationalError) as exc:
        if not _slot_taken(exc):
            raise
        raise SlotUnavailable() from exc


def insert_booking(booking: Booking) -> None:
    """The database has the last word: on PostgreSQL the exclusion constraint
    refuses an overlapping live booking that a concurrent request inserted
    after our check."""
    save_or_unavailable(booking)


def _start_writing(service: Service, now: datetime) -> None:
    """What every new booking does first: refuse an inactive service, take
    the studio's turn, and free the times of expired holds."""
    if not service.is_active:
        raise DomainError("This service cannot be booked.", code="SERVICE_INACTIVE")
    serialise_writers(service.studio)
    holds_release(now=now)


def _insert(service: Service, starts_at: datetime, resource: str, **fields: Any) -> Booking:
    """Insert a booking of ``service`` at ``starts_at`` on ``resource`` (the
    database refuses an overlap: 409), with the link's token and the member
    it takes assigned."""
    ends_at, blocked_start, blocked_end = blocked_times(service, starts_at)
    booking = Booking(
        studio=service.studio,
        service=service,
        starts_at=starts_at,
        ends_at=ends_at,
        blocked_start=blocked_start,
        blocked_end=blocked_end,
        resource=resource,
        **fields,
    )
    booking.token_hash = hash_token(manage_token(booking))
    insert_booking(booking)
    if resource != STUDIO_RESOURCE:
        booking.assigned_members.set([resource])
    return booking


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
    _start_writing(service, now)
    slot = availability.slot_for(service, starts_at, now=now)
    if slot is None:
        raise SlotUnavailable()
    booking = _insert(
        service,
        starts_at,
        slot.resources[0],
        client_name=client_name,
        client_email=client_email,
        client_phone=client_phone,
        notes=notes,
        status=BookingStatus.HELD,
        hold_expires_at=now + timedelta(minutes=settings.BOOKING_HOLD_MINUTES),
        deposit_amount=service.deposit,
    )
    audit_record(action=Action.BOOKING_HELD, target=booking, after=booking_snapshot(booking))
    return booking, manage_token(booking)


def _staff_resource(service: Service, starts_at: datetime, member: Any, anytime: bool, now: datetime) -> str:
    """The resource a staff booking takes: ``member`` (one of the service's)
    or the first free one. Overlap with other bookings and live holds,
    buffers included, always counts; working hours, notice and advance
    limits count unless ``anytime``."""
    candidates = availability.resources_of(service)
    if member is not None:
        if str(member.pk) not in candidates:
            raise DomainError(
                "This member does not provide this service.",
                code="MEMBER_NOT_ON_SERVICE",
                fields={"member": ["Not one of the service's members."]},
            )
        candidates = [str(member.pk)]
    if anytime:
        _, blocked_start, blocked_end = blocked_times(service, starts_at)
        free = [r for r in candidates if resource_free(r, blocked_start, blocked_end, now)]
    else:
        slot = availability.slot_for(service, starts_at, now=now)
        free = [r for r in candidates if slot is not None and r in slot.resources]
    if not free:
        raise SlotUnavailable()
    return free[0]


@transaction.atomic
def booking_create(
    *,
    service: Service,
    starts_at: datetime,
    client_name: str,
    client_email: str,
    client_phone: str = "",
    notes: str = "",
    member: Any = None,
    anytime: bool = False,
    deposit: Decimal | None = None,
    now: datetime | None = None,
) -> Booking:
    """A booking staff enter themselves (taken by phone, agreed by email).

    It is confirmed at once, under a client's rules: the writers of the
    studio take turns, expired holds are released first, the time must be
    free (bookings, live holds, buffers) and, unless ``anytime`` (staff may
    book outside the public hours or notice), bookable; the database's
    exclusion constraint has the last word. The client gets the confirmation
    with their link; the studio hears of it. The service's deposit (or
    ``deposit``) stays due until marked paid."""
    now = now or timezone.now()
    _start_writing(service, now)
    booking = _insert(
        service,
        starts_at,
        _staff_resource(service, starts_at, member, anytime, now),
        client_name=client_name,
        client_email=client_email,
        client_phone=client_phone,
        notes=notes,
        status=BookingStatus.CONFIRMED,
        confirmed_at=now,
        deposit_amount=service.deposit if deposit is None else deposit,
    )
    audit_record(action=Action.BOOKING_CONFIRMED, target=booking, after={**booking_snapshot(booking), "by": "staff"})
    notifications.queue_confirmation(booking)
    notifications.queue_studio_notice(booking, "confirmed")
    return booking


def require_live_hold(booking: Booking, now: datetime) -> None:
    if booking.status not in (BookingStatus.HELD, BookingStatus.AWAITING_PAYMENT):
        raise Conflict(f"This booking is {booking.get_status_display().lower()}.", code="NOT_HELD")
    if booking.hold_expires_at and booking.hold_expires_at <= now:
        raise Conflict("The hold expired. Pick the time again.", code="HOLD_EXPIRED")


def mark_confirmed(booking: Booking, now: datetime) -> Booking:
    booking.status, booking.confirmed_at, booking.hold_expires_at = BookingStatus.CONFIRMED, now, None
    save_with_sequence(booking, "status", "confirmed_at", "hold_expires_at")
    audit_record(action=Action.BOOKING_CONFIRMED, target=booking, after={"status": "confirmed"})
    notifications.queue_confirmation(booking)
    notifications.queue_studio_notice(booking, "confirmed")
    return booking


@transaction.atomic
def booking_confirm(*, booking: Booking, now: datetime | None = None) -> Booking:
    """Confirm a held booking that needs no deposit."""
    now = now or timezone.now()
    booking = Booking.objects.select_for_update().get(pk=booking.pk)
    if booking.status == BookingStatus.CONFIRMED:
        return booking
    require_live_hold(booking, now)
    if booking.deposit_amount > 0:
        raise DomainError("This booking needs its deposit first.", code="DEPOSIT_REQUIRED", status_code=402)
    return mark_confirmed(booking, now)


def resource_free(resource: str, start: datetime, end: datetime, now: datetime, exclude: Any = None) -> bool:
    clash = Booking.objects.filter(
        availability.live_filter(now), resource=resource, blocked_start__lt=end, blocked_end__gt=start
    )
    if exclude is not None:
        clash = clash.exclude(pk=exclude)
    return not clash.exists()


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
    save_with_sequence(booking, "status", "cancelled_at", "cancel_reason")
    audit_record(
        action=Action.BOOKING_CANCELLED,
        target=booking,
        before=before,
        after={"status": "cancelled", "reason": booking.cancel_reason},
    )
    notifications.queue_cancellation(booking)
    if before["status"] in (BookingStatus.CONFIRMED, BookingStatus.AWAITING_PAYMENT):
        notifications.queue_studio_notice(booking, "cancelled")  # a hold nobody confirmed is no news
    return booking


@transaction.atomic
def booking_reschedule(
    *, booking: Booking, starts_at: datetime, by_client: bool, now: datetime | None = None
) -> Booking:
    now = now or timezone.now()
    serialise_writers(booking.studio)
    holds_release(now=now)  # an expired hold must not keep the new time taken
    booking = Booking.objects.select_for_update().select_related("service").get(pk=booking.pk)
    if booking.status not in LIVE_STATUSES:
        raise Conflict(f"This booking is {booking.get_status_display().lower()}.", code="NOT_LIVE")
    if by_client:
        _client_window(booking, now)
    slot = availability.slot_for(booking.service, starts_at, now=now, exclude=booking.pk)
    if slot is None:
        raise SlotUnavailable()
    before, before_start = booking_snapshot(booking), booking.starts_at
    booking.starts_at = starts_at
    booking.ends_at, booking.blocked_start, booking.blocked_end = blocked_times(booking.service, starts_at)
    resource = booking.resource if booking.resource in slot.resources else slot.resources[0]
    booking.resource = resource
    booking.reminder_sent_at = None  # the new time gets its own reminder
    booking.sequence += 1
    save_or_unavailable(booking)
    audit_record(action=Action.BOOKING_RESCHEDULED, target=booking, before=before, after=booking_snapshot(booking))
    if booking.status == BookingStatus.CONFIRMED:
        notifications.queue_confirmation(booking, rescheduled=True)
    if booking.status in (BookingStatus.CONFIRMED, BookingStatus.AWAITING_PAYMENT):
        notifications.queue_studio_notice(booking, "rescheduled", previous=before_start)
    return booking


@transaction.atomic
def booking_staff_confirm(*, booking: Booking, now: datetime | None = None) -> Booking:
    now = now or timezone.now()
    booking = Booking.objects.select_for_update().get(pk=booking.pk)
    if booking.status == BookingStatus.CONFIRMED:
        return booking
    # An expired hold's time may already be someone else's (holds_release runs each minute).
    require_live_hold(booking, now)
    return mark_confirmed(booking, now)


@transaction.atomic
def booking_complete(*, booking: Booking) -> Booking:
    if booking.status != BookingStatus.CONFIRMED:
        raise Conflict("Only a confirmed booking can be completed.", code="NOT_CONFIRMED")
    booking.status = BookingStatus.COMPLETED
    save_with_sequence(booking, "status")
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
    save_with_sequence(booking, "assigned_team", "notes")
    after = {
        "members": sorted(str(m) for m in booking.assigned_members.values_list("pk", flat=True)),
        "team": str(booking.assigned_team_id) if booking.assigned_team_id else None,
        "notes": booking.notes,
    }
    audit_record(action=Action.BOOKING_UPDATED, target=booking, before=before, after=after)
    return booking


def reminders_send(*, now: datetime | None = None) -> int:
    """Queue the reminder of each confirmed booking starting within the next
    BOOKING_REMINDER_HOURS, once per start time (the email's idempotency
    key), whatever the beat interval. ``reminder_sent_at`` is set when the
    email log says the reminder went out (notifications.reminder_delivered),
    never before. Returns how many were queued now."""
    now = now or timezone.now()
    due = Booking.objects.filter(
        status=BookingStatus.CONFIRMED,
        reminder_sent_at__isnull=True,
        starts_at__gt=now,
        starts_at__lte=now + timedelta(hours=settings.BOOKING_REMINDER_HOURS),
    ).select_related("service", "studio")
    queued = 0
    for booking in due:
        with transaction.atomic():
            queued += notifications.queue_reminder(booking)
    return queued
