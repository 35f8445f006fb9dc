"""Log records that say which request, studio, user and task they belong to.

``ContextFilter`` (on the console handler) copies the request id, the studio
in scope and the Celery task id onto every record, so one ``request_id`` finds
the request line, the error with its traceback and the tasks the request
queued. ``LOG_FORMAT`` picks JSON (production) or plain lines (a terminal).
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from studio import context

REQUEST_ID_HEADER = "request_id"  # the Celery message header carrying it

_task_id: ContextVar[str] = ContextVar("studio_task_id", default="")
_FIELDS = ("request_id", "studio", "task_id")
_TAGS = ("studio", "user", "visitor", "task_id")


class ContextFilter(logging.Filter):
    """Adds request_id, studio and task_id to every record (empty when unknown).

    Explicit ``extra=`` values win, so the request line can name a studio
    whose scope has already been left."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", ""):
            record.request_id = context.current().request_id
        if not getattr(record, "studio", ""):
            # Imported here: logging is configured before the models can load.
            from studio.tenancy import current_studio_or_none

            studio = current_studio_or_none()
            record.studio = studio.slug if studio is not None else ""
        if not getattr(record, "task_id", ""):
            record.task_id = _task_id.get()
        return True


class DisallowedHostFilter(logging.Filter):
    """A request naming a host we do not serve is a scanner or a stale DNS
    record, not a fault of ours: a WARNING, and no traceback to page anyone."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


class PlainFormatter(logging.Formatter):
    """One readable line; the request line's fields follow its message."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        for field in _FIELDS:  # records that bypassed the handler's filter
            if not hasattr(record, field):
                setattr(record, field, "")
        line = super().format(record)
        # Who and where, when known; JSON has them as keys.
        tags = [f"{key}={getattr(record, key)}" for key in _TAGS if getattr(record, key, "")]
        return f"{line} {' '.join(tags)}" if tags else line


def json_formatter() -> JsonFormatter:
    # Extras (route, status, duration_ms...) become top-level keys.
    return JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", rename_fields={"levelname": "level"})


# --- Celery: the request id travels with the task ------------------------------------------


def on_before_task_publish(headers: dict[str, Any] | None = None, **_: Any) -> None:
    request_id = context.current().request_id
    if headers is not None and request_id:
        headers.setdefault(REQUEST_ID_HEADER, request_id)


_bound: dict[str, list[Any]] = {}


def on_task_prerun(task_id: str = "", task: Any = None, **_: Any) -> None:
    request = getattr(task, "request", None)
    # Protocol 2 merges custom headers into the task's request; eager runs
    # keep the caller's context, which already has the request id.
    request_id = getattr(request, REQUEST_ID_HEADER, None) or (getattr(request, "headers", None) or {}).get(
        REQUEST_ID_HEADER
    )
    manager = context.bind(request_id=request_id) if request_id else None
    if manager is not None:
        manager.__enter__()
    _bound[task_id] = [manager, _task_id.set(task_id)]


def on_task_postrun(task_id: str = "", **_: Any) -> None:
    manager, token = _bound.pop(task_id, (None, None))
    if token is not None:
        _task_id.reset(token)
    if manager is not None:
        manager.__exit__(None, None, None)


def connect_celery_signals() -> None:
    from celery.signals import before_task_publish, task_postrun, task_prerun

    before_task_publish.connect(on_before_task_publish, weak=False, dispatch_uid="studio.logging.publish")
    task_prerun.connect(on_task_prerun, weak=False, dispatch_uid="studio.logging.prerun")
    task_postrun.connect(on_task_postrun, weak=False, dispatch_uid="studio.logging.postrun")
