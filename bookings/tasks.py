"""Periodic booking work (Celery beat, see CELERY_BEAT_SCHEDULE): a fan-out
task lists active studios and queues one thin per-studio task each, which
runs inside that studio's scope."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from bookings import services
from studio.models import Studio
from studio.tasks import studio_task


@shared_task(name="bookings.release_expired_holds")
def release_expired_holds() -> int:
    ids = list(Studio.objects.filter(is_active=True).values_list("pk", flat=True))
    for pk in ids:
        release_expired_holds_for.delay(str(pk))
    return len(ids)


@studio_task(name="bookings.release_expired_holds_for")
def release_expired_holds_for(studio: Any) -> int:
    from django.db import transaction

    with transaction.atomic():
        return services.holds_release()


@shared_task(name="bookings.send_reminders")
def send_reminders() -> int:
    ids = list(Studio.objects.filter(is_active=True).values_list("pk", flat=True))
    for pk in ids:
        send_reminders_for.delay(str(pk))
    return len(ids)


@studio_task(name="bookings.send_reminders_for")
def send_reminders_for(studio: Any) -> int:
    return services.reminders_send()
