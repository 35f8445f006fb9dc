"""Health, logs, metrics and error reporting: what an operator relies on
when something is wrong at 3 a.m."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest
from celery import shared_task
from django.db import connection
from django.test.utils import CaptureQueriesContext

from studio import context, health, metrics
from studio.logging import ContextFilter, json_formatter
from studio.middleware import PORTAL_SESSION_KEY
from tests.mail_server import free_port

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """Every record, as the production handler writes it (JSON, context filter)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(json_formatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


def lines(stream: io.StringIO, name: str | None = None) -> list[dict]:
    parsed = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    return [line for line in parsed if name is None or line["name"] == name]


# --- /healthz and /readyz ----------------------------------------------------------------------


def test_healthz_answers_without_touching_anything(client):
    with CaptureQueriesContext(connection) as queries, mock.patch.object(health, "run_checks") as checks:
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert len(queries) == 0
    checks.assert_not_called()


def test_readyz_reports_every_check_with_its_duration(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok" and body["failed"] == []
    assert set(body["checks"]) == {"database", "cache", "broker", "storage"}
    for check in body["checks"].values():
        assert check["status"] == "ok" and check["duration_ms"] >= 0
    assert body["checks"]["broker"]["detail"] == "eager (no broker)"
    assert "no-cache" in response["Cache-Control"]


def _failed(client) -> list[str]:
    response = client.get("/readyz")
    assert response.status_code == 503, response.content
    body = response.json()
    assert body["status"] == "unavailable"
    return body["failed"]


def test_readyz_names_a_dead_cache(client, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
        }
    }
    assert _failed(client) == ["cache"]


def test_readyz_names_a_dead_broker(client, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"
    assert _failed(client) == ["broker"]


def test_readyz_names_a_broken_storage(client, settings, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    settings.MEDIA_ROOT = str(blocker / "media")
    assert _failed(client) == ["storage"]


def test_readyz_answers_within_the_timeout_when_a_check_hangs(client, settings):
    settings.READINESS_TIMEOUT = 0.2
    hanging = {**health.CHECKS, "database": lambda: time.sleep(2) or ""}
    started = time.perf_counter()
    with mock.patch.dict(health.CHECKS, hanging):
        failed = _failed(client)
    assert time.perf_counter() - started < 1.5
    assert failed == ["database"]


def test_readyz_checks_an_s3_bucket_with_a_head_request():
    bucket = mock.Mock(name="bucket")
    bucket.name = "studio-media"
    storage = mock.Mock(bucket=bucket)
    with mock.patch.object(health, "storages", {"default": storage}):
        assert health.check_storage() == "bucket reachable"
    bucket.meta.client.head_bucket.assert_called_once_with(Bucket="studio-media")


# --- logs ------------------------------------------------------------------------------------------


def test_one_request_line_with_route_status_duration_studio_and_user(client_for, owner, studio, logs):
    response = client_for(owner).get(f"/api/v1/studios/{studio.slug}/teams/", HTTP_X_REQUEST_ID="req-obs-0001")
    assert response.status_code == 200
    [line] = lines(logs, "studio.request")
    assert line["request_id"] == "req-obs-0001" == response["X-Request-ID"]
    assert line["route"] == "api/v1/studios/<slug:studio_slug>/teams/"  # the pattern, not the path
    assert (line["method"], line["status"], line["studio"]) == ("GET", 200, studio.slug)
    assert line["user"] == str(owner.user.pk)
    assert line["duration_ms"] >= 0 and line["level"] == "INFO"


def test_a_portal_request_line_names_the_visitor(studio, logs):
    from galleries.models import Visitor
    from studio.tenancy import unscoped
    from tests.test_portal import _gallery, _open, _url

    gallery = _gallery(studio)
    client = _open(gallery)
    assert client.get(_url(gallery)).status_code == 200
    with unscoped():
        visitor = Visitor.objects.get(gallery=gallery)
    line = lines(logs, "studio.request")[-1]
    assert line["route"] == "api/v1/portal/galleries/<uuid:gallery_pk>/"
    assert (line["visitor"], line["user"]) == (str(visitor.pk), "")
    assert line["studio"] == studio.slug  # resolved from the portal session, not the URL


def test_an_unknown_path_is_one_route_label(client, logs):
    client.get("/no/such/page/12345")
    [line] = lines(logs, "studio.request")
    assert line["route"] == metrics.UNMATCHED_ROUTE and line["status"] == 404


def test_the_error_line_carries_the_request_id_of_the_error_body(client_for, owner, logs):
    from studio.api.views import MeView

    client = client_for(owner)
    client.raise_request_exception = False
    with mock.patch.object(MeView, "get", side_effect=RuntimeError("boom")):
        response = client.get("/api/v1/me/")
    assert response.status_code == 500
    request_id = response.json()["request_id"]
    errors = [line for line in lines(logs) if line["level"] == "ERROR"]
    assert errors and all(line["request_id"] == request_id for line in errors)
    assert any("boom" in line.get("exc_info", "") for line in errors)  # the traceback is in the logs
    assert lines(logs, "studio.request")[0]["request_id"] == request_id


def test_disallowed_host_is_a_warning_without_traceback(client, caplog):
    with caplog.at_level(logging.INFO):
        response = client.get("/healthz", HTTP_HOST="evil.example")
    assert response.status_code == 400
    [record] = [r for r in caplog.records if r.name == "django.security.DisallowedHost"]
    assert record.levelno == logging.WARNING
    assert record.exc_info is None


def test_the_portal_session_key_is_the_one_galleries_uses():
    from galleries.access import SESSION_KEY

    assert PORTAL_SESSION_KEY == SESSION_KEY


@shared_task(name="tests.observability.echo")
def echo(fail: bool = False) -> str:
    logging.getLogger("tests.observability").info("inside the task")
    if fail:
        raise ValueError("task failed on purpose")
    return "done"


def test_publishing_a_task_sends_the_request_id_in_its_headers(settings):
    from celery.signals import before_task_publish

    settings.CELERY_TASK_ALWAYS_EAGER = False  # really published, to the in-memory broker
    seen: list[dict] = []

    def capture(headers=None, **_):
        seen.append(dict(headers or {}))

    before_task_publish.connect(capture, weak=False)
    try:
        with context.bind(request_id="req-publish-01"):
            echo.apply_async(queue="tests-observability")
    finally:
        before_task_publish.disconnect(capture)
    assert seen and seen[-1]["request_id"] == "req-publish-01"


def test_task_lines_carry_the_task_id_and_the_request_id_that_queued_it(logs):
    result = echo.apply(headers={"request_id": "req-queued-01"})
    [line] = [line for line in lines(logs) if line["message"] == "inside the task"]
    assert line["request_id"] == "req-queued-01"
    assert line["task_id"] == result.id
    assert context.current().request_id == ""  # restored after the task


def test_a_worker_restores_the_request_id_from_the_message_headers(logs):
    from celery.app.trace import trace_task

    # A worker merges a message's headers into the task's request (protocol 2).
    request = {"id": "task-worker-01", "request_id": "req-worker-01"}
    trace_task(echo, "task-worker-01", (), {}, request=request, app=echo.app)
    [line] = [line for line in lines(logs) if line["message"] == "inside the task"]
    assert (line["request_id"], line["task_id"]) == ("req-worker-01", "task-worker-01")


def test_studio_task_lines_carry_the_studio(studio, logs):
    from studio.tasks import studio_task

    @studio_task(name="tests.observability.in_studio", soft_time_limit=5, time_limit=10)
    def in_studio(studio_):
        logging.getLogger("tests.observability").info("in the studio")

    in_studio.apply(args=[str(studio.pk)])
    [line] = [line for line in lines(logs) if line["message"] == "in the studio"]
    assert line["studio"] == studio.slug


def test_plain_lines_name_the_request_and_who():
    from studio.logging import PlainFormatter

    record = logging.LogRecord("studio.request", logging.INFO, __file__, 1, "GET healthz 200", None, None)
    record.request_id, record.studio, record.user = "req-plain-01", "acme", "42"
    line = PlainFormatter().format(record)
    assert "[req-plain-01] GET healthz 200" in line and line.endswith("studio=acme user=42")


def test_log_format_defaults_to_json_off_a_terminal(settings):
    assert settings.LOG_FORMAT == "json"  # pytest's stderr is not a TTY
    assert settings.LOGGING["handlers"]["console"]["formatter"] == "json"


# --- /metrics ----------------------------------------------------------------------------------


def _scrape(client, token: str = "secret-metrics-token") -> str:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def test_metrics_is_not_found_without_a_token_configured(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404


def test_metrics_refuses_a_wrong_token(client, settings):
    settings.METRICS_TOKEN = "secret-metrics-token"
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope").status_code == 404


def test_metrics_count_requests_by_route_method_and_status(client, settings):
    settings.METRICS_TOKEN = "secret-metrics-token"
    client.get("/healthz")
    text = _scrape(client)
    assert 'studio_http_requests_total{method="GET",route="healthz",status="200"}' in text
    assert 'studio_http_request_duration_seconds_bucket{le="0.01",method="GET",route="healthz",status="200"}' in text


def test_metrics_count_tasks_durations_and_failures(client, settings):
    settings.METRICS_TOKEN = "secret-metrics-token"
    echo.apply()
    echo.apply(kwargs={"fail": True}, throw=False)
    text = _scrape(client)
    assert 'studio_celery_tasks_total{state="SUCCESS",task="tests.observability.echo"}' in text
    assert 'studio_celery_tasks_total{state="FAILURE",task="tests.observability.echo"}' in text
    assert 'studio_celery_task_failures_total{task="tests.observability.echo"}' in text
    assert 'studio_celery_task_duration_seconds_count{task="tests.observability.echo"}' in text


def test_metrics_photos_and_emails_by_status_in_one_query_each(client, settings, studio):
    from galleries.models import Asset, AssetStatus
    from studio.tenancy import studio_scope
    from tests import factories

    settings.METRICS_TOKEN = "secret-metrics-token"
    with studio_scope(studio):
        for _ in range(2):
            factories.FACTORIES[Asset](studio)
        statuses = list(Asset.objects.values_list("status", flat=True))
    with CaptureQueriesContext(connection) as queries:
        text = _scrape(client)
    aggregates = [q["sql"] for q in queries if "COUNT" in q["sql"].upper()]
    assert len(aggregates) == 2
    for status in AssetStatus.values:
        assert f'studio_photos{{status="{status}"}} {float(statuses.count(status))}' in text
    from studio.models import EmailStatus

    for status in EmailStatus.values:  # zeros included: a series does not vanish
        assert f'studio_emails{{status="{status}"}}' in text
    assert "studio_celery_queue_depth" not in text  # eager: no queue


def test_queue_depth_per_queue_when_redis_is_the_broker(client, settings):
    settings.METRICS_TOKEN = "secret-metrics-token"
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = "redis://broker.invalid:6379/0"
    fake = mock.Mock()
    fake.llen.side_effect = lambda queue: {"derivatives": 7}.get(queue, 0)
    with mock.patch("redis.Redis.from_url", return_value=fake):
        text = _scrape(client)
    assert 'studio_celery_queue_depth{queue="derivatives"} 7.0' in text
    assert 'studio_celery_queue_depth{queue="email"} 0.0' in text


def test_queue_depth_is_left_out_when_the_broker_does_not_answer(client, settings):
    settings.METRICS_TOKEN = "secret-metrics-token"
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"
    text = _scrape(client)
    assert "studio_celery_queue_depth" not in text and "studio_photos" in text


def test_multiprocess_mode_reads_the_shared_directory(client, settings, tmp_path, monkeypatch):
    settings.METRICS_TOKEN = "secret-metrics-token"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    with mock.patch.object(metrics, "MultiProcessCollector") as collector:
        _scrape(client)
    collector.assert_called_once()


# --- Sentry ----------------------------------------------------------------------------------------


def _sentry_state(**env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if k != "SENTRY_DSN"} | env
    code = (
        "import django, sentry_sdk; django.setup(); c = sentry_sdk.get_client();"
        "print(c.is_active(), c.options.get('send_default_pii'), c.options.get('environment'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**environment, "DJANGO_SETTINGS_MODULE": "studio.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_sentry_is_not_initialised_without_a_dsn():
    import sentry_sdk

    assert not sentry_sdk.get_client().is_active()
    assert _sentry_state().startswith("False")


def test_sentry_is_initialised_with_a_dsn_and_sends_no_pii():
    state = _sentry_state(SENTRY_DSN="https://public@sentry.invalid/1", SENTRY_ENVIRONMENT="staging")
    assert state == "True False staging"
