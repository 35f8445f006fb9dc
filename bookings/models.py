"""Services, availability, bookings (a hold is a booking in status "held"),
payments, calendar feeds and contact submissions.

Never double-booked: every live booking (held, awaiting payment, confirmed)
occupies ``[blocked_start, blocked_end)`` (its time plus the service's
buffers) on one ``resource``: a member who performs the service, or the
studio itself when the service names nobody. On PostgreSQL an exclusion
constraint refuses overlapping live rows per resource (migration 0002); on
SQLite every write transaction takes the database lock up front
(``transaction_mode=IMMEDIATE``), so check-then-insert is serialised.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from studio.models import TimestampedModel
from studio.tenancy import StudioOwnedModel

STUDIO_RESOURCE = "studio"

# Bounds of a service's settings. A slot has to fit in one day's hours, so
# no duration, buffer or step is longer than a day; notice and horizon stop
# at a year and ten years. Besides being what a studio can mean, they keep
# availability's date arithmetic inside what datetime can represent
# (max_advance_days = 2**31 - 1 used to break the service's public page).
MINUTES_PER_DAY = 24 * 60
MAX_NOTICE_MINUTES = 365 * MINUTES_PER_DAY
MAX_ADVANCE_DAYS = 3650
MAX_DAILY_LIMIT = 10_000


class Service(StudioOwnedModel, TimestampedModel):
    studio = models.ForeignKey("studio.Studio", on_delete=models.CASCADE, related_name="services")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    duration_minutes = models.PositiveIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(MINUTES_PER_DAY)], help_text="At most a day (1440)."
    )
    buffer_before_minutes = models.PositiveIntegerField(default=0, validators=[MaxValueValidator(MINUTES_PER_DAY)])
    buffer_after_minutes = models.PositiveIntegerField(default=0, validators=[MaxValueValidator(MINUTES_PER_DAY)])
    price = models.DecimalField(max_digits=10, decimal_places=2, default=0, validators=[MinValueValidator(0)])
    deposit = models.DecimalField(max_digits=10, decimal_places=2, default=0, validators=[MinValueValidator(0)])
    currency = models.CharField(max_length=3, default="USD")
    min_notice_minutes = models.PositiveIntegerField(
        default=24 * 60, validators=[MaxValueValidator(MAX_NOTICE_MINUTES)], help_text="At most a year (525600)."
    )
    max_advance_days = models.PositiveIntegerField(
        default=180, validators=[MaxValueValidator(MAX_ADVANCE_DAYS)], help_text="At most ten years (3650)."
    )
    daily_limit = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(MAX_DAILY_LIMIT)],
        help_text="Bookings of this service per day.",
    )
    slot_step_minutes = models.PositiveIntegerField(
        default=30,
        validators=[MinValueValidator(1), MaxValueValidator(MINUTES_PER_DAY)],
        help_text="Offer a start every N minutes.",
    )
    is_active = models.BooleanField(default=True)
    # Who can perform it; each is a resource that cannot be double-booked.
    # Empty: the studio as a whole is the one resource.
    members = models.ManyToManyField("studio.Membership", blank=True, related_name="services")

    # What staff edit (API, admin, audit snapshots): listed once, here.
    EDITABLE_FIELDS = (
        "name",
        "description",
        "duration_minutes",
        "buffer_before_minutes",
        "buffer_after_minutes",
        "price",
        "deposit",
        "currency",
        "min_notice_minutes",
        "max_advance_days",
        "daily_limit",
        "slot_step_minutes",
        "is_active",
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(duration_minutes__gt=0), name="service_duration_positive"),
            models.CheckConstraint(condition=Q(deposit__lte=models.F("price")), name="service_deposit_within_price"),
            models.CheckConstraint(condition=Q(deposit__gte=0), name="service_deposit_not_negative"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.deposit is not None and self.price is not None and self.deposit > self.price:
            raise ValidationError(
                {"deposit": ValidationError("The deposit cannot exceed the price.", code="deposit_above_price")}
            )


class Weekday(models.IntegerChoices):
    MONDAY = 0, "Monday"
    TUESDAY = 1, "Tuesday"
    WEDNESDAY = 2, "Wednesday"
    THURSDAY = 3, "Thursday"
    FRIDAY = 4, "Friday"
    SATURDAY = 5, "Saturday"
    SUNDAY = 6, "Sunday"


class WorkingHours(StudioOwnedModel, TimestampedModel):
    """Weekly hours, in the studio's time zone; per member, or the studio's."""

    studio = models.ForeignKey("studio.Studio", on_delete=models.CASCADE, related_name="+")
    member = models.ForeignKey("studio.Membership", on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    weekday = models.PositiveSmallIntegerField(
        choices=Weekday.choices, validators=[MaxValueValidator(6)], help_text="0 = Monday ... 6 = Sunday"
    )
    start_time = models.TimeField()
    end_time = models.TimeField()

    EDITABLE_FIELDS = ("member", "weekday", "start_time", "end_time")

    class Meta:
        ordering = ["weekday", "start_time"]
        verbose_name_plural = "working hours"
        constraints = [
            models.CheckConstraint(condition=Q(weekday__lte=6), name="hours_weekday_range"),
            models.CheckConstraint(condition=Q(start_time__lt=models.F("end_time")), name="hours_start_before_end"),
        ]

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.start_time:%H:%M}-{self.end_time:%H:%M}"

    def clean(self) -> None:
        _start_before_end(self.start_time, self.end_time, "end_time")


def _start_before_end(start: object, end: object, field: str) -> None:
    if start is not None and end is not None and start >= end:  # type: ignore[operator]
        raise ValidationError({field: ValidationError("Must be after the start.", code="not_after_start")})


class DateOverride(StudioOwnedModel, TimestampedModel):
    """Replaces the weekly hours on one date; no times means closed that day."""

    studio = models.ForeignKey("studio.Studio", on_delete=models.CASCADE, related_name="+")
    member = models.ForeignKey("studio.Membership", on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    date = models.DateField()
    start_time = models.TimeField(null=True, blank=True)
    end_time = models.TimeField(null=True, blank=True)

    EDITABLE_FIELDS = ("member", "date", "start_time", "end_time")

    class Meta:
        ordering = ["date", "start_time"]

    def __str__(self) -> str:
        return f"{self.date}: {self.start_time or 'closed'}-{self.end_time or ''}"

    @property
    def is_closed(self) -> bool:
        return self.start_time is None or self.end_time is None

    def clean(self) -> None:
        if (self.start_time is None) != (self.end_time is None):
            raise ValidationError(
                {"end_time": ValidationError("Give both times, or neither for a closed day.", code="one_time_only")}
            )
        _start_before_end(self.start_time, self.end_time, "end_time")


class TimeOff(StudioOwnedModel, TimestampedModel):
    studio = models.ForeignKey("studio.Studio", on_delete=models.CASCADE, related_name="+")
    member = models.ForeignKey("studio.Membership", on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.CharField(max_length=200, blank=True)

    EDITABLE_FIELDS = ("member", "starts_at", "ends_at", "reason")

    class Meta:
        ordering = ["starts_at"]
        constraints = [models.CheckConstraint(condition=Q(starts_at__lt=models.F("ends_at")), name="timeoff_order")]

    def __str__(self) -> str:
        return f"{self.starts_at:%Y-%m-%d %H:%M} - {self.ends_at:%Y-%m-%d %H:%M}"

    def clean(self) -> None:
        _start_before_end(self.starts_at, self.ends_at, "ends_at")


class BookingStatus(models.TextChoices):
    HELD = "held", "Held"
    AWAITING_PAYMENT = "awaiting_payment", "Awaiting payment"
    CONFIRMED = "confirmed", "Confirmed"
    CANCELLED = "cancelled", "Cancelled"
    COMPLETED = "completed", "Completed"


LIVE_STATUSES = (BookingStatus.HELD, BookingStatus.AWAITING_PAYMENT, BookingStatus.CONFIRMED)


class Booking(StudioOwnedModel, TimestampedModel):
    studio = models.ForeignKey("studio.Studio", on_delete=models.CASCADE, related_name="bookings")
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="bookings")
    client_name = models.CharField(max_length=200)
    client_email = models.EmailField()
    client_phone = models.CharField(max_length=40, blank=True)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    # The time the resource is taken: the booking plus the service's buffers.
    blocked_start = models.DateTimeField()
    blocked_end = models.DateTimeField()
    resource = models.CharField(max_length=64, default=STUDIO_RESOURCE)
    status = models.CharField(max_length=20, choices=BookingStatus.choices, default=BookingStatus.HELD)
    hold_expires_at = models.DateTimeField(null=True, blank=True)
    assigned_members = models.ManyToManyField("studio.Membership", blank=True, related_name="bookings")
    assigned_team = models.ForeignKey("teams.Team", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    notes = models.TextField(blank=True)
    # The client's cancel/reschedule link carries the raw token; we keep its hash.
    token_hash = models.CharField(max_length=64, unique=True)
    # iCalendar SEQUENCE: bumped on every change a calendar should notice.
    sequence = models.PositiveIntegerField(default=0)
    deposit_amount = models.DecimalField(max_digits=10, decimal_places=2, default=0)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancel_reason = models.CharField(max_length=200, blank=True)
    reminder_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["starts_at"]
        constraints = [
            models.CheckConstraint(condition=Q(starts_at__lt=models.F("ends_at")), name="booking_order"),
            models.CheckConstraint(condition=Q(blocked_start__lte=models.F("starts_at")), name="booking_buffer_before"),
            models.CheckConstraint(condition=Q(blocked_end__gte=models.F("ends_at")), name="booking_buffer_after"),
        ]
        indexes = [
            models.Index(fields=["studio", "status", "blocked_start"], name="booking_live_range"),
            models.Index(fields=["studio", "starts_at"], name="booking_studio_start"),
        ]

    def __str__(self) -> str:
        return f"{self.service} for {self.client_name} at {self.starts_at:%Y-%m-%d %H:%M}"

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES


class PaymentStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PAID = "paid", "Paid"
    EXPIRED = "expired", "Expired"
    REFUND_NEEDED = "refund_needed", "Paid, but the slot was lost: refund needed"


class Payment(StudioOwnedModel, TimestampedModel):
    studio = models.ForeignKey("studio.Studio", on_delete=models.CASCADE, related_name="+")
    booking = models.ForeignKey(Booking, on_delete=models.CASCADE, related_name="payments")
    provider = models.CharField(max_length=20)
    provider_ref = models.CharField(max_length=255, blank=True, help_text="e.g. the Stripe Checkout Session id")
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=20, choices=PaymentStatus.choices, default=PaymentStatus.PENDING)
    checkout_url = models.URLField(max_length=2000, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    marked_paid_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "provider_ref"], condition=~Q(provider_ref=""), name="payment_provider_ref"
            )
        ]

    def __str__(self) -> str:
        return f"{self.amount} {self.currency} ({self.status})"


class WebhookEvent(models.Model):
    """Deliveries already handled, so a repeated delivery is a no-op. Keyed by
    the provider's event id; stored before the studio is known."""

    provider = models.CharField(max_length=20)
    event_id = models.CharField(max_length=255)
    event_type = models.CharField(max_length=100)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["provider", "event_id"], name="webhook_event_once")]

    def __str__(self) -> str:
        return f"{self.provider} {self.event_type} {self.event_id}"


class FeedScope(models.TextChoices):
    STUDIO = "studio", "Every booking of the studio"
    MEMBER = "member", "Bookings assigned to me (or my teams)"


class CalendarFeed(StudioOwnedModel, TimestampedModel):
    """A secret ICS URL. Only the token's hash is stored; it can be rotated or
    revoked, and it shows only what its owner may see, checked on each fetch."""

    studio = models.ForeignKey("studio.Studio", on_delete=models.CASCADE, related_name="+")
    owner = models.ForeignKey("studio.Membership", on_delete=models.CASCADE, related_name="calendar_feeds")
    scope = models.CharField(max_length=10, choices=FeedScope.choices, default=FeedScope.MEMBER)
    name = models.CharField(max_length=100, default="Bookings")
    token_hash = models.CharField(max_length=64, unique=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_fetched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_scope_display()})"


class ContactSubmission(StudioOwnedModel, TimestampedModel):
    studio = models.ForeignKey("studio.Studio", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200)
    email = models.EmailField()
    phone = models.CharField(max_length=40, blank=True)
    message = models.TextField(max_length=5000)
    service = models.ForeignKey(Service, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    ip = models.GenericIPAddressField(null=True, blank=True)
    booking = models.ForeignKey(Booking, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    handled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"
