"""Daily housekeeping for Celery beat: thin tasks over the management
commands, so cron and beat run the very same code.

Kept out of galleries/tasks.py (Celery autodiscovers only ``tasks``
modules): GalleriesConfig.ready imports this module to register them."""

from __future__ import annotations

from celery import shared_task
from django.core.management import call_command


@shared_task(name="galleries.cleanup", soft_time_limit=60 * 60, time_limit=60 * 60 + 60)
def cleanup_galleries() -> None:
    # Orphans are only listed on schedule: deleting bytes no row references
    # is an operator's decision (cleanup_galleries --delete-orphans).
    call_command("cleanup_galleries")


@shared_task(name="studio.clearsessions", soft_time_limit=15 * 60, time_limit=15 * 60 + 60)
def clear_sessions() -> None:
    call_command("clearsessions")
