"""Completing an upload batch of 500 files against a local S3 endpoint.

    .venv/bin/python bench/uploads.py [--files 500] [--rounds 3]

Starts moto in server mode in its own process (a real S3 HTTP endpoint on
loopback, not sharing our interpreter), points the production
django-storages/boto3 configuration at it, and for each round
asks for upload targets for N small JPEGs, posts every file to its target
(not timed), then times ``upload_complete``: for each file one 16-byte
ranged GET of its one-time upload key (size, type and first bytes in one
round trip) and a server-side copy to the original's key (2 S3 calls a
file, as the HEAD + GET were before), then one short transaction that
records the results. The upload keys are deleted after commit, a thousand
per call, by a task; derivative jobs go to an in-memory broker and are not
run.

It compares the checks made one file at a time (CHECK_CONCURRENCY = 1, as
before this change, when they also ran under row locks) with the default
(8 at a time, no lock held), and prints the median time per batch, per
file, and the ratio. The figure depends on the endpoint: moto's server is
CPU-bound (about 12 ms a request on one core here), so concurrency gains
little against it; a real bucket's 20-50 ms of latency per call makes the
concurrency matter more, not less.
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
with socket.socket() as _probe:
    _probe.bind((HOST, 0))
    PORT = _probe.getsockname()[1]
SERVER = subprocess.Popen(
    [str(Path(sys.executable).with_name("moto_server")), "-H", HOST, "-p", str(PORT)],
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
)
for _ in range(100):
    with socket.socket() as _probe:
        if _probe.connect_ex((HOST, PORT)) == 0:
            break
    time.sleep(0.1)
BUCKET = "bench-uploads"

VAR = Path(tempfile.mkdtemp(prefix="bench-uploads-"))
os.environ.update(
    {
        "DJANGO_SETTINGS_MODULE": "studio.settings",
        "VAR_DIR": str(VAR),
        "DATABASE_URL": f"sqlite:///{VAR / 'db.sqlite3'}",
        "AWS_STORAGE_BUCKET_NAME": BUCKET,
        "AWS_S3_ENDPOINT_URL": f"http://{HOST}:{PORT}",
        "AWS_S3_REGION_NAME": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_S3_ADDRESSING_STYLE": "path",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "CELERY_BROKER_URL": "memory://",
        "LOG_LEVEL": "WARNING",
    }
)

import django  # noqa: E402

django.setup()

import boto3  # noqa: E402
import requests  # noqa: E402
from django.core.management import call_command  # noqa: E402
from PIL import Image  # noqa: E402

from galleries import services  # noqa: E402
from galleries.services import uploads  # noqa: E402
from studio import context  # noqa: E402
from studio import services as studio_services  # noqa: E402
from studio.models import User  # noqa: E402
from studio.tenancy import studio_scope  # noqa: E402


def small_jpeg(seed: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (160, 120), (seed % 256, (seed * 7) % 256, 90)).save(out, "JPEG", quality=80)
    return out.getvalue()


def one_batch(gallery: object, files: int, concurrency: int) -> float:
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
    start = time.perf_counter()
    done = services.upload_complete(batch=result.batch)
    elapsed = time.perf_counter() - start
    assert len(done.processing) == files, (len(done.processing), done.failed[:3], len(done.missing))
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    boto3.client(
        "s3",
        endpoint_url=f"http://{HOST}:{PORT}",
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    ).create_bucket(Bucket=BUCKET)
    call_command("migrate", verbosity=0)
    with context.acting_as(context.Actor.system("bench")):
        owner = User.objects.create_user(email="bench@example.com")
        studio = studio_services.studio_create(owner=owner, name="Bench", slug="bench-uploads")
        with studio_scope(studio):
            gallery = services.gallery_create(actor=None, title="Uploads")
            timings: dict[int, list[float]] = {1: [], uploads.CHECK_CONCURRENCY: []}
            for _ in range(args.rounds):
                for concurrency in timings:
                    timings[concurrency].append(one_batch(gallery, args.files, concurrency))

    print(f"upload_complete, {args.files} files, local S3 endpoint (moto server), median of {args.rounds} rounds")
    print(f"{'checks at a time':>18} {'ms per batch':>14} {'ms per file':>12}")
    medians = {c: statistics.median(t) * 1000 for c, t in timings.items()}
    for concurrency, ms in medians.items():
        print(f"{concurrency:>18} {ms:>14.0f} {ms / args.files:>12.2f}")
    one, many = medians[1], medians[max(medians)]
    print(f"speed-up: {one / many:.2f}x (one at a time / {max(medians)} at a time)")
    SERVER.terminate()


if __name__ == "__main__":
    main()
