"""Readiness: can this process serve requests right now?

Each dependency is checked in its own thread, all at once, and waited on for
at most ``READINESS_TIMEOUT`` seconds, so one hanging service cannot hold the
probe (and the load balancer's patience) past the timeout.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.core.files.storage import FileSystemStorage, storages
from django.db import connection, connections

logger = logging.getLogger(__name__)

EAGER = "eager (no broker)"


@dataclass(frozen=True)
class Result:
    ok: bool
    duration_ms: float
    detail: str = ""

    def as_json(self) -> dict[str, object]:
        return {"status": "ok" if self.ok else "failed", "duration_ms": self.duration_ms, "detail": self.detail}


def check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        # Connections are per thread: this check thread's must not outlive it.
        connections.close_all()
    return ""


def check_cache() -> str:
    key, value = f"readyz:{uuid.uuid4().hex}", "1"
    cache.set(key, value, timeout=10)
    if cache.get(key) != value:
        raise RuntimeError("the cache did not return what was stored")
    cache.delete(key)
    return ""


def check_broker() -> str:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return EAGER  # tasks run in this process; nothing to reach
    from kombu import Connection

    timeout = settings.READINESS_TIMEOUT
    with Connection(settings.CELERY_BROKER_URL, connect_timeout=timeout) as broker:
        broker.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
    return ""


def check_storage() -> str:
    storage = storages["default"]
    if isinstance(storage, FileSystemStorage):
        # Uploads and derivatives write here: readable is not enough.
        os.makedirs(storage.location, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=storage.location, prefix=".readyz-"):
            pass
        return "local media root writable"
    bucket = storage.bucket  # django-storages' S3Storage
    bucket.meta.client.head_bucket(Bucket=bucket.name)
    return "bucket reachable"


CHECKS: dict[str, Callable[[], str]] = {
    "database": check_database,
    "cache": check_cache,
    "broker": check_broker,
    "storage": check_storage,
}


def _timed(check: Callable[[], str]) -> Result:
    started = time.perf_counter()
    try:
        detail = check()
    except Exception as exc:  # any failure means "not ready"; the type says which kind
        logger.warning("readiness check %s failed", check.__name__, exc_info=True)
        return Result(False, _ms(started), type(exc).__name__)
    return Result(True, _ms(started), detail)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def run_checks() -> dict[str, Result]:
    timeout = settings.READINESS_TIMEOUT
    pool = ThreadPoolExecutor(max_workers=len(CHECKS), thread_name_prefix="readyz")
    started = time.perf_counter()
    futures = {name: pool.submit(_timed, check) for name, check in CHECKS.items()}
    results: dict[str, Result] = {}
    for name, future in futures.items():
        remaining = max(0.0, timeout - (time.perf_counter() - started))
        try:
            results[name] = future.result(timeout=remaining)
        except FutureTimeout:
            logger.warning("readiness check %s timed out after %ss", name, timeout)
            results[name] = Result(False, _ms(started), f"timed out after {timeout}s")
    # A hung check's thread is left to finish on its own; the probe answers now.
    pool.shutdown(wait=False, cancel_futures=True)
    return results
