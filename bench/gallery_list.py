"""Listing a page of a big gallery: request time against the bare SQL.

    .venv/bin/python bench/gallery_list.py [--assets 10000] [--page-size 100] [--requests 60]
    createdb -h 127.0.0.1 -U postgres bench_list   # once
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_list .venv/bin/python bench/gallery_list.py

Builds (once per database) a studio with a 10,000-photo gallery, a visitor
who rated a third of the photos and filed some into folders, then times the
client portal's asset list (GET /api/v1/portal/galleries/{id}/assets/) for
the first page and a page deep in the gallery (by cursor), and the bare SQL
that fetches the same rows. Prints median and p95 of each, their ratio, and
the queries per request (the suite pins that number for page sizes 10 and 100).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
os.environ.setdefault("DATABASE_URL", f"sqlite:///{ROOT / 'var' / 'bench' / 'gallery_list.sqlite3'}")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")
os.environ.setdefault("THROTTLE_PORTAL", "1000000/min")
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


def time_requests(client: Client, url: str, n: int) -> tuple[list[float], int]:
    client.get(url)  # warm
    times = []
    for _ in range(n):
        start = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.content[:300]
    with CaptureQueriesContext(connection) as queries:
        client.get(url)
    return times, len(queries)


def time_sql(gallery: Gallery, page_size: int, offset_sort: int, n: int) -> list[float]:
    table = Asset._meta.db_table
    sql = (
        f"SELECT id, original_filename, width, height, captured_at, trashed_at, derivatives FROM {table} "
        f"WHERE gallery_id = %s AND status = %s AND trashed_at IS NULL AND sort_order >= %s "
        f"ORDER BY sort_order, created_at LIMIT %s"
    )
    gallery_id = gallery.pk.hex if connection.vendor == "sqlite" else gallery.pk
    times = []
    with connection.cursor() as cursor:
        for _ in range(n + 1):
            start = time.perf_counter()
            cursor.execute(sql, [gallery_id, AssetStatus.READY, offset_sort, page_size + 1])
            rows = cursor.fetchall()
            times.append((time.perf_counter() - start) * 1000)
            assert len(rows) == page_size + 1
    return times[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", type=int, default=10_000)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--requests", type=int, default=60)
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    gallery = build(args.assets)
    client = Client()
    opened = client.post("/api/v1/portal/access/", {"studio": SLUG, "code": CODE}, content_type="application/json")
    assert opened.status_code == 200, opened.content
    base = f"/api/v1/portal/galleries/{gallery.pk}/assets/?page_size={args.page_size}"
    # A page deep in the gallery: follow cursors half-way.
    deep, sort_at = base, 0
    for _ in range(args.assets // args.page_size // 2):
        page = client.get(deep).json()
        deep = page["next"].replace("http://testserver", "")
    with studio_scope(gallery.studio):
        first_id = client.get(deep).json()["results"][0]["id"]
        sort_at = Asset.objects.get(pk=first_id).sort_order

    print(
        f"\n{connection.vendor}, gallery of {args.assets} photos, "
        f"page of {args.page_size}, {args.requests} requests each"
    )
    print(f"{'what':34} {'median ms':>10} {'p95 ms':>8} {'queries':>8}")
    for label, url, offset in (("first page", base, 0), ("middle page (cursor)", deep, sort_at)):
        times, queries = time_requests(client, url, args.requests)
        sql = time_sql(gallery, args.page_size, offset, args.requests)
        req_med, sql_med = statistics.median(times), statistics.median(sql)
        print(f"{'GET ' + label:34} {req_med:10.2f} {percentile(times, 95):8.2f} {queries:8}")
        print(f"{'bare SQL, same rows':34} {sql_med:10.2f} {percentile(sql, 95):8.2f} {1:8}")
        print(f"{'ratio request / SQL':34} {req_med / sql_med:10.1f}x\n")


if __name__ == "__main__":
    main()
