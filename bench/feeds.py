"""Building an ICS feed of 1,000 events, with each event's text cached.

    .venv/bin/python bench/feeds.py [--events 1000] [--repeats 10]
    REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python bench/feeds.py   # the cache on Redis

Times ``bookings.ics.feed`` on bookings already loaded (the serialisation
alone, which was nearly all of a feed's build):

- uncached: icalendar renders the whole calendar, as before the event cache;
- cold: an empty cache (every event rendered, then stored with one set_many);
- warm: every event cached (one get_many), the feed only joined;
- one changed: a different booking edited before each run (one event rendered);

then the whole HTTP fetch of the feed's URL with one booking edited (saved)
before each run: the token lookup, the ETag, loading the bookings, the feed,
storing the body. Prints median and p95 ms and each ratio to uncached.

Without REDIS_URL the cache is in-process memory (LocMemCache) with room for
every event: Django's default of 300 entries would evict most of them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time as clock
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=10)
    return parser.parse_args()


def timed(
    fn: Callable[[int], object], repeats: int, before: Callable[[int], object] | None = None
) -> tuple[list[float], list[float]]:
    """Wall and CPU milliseconds of ``fn(run)`` per run, after one untimed
    run; ``before(run)`` is called, untimed, ahead of each. CPU time is the
    steadier figure on a shared machine (it leaves out waiting for a core)."""
    wall, cpu = [], []
    for run in range(repeats + 1):
        if before is not None:
            before(run)
        start, start_cpu = clock.perf_counter(), clock.process_time()
        fn(run)
        if run:
            wall.append((clock.perf_counter() - start) * 1000)
            cpu.append((clock.process_time() - start_cpu) * 1000)
    return wall, cpu


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> None:
    args = parse_args()  # before Django starts: --help answers at once
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{ROOT / 'var' / 'bench' / 'feeds.sqlite3'}")
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    (ROOT / "var" / "bench").mkdir(parents=True, exist_ok=True)

    import django
    from django.conf import settings

    django.setup()
    default_cache = settings.CACHES["default"]
    if "locmem" in default_cache["BACKEND"].lower():
        # LOCMEM_CACHE_MAX_ENTRIES (default 20000) is what the product runs
        # with; only a feed larger than that needs more room here.
        entries = default_cache.setdefault("OPTIONS", {}).get("MAX_ENTRIES", 300)
        default_cache["OPTIONS"]["MAX_ENTRIES"] = max(entries, 10 * args.events)

    from django.core.cache import cache
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from bookings import ics
    from bookings import services as booking_services
    from bookings.models import Booking, BookingStatus, Service
    from studio import context, services
    from studio.models import Membership, Studio, User, hash_token
    from studio.tenancy import studio_scope

    call_command("migrate", verbosity=0)
    slug = f"bench-feeds-{args.events}"
    with context.acting_as(context.Actor.system("bench")):
        studio = Studio.objects.filter(slug=slug).first()
        if studio is None:
            owner = User.objects.create_user(email=f"{slug}@example.com")
            studio = services.studio_create(owner=owner, name="Bench Feeds", slug=slug, timezone_name="Europe/Paris")
        with studio_scope(studio):
            service = Service.objects.filter(name="Portrait session").first() or booking_services.service_save(
                service=Service(name="Portrait session", duration_minutes=60)
            )
            Booking.objects.all().delete()
            # Three a day from 60 days ago (inside the feed's window), one in
            # ten cancelled after confirmation, every other one with notes.
            start = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(days=60)
            rows = []
            for i in range(args.events):
                at = start + timedelta(days=i // 3, hours=9 + 3 * (i % 3))
                rows.append(
                    Booking(
                        studio=studio,
                        service=service,
                        client_name=f"Client {i}",
                        client_email=f"c{i}@example.com",
                        client_phone="+33 1 23 45 67 89",
                        notes="Bring the props; park behind the building." if i % 2 else "",
                        starts_at=at,
                        ends_at=at + timedelta(hours=1),
                        blocked_start=at,
                        blocked_end=at + timedelta(hours=1),
                        status=BookingStatus.CANCELLED if i % 10 == 0 else BookingStatus.CONFIRMED,
                        confirmed_at=start,
                        token_hash=hash_token(f"{slug}-{i}"),
                    )
                )
            Booking.objects.bulk_create(rows, batch_size=1000)
            owner = Membership.objects.filter(role="owner").first()
            _, raw = booking_services.feed_create(owner=owner, scope="studio", name="Bench")
            bookings = ics.feed_rows(Booking.objects.all(), studio)  # as the feed view loads them
            name = f"{studio.name}: Bench"

            def edit(run: int) -> None:  # in memory: ics.feed alone is timed
                booking = bookings[run % len(bookings)]
                booking.notes = f"Edited before run {run}"
                booking.sequence += 1

            size = len(ics.feed(name, bookings, use_cache=False))
            uncached = timed(lambda _: ics.feed(name, bookings, use_cache=False), args.repeats)
            cold = timed(lambda _: ics.feed(name, bookings), args.repeats, before=lambda _: cache.clear())
            ics.feed(name, bookings)
            warm = timed(lambda _: ics.feed(name, bookings), args.repeats)
            one_changed = timed(lambda _: ics.feed(name, bookings), args.repeats, before=edit)
            assert ics.feed(name, bookings) == ics.feed(name, bookings, use_cache=False)

            pks = [b.pk for b in bookings]

            def save_one(run: int) -> None:  # through the ORM: a new ETag, as a real edit
                with studio_scope(studio):
                    booking = Booking.objects.get(pk=pks[(run * 7) % len(pks)])
                    booking.notes = f"Saved before fetch {run}"
                    booking.sequence += 1
                    booking.save(update_fields=["notes", "sequence", "updated_at"])

    client = Client()
    url = f"/calendar/{raw}.ics"
    client.get(url)
    fetch = timed(lambda _: client.get(url), args.repeats, before=save_one)
    fetched = client.get(url)
    assert fetched.status_code == 200 and fetched.content.count(b"BEGIN:VEVENT") == args.events

    backend = settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]
    print(f"\nICS feed of {args.events} events ({size // 1024} KB), {connection.vendor}, {backend}")
    print(f"median and p95 of {args.repeats} runs; ratio = uncached median / this median (wall)")
    print(f"{'what':46} {'median ms':>10} {'p95 ms':>8} {'ratio':>7} {'cpu ms':>8}")
    base = statistics.median(uncached[0])
    rows_out = (
        ("ics.feed, uncached (icalendar, as before)", uncached),
        ("ics.feed, cold cache (render all, set_many)", cold),
        ("ics.feed, warm cache (get_many, join)", warm),
        ("ics.feed, one booking changed", one_changed),
        ("GET the feed URL, one booking saved", fetch),
    )
    for label, (times, cpu) in rows_out:
        median = statistics.median(times)
        print(f"{label:46} {median:10.1f} {p95(times):8.1f} {base / median:6.1f}x {statistics.median(cpu):8.1f}")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
