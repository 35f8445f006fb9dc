"""A derivatives worker killed with SIGKILL mid-batch: the batch still ends.

A real worker (``celery -A studio worker``, prefork, as the Procfile runs it)
processes a real upload against the test database, the tmp media root and a
Redis database of its own. It is frozen, then killed (the whole process
group, so no warm shutdown hands its job back) while one photo is being
processed and others wait in the queue. A fresh worker takes the rest; once
the recovery thresholds have passed, the sweepers (beat jobs) queue the
lost job again. Then every photo is ready or failed with a reason, each ready
photo's derivatives are stored once under their keys, nothing is orphaned,
and the killed job's message, redelivered hours later by the transport, is
harmless.

Needs PostgreSQL (a second process must see the committed data) and Redis.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection
from django.db.models import Count, F
from django.utils import timezone
from kombu import Connection
from rest_framework.test import APIClient

from audit.models import AuditEvent
from galleries import tasks
from galleries.models import Asset, AssetStatus, PendingDeletion
from galleries.services.maintenance import orphan_keys
from galleries.storage import LocalMediaStore, derivative_key, media_store
from studio.auditing import Action
from studio.tenancy import studio_scope, unscoped
from tests import factories
from tests.gallery_helpers import jpeg, make_gallery, upload
from tests.test_side_effects import _reset_broker_pools

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

BASE_DIR = Path(django_settings.BASE_DIR)
PHOTOS = 10
# The queues the derivative jobs and their deletions go to (CELERY_TASK_ROUTES).
QUEUES = ("derivatives", "default")
# Held in the broker database this test uses, so two runs never share one.
CLAIM_KEY = "tests:worker-kill:claim"
WORKER_READY_SECONDS = 20
STEP_SECONDS = 20
# The whole scenario takes about 25 s; past this, fail rather than wait on.
BUDGET_SECONDS = 60


# --- a broker of our own ---------------------------------------------------------------------------------


@pytest.fixture
def broker_url() -> Iterator[str]:
    """An empty Redis database, claimed atomically, for the broker: the
    messages of the killed worker stay "unacked" there, and another test or
    run consuming the same queues would take jobs from this one."""
    base = urlsplit(os.environ["REDIS_URL"])
    taken = int(base.path.strip("/") or 0)
    token = uuid.uuid4().hex
    for db in range(15, 1, -1):
        if db in (taken, taken + 1):  # the suite's cache and broker
            continue
        url = urlunsplit(base._replace(path=f"/{db}"))
        client = redis.Redis.from_url(url)
        try:
            claimed = client.set(CLAIM_KEY, token, nx=True, ex=300)
        except redis.ResponseError:  # fewer databases configured
            continue
        if claimed and client.dbsize() == 1:
            break
        if claimed:
            client.delete(CLAIM_KEY)  # someone else's keys live here
        client.close()
    else:
        pytest.fail("No empty Redis database (2-15) to use as this test's broker.")
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


@pytest.fixture
def real_broker(settings, broker_url) -> Iterator[str]:
    """This process publishes to the same broker as the workers, for real."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = broker_url
    _reset_broker_pools()
    try:
        yield broker_url
    finally:
        _reset_broker_pools()


# --- real worker processes -------------------------------------------------------------------------------


class Workers:
    """Celery workers started as the Procfile's ``derivatives`` process is,
    each in its own process group so a kill takes its pool children too.
    ``stop_all`` kills whatever is left: no test outcome leaves one running."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.running: list[subprocess.Popen[bytes]] = []
        self.log_paths: list[Path] = []
        self.deadline = time.monotonic() + BUDGET_SECONDS

    def start(self) -> subprocess.Popen[bytes]:
        name = f"worker-kill-{len(self.log_paths)}-{uuid.uuid4().hex[:6]}"
        log_path = self.logs / f"{name}.log"
        self.log_paths.append(log_path)
        with open(log_path, "wb") as log:
            worker = subprocess.Popen(  # noqa: S603 - our own interpreter and app
                [sys.executable, "-m", "celery", "-A", "studio", "worker", "-Q", ",".join(QUEUES)]
                + ["--pool=prefork", "--concurrency=1", "-Ofair", f"--hostname={name}@%h", "--loglevel=INFO"]
                # Nothing to say to other workers: start fast, listen only to this broker.
                + ["--without-mingle", "--without-gossip", "--without-heartbeat"],
                cwd=BASE_DIR,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.running.append(worker)
        wait_for(lambda: b" ready." in log_path.read_bytes(), WORKER_READY_SECONDS, "the worker to be ready", self)
        return worker

    def signal(self, worker: subprocess.Popen[bytes], signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.killpg(worker.pid, signum)

    def kill(self, worker: subprocess.Popen[bytes]) -> None:
        self.signal(worker, signal.SIGKILL)
        worker.wait(timeout=10)
        self.running.remove(worker)

    def stop_all(self) -> None:
        for worker in list(self.running):
            self.kill(worker)

    def log(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.log_paths if p.exists())

    def tail(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.log_paths if p.exists())


def _worker_env(broker: str) -> dict[str, str]:
    """This test's database, media root, keys and broker; nothing of the
    calling environment that would point the worker elsewhere."""
    strip = ("CELERY_", "AWS_", "EMAIL_URL", "DATABASE_URL", "MEDIA_ROOT", "DJANGO_ALLOW_ASYNC_UNSAFE")
    env = {key: value for key, value in os.environ.items() if not key.startswith(strip)}
    database = urlsplit(os.environ["DATABASE_URL"])._replace(path="/" + connection.settings_dict["NAME"])
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "studio.settings",
            "DATABASE_URL": urlunsplit(database),
            "DB_CONN_MAX_AGE": "0",
            "CELERY_BROKER_URL": broker,
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "MEDIA_ROOT": django_settings.MEDIA_ROOT,
            "SECRET_KEY": django_settings.SECRET_KEY,
            "AUDIT_CHAIN_KEY": django_settings.AUDIT_CHAIN_KEY,
            "AUDIT_CHAIN_KEY_ID": django_settings.AUDIT_CHAIN_KEY_ID,
            "VIPS_CONCURRENCY": "1",  # as the Procfile's derivatives process
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@pytest.fixture
def workers(transactional_db, real_broker, tmp_path) -> Iterator[Workers]:
    # Requests transactional_db so the workers die before its flush, which
    # would otherwise wait on their open transactions.
    pool = Workers(_worker_env(real_broker), tmp_path)
    try:
        yield pool
    finally:
        pool.stop_all()


def wait_for(predicate: Callable[[], Any], seconds: float, what: str, pool: Workers) -> Any:
    deadline = min(time.monotonic() + seconds, pool.deadline)
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        for worker in pool.running:
            assert worker.poll() is None, f"a worker exited ({worker.returncode}) waiting for {what}\n{pool.tail()}"
        time.sleep(0.02)
    over = f"the test's budget of {BUDGET_SECONDS} s" if time.monotonic() >= pool.deadline else f"{seconds} s"
    pytest.fail(f"Timed out after {over} waiting for {what}.\n{pool.tail()}")


# --- reading the outcome ---------------------------------------------------------------------------------


def _assets(gallery: Any) -> list[Asset]:
    with unscoped():
        return list(Asset.objects.filter(gallery=gallery).order_by("original_filename"))


def _in_flight(assets: list[Asset]) -> list[Asset]:
    """Photos a worker has started and not finished."""
    return [a for a in assets if a.status == AssetStatus.PROCESSING and a.processing_started_at is not None]


def _waiting(assets: list[Asset]) -> list[Asset]:
    return [a for a in assets if a.status == AssetStatus.PROCESSING and a.processing_started_at is None]


def _queued(broker: str) -> int:
    """Messages waiting in the queues (kombu keeps one Redis list per queue
    and priority, named after the queue)."""
    client = redis.Redis.from_url(broker)
    try:
        return sum(client.llen(key) for name in QUEUES for key in client.scan_iter(f"{name}*"))
    finally:
        client.close()


def _unacked(broker: str) -> list[str]:
    """Task ids of the messages handed to a consumer and never acknowledged
    (kombu's Redis transport keeps [message, exchange, routing key] in its
    "unacked" hash until visibility_timeout)."""
    client = redis.Redis.from_url(broker)
    try:
        return sorted(json.loads(raw)[0]["headers"]["id"] for raw in client.hvals("unacked"))
    finally:
        client.close()


def _pending() -> list[PendingDeletion]:
    with unscoped():
        return list(PendingDeletion.objects.all())


def _drained(gallery: Any, broker: str, killed_at: datetime) -> Callable[[], bool]:
    """Nothing left for the fresh worker: the queues are empty and no photo
    is being processed except the ones the dead worker held."""

    def check() -> bool:
        if _queued(broker):
            return False
        return all(a.processing_started_at < killed_at for a in _in_flight(_assets(gallery)))

    def stable() -> bool:
        # A job just taken off the queue is not yet stamped started: ask twice.
        if not check():
            return False
        time.sleep(0.3)
        return check()

    return stable


def _time_passes(seconds: float) -> None:
    """As if the sweepers ran that much later: every recorded time moves back."""
    delta = timedelta(seconds=seconds)
    with unscoped():
        Asset.objects.update(
            updated_at=F("updated_at") - delta,
            derivatives_queued_at=F("derivatives_queued_at") - delta,
            processing_started_at=F("processing_started_at") - delta,
        )
        PendingDeletion.objects.update(created_at=F("created_at") - delta, queued_at=F("queued_at") - delta)


def _redeliver_unacked(broker: str) -> None:
    """What the Redis transport does once visibility_timeout (hours) has
    passed: the dead worker's unacknowledged messages go back to their queue."""
    with Connection(broker, transport_options={"visibility_timeout": 0}) as conn:
        conn.default_channel.qos.restore_visible(num=1000)


def _stored_derivatives(store: LocalMediaStore, asset: Asset) -> list[str]:
    prefix = f"studios/{asset.studio_id}/galleries/{asset.gallery_id}/derivatives/{asset.pk}/"
    return list(store.list_keys(prefix))


def _processed_events(studio: Any) -> dict[str, int]:
    with studio_scope(studio):
        rows = (
            AuditEvent.objects.filter(action=Action.ASSET_PROCESSED)
            .values("target_id")
            .annotate(n=Count("id"))
            .values_list("target_id", "n")
        )
        return dict(rows)


def _snapshot(gallery: Any) -> list[tuple[Any, ...]]:
    return [(a.pk, a.status, a.sha256, a.derivatives, a.failure_reason) for a in _assets(gallery)]


# --- the scenario ----------------------------------------------------------------------------------------


def _freeze_mid_task(pool: Workers, worker: subprocess.Popen[bytes], gallery: Any) -> list[Asset]:
    """Stop the worker (SIGSTOP, the whole group) at a moment it is inside
    a derivative job, with photos done and photos still queued. Stopped
    first, so the photo seen in flight is still in flight when it dies."""

    def mid_batch() -> list[Asset] | None:
        assets = _assets(gallery)
        ready = [a for a in assets if a.status == AssetStatus.READY]
        if not (ready and _in_flight(assets) and len(_waiting(assets)) >= 2):
            return None
        pool.signal(worker, signal.SIGSTOP)
        time.sleep(0.2)  # a commit already sent to PostgreSQL lands
        in_flight = _in_flight(_assets(gallery))
        if in_flight:
            return in_flight
        pool.signal(worker, signal.SIGCONT)  # it finished between the two looks: try the next one
        return None

    return wait_for(mid_batch, STEP_SECONDS, "a photo in flight, one ready and two queued", pool)


def test_a_worker_killed_mid_batch_leaves_every_photo_settled_once(workers, real_broker, settings):
    store = media_store()
    if not isinstance(store, LocalMediaStore):
        pytest.skip("the worker and this test share media through MEDIA_ROOT")
    studio = factories.studio()
    gallery = make_gallery(studio)
    staff = APIClient()
    staff.force_authenticate(factories.owner_membership(studio).user)
    first = workers.start()

    # Distinct photos (the pipeline fails duplicates), large enough that
    # each job takes a visible while.
    files = [
        (f"IMG_{n:02d}.jpg", jpeg(1200, 900, colour=(n * 23, 40, 200 - n * 9)), "image/jpeg") for n in range(PHOTOS)
    ]
    done = upload(staff, studio, gallery, files)
    assert len(done["processing"]) == PHOTOS, done

    in_flight = _freeze_mid_task(workers, first, gallery)
    workers.kill(first)
    killed_at = timezone.now()
    held = _unacked(real_broker)
    assert len(held) >= len(in_flight), "the killed job's message waits, unacknowledged"

    workers.start()
    wait_for(_drained(gallery, real_broker, killed_at), STEP_SECONDS, "the fresh worker to empty the queues", workers)
    stuck = [a.pk for a in _assets(gallery) if a.status == AssetStatus.PROCESSING]
    assert {a.pk for a in in_flight} <= set(stuck), "the killed job's photo waits for the sweeper"

    # Recovery: the beat jobs, run once the product's thresholds have passed.
    _time_passes(
        max(
            settings.DERIVATIVES_STUCK_AFTER_SECONDS,
            settings.DERIVATIVE_TIME_LIMIT + 60,
            settings.DELETIONS_STUCK_AFTER_SECONDS,
        )
        + 1
    )
    assert tasks.sweep_stuck_assets() == len(stuck)
    tasks.sweep_pending_deletions()
    wait_for(
        lambda: not any(a.status == AssetStatus.PROCESSING for a in _assets(gallery)) and not _pending(),
        STEP_SECONDS,
        "every photo to settle and every deletion to be done",
        workers,
    )
    assert tasks.sweep_stuck_assets() == 0 and tasks.sweep_pending_deletions() == 0

    # Hours later the transport hands the killed job's message out again:
    # its photo is done, so nothing changes.
    settled = _snapshot(gallery)
    # Only once the live worker has acknowledged all its own messages: the
    # restore below hands out every unacknowledged one.
    wait_for(lambda: _unacked(real_broker) == held, STEP_SECONDS, "the fresh worker's acknowledgements", workers)
    _redeliver_unacked(real_broker)
    wait_for(
        lambda: all(f"{task_id}] succeeded" in workers.log() for task_id in held) and not _unacked(real_broker),
        STEP_SECONDS,
        "the redelivered jobs to run",
        workers,
    )
    assert _snapshot(gallery) == settled

    assets = _assets(gallery)
    log = workers.tail()
    assert len(assets) == PHOTOS and len({a.original_filename for a in assets}) == PHOTOS, "no duplicate rows"
    assert all(a.status in (AssetStatus.READY, AssetStatus.FAILED) for a in assets), log
    assert all(a.failure_reason for a in assets if a.status == AssetStatus.FAILED), log
    # Nothing is wrong with these files: a kill must not cost a photo.
    assert [a.original_filename for a in assets if a.status != AssetStatus.READY] == [], log
    assert [a.sweeps for a in assets] == [1 if a.pk in stuck else 0 for a in assets], "queued again once"
    assert len({a.sha256 for a in assets}) == PHOTOS
    kept = []
    for asset in assets:
        expected = sorted(derivative_key(asset, name) for name in asset.derivatives)
        assert len(expected) == 3 and sorted(d["key"] for d in asset.derivatives.values()) == expected
        assert _stored_derivatives(store, asset) == expected, asset.original_filename
        kept += [asset.storage_key, *expected]
    assert _processed_events(studio) == {str(a.pk): 1 for a in assets}, "each photo processed exactly once"
    with studio_scope(studio):
        assert orphan_keys(store) == []
    # Stricter than orphan_keys, which lets any file under a living photo's
    # folder be (a crashed write's ".tmp" too): only what the rows name.
    assert sorted(store.list_keys(f"studios/{studio.pk}/")) == sorted(kept)
