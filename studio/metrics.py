"""Prometheus metrics, served at ``/metrics`` behind ``METRICS_TOKEN``.

Counters and histograms live in each process. Under gunicorn (several worker
processes) a scrape reaches one of them only, so set
``PROMETHEUS_MULTIPROC_DIR`` to an empty directory shared by the workers
(wiped at each start): prometheus-client then writes every process's values
there and ``/metrics`` adds them up. Gauges about the data (photos, emails,
queue depth) are computed at scrape time, once, whichever process answers.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

# The process's own metrics; not the library's global registry, so imports in
# tests or elsewhere cannot register duplicates into what we serve.
PROCESS = CollectorRegistry()

REQUESTS = Counter("studio_http_requests", "HTTP requests answered.", ["route", "method", "status"], registry=PROCESS)
REQUEST_SECONDS = Histogram(
    "studio_http_request_duration_seconds",
    "Time to answer a request.",
    ["route", "method", "status"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=PROCESS,
)
TASKS = Counter("studio_celery_tasks", "Celery tasks run, by outcome.", ["task", "state"], registry=PROCESS)
TASK_FAILURES = Counter("studio_celery_task_failures", "Celery tasks that raised.", ["task"], registry=PROCESS)
TASK_SECONDS = Histogram(
    "studio_celery_task_duration_seconds",
    "Time a Celery task ran.",
    ["task"],
    buckets=(0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800, 3600),
    registry=PROCESS,
)

# Arbitrary methods must not mint label values.
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
UNMATCHED_ROUTE = "<unmatched>"  # 404s for unknown paths: one label, not one per path


def observe_request(*, route: str, method: str, status: int, seconds: float) -> None:
    labels = (route or UNMATCHED_ROUTE, method if method in _METHODS else "OTHER", str(status))
    REQUESTS.labels(*labels).inc()
    REQUEST_SECONDS.labels(*labels).observe(seconds)


# --- Celery signals (sent in eager mode too) --------------------------------------------------

_started: dict[str, float] = {}


def on_task_prerun(task_id: str = "", **_: Any) -> None:
    _started[task_id] = time.perf_counter()


def on_task_postrun(task_id: str = "", task: Any = None, state: str | None = None, **_: Any) -> None:
    started = _started.pop(task_id, None)
    name = getattr(task, "name", "unknown")
    TASKS.labels(name, state or "UNKNOWN").inc()
    if started is not None:
        TASK_SECONDS.labels(name).observe(time.perf_counter() - started)


def on_task_failure(sender: Any = None, **_: Any) -> None:
    TASK_FAILURES.labels(getattr(sender, "name", "unknown")).inc()


def connect_celery_signals() -> None:
    from celery.signals import task_failure, task_postrun, task_prerun

    task_prerun.connect(on_task_prerun, weak=False, dispatch_uid="studio.metrics.prerun")
    task_postrun.connect(on_task_postrun, weak=False, dispatch_uid="studio.metrics.postrun")
    task_failure.connect(on_task_failure, weak=False, dispatch_uid="studio.metrics.failure")


# --- computed at scrape time ------------------------------------------------------------------


def _queues() -> list[str]:
    names = {settings.CELERY_TASK_DEFAULT_QUEUE}
    names.update(route["queue"] for route in settings.CELERY_TASK_ROUTES.values())
    return sorted(names)


class DataCollector(Collector):
    """Photos and emails by status (one aggregate query each) and, when Redis
    is the broker, the length of each queue's list."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from studio.tenancy import unscoped

        with unscoped():  # platform-wide counts, no rows leave the process
            # By label: the core imports no app.
            yield self._by_status("studio_photos", "Photos by status.", apps.get_model("galleries", "Asset"))
            yield self._by_status("studio_emails", "Emails by status.", apps.get_model("studio", "EmailLog"))
        depth = self._queue_depth()
        if depth is not None:
            yield depth

    @staticmethod
    def _by_status(name: str, doc: str, model: Any) -> GaugeMetricFamily:
        # Every status, zeros included, so a series does not vanish when it empties.
        counts = {value: 0 for value, _ in model._meta.get_field("status").choices}
        counts.update(model.objects.values_list("status").annotate(n=Count("pk")).order_by())
        family = GaugeMetricFamily(name, doc, labels=["status"])
        for status, n in sorted(counts.items()):
            family.add_metric([status], n)
        return family

    @staticmethod
    def _queue_depth() -> GaugeMetricFamily | None:
        url = settings.CELERY_BROKER_URL
        if settings.CELERY_TASK_ALWAYS_EAGER or not url.startswith(("redis://", "rediss://")):
            return None  # no queue to measure
        import redis

        try:
            client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
            # Kombu keeps a queue's default-priority messages in a list named after it.
            depths = {queue: client.llen(queue) for queue in _queues()}
        except redis.RedisError:
            logger.warning("metrics: queue depth unavailable, the broker did not answer", exc_info=True)
            return None
        family = GaugeMetricFamily("studio_celery_queue_depth", "Messages waiting per queue.", labels=["queue"])
        for queue, n in depths.items():
            family.add_metric([queue], n)
        return family


class _Process(Collector):
    def collect(self) -> Iterator[Any]:
        yield from PROCESS.collect()


def scrape_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)  # every worker's files, added up
    else:
        registry.register(_Process())
    registry.register(DataCollector())
    return registry


def metrics_view(request: HttpRequest) -> HttpResponse:
    """Unset METRICS_TOKEN hides the endpoint (404); a wrong token is 404 too,
    so the endpoint cannot be found by probing."""
    token = settings.METRICS_TOKEN
    sent = request.headers.get("Authorization", "")
    if not token or not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
        raise Http404
    response = HttpResponse(generate_latest(scrape_registry()), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response
