"""Listing a page of a big gallery: CPU per request against the bare SQL.

    .venv/bin/python bench/gallery_list.py [--assets 10000] [--page-size 100] [--requests 60] [--rounds 5]
    createdb -h 127.0.0.1 -U postgres bench_list   # once
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_list .venv/bin/python bench/gallery_list.py

Builds (once per database) a studio with a 10,000-photo gallery, a visitor
who rated a third of the photos and filed some into folders, then measures,
for the client portal's asset list (GET /api/v1/portal/galleries/{id}/assets/)
and the staff asset list (GET /api/v1/studios/{slug}/galleries/{id}/assets/),
on the first page and a page deep in the gallery (by cursor):

- CPU per request (time.process_time around --requests requests; the
  median of --rounds rounds, and the best round) and wall time (median,
  p95). Requests go through Django's WSGI handler as a server calls it
  (gunicorn, runserver): studio.wsgi's application (and the set-up it
  does on import), every middleware, the request_started/finished signals
  and their database connection handling, which the test client switches
  off (with SQLite connections closed after each request, that was ~2.5 ms
  a request the test client never showed);
- the bare SQL for the same rows: the request's own row queries (the page,
  and the portal's folders of the page), captured and run raw through the
  DB cursor, CPU and wall; and, as before, one plain SELECT of the page's
  columns;
- the ratio request / bare SQL (CPU), the CPU of a page of 1 (what a request
  costs whatever its rows), and the queries per request for page sizes 10
  and 100 (fixed: the suite pins it too).
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
os.environ.setdefault("DATABASE_URL", f"sqlite:///{ROOT / 'var' / 'bench' / 'gallery_list.sqlite3'}")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")
os.environ.setdefault("THROTTLE_PORTAL", "1000000/min")
os.environ.setdefault("THROTTLE_USER", "1000000/min")
(ROOT / "var" / "bench").mkdir(parents=True, exist_ok=True)

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from galleries import services as gallery_services  # noqa: E402
from galleries.models import Asset, AssetStatus, Folder, Gallery, Placement, Rating, Visitor  # noqa: E402
from studio import context, services  # noqa: E402
from studio.models import Studio, User  # noqa: E402
from studio.tenancy import studio_scope  # noqa: E402

SLUG = "bench-list"
CODE = "BENCHLIST"


def build(count: int) -> Gallery:
    studio = Studio.objects.filter(slug=SLUG).first()
    with context.acting_as(context.Actor.system("bench")):
        if studio is None:
            owner = User.objects.create_user(email="bench-owner@example.com")
            studio = services.studio_create(owner=owner, name="Bench Studio", slug=SLUG)
        with studio_scope(studio):
            gallery = Gallery.objects.filter(access_code=CODE).first() or gallery_services.gallery_create(
                actor=None, title="Ten thousand", access_code=CODE
            )
            have = Asset.objects.filter(gallery=gallery).count()
            if have < count:
                print(f"building {count - have} assets ...", flush=True)
                derivs = {
                    name: {"key": f"x/{name}.webp", "width": w, "height": h, "bytes": 1000}
                    for name, w, h in (("large", 2048, 1365), ("medium", 1024, 683), ("thumb", 400, 267))
                }
                rows = [
                    Asset(
                        studio=studio,
                        gallery=gallery,
                        original_filename=f"IMG_{i:05d}.jpg",
                        storage_key=f"studios/{studio.pk}/galleries/{gallery.pk}/originals/bench-{i}.jpg",
                        content_type="image/jpeg",
                        size=8_000_000,
                        width=6000,
                        height=4000,
                        status=AssetStatus.READY,
                        derivatives=derivs,
                        sort_order=i,
                    )
                    for i in range(have, count)
                ]
                Asset.objects.bulk_create(rows, batch_size=2000)
                visitor = Visitor.objects.create(studio=studio, gallery=gallery, name="Bench Client")
                assets = list(Asset.objects.filter(gallery=gallery).order_by("sort_order"))
                Rating.objects.bulk_create(
                    [
                        Rating(studio=studio, asset=a, visitor=visitor, stars=1 + i % 5)
                        for i, a in enumerate(assets[::3])
                    ],
                    batch_size=2000,
                )
                folders = [Folder.objects.create(studio=studio, gallery=gallery, name=f"Folder {n}") for n in range(5)]
                Placement.objects.bulk_create(
                    [
                        Placement(studio=studio, folder=folders[i % 5], asset=a, sort_order=i)
                        for i, a in enumerate(assets[::7])
                    ],
                    batch_size=2000,
                )
            gallery_services.gallery_publish(gallery=gallery)
    return gallery


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def cpu_per_call(call: Callable[[], object], n: int, rounds: int) -> tuple[float, float, list[float]]:
    """Median and best round of CPU ms per call, and every call's wall ms
    (on a shared machine the median moves with the neighbours, the best
    round much less)."""
    call()  # warm
    cpu, wall = [], []
    for _ in range(rounds):
        started_cpu = time.process_time()
        for _ in range(n):
            started = time.perf_counter()
            call()
            wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000 / n)
    return statistics.median(cpu), min(cpu), wall


def get(client: Client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 200, response.content[:300]


def served(client: Client, url: str) -> Callable[[], None]:
    """GET ``url`` with ``client``'s cookies as a WSGI server would: one
    environ, the handler, the body read and the response closed (which
    sends request_finished)."""
    from studio.wsgi import application as handler  # what the server runs, as it sets it up

    path, _, query = url.partition("?")
    cookie = "; ".join(f"{name}={morsel.value}" for name, morsel in client.cookies.items())

    def call() -> None:
        environ = {
            "REQUEST_METHOD": "GET",
            "SCRIPT_NAME": "",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "SERVER_NAME": "testserver",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "testserver",
            "HTTP_COOKIE": cookie,
            "wsgi.input": io.BytesIO(b""),
            "wsgi.errors": sys.stderr,
            "wsgi.url_scheme": "http",
            "wsgi.version": (1, 0),
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        status: list[str] = []
        response = handler(environ, lambda line, headers, exc_info=None: status.append(line))
        try:
            body = b"".join(response)
        finally:
            response.close()
        assert status[0].startswith("200"), (status, body[:300])

    return call


def row_queries(client: Client, url: str) -> list[str]:
    """The SQL of the request's row queries (the page of assets, the
    portal's folders of the page), as the database ran it."""
    with CaptureQueriesContext(connection) as queries:
        get(client, url)
    tables = (Asset._meta.db_table, Placement._meta.db_table)
    return [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith("SELECT") and any(f'FROM "{t}"' in q["sql"] for t in tables)
    ]


def run_sql(statements: list[str], params: list[object] | None = None) -> Callable[[], None]:
    def call() -> None:
        with connection.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql, params)
                cursor.fetchall()

    return call


def plain_select(gallery: Gallery, page_size: int, offset_sort: int) -> Callable[[], None]:
    """One SELECT of the page's columns (the figure this bench printed first)."""
    table = Asset._meta.db_table
    sql = (
        f"SELECT id, original_filename, width, height, captured_at, trashed_at, derivatives FROM {table} "
        f"WHERE gallery_id = %s AND status = %s AND trashed_at IS NULL AND sort_order >= %s "
        f"ORDER BY sort_order, created_at LIMIT %s"
    )
    gallery_id = gallery.pk.hex if connection.vendor == "sqlite" else gallery.pk
    return run_sql([sql], [gallery_id, AssetStatus.READY, offset_sort, page_size + 1])


def query_counts(client: Client, url: str) -> dict[int, int]:
    counts = {}
    for size in (10, 100):
        get(client, f"{url}{'&' if '?' in url else '?'}page_size={size}")  # warm: touch, throttle keys
        with CaptureQueriesContext(connection) as queries:
            get(client, f"{url}{'&' if '?' in url else '?'}page_size={size}")
        counts[size] = len(queries)
    return counts


def deep_page(client: Client, base: str, pages: int) -> str:
    """A page deep in the gallery: follow cursors ``pages`` times."""
    url = base
    for _ in range(pages):
        url = client.get(url).json()["next"].replace("http://testserver", "")
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", type=int, default=10_000)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    # One line per request on stderr would be measured with the rest; the
    # request log is not what this bench is about.
    logging.disable(logging.CRITICAL)

    call_command("migrate", verbosity=0)
    gallery = build(args.assets)
    portal = Client()
    opened = portal.post("/api/v1/portal/access/", {"studio": SLUG, "code": CODE}, content_type="application/json")
    assert opened.status_code == 200, opened.content
    staff = Client()
    staff.force_login(User.objects.get(email="bench-owner@example.com"))
    lists = {
        "portal": f"/api/v1/portal/galleries/{gallery.pk}/assets/",
        "staff": f"/api/v1/studios/{SLUG}/galleries/{gallery.pk}/assets/",
    }
    pages = args.assets // args.page_size // 2

    print(
        f"\n{connection.vendor}, gallery of {args.assets} photos, page of {args.page_size}, "
        f"{args.rounds} rounds of {args.requests} requests (CPU: median of rounds; wall: median / p95 of requests)"
    )
    print(f"{'what':40} {'CPU ms':>8} {'wall ms':>8} {'p95 ms':>8} {'best CPU':>8}")
    for name, url in lists.items():
        client = portal if name == "portal" else staff
        base = f"{url}?page_size={args.page_size}"
        deep = deep_page(client, base, pages)
        with studio_scope(gallery.studio):
            sort_at = Asset.objects.get(pk=client.get(deep).json()["results"][0]["id"]).sort_order
        for label, page_url, offset in (("first page", base, 0), ("middle page (cursor)", deep, sort_at)):
            cpu, best, wall = cpu_per_call(served(client, page_url), args.requests, args.rounds)
            statements = row_queries(client, page_url)
            sql_cpu, sql_best, sql_wall = cpu_per_call(run_sql(statements), args.requests, args.rounds)
            plain_cpu, plain_best, plain_wall = cpu_per_call(
                plain_select(gallery, args.page_size, offset), args.requests, 3
            )
            print(
                f"{'GET ' + name + ' ' + label:40} {cpu:8.2f} {statistics.median(wall):8.2f} "
                f"{percentile(wall, 95):8.2f} {best:8.2f}"
            )
            print(
                f"{'  bare SQL, its row queries (' + str(len(statements)) + ')':40} {sql_cpu:8.2f} "
                f"{statistics.median(sql_wall):8.2f} {percentile(sql_wall, 95):8.2f} {sql_best:8.2f}"
            )
            print(
                f"{'  bare SQL, one plain SELECT':40} {plain_cpu:8.2f} "
                f"{statistics.median(plain_wall):8.2f} {percentile(plain_wall, 95):8.2f} {plain_best:8.2f}"
            )
            print(f"{'  ratio CPU request / row queries':40} {cpu / sql_cpu:7.1f}x {'':17}{best / sql_best:7.1f}x")
            print(f"{'  ratio CPU request / plain SELECT':40} {cpu / plain_cpu:7.1f}x {'':17}{best / plain_best:7.1f}x")
        # What any request costs whatever the page: middleware, session,
        # tenant and visitor lookups, query building, rendering.
        fixed, fixed_best, _ = cpu_per_call(served(client, f"{url}?page_size=1"), args.requests, args.rounds)
        print(f"{'  CPU of a page of 1 (the fixed part)':40} {fixed:8.2f} {'':17} {fixed_best:8.2f}")
        counts = query_counts(client, url)
        print(f"{'  queries, page of 10 / of 100':40} {counts[10]:>8} {counts[100]:>8}\n")


if __name__ == "__main__":
    main()
