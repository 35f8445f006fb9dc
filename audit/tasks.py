"""Celery tasks of the audit app."""

from __future__ import annotations

from celery import shared_task

from audit.checkpoints import write_checkpoints as _write_checkpoints


@shared_task(name="audit.write_checkpoints", acks_late=True, soft_time_limit=10 * 60, time_limit=11 * 60)
def write_checkpoints() -> int:
    """Hourly (CELERY_BEAT_SCHEDULE): sign each moved chain head into
    Object-Locked storage. Idempotent: a head already checkpointed is skipped,
    so a run repeated after a lost acknowledgement writes nothing new."""
    return len(_write_checkpoints())
