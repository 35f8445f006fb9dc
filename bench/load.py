"""Loopback load test: gunicorn with the production config, driven by locust.

    .venv/bin/python bench/load.py [--users 50] [--spawn-rate 10] [--run-time 30]
    DATABASE_URL=postgres://... REDIS_URL=redis://... .venv/bin/python bench/load.py

Seeds its own data once (in a child process, so Django never runs under
locust's gevent monkey-patching): a studio, a published gallery of --assets
photos (six through the real derivative pipeline, the rest reusing their
files), a bookable service open every day, --bookings confirmed bookings and
a studio calendar feed. Without DATABASE_URL it runs on the embedded default
(SQLite and local media under var/bench/); with DATABASE_URL and REDIS_URL on
those. Then it starts gunicorn with deploy/gunicorn.conf.py on a free
loopback port (workers and threads as that file computes them, or
WEB_CONCURRENCY / GUNICORN_THREADS) and runs locust headless for a bounded
time against four endpoints:

- portal asset list  GET /api/v1/portal/galleries/<id>/assets/ (a client session)
- media              GET /api/v1/portal/galleries/<id>/assets/<id>/media/thumb/
                     (a 302 to a presigned URL on S3, not followed; on the
                     embedded default the file itself, 200)
- booking slots      GET /api/v1/public/studios/<slug>/services/<id>/slots/ (a week)
- ICS feed           GET /calendar/<token>.ics

It prints requests per second, p50/p95/p99 (ms) and errors per endpoint and
overall, and the worker count. Locust and gunicorn share the machine's cores:
the figures are a floor for the server alone.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "var" / "bench"
SLUG = "bench-load"
CODE = "BENCHLOAD"


def bench_environ() -> dict[str, str]:
    """The environment both the seeding child and gunicorn run with."""
    environ = dict(os.environ)
    environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
    if not environ.get("DATABASE_URL"):
        environ["DATABASE_URL"] = f"sqlite:///{BENCH / 'load.sqlite3'}"
        environ.setdefault("MEDIA_ROOT", str(BENCH / "load-media"))
    environ.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
    # Every request comes from 127.0.0.1: the per-client rate limits would
    # measure the throttle, not the server.
    for name in ("THROTTLE_PORTAL", "THROTTLE_ANON", "THROTTLE_USER", "THROTTLE_BOOKING_PUBLIC"):
        environ.setdefault(name, "100000000/min")
    # Seeding makes derivatives in process; the measured requests queue nothing.
    environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "true")
    environ.setdefault("LOG_LEVEL", "WARNING")
    return environ


# --- seeding (child process, plain Django) ----------------------------------------


def seed(assets: int, bookings: int) -> dict[str, str]:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()

    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client
    from django.utils import timezone

    from bench.bookings import session_service
    from bench.portal import real_photos
    from bookings import services as booking_services
    from bookings.models import Booking
    from galleries import services as gallery_services
    from galleries.models import Asset, AssetStatus, Gallery
    from studio import context, services
    from studio.models import Membership, Studio, User, hash_token
    from studio.tenancy import studio_scope

    call_command("migrate", verbosity=0)
    with context.acting_as(context.Actor.system("bench")):
        studio = Studio.objects.filter(slug=SLUG).first()
        if studio is None:
            owner = User.objects.create_user(email="bench-load@example.com")
            studio = services.studio_create(
                owner=owner, name="Bench Load Studio", slug=SLUG, timezone_name="Europe/Berlin"
            )
        with studio_scope(studio):
            gallery = Gallery.objects.filter(access_code=CODE).first()
            if gallery is None:
                gallery = gallery_services.gallery_create(actor=None, title="Load test", access_code=CODE)
            real = real_photos(studio, gallery)
            have = Asset.objects.filter(gallery=gallery).count()
            if have < assets:
                Asset.objects.bulk_create(
                    [
                        Asset(
                            studio=studio,
                            gallery=gallery,
                            original_filename=f"IMG_{i:05d}.jpg",
                            storage_key=f"{real[i % 6].storage_key}.bench-{i}",
                            content_type="image/jpeg",
                            size=real[i % 6].size,
                            width=real[i % 6].width,
                            height=real[i % 6].height,
                            status=AssetStatus.READY,
                            derivatives=real[i % 6].derivatives,
                            derivative_bytes=real[i % 6].derivative_bytes,
                            sort_order=i,
                        )
                        for i in range(have, assets)
                    ],
                    batch_size=2000,
                )
            if gallery.status != "published":
                gallery_services.gallery_publish(gallery=gallery)
            asset_ids = [str(pk) for pk in Asset.objects.filter(gallery=gallery).values_list("pk", flat=True)[:200]]

            service = session_service(studio)
            have = Booking.objects.count()
            if have < bookings:
                # Two a day from a month ago: some in the slot week, most in the feed.
                start = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(days=30)
                Booking.objects.bulk_create(
                    [
                        Booking(
                            studio=studio,
                            service=service,
                            client_name=f"Client {i}",
                            client_email=f"c{i}@example.com",
                            starts_at=(at := start + timedelta(days=i // 2, hours=9 + 5 * (i % 2))),
                            ends_at=at + timedelta(hours=1),
                            blocked_start=at,
                            blocked_end=at + timedelta(minutes=75),
                            status="confirmed",
                            token_hash=hash_token(f"bench-load-{i}"),
                        )
                        for i in range(have, bookings)
                    ],
                    batch_size=2000,
                )
            owner_membership = Membership.objects.filter(role="owner").first()
            _, feed_token = booking_services.feed_create(owner=owner_membership, scope="studio", name="Load")

    client = Client()
    response = client.post("/api/v1/portal/access/", {"studio": SLUG, "code": CODE}, content_type="application/json")
    assert response.status_code == 200, response.content
    return {
        "gallery": str(gallery.pk),
        "assets": json.dumps(asset_ids),
        "service": str(service.pk),
        "feed": feed_token,
        "cookie": f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}",
        "database": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
        "cache": settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1],
        "storage": settings.STORAGES["default"]["BACKEND"].rsplit(".", 1)[-1],
    }


# --- gunicorn ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(environ: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    # --bind on the command line wins over the config file's; everything else
    # (worker class, workers, threads, timeouts) is the production config.
    command = [
        str(Path(sys.executable).with_name("gunicorn")),
        "-c",
        str(ROOT / "deploy" / "gunicorn.conf.py"),
        "--bind",
        f"127.0.0.1:{port}",
    ]
    process = subprocess.Popen(command, cwd=ROOT, env=environ, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited ({process.returncode}); see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                if response.status == 200:
                    return process
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise SystemExit(f"gunicorn did not answer /healthz within 60 s; see {log}")


def gunicorn_sizing(environ: dict[str, str]) -> tuple[int, int]:
    import runpy

    saved = dict(os.environ)
    os.environ.update(environ)
    try:
        config = runpy.run_path(str(ROOT / "deploy" / "gunicorn.conf.py"))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return config["workers"], config["threads"]


# --- locust -------------------------------------------------------------------------------


def run_locust(base: str, data: dict[str, str], users: int, spawn_rate: float, run_time: float) -> object:
    import gevent
    from locust import between, task
    from locust.contrib.fasthttp import FastHttpUser
    from locust.env import Environment

    gallery, service, feed, cookie = data["gallery"], data["service"], data["feed"], data["cookie"]
    assets = json.loads(data["assets"])

    class Visitor(FastHttpUser):
        host = base
        # A busy client, not a person: a short think time keeps the server saturated.
        wait_time = between(0.0, 0.05)

        @task(4)
        def asset_list(self) -> None:
            self.client.get(
                f"/api/v1/portal/galleries/{gallery}/assets/",
                headers={"Cookie": cookie},
                name="portal asset list",
            )

        @task(8)
        def media(self) -> None:
            # A page shows many thumbnails per list call.
            with self.client.get(
                f"/api/v1/portal/galleries/{gallery}/assets/{random.choice(assets)}/media/thumb/",
                headers={"Cookie": cookie},
                allow_redirects=False,
                name="media (thumb)",
                catch_response=True,
            ) as response:
                if response.status_code in (200, 302):
                    response.success()
                else:
                    response.failure(f"status {response.status_code}")

        @task(2)
        def slots(self) -> None:
            # A week, as the booking page asks for, starting some day in the next three weeks.
            first = date.today() + timedelta(days=random.randint(1, 20))
            last = first + timedelta(days=6)
            self.client.get(
                f"/api/v1/public/studios/{SLUG}/services/{service}/slots/?start={first}&end={last}",
                name="booking slots",
            )

        @task(1)
        def ics(self) -> None:
            self.client.get(f"/calendar/{feed}.ics", name="ICS feed")

    env = Environment(user_classes=[Visitor])
    runner = env.create_local_runner()
    runner.start(users, spawn_rate=spawn_rate)
    gevent.spawn_later(run_time, runner.quit)
    runner.greenlet.join()
    return env.stats


def report(stats: object, seconds: float) -> None:
    entries = sorted(stats.entries.values(), key=lambda e: e.name)  # type: ignore[attr-defined]
    header = f"{'endpoint':22} {'requests':>9} {'req/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'errors':>7}"
    print(header)
    print("-" * len(header))
    for entry in [*entries, stats.total]:  # type: ignore[attr-defined]
        name = "overall" if entry is stats.total else entry.name  # type: ignore[attr-defined]
        print(
            f"{name:22} {entry.num_requests:9} {entry.num_requests / seconds:8.1f} "
            f"{entry.get_response_time_percentile(0.50):7.0f} {entry.get_response_time_percentile(0.95):7.0f} "
            f"{entry.get_response_time_percentile(0.99):7.0f} {entry.num_failures:7}"
        )
    for error in stats.errors.values():  # type: ignore[attr-defined]
        print(f"  error x{error.occurrences}: {error.method} {error.name}: {error.error}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--spawn-rate", type=float, default=10.0, help="users started per second")
    parser.add_argument("--run-time", type=float, default=30.0, help="seconds of load, after spawning starts")
    parser.add_argument("--assets", type=int, default=500, help="photos in the gallery")
    parser.add_argument("--bookings", type=int, default=300, help="confirmed bookings in the feed")
    parser.add_argument("--seed", action="store_true", help=argparse.SUPPRESS)  # the child's entry point
    args = parser.parse_args()

    if args.seed:
        print(json.dumps(seed(args.assets, args.bookings)))
        return

    BENCH.mkdir(parents=True, exist_ok=True)
    environ = bench_environ()
    print("seeding ...", flush=True)
    child = subprocess.run(
        [sys.executable, __file__, "--seed", "--assets", str(args.assets), "--bookings", str(args.bookings)],
        env=environ,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if child.returncode != 0:
        sys.stderr.write(child.stderr)
        raise SystemExit("seeding failed")
    data = json.loads(child.stdout.strip().splitlines()[-1])

    workers, threads = gunicorn_sizing(environ)
    port = free_port()
    log = BENCH / "load-gunicorn.log"
    server = start_gunicorn(environ, port, log)
    try:
        started = time.monotonic()
        stats = run_locust(f"http://127.0.0.1:{port}", data, args.users, args.spawn_rate, args.run_time)
        seconds = time.monotonic() - started
    finally:
        server.terminate()
        server.wait(timeout=40)

    print(
        f"\ngunicorn gthread: {workers} workers x {threads} threads (deploy/gunicorn.conf.py), "
        f"{os.cpu_count()} CPUs shared with locust; {data['database']}, cache {data['cache']}, "
        f"media {data['storage']}"
    )
    print(
        f"locust {args.users} users (spawn {args.spawn_rate:g}/s, 0-50 ms think time), "
        f"{seconds:.1f} s; {args.assets} photos, {args.bookings} bookings\n"
    )
    report(stats, seconds)


if __name__ == "__main__":
    main()
