"""Bookings at scale: a month of slots and the ICS feed for a studio with
5,000 bookings.

    .venv/bin/python bench/bookings.py [--bookings 5000] [--repeats 20]
    createdb -h 127.0.0.1 -U postgres bench_bookings   # once
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_bookings .venv/bin/python bench/bookings.py

Prints median and p95 milliseconds and the queries each takes; the query
counts do not grow with the number of bookings.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time as clock
from datetime import date, time, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
os.environ.setdefault("DATABASE_URL", f"sqlite:///{ROOT / 'var' / 'bench' / 'bookings.sqlite3'}")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")
(ROOT / "var" / "bench").mkdir(parents=True, exist_ok=True)

import django  # noqa: E402

django.setup()

from django.core.cache import cache  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from bookings import availability  # noqa: E402
from bookings import services as booking_services  # noqa: E402
from bookings.models import Booking, Service, WorkingHours  # noqa: E402
from studio import context, services  # noqa: E402
from studio.models import Membership, Studio, User, hash_token  # noqa: E402
from studio.tenancy import studio_scope  # noqa: E402

SLUG = "bench-bookings"


def session_service(studio: Studio) -> Service:
    """A one-hour session (15 min buffer) bookable 8:00-20:00 every day, made
    once (call inside the studio's scope). bench/load.py too."""
    service = Service.objects.first() or booking_services.service_save(
        service=Service(
            name="Session",
            duration_minutes=60,
            buffer_after_minutes=15,
            min_notice_minutes=0,
            max_advance_days=800,
        )
    )
    if not WorkingHours.objects.exists():
        WorkingHours.objects.bulk_create(
            [WorkingHours(studio=studio, weekday=d, start_time=time(8), end_time=time(20)) for d in range(7)]
        )
    return service


def build(count: int) -> tuple[Studio, Service, str]:
    studio = Studio.objects.filter(slug=SLUG).first()
    with context.acting_as(context.Actor.system("bench")):
        if studio is None:
            owner = User.objects.create_user(email="bench-bookings@example.com")
            studio = services.studio_create(
                owner=owner, name="Bench Bookings", slug=SLUG, timezone_name="America/Los_Angeles"
            )
        with studio_scope(studio):
            service = session_service(studio)
            have = Booking.objects.count()
            if have < count:
                print(f"building {count - have} bookings ...", flush=True)
                start = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(days=120)
                rows = []
                for i in range(have, count):
                    # Two bookings a day, spread over ~7 years, most in the past.
                    at = start + timedelta(days=i // 2, hours=9 + 5 * (i % 2))
                    rows.append(
                        Booking(
                            studio=studio,
                            service=service,
                            client_name=f"Client {i}",
                            client_email=f"c{i}@example.com",
                            starts_at=at,
                            ends_at=at + timedelta(hours=1),
                            blocked_start=at,
                            blocked_end=at + timedelta(minutes=75),
                            status="confirmed",
                            token_hash=hash_token(f"bench-{i}"),
                        )
                    )
                Booking.objects.bulk_create(rows, batch_size=2000)
            owner = Membership.objects.filter(role="owner").first()
            _, raw = booking_services.feed_create(owner=owner, scope="studio", name="Bench")
    return studio, service, raw


def timed(fn, repeats: int) -> tuple[list[float], int]:  # noqa: ANN001 - any callable
    fn()
    times = []
    for _ in range(repeats):
        start = clock.perf_counter()
        fn()
        times.append((clock.perf_counter() - start) * 1000)
    with CaptureQueriesContext(connection) as queries:
        fn()
    return times, len(queries)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bookings", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    studio, service, raw = build(args.bookings)
    today = date.today()
    with studio_scope(studio):
        month = lambda: availability.available_slots(service, today, today + timedelta(days=30))  # noqa: E731
        slots_times, slots_queries = timed(month, args.repeats)
        count = len(month())
        total = Booking.objects.count()
    client = Client()
    url = f"/calendar/{raw}.ics"

    def cold() -> object:
        cache.clear()  # what the first fetch after a change costs
        return client.get(url)

    cold_times, cold_queries = timed(cold, args.repeats)
    warm_times, warm_queries = timed(lambda: client.get(url), args.repeats)
    etag = client.get(url)["ETag"]
    poll_times, poll_queries = timed(lambda: client.get(url, HTTP_IF_NONE_MATCH=etag), args.repeats)
    size = len(client.get(url).content)
    print(f"\n{connection.vendor}, studio with {total} bookings, {args.repeats} runs each")
    print(f"{'what':42} {'median ms':>10} {'p95 ms':>8} {'queries':>8}")
    rows = (
        (f"a month of slots ({count} slots)", slots_times, slots_queries),
        (f"ICS feed, built ({size // 1024} KB)", cold_times, cold_queries),
        ("ICS feed, cached body (same ETag)", warm_times, warm_queries),
        ("ICS feed, poll with If-None-Match: 304", poll_times, poll_queries),
    )
    for label, times, queries in rows:
        print(f"{label:42} {statistics.median(times):10.1f} {p95(times):8.1f} {queries:8}")


if __name__ == "__main__":
    main()
