"""The core's models: users, studios (the tenants), memberships (user x studio
x role) and personal API tokens."""

from __future__ import annotations

import hashlib
import secrets
import zoneinfo
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, RegexValidator
from django.db import models
from django.utils import timezone

from studio.ids import uuid7
from studio.roles import Role
from studio.tenancy import StudioOwnedModel


class TimestampedModel(models.Model):
    """UUID primary key and creation/update times, shared by every model."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create(self, email: str, password: str | None, **extra: Any) -> User:
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.update(is_staff=True, is_superuser=True)
        return self._create(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person who signs in: studio staff. Gallery clients never get a User."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=200, blank=True)
    is_active = models.BooleanField(default=True)
    # Only platform operators reach the admin for every studio; studio staff
    # reach it through their memberships (see studio.admin).
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.email

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.email = self.email.strip().lower()
        super().save(*args, **kwargs)


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"'{value}' is not a known IANA time zone.")


def _default_quota() -> int:
    from django.conf import settings

    return settings.STUDIO_DEFAULT_STORAGE_QUOTA_BYTES


LOGO_MAX_BYTES = 1024 * 1024
LOGO_FORMATS = {"PNG", "JPEG", "WEBP"}


def validate_logo(value: Any) -> None:
    """PNG, JPEG or WebP, at most 1 MB, and really an image (Pillow verifies
    it), whatever its name or the browser's content type claim. A logo
    already stored was checked when it was uploaded."""
    if not value or getattr(value, "_committed", True):
        return
    if value.size > LOGO_MAX_BYTES:
        raise ValidationError("The logo is larger than 1 MB.", code="logo_too_large")
    from PIL import Image, UnidentifiedImageError

    upload = value.file if hasattr(value, "file") else value
    position = upload.tell() if hasattr(upload, "tell") else 0
    try:
        upload.seek(0)
        with Image.open(upload) as image:
            kind = image.format
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValidationError("The logo is not a readable image.", code="logo_not_image") from exc
    finally:
        upload.seek(position)
    if kind not in LOGO_FORMATS:
        raise ValidationError("The logo must be a PNG, JPEG or WebP image.", code="logo_format")


def _logo_path(studio: Studio, filename: str) -> str:
    # A fresh name per upload: a cached old logo never shows for the new one.
    ext = (filename.rsplit(".", 1)[-1] if "." in filename else "png").lower()[:5]
    return f"studios/{studio.pk}/branding/logo-{secrets.token_hex(6)}.{ext}"


class Studio(TimestampedModel):
    """The tenant. Every studio-owned row has a foreign key to one."""

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=200)
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    contact_email = models.EmailField(blank=True)
    is_active = models.BooleanField(default=True)
    booking_cancellation_hours = models.PositiveIntegerField(
        default=48,
        validators=[MaxValueValidator(24 * 365)],
        help_text="Clients may cancel or reschedule up to this many hours before a session.",
    )
    payment_instructions = models.TextField(
        blank=True,
        max_length=2000,
        help_text=(
            "How clients pay a deposit when the studio takes it by hand (bank transfer, cash...). "
            "Shown on the booking page and in the email asking for the deposit."
        ),
    )
    storage_quota_bytes = models.PositiveBigIntegerField(
        default=_default_quota, help_text="Originals plus derivatives, in bytes."
    )
    # Branding of the client-facing pages (portal, booking pages).
    accent_color = models.CharField(
        max_length=7,
        default="#1f5f8b",
        validators=[RegexValidator(r"^#[0-9a-fA-F]{6}$", "A colour like #1f5f8b.")],
        help_text="Buttons, links and highlights on the client pages, as #rrggbb.",
    )
    logo = models.ImageField(
        upload_to=_logo_path,
        blank=True,
        validators=[validate_logo],
        help_text="Shown on the client pages; PNG, JPEG or WebP, at most 1 MB.",
    )
    gallery_expiry_notice_days = models.PositiveSmallIntegerField(
        default=7,
        validators=[MaxValueValidator(90)],
        help_text="Email clients this many days before their gallery expires (0: never).",
    )
    # Read by cleanup_galleries only: archiving is a studio's choice, never a default.
    archive_expired_after_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Archive galleries this many days after they expire (empty: never). Nothing is deleted.",
    )
    # People in photos (face grouping and "find me"): opt-in, off by default.
    # Not in EDITABLE_FIELDS: turning it off deletes every stored face and
    # descriptor, so only galleries.services.faces changes it (audited).
    faces_enabled = models.BooleanField(
        default=False, help_text="Group the faces in photos into people, and let clients find themselves."
    )
    faces_consent_text = models.TextField(
        blank=True,
        max_length=4000,
        help_text="Shown to clients before they search with a selfie: what is done with it and why.",
    )

    # What an owner edits (API, admin, audit snapshots): listed once, here.
    EDITABLE_FIELDS = (
        "name",
        "timezone",
        "contact_email",
        "booking_cancellation_hours",
        "payment_instructions",
        "accent_color",
        "logo",
        "gallery_expiry_notice_days",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


def hash_token(raw: str) -> str:
    """Tokens carry 256 random bits, so a fast hash is enough: there is nothing
    to brute-force, and lookups stay a single indexed equality."""
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet):
    def live(self) -> ApiTokenQuerySet:
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class ApiToken(TimestampedModel):
    """A personal API token. Only its hash is stored; the raw value is shown once."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    # The first characters of the raw token, so people can tell tokens apart.
    prefix = models.CharField(max_length=12)
    token_hash = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_live(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > timezone.now())


class Membership(StudioOwnedModel, TimestampedModel):
    """A user's place in a studio, with one role (studio.roles). Tenancy is
    resolved from this row: no membership, no access (404)."""

    studio = models.ForeignKey("studio.Studio", on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)

    class Meta:
        ordering = ["created_at"]
        constraints = [models.UniqueConstraint(fields=["studio", "user"], name="membership_unique_user")]

    def __str__(self) -> str:
        return f"{self.user} ({self.get_role_display()})"


class EmailStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class EmailLog(StudioOwnedModel, TimestampedModel):
    """Every email the platform sends, one row per recipient (studio.emails).

    Written in the transaction of the change that causes it, sent after
    commit by a Celery task, retried with backoff, and sent at most once per
    idempotency key: a retried or duplicated task finds the row already
    claimed or sent."""

    # Empty for platform mail that belongs to no studio (sign-in, password reset).
    studio = models.ForeignKey(Studio, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    kind = models.CharField(max_length=64, help_text='What the email is, e.g. "booking.confirmation".')
    recipient = models.EmailField()
    # Where an answer goes: a person (the studio's contact, or the client who
    # wrote to it), never the no-reply sender. Empty for platform mail.
    reply_to = models.EmailField(blank=True)
    idempotency_key = models.CharField(max_length=255)
    subject = models.CharField(max_length=500)
    body = models.TextField(blank=True)
    html_body = models.TextField(blank=True)
    # [{"filename", "content" (text), "mimetype"}]
    attachments = models.JSONField(default=list, blank=True)
    # The body carries a one-time link: cleared once the email is sent or given up.
    sensitive = models.BooleanField(default=False)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    meta = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=EmailStatus.choices, default=EmailStatus.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["studio", "idempotency_key"], name="email_once_per_key"),
            models.UniqueConstraint(
                fields=["idempotency_key"], condition=models.Q(studio__isnull=True), name="platform_email_once_per_key"
            ),
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="email_due")]

    def __str__(self) -> str:
        return f"{self.kind} to {self.recipient} ({self.status})"
