"""Outgoing email: recorded with the change, sent by a worker, retried, once.

The side-effect rule, as it applies to mail:

1. A service calls :func:`email_queue` inside its transaction. That writes
   one ``EmailLog`` row per recipient (status ``queued``) under an
   idempotency key, and asks for the ``studio.send_email`` task once the
   transaction commits. A rolled-back change leaves no row and sends nothing;
   queueing the same key again returns the existing row and sends nothing.
2. If the broker refuses the task, the request that caused the email still
   succeeds: the row is in the database, and the sweeper (Celery beat,
   ``studio.sweep_email``) queues it again.
3. The task (:func:`email_send`) *claims* the row with one conditional
   UPDATE (``queued`` and due -> ``sending``), so a duplicated or retried
   task that finds it claimed or sent does nothing. SMTP errors put the row
   back to ``queued`` with a later ``next_attempt_at`` (exponential backoff)
   until ``EMAIL_MAX_ATTEMPTS``, then ``failed``; an address the server
   rejects for good (5xx for every recipient) fails at once.
4. ``sent`` is recorded only after the server accepted the message;
   :data:`email_sent` then tells whoever cares (a reminder is marked sent
   only then).

A worker killed between the server's acceptance and the ``sent`` UPDATE
leaves the row ``sending``; the sweeper puts it back after
``EMAIL_STALE_AFTER_SECONDS`` and it is sent again. That is the one case of
two deliveries, and both carry the same Message-ID (derived from the row),
which mail clients use to show one message.
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, models, transaction
from django.dispatch import Signal
from django.utils import timezone

from studio.models import EmailLog, EmailStatus, Membership
from studio.roles import Role
from studio.tenancy import current_studio_or_none, studio_scope, unscoped

logger = logging.getLogger(__name__)

# Sent with ``email=<EmailLog>`` after the server accepted the message, inside
# the email's studio scope.
email_sent = Signal()


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: str
    mimetype: str


def email_queue(
    *,
    kind: str,
    to: Iterable[str],
    subject: str,
    body: str,
    key: str,
    html_body: str = "",
    attachments: Iterable[Attachment] = (),
    sensitive: bool = False,
    target: models.Model | None = None,
    meta: dict[str, Any] | None = None,
    platform: bool = False,
    reply_to: str | None = None,
) -> list[EmailLog]:
    """Record an email to each address of ``to`` and send it after commit.

    ``key`` names this email among everything the studio sends (e.g.
    ``booking:<id>:confirmed:<sequence>``); with the recipient it is the
    idempotency key. Returns the rows created now (none for a repeat).
    ``platform=True`` is for mail that belongs to no studio.

    ``reply_to`` is where an answer goes; by default the studio's contact
    (:func:`studio_reply_to`), so a client who answers reaches a person."""
    studio = None if platform else current_studio_or_none()
    if studio is None and not platform:
        raise ValueError(f"{kind}: queue studio email inside the studio's scope (or platform=True).")
    if reply_to is None:
        reply_to = studio_reply_to(studio) if studio is not None else ""
    reply_to = reply_to.strip()
    # Names typed into forms may hold newlines: a header must be one line.
    subject = " ".join(subject.split())[:500]
    created = []
    for recipient in sorted({address.strip().lower() for address in to if address and address.strip()}):
        row = EmailLog(
            studio=studio,
            kind=kind,
            recipient=recipient,
            reply_to=reply_to,
            idempotency_key=f"{key}:{recipient}"[:255],
            subject=subject,
            body=body,
            html_body=html_body,
            attachments=[{"filename": a.filename, "content": a.content, "mimetype": a.mimetype} for a in attachments],
            sensitive=sensitive,
            target_type=target._meta.label_lower if target is not None else "",
            target_id=str(target.pk) if target is not None else "",
            meta=meta or {},
        )
        try:
            with transaction.atomic(), unscoped() if platform else nullcontext():
                row.save()
        except IntegrityError:  # the same email was queued before: never twice
            continue
        created.append(row)
    if created:
        ids = [str(row.pk) for row in created]
        transaction.on_commit(lambda: _hand_over(ids), robust=True)
    return created


def studio_recipients(studio: Any) -> list[str]:
    """Who at the studio hears about things: its contact address, or else
    its owners who can still sign in (oldest first); never a deactivated
    user's mailbox."""
    if studio.contact_email:
        return [studio.contact_email]
    with studio_scope(studio):
        owners = Membership.objects.filter(studio=studio, role=Role.OWNER, user__is_active=True)
        return list(owners.order_by("created_at").values_list("user__email", flat=True))


def studio_reply_to(studio: Any) -> str:
    """A person at the studio: its contact address, else its first owner's."""
    return next(iter(studio_recipients(studio)), "")


def _hand_over(ids: list[str]) -> None:
    from studio.tasks import enqueue, send_email

    for pk in ids:
        if not enqueue(send_email, pk):
            break  # the broker is down: the sweeper sends the rest


@dataclass(frozen=True)
class SendOutcome:
    status: str  # what the row is now, or "skipped" when this run had nothing to do
    retry_in: float | None = None  # seconds until the next attempt is due


def email_send(*, email_id: Any, now: datetime | None = None) -> SendOutcome:
    """Send one queued email, once. The Celery task's body."""
    now = now or timezone.now()
    with unscoped():  # the id names the row; its own studio's scope is entered below
        row = EmailLog.objects.filter(pk=email_id).select_related("studio").first()
    if row is None:
        return SendOutcome("skipped")
    scope = studio_scope(row.studio) if row.studio is not None else unscoped()
    with scope:
        return _send_claimed(row, now) if _claim(row, now) else SendOutcome("skipped")


def _claim(row: EmailLog, now: datetime) -> bool:
    # One conditional UPDATE: of two tasks for the same row, one wins. A
    # Celery retry may fire a moment before next_attempt_at: allow for it.
    claimed = EmailLog.objects.filter(
        pk=row.pk, status=EmailStatus.QUEUED, next_attempt_at__lte=now + timedelta(seconds=5)
    ).update(status=EmailStatus.SENDING, attempts=models.F("attempts") + 1, claimed_at=now, updated_at=now)
    if claimed:
        row.refresh_from_db()
    return bool(claimed)


def _send_claimed(row: EmailLog, now: datetime) -> SendOutcome:
    try:
        _message(row).send()
    except Exception as exc:  # noqa: BLE001 - every failure is recorded on the row
        return _record_failure(row, exc, now)
    row.status, row.sent_at, row.last_error = EmailStatus.SENT, timezone.now(), ""
    _clear_if_sensitive(row)
    row.save(update_fields=["status", "sent_at", "last_error", "body", "html_body", "attachments", "updated_at"])
    logger.info("email %s (%s) sent to %s after %s attempt(s)", row.pk, row.kind, row.recipient, row.attempts)
    email_sent.send(sender=EmailLog, email=row)
    return SendOutcome(EmailStatus.SENT)


def _message(row: EmailLog) -> EmailMultiAlternatives:
    domain = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "localhost"
    message = EmailMultiAlternatives(
        subject=row.subject,
        body=row.body,
        to=[row.recipient],
        reply_to=[row.reply_to] if row.reply_to else None,
        # Stable per row: a rare second delivery (see the module docstring)
        # is shown as the same message.
        headers={"Message-ID": f"<{row.pk}@{domain}>"},
    )
    if row.html_body:
        message.attach_alternative(row.html_body, "text/html")
    for attachment in row.attachments:
        message.attach(attachment["filename"], attachment["content"], attachment["mimetype"])
    return message


def rejected_for_good(exc: Exception) -> bool:
    """The server refused every recipient with a permanent (5xx) reply.
    Anything else (connection refused, timeouts, 4xx, authentication) may
    pass later and is retried."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused) and exc.recipients:
        return all(code >= 500 for code, _ in exc.recipients.values())
    return False


def retry_delay(attempts: int) -> float:
    """Seconds before attempt ``attempts + 1``: doubling from the base, capped."""
    return min(settings.EMAIL_RETRY_MAX_SECONDS, settings.EMAIL_RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0))


def _record_failure(row: EmailLog, exc: Exception, now: datetime) -> SendOutcome:
    row.last_error = f"{type(exc).__name__}: {exc}"[:2000]
    if not isinstance(exc, (smtplib.SMTPException, OSError)):
        logger.exception("email %s (%s) failed with an unexpected error", row.pk, row.kind)
    if rejected_for_good(exc) or row.attempts >= settings.EMAIL_MAX_ATTEMPTS:
        row.status = EmailStatus.FAILED
        _clear_if_sensitive(row)
        retry_in = None
        logger.error("email %s (%s) to %s failed for good: %s", row.pk, row.kind, row.recipient, row.last_error)
    else:
        retry_in = retry_delay(row.attempts)
        row.status, row.next_attempt_at = EmailStatus.QUEUED, now + timedelta(seconds=retry_in)
        logger.warning(
            "email %s (%s) attempt %s failed (%s); next in %.0f s",
            row.pk,
            row.kind,
            row.attempts,
            row.last_error,
            retry_in,
        )
    row.save(
        update_fields=["status", "last_error", "next_attempt_at", "body", "html_body", "attachments", "updated_at"]
    )
    return SendOutcome(row.status, retry_in)


def _clear_if_sensitive(row: EmailLog) -> None:
    if row.sensitive:
        row.body, row.html_body, row.attachments = "", "", []


def emails_due(*, now: datetime | None = None, limit: int = 500) -> list[EmailLog]:
    """Rows the sweeper queues again: queued and due for longer than the
    grace period (their task was lost, or never reached the broker), and
    rows left ``sending`` by a worker that died. Runs unscoped: every
    studio's mail, and platform mail."""
    now = now or timezone.now()
    grace = now - timedelta(seconds=settings.EMAIL_SWEEP_GRACE_SECONDS)
    stale = now - timedelta(seconds=settings.EMAIL_STALE_AFTER_SECONDS)
    with unscoped():
        abandoned = EmailLog.objects.filter(status=EmailStatus.SENDING, claimed_at__lt=stale)
        spent = abandoned.filter(attempts__gte=settings.EMAIL_MAX_ATTEMPTS)
        spent.filter(sensitive=True).update(body="", html_body="", attachments=[])
        spent.update(
            status=EmailStatus.FAILED, last_error="The worker sending it stopped; no attempts left.", updated_at=now
        )
        abandoned.update(status=EmailStatus.QUEUED, next_attempt_at=grace, updated_at=now)
        return list(
            EmailLog.objects.filter(status=EmailStatus.QUEUED, next_attempt_at__lte=grace).order_by("next_attempt_at")[
                :limit
            ]
        )
