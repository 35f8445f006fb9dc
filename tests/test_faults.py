"""Every piece of work finishes, whatever failed on the way.

Faults are real where they can be: a Celery broker URL where nothing
listens, a broker whose publish raises, a storage endpoint on a closed port.
Each scenario ends with every photo ready (or failed with a reason), no
object left in storage without its row, and nothing done twice.

Tests that need the request's own commit (on_commit callbacks running as in
production) use ``transaction=True``.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from celery.exceptions import Retry
from celery.utils.time import get_exponential_backoff_interval
from django.utils import timezone
from kombu.exceptions import OperationalError
from rest_framework.test import APIClient

from galleries import tasks
from galleries.models import Asset, AssetStatus, PendingDeletion
from galleries.services.effects import asset_keys
from galleries.services.maintenance import assets_retry_failed
from galleries.storage import media_store
from studio.context import acting_as
from studio.tenancy import studio_scope, unscoped
from tests import factories
from tests import test_galleries_s3 as _s3_setup
from tests import test_side_effects as _broker_setup
from tests.gallery_helpers import gallery_url, jpeg, make_gallery, upload
from tests.test_galleries_s3 import _one_attempt, _processing_asset, _use_storage, get_asset, s3_storage
from tests.test_side_effects import broker_back

# Fixtures defined once elsewhere (pytest collects them by module attribute):
# the moto server and production-configured S3 storage, a closed port, a dead broker.
moto_url = _s3_setup.moto_url
s3 = _s3_setup.s3
closed_port = _s3_setup.closed_port
broker_down = _broker_setup.broker_down

pytestmark = pytest.mark.django_db(transaction=True)


def _staff(studio: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(factories.owner_membership(studio).user)
    return client


def _stored(keys: list[str]) -> list[str]:
    store = media_store()
    return [key for key in keys if store.head(key) is not None]


def _assets(gallery: Any) -> list[Asset]:
    with unscoped():
        return list(Asset.objects.filter(gallery=gallery))


def _pending() -> list[PendingDeletion]:
    with unscoped():
        return list(PendingDeletion.objects.all())


def _time_passes(model: type, minutes: int = 5, **fields: Any) -> None:
    with unscoped():
        model.objects.update(**{name: timezone.now() - timedelta(minutes=minutes) for name in fields or ["created_at"]})


# --- the broker down ---------------------------------------------------------------------------------------


def test_a_photo_deleted_while_the_broker_is_down_loses_its_objects_once_it_is_back(settings, broker_down):
    """Before, the row went and the four objects stayed in the bucket, with
    nothing left to find them."""
    studio = factories.studio()
    gallery = make_gallery(studio)
    staff = _staff(studio)
    with broker_back(settings):
        upload(staff, studio, gallery, [("a.jpg", jpeg(), "image/jpeg")])
    settings.CELERY_TASK_ALWAYS_EAGER = False  # down again
    (asset,) = _assets(gallery)
    keys = asset_keys([asset])
    assert asset.status == AssetStatus.READY and len(_stored(keys)) == 4

    response = staff.delete(gallery_url(studio, gallery, f"assets/{asset.pk}/"))
    assert response.status_code == 204, response.content
    assert _assets(gallery) == [] and _pending() == []  # in the bin: nothing to delete yet
    response = staff.post(gallery_url(studio, gallery, f"assets/{asset.pk}/purge/"))
    assert response.status_code == 204, response.content
    (pending,) = _pending()
    assert (set(pending.keys), pending.queued_at) == (set(keys), None)  # recorded, never handed over
    _time_passes(PendingDeletion)
    assert tasks.sweep_pending_deletions() == 0  # the sweeper itself survives a dead broker
    assert len(_stored(keys)) == 4

    with broker_back(settings):
        assert tasks.sweep_pending_deletions() == 1
        assert tasks.sweep_pending_deletions() == 0  # done: nothing twice
    assert _stored(keys) == [] and _pending() == []


def test_a_gallery_deleted_with_a_publish_that_raises_keeps_its_deletion_for_the_sweeper(settings, monkeypatch):
    studio = factories.studio()
    gallery = make_gallery(studio)
    staff = _staff(studio)
    upload(staff, studio, gallery, [("a.jpg", jpeg(), "image/jpeg"), ("b.jpg", jpeg(320, 200), "image/jpeg")])
    keys = asset_keys(_assets(gallery))
    assert len(_stored(keys)) == 8

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    monkeypatch.setattr(tasks.delete_objects, "apply_async", refuse)
    response = staff.delete(gallery_url(studio, gallery))
    assert response.status_code == 204, response.content
    assert len(_stored(keys)) == 8 and len(_pending()) == 1
    monkeypatch.undo()

    _time_passes(PendingDeletion)
    assert tasks.sweep_pending_deletions() == 1
    assert _stored(keys) == [] and _pending() == []


def test_a_deletion_handed_over_but_lost_is_queued_again_after_its_limit(settings):
    studio = factories.studio()
    key = f"studios/{studio.pk}/galleries/g/originals/lost.jpg"
    media_store().put(key, b"x", "image/jpeg")
    with studio_scope(studio):
        row = PendingDeletion.objects.create(studio=studio, keys=[key], queued_at=timezone.now())
    assert tasks.sweep_pending_deletions() == 0  # queued a moment ago: its task may still run
    with unscoped():
        PendingDeletion.objects.filter(pk=row.pk).update(
            queued_at=timezone.now() - timedelta(seconds=settings.DELETIONS_STUCK_AFTER_SECONDS + 1)
        )
    assert tasks.sweep_pending_deletions() == 1
    assert _stored([key]) == [] and _pending() == []


def test_complete_with_a_publish_that_raises_answers_200_and_calling_it_again_or_the_sweeper_finishes(
    settings, monkeypatch
):
    """The request's transaction has committed when the broker refuses: it
    answers as usual, the photos wait unstamped, and the sweeper queues them."""
    studio = factories.studio()
    gallery = make_gallery(studio)
    staff = _staff(studio)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    monkeypatch.setattr(tasks.make_derivatives, "apply_async", refuse)
    monkeypatch.setattr(tasks.delete_objects, "apply_async", refuse)
    done = upload(staff, studio, gallery, [("a.jpg", jpeg(), "image/jpeg"), ("b.jpg", jpeg(320, 200), "image/jpeg")])
    assert len(done["processing"]) == 2
    assert {(a.status, a.derivatives_queued_at) for a in _assets(gallery)} == {(AssetStatus.PROCESSING, None)}
    assert tasks.sweep_stuck_assets() == 0  # too fresh, and the broker still refuses
    monkeypatch.undo()

    _time_passes(Asset, updated_at=True)
    _time_passes(PendingDeletion)
    assert tasks.sweep_stuck_assets() == 2
    # Each job deleted its one-time upload key after copying it: the broker
    # took those, so nothing is left for the deletion sweeper.
    assert tasks.sweep_pending_deletions() == 0
    assets = _assets(gallery)
    assert {a.status for a in assets} == {AssetStatus.READY}
    assert all(len(a.derivatives) == 3 for a in assets)
    kept = [k for a in assets for k in [a.storage_key, *(d["key"] for d in a.derivatives.values())]]
    assert sorted(_stored(kept)) == sorted(kept) and _pending() == []
    assert _stored([a.upload_key for a in assets]) == []  # the one-time keys went, once


# --- storage down ------------------------------------------------------------------------------------------


def test_storage_retries_have_a_floor_and_outlast_a_ten_minute_outage():
    """Before, full jitter from 0 s and 8 retries could all be spent within
    a minute or two of an outage."""
    for task in (tasks.make_derivatives, tasks.delete_objects):
        waits = [
            get_exponential_backoff_interval(
                factor=task.retry_backoff, retries=n, maximum=task.retry_backoff_max, full_jitter=task.retry_jitter
            )
            for n in range(task.max_retries)
        ]
        assert min(waits) >= 10 and max(waits) <= 300, task.name
        assert sum(waits) > 10 * 60 * 2, task.name  # twice a 10-minute outage, before any jitter


def test_the_visibility_timeout_outlasts_every_task_and_every_retry(settings):
    from studio.celery import app

    timeout = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    limits = [t.time_limit for name, t in app.tasks.items() if not name.startswith("celery.") and t.time_limit]
    assert limits and timeout > max(limits)
    assert timeout > settings.STORAGE_RETRY_MAX_SECONDS + settings.STORAGE_RETRY_MIN_SECONDS
    assert timeout < 4 * 3600  # not a day: a killed worker's export comes back the same afternoon


@pytest.mark.django_db
def test_an_s3_outage_past_every_retry_ends_ready_once_it_is_back(
    s3, moto_url, closed_port, studio, owner, client_for, settings, django_capture_on_commit_callbacks
):
    """S3 on a port where nothing listens: the job retries, then gives up
    with the photo processing and the reason; the sweeper queues it again
    after the outage and the photo ends ready, with no object twice."""
    asset = _processing_asset(s3, client_for(owner), studio, make_gallery(studio), django_capture_on_commit_callbacks)
    _use_storage(settings, s3_storage(f"http://127.0.0.1:{closed_port}", client_config=_one_attempt()))
    with pytest.raises(Retry):
        tasks.make_derivatives.delay(str(studio.pk), str(asset.pk))
    settings.CELERY_TASK_EAGER_PROPAGATES = False  # eager retries run in turn, as a worker's would
    result = tasks.make_derivatives.delay(str(studio.pk), str(asset.pk))
    assert result.failed()  # every retry spent while S3 is still down
    down = get_asset(studio, asset.pk)
    assert down.status == AssetStatus.PROCESSING and down.failure_reason.startswith("Waiting for storage")

    # The job started and never ended, as far as the sweeper can tell.
    long_ago = timezone.now() - timedelta(seconds=settings.DERIVATIVE_TIME_LIMIT + 120)
    with unscoped():
        Asset.objects.filter(pk=asset.pk).update(
            derivatives_queued_at=long_ago - timedelta(seconds=1), processing_started_at=long_ago
        )
    _use_storage(settings, s3_storage(moto_url))
    assert tasks.sweep_stuck_assets() == 1
    ready = get_asset(studio, asset.pk)
    assert (ready.status, ready.failure_reason) == (AssetStatus.READY, "")
    # The job's deletion of the one-time upload key waits on a commit this
    # test never makes: its row is there, and the sweeper finishes it.
    _time_passes(PendingDeletion)
    assert tasks.sweep_pending_deletions() == 1
    prefix = f"studios/{studio.pk}/galleries/{ready.gallery_id}/"
    assert s3.keys(prefix) == {ready.storage_key, *(d["key"] for d in ready.derivatives.values())}


@pytest.mark.django_db
def test_an_s3_outage_that_outlasts_the_sweeper_fails_the_photo_with_the_reason(
    s3, closed_port, studio, owner, client_for, settings, django_capture_on_commit_callbacks
):
    asset = _processing_asset(s3, client_for(owner), studio, make_gallery(studio), django_capture_on_commit_callbacks)
    _use_storage(settings, s3_storage(f"http://127.0.0.1:{closed_port}", client_config=_one_attempt()))
    settings.CELERY_TASK_EAGER_PROPAGATES = False
    settings.STORAGE_RETRIES = 0
    with unscoped():
        Asset.objects.filter(pk=asset.pk).update(sweeps=settings.DERIVATIVE_MAX_SWEEPS, derivatives_queued_at=None)
        Asset.objects.filter(pk=asset.pk).update(updated_at=timezone.now() - timedelta(minutes=5))
    assert tasks.sweep_stuck_assets() == 0  # its sweeps are spent: failed, not queued
    failed = get_asset(studio, asset.pk)
    assert failed.status == AssetStatus.FAILED and "did not finish" in failed.failure_reason
    # The checked upload stays for the studio, at its one-time key (the job
    # never got to copy it), and a retry once storage is back copies it.
    assert failed.upload_etag and s3.exists(failed.upload_key)
    _use_storage(settings, s3_storage(s3.url))
    with django_capture_on_commit_callbacks(execute=True), acting_as(factories.TEST_ACTOR), studio_scope(studio):
        retried = assets_retry_failed(gallery=failed.gallery, store=media_store())
    assert [a.pk for a in retried] == [failed.pk]
    ready = get_asset(studio, asset.pk)
    assert (ready.status, ready.upload_etag) == (AssetStatus.READY, "")
    assert s3.exists(ready.storage_key) and not s3.exists(ready.upload_key)


# --- cache and broker apart ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("redis_url", "broker"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/1"),
        ("redis://:secret@redis.internal:6379", "redis://:secret@redis.internal:6379/1"),
        ("rediss://redis.internal/4?ssl_cert_reqs=required", "rediss://redis.internal/5?ssl_cert_reqs=required"),
        ("", ""),
    ],
)
@pytest.mark.django_db(transaction=False)
def test_the_broker_defaults_to_the_database_after_the_cache(redis_url, broker):
    """Before, one database held both: a cache.clear() wiped the queues."""
    from studio.settings import _next_redis_db

    assert _next_redis_db(redis_url) == broker


# --- timeouts on every outbound call ------------------------------------------------------------------------

_PRINT_TIMEOUTS = """
import json
import django
django.setup()
from django.conf import settings
from django.core.files.storage import storages
config = storages["default"].client_config
print(json.dumps({
    "s3": [config.connect_timeout, config.read_timeout, config.retries, config.signature_version, config.s3],
    "smtp": settings.EMAIL_TIMEOUT,
    "broker": settings.CELERY_BROKER_URL,
    "visibility": settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"],
}))
"""


@pytest.mark.django_db(transaction=False)
def test_production_settings_bound_s3_and_smtp_and_keep_the_broker_apart(tmp_path):
    from tests.test_platform import _production_env, _run

    env = _production_env(tmp_path, AWS_S3_ADDRESSING_STYLE="path")
    result = _run(["-c", _PRINT_TIMEOUTS], env)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    connect, read, retries, signature, s3_options = seen["s3"]
    assert 0 < connect <= 5 and 0 < read <= 30  # botocore's default read waits 60 s
    assert retries == {"mode": "standard", "total_max_attempts": 3}
    # The client config replaces django-storages' own: the options survive in it.
    assert (signature, s3_options) == ("s3v4", {"addressing_style": "path"})
    assert 0 < seen["smtp"] <= 30
    assert seen["broker"] == "redis://127.0.0.1:6379/10"  # the cache is /9
    assert seen["visibility"] > 3 * 60 * 60  # the longest task: an export's hard limit


@pytest.mark.django_db(transaction=False)
def test_stripe_calls_are_bounded(settings):
    from bookings.providers import StripeProvider

    settings.STRIPE_SECRET_KEY = "sk_test_not_a_real_key"
    requestor = StripeProvider().client._requestor
    assert requestor._client._timeout == settings.STRIPE_TIMEOUT_SECONDS <= 15  # stripe's default is 80 s
    assert requestor._options.max_network_retries == settings.STRIPE_MAX_NETWORK_RETRIES


# --- Redis down, S3 down: what the API answers ------------------------------------------------------------


@pytest.fixture
def redis_down(settings, closed_port):
    """The cache is Redis, on a port where nothing listens."""
    from django.core.cache import cache

    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{closed_port}/0",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    from redis.exceptions import ConnectionError as RedisConnectionError

    with pytest.raises(RedisConnectionError):
        cache.get("probe")


@pytest.mark.django_db(transaction=False)
def test_with_redis_down_ordinary_throttles_let_the_api_work(redis_down, caplog):
    """Before, every API call answered 500 (the throttles read Redis)."""
    studio = factories.studio()
    make_gallery(studio)
    response = _staff(studio).get(gallery_url(studio))
    assert response.status_code == 200, response.content
    assert "rate limit UserRateThrottle not applied" in caplog.text


@pytest.mark.django_db(transaction=False)
def test_with_redis_down_portal_codes_are_refused_with_503_not_guessed_unlimited(redis_down):
    """The code and PIN limits guard secrets: without their counters, no
    guess is checked at all; the answer is the one error shape, 503."""
    studio = factories.studio()
    gallery = factories.gallery(studio)
    client = APIClient(enforce_csrf_checks=False)
    response = client.post(
        "/api/v1/portal/access/", {"studio": studio.slug, "code": gallery.access_code}, format="json"
    )
    assert response.status_code == 503, response.content
    assert response.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert "127.0.0.1" not in response.content.decode()  # the outage's details stay in the log
    assert int(response["Retry-After"]) > 0


@pytest.mark.django_db(transaction=False)
def test_with_redis_down_the_calendar_feed_is_built_uncached(redis_down, caplog):
    """Before, the ICS cache made the feed answer 500."""
    from tests.test_bookings_calendar import make_feed

    studio = factories.studio()
    path = make_feed(factories.owner_membership(studio))
    response = APIClient().get(path)
    assert response.status_code == 200, response.content
    assert b"BEGIN:VCALENDAR" in response.content
    assert "cache unreachable" in caplog.text


@pytest.mark.django_db(transaction=False)
def test_with_s3_down_the_api_answers_503_storage_unavailable(s3, closed_port, studio, owner, client_for, settings):
    """Before, 500: the storage error reached Django as a bug."""
    from tests.test_galleries_s3 import post_file, presign

    client = client_for(owner)
    gallery = make_gallery(studio)
    data = jpeg(64, 48)
    presigned = presign(client, studio, gallery, [("a.jpg", len(data), "image/jpeg")])
    post_file(s3, presigned["targets"][0], data)
    _use_storage(settings, s3_storage(f"http://127.0.0.1:{closed_port}", client_config=_one_attempt()))

    response = client.post(gallery_url(studio, gallery, f"uploads/{presigned['batch']}/complete/"), {}, format="json")
    assert response.status_code == 503, response.content
    body = response.json()
    assert body["error"]["code"] == "STORAGE_UNAVAILABLE" and body["request_id"]
    assert str(closed_port) not in response.content.decode()
    assert {a.status for a in _assets(gallery)} == {AssetStatus.AWAITING_UPLOAD}  # nothing recorded: retry later


@pytest.mark.django_db(transaction=False)
def test_with_redis_down_sign_in_refuses_with_503_rather_than_skip_its_limits(redis_down):
    from django.test import Client
    from django.urls import reverse

    user = factories.owner_membership(factories.studio()).user
    response = Client().post(reverse("account_login"), {"login": user.email, "password": factories.PASSWORD})
    assert response.status_code == 503, response.content
    assert int(response["Retry-After"]) > 0
    assert "sessionid" not in response.cookies  # not signed in


@pytest.mark.django_db(transaction=False)
def test_with_redis_down_the_portal_code_page_answers_503(redis_down):
    from django.test import Client

    studio = factories.studio()
    gallery = factories.gallery(studio)
    response = Client().post("/g/", {"code": gallery.access_code, "studio": studio.slug})
    assert response.status_code == 503, response.content
