"""Celery plumbing of the core: studio-scoped tasks, queueing after commit,
and the email tasks.

Tasks take primitive ids, never model instances, and re-fetch what they need::

    @studio_task(name="galleries.make_derivatives", soft_time_limit=..., time_limit=...)
    def make_derivatives(studio: Studio, asset_id: str) -> None:
        ...

The decorated function receives the Studio; callers pass ``studio_id``.
A studio that no longer exists (or is inactive) makes the task a no-op.
Every task declares its time limits; its queue comes from
``CELERY_TASK_ROUTES`` (settings), the one place that routes tasks.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from typing import Any

from celery import shared_task
from django.db import transaction
from kombu.exceptions import OperationalError as BrokerError

from studio import context
from studio.models import Studio
from studio.tenancy import studio_scope

logger = logging.getLogger(__name__)


def enqueue(task: Any, *args: Any, **kwargs: Any) -> bool:
    """Hand ``task`` to the broker now. False (logged) when the broker
    refuses: the work is recorded in the database, and a sweeper queues it
    again; the caller carries on."""
    try:
        task.apply_async(args, kwargs)
    except (BrokerError, OSError) as exc:
        logger.warning("could not queue %s%r (%s): the sweeper will queue it again", task.name, args, exc)
        return False
    return True


def enqueue_on_commit(task: Any, *args: Any, on_queued: Callable[[], Any] | None = None, **kwargs: Any) -> None:
    """Queue ``task`` once the current transaction commits (nothing if it
    rolls back). ``robust``: whatever happens while queueing, the request
    that caused it has committed and answers as usual. ``on_queued`` runs
    after the broker took the task."""

    def send() -> None:
        if enqueue(task, *args, **kwargs) and on_queued is not None:
            on_queued()

    transaction.on_commit(send, robust=True)


def studio_task(*, name: str, **task_options: Any) -> Callable[[Callable[..., Any]], Any]:
    task_options.setdefault("acks_late", True)
    task_options.setdefault("reject_on_worker_lost", True)
    if "soft_time_limit" not in task_options or "time_limit" not in task_options:
        raise TypeError(f"{name}: every task declares soft_time_limit and time_limit.")

    def decorate(func: Callable[..., Any]) -> Any:
        @shared_task(name=name, **task_options)
        @functools.wraps(func)
        def run(studio_id: str, *args: Any, **kwargs: Any) -> Any:
            studio = Studio.objects.filter(pk=studio_id, is_active=True).first()
            if studio is None:
                logger.info("task %s skipped: studio %s is gone or inactive", name, studio_id)
                return None
            with studio_scope(studio), context.acting_as(context.Actor.system(f"task:{name}")):
                logger.info("task %s running for studio %s", name, studio_id)
                return func(studio, *args, **kwargs)

        return run

    return decorate


def for_each_studio(task: Any, studio_ids: Iterable[Any]) -> int:
    """Queue ``task`` once for each of ``studio_ids`` (a beat job's studios
    with work due, found in one query); each run enters its own scope."""
    queued = 0
    for pk in {str(pk) for pk in studio_ids}:
        queued += enqueue(task, pk)
    return queued


# --- email ------------------------------------------------------------------------------------------


@shared_task(
    name="studio.send_email",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,  # the email log counts attempts (EMAIL_MAX_ATTEMPTS)
    soft_time_limit=60,
    time_limit=90,
)
def send_email(self: Any, email_id: str) -> str:
    """Send one logged email (studio.emails). Idempotent: a duplicate finds
    the row claimed or sent and does nothing."""
    from studio import emails

    with context.acting_as(context.Actor.system("task:studio.send_email")):
        outcome = emails.email_send(email_id=email_id)
    if outcome.retry_in is not None and not self.request.is_eager:
        # Eager runs (the embedded default) have no later: the sweeper retries.
        raise self.retry(countdown=outcome.retry_in)
    return outcome.status


@shared_task(name="studio.sweep_email", soft_time_limit=60, time_limit=90)
def sweep_email() -> int:
    """Celery beat, every minute: queue again the mail whose task was lost or
    never reached the broker, and mail left half-sent by a dead worker."""
    from studio import emails

    queued = 0
    for row in emails.emails_due():
        if not enqueue(send_email, str(row.pk)):
            break  # the broker is down: the next sweep tries again
        queued += 1
    return queued
