"""Helpers for Celery tasks: studio scope and audit actor, entered explicitly.

Tasks take primitive ids, never model instances, and re-fetch what they need::

    @studio_task(name="galleries.make_derivatives")
    def make_derivatives(studio: Studio, asset_id: str) -> None:
        ...

The decorated function receives the Studio; callers pass ``studio_id``.
A studio that no longer exists (or is inactive) makes the task a no-op.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from celery import shared_task

from studio import context
from studio.models import Studio
from studio.tenancy import studio_scope

logger = logging.getLogger(__name__)


def fan_out(task: Any) -> int:
    """Queue ``task`` once per active studio (for Celery beat entries that
    concern every studio); each run then enters its own studio's scope."""
    ids = list(Studio.objects.filter(is_active=True).values_list("pk", flat=True))
    for pk in ids:
        task.delay(str(pk))
    return len(ids)


def studio_task(*, name: str, **task_options: Any) -> Callable[[Callable[..., Any]], Any]:
    task_options.setdefault("acks_late", True)
    task_options.setdefault("reject_on_worker_lost", True)

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
