"""Periodic booking work (Celery beat, see CELERY_BEAT_SCHEDULE): a fan-out
task queues one thin per-studio task each, which runs in that studio's scope."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from bookings import services
from studio.tasks import fan_out, studio_task


@studio_task(name="bookings.release_expired_holds_for")
def release_expired_holds_for(studio: Any) -> int:
    return services.holds_release()


@studio_task(name="bookings.send_reminders_for")
def send_reminders_for(studio: Any) -> int:
    return services.reminders_send()


@shared_task(name="bookings.release_expired_holds")
def release_expired_holds() -> int:
    return fan_out(release_expired_holds_for)


@shared_task(name="bookings.send_reminders")
def send_reminders() -> int:
    return fan_out(send_reminders_for)
