"""Completing an upload batch of 500 files against a local S3 endpoint.

    .venv/bin/python bench/uploads.py [--files 500] [--rounds 3]

Starts moto in server mode in its own process (a real S3 HTTP endpoint on
loopback, not sharing our interpreter), points the production
django-storages/boto3 configuration at it, and for each round
asks for upload targets for N small JPEGs, posts every file to its target
(not timed), then times ``upload_complete``: for each file one 16-byte
ranged GET of its one-time upload key (size, type, first bytes and ETag in
one round trip), then one short transaction that records the results and
queues each photo's derivative job. The server-side copy to the original's
key, naming that ETag, is the job's (it was complete's until the copies
were found to be most of its time); derivative jobs go to an in-memory
broker and are not run, so the copies they will make are timed apart.

It compares the checks made one file at a time (CHECK_CONCURRENCY = 1, as
before) with the default (8 at a time, never more than the client's
connection pool), and prints the median complete time per batch and per
file, how much of it the storage checks took (the rest is the transaction
and queueing each photo's derivative job after commit), the ratio, the
endpoint's floor (the same S3 calls made straight from boto3 at the same
concurrency), what the jobs' copies cost the endpoint, and the target (500
files under 2 s). moto's server is CPU-bound, so against it complete can
only approach that floor; a real bucket's 20-50 ms of latency per call makes
the concurrency matter more, not less.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HOST = "127.0.0.1"
BUCKET = "bench-uploads"


def start_moto() -> tuple[subprocess.Popen[bytes], int]:
    """moto in server mode, in its own process, on a free loopback port."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", HOST, "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        with socket.socket() as probe:
            if probe.connect_ex((HOST, port)) == 0:
                break
        time.sleep(0.1)
    return server, port


def configure(port: int) -> None:
    """The production settings, pointed at the moto server (before Django starts)."""
    var = Path(tempfile.mkdtemp(prefix="bench-uploads-"))
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "studio.settings",
            "VAR_DIR": str(var),
            "DATABASE_URL": f"sqlite:///{var / 'db.sqlite3'}",
            "AWS_STORAGE_BUCKET_NAME": BUCKET,
            "AWS_S3_ENDPOINT_URL": f"http://{HOST}:{port}",
            "AWS_S3_REGION_NAME": "us-east-1",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_S3_ADDRESSING_STYLE": "path",
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "CELERY_BROKER_URL": "memory://",
            "LOG_LEVEL": "WARNING",
        }
    )
    import django

    django.setup()


def small_jpeg(seed: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (160, 120), (seed % 256, (seed * 7) % 256, 90)).save(out, "JPEG", quality=80)
    return out.getvalue()


def one_batch(gallery: object, files: int, concurrency: int) -> tuple[float, float]:
    import requests

    from galleries import services
    from galleries.services import uploads

    data = [small_jpeg(n) for n in range(files)]
    requests_ = [
        services.FileRequest(filename=f"IMG_{n:04d}.jpg", size=len(d), content_type="image/jpeg")
        for n, d in enumerate(data)
    ]
    result = services.upload_presign(gallery=gallery, files=requests_, user=None)
    session = requests.Session()
    for (_asset, target), body in zip(result.accepted, data, strict=True):
        response = session.post(target.url, data=target.fields, files={"file": ("f.jpg", body, "image/jpeg")})
        response.raise_for_status()
    uploads.CHECK_CONCURRENCY = concurrency
    checks: list[float] = []
    check_all = uploads._check_all

    def timed_checks(store: object, assets: list) -> dict:
        begin = time.perf_counter()
        try:
            return check_all(store, assets)
        finally:
            checks.append(time.perf_counter() - begin)

    uploads._check_all = timed_checks
    try:
        start = time.perf_counter()
        done = services.upload_complete(batch=result.batch)
        elapsed = time.perf_counter() - start
    finally:
        uploads._check_all = check_all
    assert len(done.processing) == files, (len(done.processing), done.failed[:3], len(done.missing))
    return elapsed, checks[0]


def endpoint_floor(files: int, concurrency: int, *, copies: bool = False) -> float:
    """The same S3 calls (a 16-byte ranged GET per file) straight from the
    boto3 client, nothing else: what the endpoint and botocore allow at this
    concurrency. With ``copies``, the server-side copies the derivative jobs
    make instead (they run on the workers, after complete answered)."""
    from concurrent.futures import ThreadPoolExecutor

    from galleries.storage import media_store

    client = media_store().client
    client.put_object(Bucket=BUCKET, Key="floor/source.jpg", Body=small_jpeg(1), ContentType="image/jpeg")

    source = {"Bucket": BUCKET, "Key": "floor/source.jpg"}
    etag = client.head_object(**source)["ETag"]  # the jobs' copies name the checked ETag

    def check(_n: int) -> None:
        client.get_object(Range="bytes=0-15", **source)["Body"].read()

    def copy(n: int) -> None:
        client.copy_object(Bucket=BUCKET, Key=f"floor/{n}.jpg", CopySource=source, CopySourceIfMatch=etag)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(copy if copies else check, range(files)))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()  # before moto and Django start: --help answers at once
    server, port = start_moto()
    try:
        configure(port)
        measure(args.files, args.rounds, port)
    finally:
        server.terminate()
        server.wait(timeout=10)


def measure(files: int, rounds: int, port: int) -> None:
    import boto3
    from django.core.management import call_command

    from galleries import services
    from galleries.services import uploads
    from galleries.storage import media_store
    from studio import context
    from studio import services as studio_services
    from studio.models import User
    from studio.tenancy import studio_scope

    boto3.client(
        "s3",
        endpoint_url=f"http://{HOST}:{port}",
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    ).create_bucket(Bucket=BUCKET)
    call_command("migrate", verbosity=0)
    side_by_side = uploads._check_concurrency(media_store(), files)
    with context.acting_as(context.Actor.system("bench")):
        owner = User.objects.create_user(email="bench@example.com")
        studio = studio_services.studio_create(owner=owner, name="Bench", slug="bench-uploads")
        with studio_scope(studio):
            gallery = services.gallery_create(actor=None, title="Uploads")
            timings: dict[int, list[tuple[float, float]]] = {1: [], side_by_side: []}
            for _ in range(rounds):
                for concurrency in timings:
                    timings[concurrency].append(one_batch(gallery, files, concurrency))
    floor = statistics.median(endpoint_floor(files, side_by_side) for _ in range(rounds)) * 1000
    copies = statistics.median(endpoint_floor(files, side_by_side, copies=True) for _ in range(rounds)) * 1000

    pool = media_store().client.meta.config.max_pool_connections
    print(f"upload_complete, {files} files, local S3 endpoint (moto server), median of {rounds} rounds")
    print(f"(1 S3 call a file; the client's connection pool holds {pool})")
    print(f"{'checks at a time':>18} {'complete ms':>12} {'ms per file':>12} {'of which checks ms':>19}")
    medians = {c: statistics.median(total for total, _ in t) * 1000 for c, t in timings.items()}
    for concurrency, ms in medians.items():
        checks = statistics.median(check for _, check in timings[concurrency]) * 1000
        print(f"{concurrency:>18} {ms:>12.0f} {ms / files:>12.2f} {checks:>19.0f}")
    one, many = medians[1], medians[side_by_side]
    print(f"speed-up: {one / many:.2f}x (one at a time / {side_by_side} at a time)")
    print(f"endpoint floor: the same {files} calls from boto3 alone, {side_by_side} at a time: {floor:.0f} ms")
    print(f"complete / floor: {many / floor:.2f}x")
    target = 2000 * files / 500
    print(f"target: {files} files under {target:.0f} ms: {'met' if many < target else 'NOT met'}")
    print(
        f"not in complete: the {files} copies the derivative jobs make, from boto3 alone, "
        f"{side_by_side} at a time: {copies:.0f} ms"
    )


if __name__ == "__main__":
    main()
