"""The client gallery page in a real browser, for a 10,000-photo gallery.

    .venv/bin/python bench/portal.py [--assets 10000] [--runs 5] [--scroll 2000]

On the embedded default (SQLite, local media, both under var/bench/), builds
once a studio with a published 10,000-photo gallery. Six real photos go
through the real pipeline; the other rows reuse their derivative files, so
every thumbnail the browser asks for is a real WebP served by the media
endpoint. Then, with chromium (Playwright, as the browser tests) against a
threaded live server in this process, it prints:

- time to first thumbnails: from the start of navigation (a fresh browser
  context: cold cache) until every tile of the first screen has its
  thumbnail decoded; median and worst of --runs;
- bytes of HTML, JS and CSS on that first load, as sent (the live server does
  not compress) and gzipped (what whitenoise serves in production), plus the
  API JSON and image bytes fetched before the first thumbnails showed;
- after scrolling until photo 2,000 is on screen: the DOM node count, the
  tiles in the DOM, the photos loaded, the API pages fetched and the JS heap
  (the page keeps the DOM windowed; the data of loaded photos stays).
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BENCH = ROOT / "var" / "bench"
BENCH.mkdir(parents=True, exist_ok=True)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
os.environ.setdefault("DATABASE_URL", f"sqlite:///{BENCH / 'portal.sqlite3'}")
os.environ.setdefault("MEDIA_ROOT", str(BENCH / "portal-media"))
os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
os.environ.setdefault("THROTTLE_PORTAL", "1000000/min")
os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "true")
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop shares the thread with the ORM

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import StaticFilesHandler  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.testcases import LiveServerThread  # noqa: E402
from PIL import Image  # noqa: E402

from galleries import services as gallery_services  # noqa: E402
from galleries.models import Asset, AssetStatus, Gallery  # noqa: E402
from galleries.storage import media_store, original_key  # noqa: E402
from studio import context, services  # noqa: E402
from studio.models import Studio, User  # noqa: E402
from studio.tenancy import studio_scope  # noqa: E402

SLUG = "bench-portal"
CODE = "BENCHPORTAL"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


def _photo(n: int) -> bytes:
    """A 3000x2000 JPEG with some detail, a different colour each."""
    image = Image.new("RGB", (3000, 2000), ((n * 67) % 256, (n * 131) % 256, (n * 29) % 256))
    for x in range(0, 3000, 24):
        image.paste(((x + n * 40) % 256, 255 - x % 256, 128), (x, 0, x + 10, 2000))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def real_photos(studio: Any, gallery: Any, n: int = 6) -> list[Any]:
    """``n`` photos made by the real pipeline (kept between runs); the other
    rows of a big gallery reuse their derivative files. bench/load.py too."""
    real = list(Asset.objects.filter(gallery=gallery, status=AssetStatus.READY).exclude(derivatives={})[:n])
    while len(real) < n:
        data = _photo(len(real))
        asset = Asset(
            studio=studio,
            gallery=gallery,
            original_filename=f"REAL_{len(real)}.jpg",
            content_type="image/jpeg",
            size=len(data),
            status=AssetStatus.PROCESSING,
            sort_order=len(real),
        )
        asset.storage_key = original_key(asset, "jpg")
        asset.save()
        media_store().put(asset.storage_key, data, "image/jpeg")
        real.append(gallery_services.asset_process(asset_id=asset.pk))
    return real


def build(count: int) -> Gallery:
    settings.CELERY_TASK_ALWAYS_EAGER = True
    call_command("migrate", verbosity=0)
    with context.acting_as(context.Actor.system("bench")):
        studio = Studio.objects.filter(slug=SLUG).first()
        if studio is None:
            owner = User.objects.create_user(email="bench-portal@example.com")
            studio = services.studio_create(owner=owner, name="Bench Portal Studio", slug=SLUG)
        with studio_scope(studio):
            gallery = Gallery.objects.filter(access_code=CODE).first()
            if gallery is None:
                gallery = gallery_services.gallery_create(actor=None, title="Ten thousand photos", access_code=CODE)
            real = real_photos(studio, gallery)
            have = Asset.objects.filter(gallery=gallery).count()
            if have < count:
                print(f"building {count - have} photo rows ...", flush=True)
                rows = []
                for i in range(have, count):
                    template = real[i % len(real)]
                    rows.append(
                        Asset(
                            studio=studio,
                            gallery=gallery,
                            original_filename=f"IMG_{i:05d}.jpg",
                            storage_key=f"{template.storage_key}.bench-{i}",
                            content_type="image/jpeg",
                            size=template.size,
                            width=template.width,
                            height=template.height,
                            status=AssetStatus.READY,
                            derivatives=template.derivatives,
                            derivative_bytes=template.derivative_bytes,
                            sort_order=i,
                        )
                    )
                Asset.objects.bulk_create(rows, batch_size=2000)
            gallery_services.gallery_publish(gallery=gallery)
            gallery_services.gallery_set_cover(gallery=gallery, asset=real[0])
    return gallery


def session_cookie(gallery: Gallery) -> str:
    client = Client(REMOTE_ADDR=f"10.99.{random.randint(0, 255)}.{random.randint(1, 254)}")
    response = client.post(
        "/api/v1/portal/access/",
        {"studio": gallery.studio.slug, "code": gallery.access_code},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    return client.cookies[settings.SESSION_COOKIE_NAME].value


# Every tile on screen has its thumbnail decoded.
SCREEN_READY = """() => {
  const tiles = [...document.querySelectorAll('#photos .tile')].filter((t) => {
    const box = t.getBoundingClientRect();
    return box.top < innerHeight && box.bottom > 0;
  });
  const decoded = (t) => { const img = t.querySelector('img'); return img.complete && img.naturalWidth > 0; };
  return tiles.length > 0 && tiles.every(decoded);
}"""


def _wait(page: Any, expression: str, timeout: float = 60.0) -> None:
    # Playwright's wait_for_function polls with eval(), which the page's CSP refuses.
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(expression)
        page.wait_for_timeout(10)


def first_load(browser: Any, url: str, cookie: dict[str, str]) -> dict[str, Any]:
    context_ = browser.new_context(viewport={"width": 1280, "height": 800})
    context_.add_cookies([cookie])
    page = context_.new_page()
    sizes: dict[str, list[bytes]] = {}
    responses: list[Any] = []
    page.on("response", lambda response: responses.append(response))
    start = time.perf_counter()
    page.goto(url)
    _wait(page, SCREEN_READY)
    elapsed = (time.perf_counter() - start) * 1000
    for response in responses:
        kind = response.request.resource_type
        try:
            body = response.body()
        except Exception:  # a redirect or an aborted request has no body
            continue
        sizes.setdefault(kind, []).append(body)
    context_.close()
    return {"ms": elapsed, "sizes": sizes}


def scrolled(browser: Any, url: str, cookie: dict[str, str], target: int) -> dict[str, Any]:
    context_ = browser.new_context(viewport={"width": 1280, "height": 800})
    context_.add_cookies([cookie])
    page = context_.new_page()
    api_pages: list[str] = []
    page.on("request", lambda r: api_pages.append(r.url) if "/assets/?" in r.url else None)
    page.goto(url)
    _wait(page, SCREEN_READY)
    start_nodes = page.evaluate("document.getElementsByTagName('*').length")
    shown = f"[...document.querySelectorAll('#photos .tile')].some((t) => Number(t.dataset.index) >= {target})"
    while not page.evaluate(shown):
        page.mouse.wheel(0, 2400)
        page.wait_for_timeout(16)
    _wait(page, SCREEN_READY)
    result = {
        "nodes_start": start_nodes,
        "nodes": page.evaluate("document.getElementsByTagName('*').length"),
        "tiles": page.evaluate("document.querySelectorAll('#photos .tile').length"),
        "imgs": page.evaluate("document.images.length"),
        "last": int(page.evaluate("document.querySelector('#photos .tile:last-child').dataset.index")),
        "pages": len(api_pages),
        "heap": page.evaluate("performance.memory ? performance.memory.usedJSHeapSize : 0"),
    }
    context_.close()
    return result


def kib(n: int) -> str:
    return f"{n / 1024:7.1f} KiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--scroll", type=int, default=2000)
    args = parser.parse_args()

    gallery = build(args.assets)
    server = LiveServerThread("127.0.0.1", StaticFilesHandler, port=0)
    server.daemon = True
    server.start()
    server.is_ready.wait()
    if server.error:
        raise server.error
    base = f"http://127.0.0.1:{server.port}"
    url = f"{base}/g/{gallery.access_code}/"
    cookie = {"name": settings.SESSION_COOKIE_NAME, "value": session_cookie(gallery), "url": base}
    with studio_scope(gallery.studio):
        photos = Asset.objects.filter(gallery=gallery, status=AssetStatus.READY, trashed_at=None).count()

    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        first_load(browser, url, cookie)  # warm the server (imports, the SQLite page cache)
        loads = [first_load(browser, url, cookie) for _ in range(args.runs)]
        scroll = scrolled(browser, url, cookie, args.scroll)
        browser.close()
    server.terminate()

    times = [load["ms"] for load in loads]
    sizes = loads[-1]["sizes"]
    print(f"client gallery page, {photos:,} photos, SQLite + local media, chromium 1280x800, cold cache")
    print(
        f"time to first thumbnails (navigation start -> every tile of the first screen decoded), "
        f"{args.runs} runs: median {statistics.median(times):.0f} ms, worst {max(times):.0f} ms"
    )
    print("bytes on first load (as sent, uncompressed / gzipped):")
    for label, kinds in (("HTML", ["document"]), ("JS", ["script"]), ("CSS", ["stylesheet"])):
        bodies = [b for k in kinds for b in sizes.get(k, [])]
        raw = sum(len(b) for b in bodies)
        packed = sum(len(gzip.compress(b)) for b in bodies)
        print(f"  {label:<5} {len(bodies):3d} files {kib(raw)} / {kib(packed)}")
    api = sizes.get("fetch", []) + sizes.get("xhr", [])
    images = sizes.get("image", [])
    print(f"  API   {len(api):3d} calls {kib(sum(len(b) for b in api))}   (gallery, folders, first photo page)")
    print(f"  image {len(images):3d} files {kib(sum(len(b) for b in images))}   (thumbnails and the cover)")
    print(f"after scrolling until photo {args.scroll:,} is on screen:")
    print(f"  DOM nodes          {scroll['nodes']:6d}   (first screen: {scroll['nodes_start']})")
    print(f"  tiles in the DOM   {scroll['tiles']:6d}   img elements: {scroll['imgs']}")
    print(f"  last tile rendered #{scroll['last'] + 1:<6d} API pages of 100 fetched: {scroll['pages']}")
    if scroll["heap"]:
        print(f"  JS heap used       {scroll['heap'] / 1024 / 1024:6.1f} MiB")


if __name__ == "__main__":
    main()
