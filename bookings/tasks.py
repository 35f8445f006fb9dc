"""Periodic booking work (Celery beat, see CELERY_BEAT_SCHEDULE). Each beat
task finds the studios with work due in one query and queues one thin
per-studio task for each, which runs in that studio's scope."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from bookings import selectors, services
from studio.tasks import for_each_studio, studio_task


@studio_task(name="bookings.release_expired_holds_for", soft_time_limit=120, time_limit=150)
def release_expired_holds_for(studio: Any) -> int:
    return services.holds_release()


@studio_task(name="bookings.send_reminders_for", soft_time_limit=300, time_limit=360)
def send_reminders_for(studio: Any) -> int:
    return services.reminders_send()


@shared_task(name="bookings.release_expired_holds", soft_time_limit=60, time_limit=90)
def release_expired_holds() -> int:
    return for_each_studio(release_expired_holds_for, selectors.studios_with_expired_holds())


@shared_task(name="bookings.send_reminders", soft_time_limit=60, time_limit=90)
def send_reminders() -> int:
    return for_each_studio(send_reminders_for, selectors.studios_with_reminders_due())
