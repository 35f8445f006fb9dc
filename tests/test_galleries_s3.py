"""Gallery media on S3, against a real S3 HTTP endpoint (moto in server mode).

Nothing here patches boto3: the default storage is django-storages' S3Storage
built from the same OPTIONS as studio/settings.py, pointed at a moto server
that runs in a thread of the test process. The browser's side (posting a file
to a presigned target, following a media redirect) is done with ``requests``
against that server, so the bytes never pass through Django.

moto does not enforce POST policies, which lets the tests store objects that
break them and prove that ``complete`` catches and deletes them.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import json
import logging
import re
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError
from django.core.files.storage import storages
from moto.server import ThreadedMotoServer
from PIL import Image
from storages.backends.s3 import S3Storage

from galleries.models import Asset, AssetStatus
from galleries.services import effects
from galleries.storage import S3MediaStore, StorageError, media_store
from studio.roles import Role
from studio.tenancy import studio_scope
from tests import factories
from tests.gallery_helpers import gallery_url, jpeg, make_gallery, png

BUCKET = "studio-media-tests"
REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "testing-key", "aws_secret_access_key": "testing-secret"}
SIZES = ("large", "medium", "thumb")
SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
)


# --- the S3 endpoint --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    werkzeug = logging.getLogger("werkzeug")
    level = werkzeug.level
    werkzeug.setLevel(logging.WARNING)  # one log line per S3 request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    _client(url).create_bucket(Bucket=BUCKET)
    yield url
    server.stop()
    werkzeug.setLevel(level)


def _client(endpoint_url: str) -> Any:
    """The tests' own view of the bucket (not the application's client)."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=REGION,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        **CREDENTIALS,
    )


def s3_storage(endpoint_url: str, **extra: Any) -> dict[str, Any]:
    """STORAGES["default"] exactly as studio/settings.py builds it when
    AWS_STORAGE_BUCKET_NAME is set (plus ``extra`` options)."""
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": BUCKET,
            "region_name": REGION,
            "endpoint_url": endpoint_url,
            "access_key": CREDENTIALS["aws_access_key_id"],
            "secret_key": CREDENTIALS["aws_secret_access_key"],
            "default_acl": None,
            "querystring_auth": True,
            "querystring_expire": 300,
            "file_overwrite": False,
            "signature_version": "s3v4",
            "addressing_style": "path",
            **extra,
        },
    }


def _one_attempt(**extra: Any) -> Config:
    """The production client config (s3v4, path style) without botocore's own
    retries, so a failure reaches our code at once."""
    return Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}, **extra)


def _use_storage(settings: Any, config: dict[str, Any]) -> S3MediaStore:
    settings.STORAGES = {**settings.STORAGES, "default": config}
    # Django resets its storages handler when STORAGES changes.
    assert isinstance(storages["default"], S3Storage)
    store = media_store()
    assert isinstance(store, S3MediaStore)
    return store


@dataclass
class Bucket:
    url: str
    client: Any
    store: S3MediaStore

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=BUCKET, Key=key)
        except ClientError as exc:
            assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 404, exc.response
            return False
        return True

    def head(self, key: str) -> dict[str, Any]:
        return self.client.head_object(Bucket=BUCKET, Key=key)

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=BUCKET, Key=key)["Body"].read()

    def keys(self, prefix: str) -> set[str]:
        found: set[str] = set()
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            found.update(item["Key"] for item in page.get("Contents", []))
        return found


@pytest.fixture
def s3(settings, moto_url) -> Bucket:
    settings.SITE_URL = "http://django-site.invalid"  # S3 targets must not point here
    settings.CELERY_TASK_ALWAYS_EAGER = True
    store = _use_storage(settings, s3_storage(moto_url))
    assert store.bucket == BUCKET
    assert store.client.meta.endpoint_url == moto_url
    return Bucket(moto_url, _client(moto_url), store)


# --- the upload round trip, as a browser does it ----------------------------------------------------------


def presign(client: Any, studio: Any, gallery: Any, files: list[tuple[str, int, str]]) -> dict[str, Any]:
    response = client.post(
        gallery_url(studio, gallery, "uploads/"),
        {"files": [{"filename": n, "size": s, "content_type": t} for n, s, t in files]},
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()


def post_file(bucket: Bucket, target: dict[str, Any], data: bytes, **field_overrides: str) -> None:
    """The browser's multipart POST, straight to the S3 endpoint."""
    assert target["url"].startswith(bucket.url)
    fields = {**target["fields"], **field_overrides}
    answer = requests.post(target["url"], data=fields, files={"file": ("upload", data)}, timeout=10)
    assert answer.status_code in (200, 201, 204), answer.text


def by_name(presigned: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["filename"]: t for t in presigned["targets"]}


def complete(client: Any, studio: Any, gallery: Any, batch: str) -> dict[str, Any]:
    response = client.post(gallery_url(studio, gallery, f"uploads/{batch}/complete/"), {}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def get_asset(studio: Any, pk: Any) -> Asset:
    with studio_scope(studio):
        return Asset.objects.get(pk=pk)


def upload_ready(
    bucket: Bucket, client: Any, studio: Any, gallery: Any, capture: Any, name: str = "a.jpg", data: bytes = b""
) -> Asset:
    data = data or jpeg(64, 48)
    presigned = presign(client, studio, gallery, [(name, len(data), "image/jpeg")])
    post_file(bucket, presigned["targets"][0], data)
    with capture(execute=True):
        complete(client, studio, gallery, presigned["batch"])
    asset = get_asset(studio, presigned["targets"][0]["asset"])
    assert asset.status == AssetStatus.READY, asset.failure_reason
    return asset


def asset_keys(asset: Asset) -> list[str]:
    return [asset.storage_key, *(d["key"] for d in asset.derivatives.values())]


def prefix_of(gallery: Any) -> str:
    return f"studios/{gallery.studio_id}/galleries/{gallery.pk}/"


# --- the configuration ------------------------------------------------------------------------------------


def test_media_store_is_s3_built_from_the_production_options(s3, moto_url):
    storage = storages["default"]
    assert isinstance(storage, S3Storage)
    assert (storage.bucket_name, storage.endpoint_url, storage.region_name) == (BUCKET, moto_url, REGION)
    config = s3.store.client.meta.config
    assert config.signature_version == "s3v4"
    assert config.s3["addressing_style"] == "path"
    # The application's own client reaches the bucket.
    s3.store.put("probe/key.txt", b"ping", "text/plain")
    assert s3.store.head("probe/key.txt").size == 4
    assert s3.store.read_head("probe/key.txt", 2) == b"pi"
    assert s3.store.head("probe/absent.txt") is None
    s3.store.delete(["probe/key.txt"])
    assert not s3.exists("probe/key.txt")


# --- 1. presigned POST targets ---------------------------------------------------------------------------


def test_presign_returns_post_policies_for_the_s3_endpoint(s3, studio, owner, client_for, settings):
    gallery = make_gallery(studio)
    data = jpeg(64, 48)
    before = datetime.now(UTC)
    body = presign(
        client_for(owner),
        studio,
        gallery,
        [("a.jpg", len(data), "image/jpeg"), ("b.png", 1234, "image/png"), ("notes.txt", 10, "text/plain")],
    )
    assert [r["filename"] for r in body["rejected"]] == ["notes.txt"]
    targets = by_name(body)
    assert set(targets) == {"a.jpg", "b.png"}
    for filename, size, content_type, extension in (
        ("a.jpg", len(data), "image/jpeg", "jpg"),
        ("b.png", 1234, "image/png", "png"),
    ):
        target = targets[filename]
        # A one-time key: complete moves what arrives there to the original's key.
        key = target["fields"]["key"]
        assert re.fullmatch(
            rf"studios/{studio.pk}/galleries/{gallery.pk}/uploads/{target['asset']}-[\w-]{{16}}\.{extension}", key
        ), key
        # A POST to the bucket on the S3 endpoint (path style), never to Django.
        assert target["method"] == "POST"
        assert target["url"] == f"{s3.url}/{BUCKET}"
        assert not target["url"].startswith((settings.SITE_URL, "http://testserver"))
        fields = target["fields"]
        assert fields["key"] == key
        assert fields["Content-Type"] == content_type
        assert fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
        assert fields["x-amz-credential"].endswith(f"/{REGION}/s3/aws4_request")
        policy = json.loads(base64.b64decode(fields["policy"]))
        conditions = policy["conditions"]
        assert {"key": key} in conditions
        assert {"bucket": BUCKET} in conditions
        assert {"Content-Type": content_type} in conditions
        assert ["content-length-range", size, size] in conditions
        assert not [c for c in conditions if isinstance(c, list) and c[0] in ("starts-with", "eq")]
        expiration = datetime.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        ttl = timedelta(seconds=settings.UPLOAD_URL_TTL_SECONDS)
        assert ttl == timedelta(minutes=15)
        assert before + ttl - timedelta(seconds=5) <= expiration <= datetime.now(UTC) + ttl + timedelta(seconds=5)
        expires_at = datetime.fromisoformat(target["expires_at"].replace("Z", "+00:00"))
        assert abs(expires_at - expiration) < timedelta(seconds=5)
        # Nothing was stored: the bytes go from the browser to S3.
        assert not s3.exists(key)
        asset = get_asset(studio, target["asset"])
        assert (asset.upload_key, asset.status) == (key, AssetStatus.AWAITING_UPLOAD)
        # The original's key is never an upload target.
        assert asset.storage_key == f"studios/{studio.pk}/galleries/{gallery.pk}/originals/{asset.pk}.{extension}"


# --- 2. upload, complete, derivatives ---------------------------------------------------------------------


def test_uploaded_jpeg_is_processing_then_ready_with_derivatives_in_the_bucket(
    s3, studio, owner, client_for, django_capture_on_commit_callbacks
):
    client = client_for(owner)
    gallery = make_gallery(studio)
    data = jpeg(64, 48)
    presigned = presign(client, studio, gallery, [("a.jpg", len(data), "image/jpeg")])
    target = presigned["targets"][0]
    post_file(s3, target, data)
    uploaded = target["fields"]["key"]
    head = s3.head(uploaded)
    assert (head["ContentLength"], head["ContentType"]) == (len(data), "image/jpeg")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        done = complete(client, studio, gallery, presigned["batch"])
    assert done == {"processing": [target["asset"]], "failed": [], "missing": []}
    checked = get_asset(studio, target["asset"])
    assert checked.status == AssetStatus.PROCESSING
    # complete read the object once and kept its ETag; the copy off the
    # one-time key is the job's, naming it.
    assert checked.upload_etag == s3.head(uploaded)["ETag"]
    original = checked.storage_key
    assert not s3.exists(original)
    assert not s3.keys(f"{prefix_of(gallery)}derivatives/")  # the task runs on commit, not before
    assert callbacks
    with django_capture_on_commit_callbacks(execute=True):  # the task's own on_commit work, if any
        for callback in callbacks:
            callback()
    # Copied off the one-time key: what was checked is what gets processed.
    assert s3.head(original)["ContentType"] == "image/jpeg"
    assert not s3.exists(uploaded)  # deleted after the job's copy committed
    assert get_asset(studio, target["asset"]).upload_etag == ""

    asset = get_asset(studio, target["asset"])
    assert asset.status == AssetStatus.READY, asset.failure_reason
    assert (asset.width, asset.height) == (64, 48)
    assert asset.sha256 == hashlib.sha256(data).hexdigest()
    derivatives_prefix = f"{prefix_of(gallery)}derivatives/{asset.pk}/"
    assert s3.keys(derivatives_prefix) == {f"{derivatives_prefix}{size}.webp" for size in SIZES}
    assert set(asset.derivatives) == set(SIZES)
    for size in SIZES:
        recorded = asset.derivatives[size]
        assert recorded["key"] == f"{derivatives_prefix}{size}.webp"
        head = s3.head(recorded["key"])
        assert head["ContentType"] == "image/webp"
        assert head["ContentLength"] == recorded["bytes"]
        assert "immutable" in head["CacheControl"]
        with Image.open(io.BytesIO(s3.get(recorded["key"]))) as image:
            assert image.format == "WEBP"
            assert image.size == (recorded["width"], recorded["height"])
        assert 0 < recorded["width"] <= 64 and 0 < recorded["height"] <= 48
    assert asset.derivative_bytes == sum(d["bytes"] for d in asset.derivatives.values())
    assert s3.get(original) == data  # the original stays

    progress = client.get(gallery_url(studio, gallery, f"uploads/{presigned['batch']}/"))
    assert progress.status_code == 200, progress.content
    assert progress.json()["counts"][AssetStatus.READY] == 1
    assert progress.json()["done"] is True


# --- 3. objects that break the policy -----------------------------------------------------------------------


def test_a_second_post_to_a_target_after_complete_cannot_replace_the_original(
    s3, studio, owner, client_for, django_capture_on_commit_callbacks
):
    """The presigned POST stays valid for 15 minutes. Before, a second POST
    to the same key after complete replaced the checked original (the local
    endpoint refused it with 409: the two backends disagreed). Now targets
    are one-time keys that the derivatives job copies away from."""
    client = client_for(owner)
    gallery = make_gallery(studio)
    data = jpeg(64, 48)
    presigned = presign(client, studio, gallery, [("a.jpg", len(data), "image/jpeg")])
    target = presigned["targets"][0]
    post_file(s3, target, data)
    with django_capture_on_commit_callbacks(execute=True):
        complete(client, studio, gallery, presigned["batch"])
    asset = get_asset(studio, target["asset"])
    assert asset.status == AssetStatus.READY

    impostor = png(64, 48)[: len(data)].ljust(len(data), b"\0")
    post_file(s3, target, impostor)  # moto accepts it, as S3 would within the 15 minutes
    assert s3.get(asset.storage_key) == data
    with django_capture_on_commit_callbacks(execute=True):
        assert complete(client, studio, gallery, presigned["batch"]) == {"processing": [], "failed": [], "missing": []}
    again = get_asset(studio, target["asset"])
    assert (again.status, again.sha256) == (AssetStatus.READY, hashlib.sha256(data).hexdigest())
    assert s3.get(again.storage_key) == data


def test_complete_fails_objects_that_break_the_policy_and_keeps_them_for_the_cleanup(
    s3, studio, owner, client_for, django_capture_on_commit_callbacks
):
    client = client_for(owner)
    gallery = make_gallery(studio)
    good = jpeg(64, 48)
    other = jpeg(48, 64, colour=(9, 9, 9))
    picture = png(40, 30)
    presigned = presign(
        client,
        studio,
        gallery,
        [
            ("good.jpg", len(good), "image/jpeg"),
            ("large.jpg", len(good), "image/jpeg"),
            ("typed.jpg", len(other), "image/jpeg"),
            ("hello.jpg", 5, "image/jpeg"),
            ("png.jpg", len(picture), "image/jpeg"),
            ("never.jpg", 1000, "image/jpeg"),
        ],
    )
    targets = by_name(presigned)
    post_file(s3, targets["good.jpg"], good)
    post_file(s3, targets["large.jpg"], good + b"\0" * 100)  # more bytes than declared
    post_file(s3, targets["typed.jpg"], other, **{"Content-Type": "text/plain"})  # another type than declared
    post_file(s3, targets["hello.jpg"], b"hello")  # right size and type, not an image
    post_file(s3, targets["png.jpg"], picture)  # a PNG where a JPEG was declared
    broken = {name: targets[name]["fields"]["key"] for name in ("large.jpg", "typed.jpg", "hello.jpg", "png.jpg")}
    # moto stored what a real bucket would have refused: the test is about our checks.
    assert s3.head(broken["large.jpg"])["ContentLength"] == len(good) + 100
    assert s3.head(broken["typed.jpg"])["ContentType"] == "text/plain"
    assert all(s3.exists(key) for key in broken.values())

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        done = complete(client, studio, gallery, presigned["batch"])
    reasons = {f["filename"]: f["reason"] for f in done["failed"]}
    assert set(reasons) == set(broken)
    assert f"{len(good) + 100} bytes" in reasons["large.jpg"] and f"{len(good)} bytes" in reasons["large.jpg"]
    assert "text/plain" in reasons["typed.jpg"]
    assert "not a JPEG" in reasons["hello.jpg"]
    assert "PNG" in reasons["png.jpg"] and "image/jpeg" in reasons["png.jpg"]
    assert done["processing"] == [targets["good.jpg"]["asset"]]
    assert done["missing"] == [targets["never.jpg"]["asset"]]
    with django_capture_on_commit_callbacks(execute=True):
        for callback in callbacks:
            callback()

    for name, key in broken.items():
        asset = get_asset(studio, targets[name]["asset"])
        assert (asset.status, asset.failure_reason) == (AssetStatus.FAILED, reasons[name])
        # Kept (moved off the one-time key) until the cleanup's retention ends.
        assert not s3.exists(key) and s3.exists(asset.storage_key), name
    assert get_asset(studio, targets["good.jpg"]["asset"]).status == AssetStatus.READY
    assert get_asset(studio, targets["never.jpg"]["asset"]).status == AssetStatus.AWAITING_UPLOAD

    progress = client.get(gallery_url(studio, gallery, f"uploads/{presigned['batch']}/"))
    assert progress.status_code == 200, progress.content
    body = progress.json()
    assert body["counts"] == {
        AssetStatus.AWAITING_UPLOAD: 1,
        AssetStatus.PROCESSING: 0,
        AssetStatus.READY: 1,
        AssetStatus.FAILED: 4,
    }
    assert {f["filename"]: f["reason"] for f in body["failed"]} == reasons
    assert body["done"] is False


def test_object_stored_with_put_object_under_another_type_is_rejected_and_deleted(
    s3, studio, owner, client_for, django_capture_on_commit_callbacks
):
    client = client_for(owner)
    gallery = make_gallery(studio)
    data = jpeg(64, 48)
    presigned = presign(client, studio, gallery, [("a.jpg", len(data), "image/jpeg")])
    key = presigned["targets"][0]["fields"]["key"]
    s3.client.put_object(Bucket=BUCKET, Key=key, Body=data, ContentType="text/plain")
    with django_capture_on_commit_callbacks(execute=True):
        done = complete(client, studio, gallery, presigned["batch"])
    assert [f["reason"] for f in done["failed"]] == ["The file was stored as text/plain, not image/jpeg."]
    assert not s3.exists(key)


def test_a_file_uploaded_after_missing_completes_on_the_next_call(
    s3, studio, owner, client_for, django_capture_on_commit_callbacks
):
    client = client_for(owner)
    gallery = make_gallery(studio)
    data = jpeg(64, 48)
    presigned = presign(client, studio, gallery, [("late.jpg", len(data), "image/jpeg")])
    target = presigned["targets"][0]
    with django_capture_on_commit_callbacks(execute=True):
        first = complete(client, studio, gallery, presigned["batch"])
    assert first == {"processing": [], "failed": [], "missing": [target["asset"]]}
    assert get_asset(studio, target["asset"]).status == AssetStatus.AWAITING_UPLOAD
    post_file(s3, target, data)
    with django_capture_on_commit_callbacks(execute=True):
        second = complete(client, studio, gallery, presigned["batch"])
    assert second["processing"] == [target["asset"]]
    assert get_asset(studio, target["asset"]).status == AssetStatus.READY


def test_files_the_task_rejects_are_failed_their_originals_kept_their_derivatives_gone(
    s3, studio, owner, client_for, django_capture_on_commit_callbacks
):
    client = client_for(owner)
    gallery = make_gallery(studio)
    good = jpeg(64, 48)
    cut = jpeg(64, 48, colour=(1, 2, 3))
    cut = cut[: len(cut) // 2]  # starts like a JPEG, so complete accepts it
    presigned = presign(
        client,
        studio,
        gallery,
        [
            ("first.jpg", len(good), "image/jpeg"),
            ("twin.jpg", len(good), "image/jpeg"),
            ("cut.jpg", len(cut), "image/jpeg"),
        ],
    )
    targets = by_name(presigned)
    for name, data in (("first.jpg", good), ("twin.jpg", good), ("cut.jpg", cut)):
        post_file(s3, targets[name], data)

    with django_capture_on_commit_callbacks(execute=True):
        done = complete(client, studio, gallery, presigned["batch"])
    assert len(done["processing"]) == 3

    first, twin, truncated = (get_asset(studio, targets[n]["asset"]) for n in ("first.jpg", "twin.jpg", "cut.jpg"))
    assert first.status == AssetStatus.READY
    assert (twin.status, twin.failure_reason) == (
        AssetStatus.FAILED,
        "Duplicate of first.jpg, already in this gallery.",
    )
    assert truncated.status == AssetStatus.FAILED
    assert "damaged" in truncated.failure_reason or "truncated" in truncated.failure_reason
    for failed in (twin, truncated):
        assert s3.exists(failed.storage_key)  # until the cleanup's retention ends
        assert not s3.keys(f"{prefix_of(gallery)}derivatives/{failed.pk}/")
    kept = {*asset_keys(first), twin.storage_key, truncated.storage_key}
    assert s3.keys(prefix_of(gallery)) == kept  # and nothing left on the one-time keys


# --- 4. media links --------------------------------------------------------------------------------------


def _media(studio: Any, gallery: Any, asset: Any, variant: str) -> str:
    return gallery_url(studio, gallery, f"assets/{asset.pk}/media/{variant}/")


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_staff_media_redirects_to_a_presigned_url_that_s3_serves(
    s3, studio, owner, make_member, client_for, settings, django_capture_on_commit_callbacks
):
    data = jpeg(64, 48)
    gallery = make_gallery(studio)
    asset = upload_ready(s3, client_for(owner), studio, gallery, django_capture_on_commit_callbacks, data=data)
    viewer = client_for(make_member(Role.VIEWER))

    response = viewer.get(_media(studio, gallery, asset, "thumb"))
    assert response.status_code == 302, response.content
    location = response["Location"]
    assert location.startswith(f"{s3.url}/{BUCKET}/{asset.derivatives['thumb']['key']}?")
    query = _query(location)
    assert query["X-Amz-Expires"] == str(settings.MEDIA_URL_TTL_SECONDS)
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert "response-content-disposition" not in query
    assert response["Cache-Control"] == f"private, max-age={settings.MEDIA_URL_TTL_SECONDS - 10}"
    fetched = requests.get(location, timeout=10)
    assert fetched.status_code == 200
    assert fetched.headers["Content-Type"] == "image/webp"
    assert fetched.content == s3.get(asset.derivatives["thumb"]["key"])

    download = viewer.get(_media(studio, gallery, asset, "original") + "?download=1")
    assert download.status_code == 302, download.content
    assert download["Location"].startswith(f"{s3.url}/{BUCKET}/{asset.storage_key}?")
    assert _query(download["Location"])["response-content-disposition"] == 'attachment; filename="a.jpg"'
    fetched = requests.get(download["Location"], timeout=10)
    assert fetched.status_code == 200
    assert fetched.headers["Content-Disposition"] == 'attachment; filename="a.jpg"'
    assert fetched.content == data

    # The link lives exactly MEDIA_URL_TTL_SECONDS, whatever it is set to.
    settings.MEDIA_URL_TTL_SECONDS = 37
    again = viewer.get(_media(studio, gallery, asset, "medium"))
    assert _query(again["Location"])["X-Amz-Expires"] == "37"
    assert again["Cache-Control"] == "private, max-age=27"


def test_download_name_is_encoded_like_the_local_store(
    s3, studio, owner, client_for, django_capture_on_commit_callbacks
):
    from django.utils.http import content_disposition_header

    client = client_for(owner)
    gallery = make_gallery(studio)
    for shade, name in enumerate(('Smith "Wedding".jpg', "Hochzeit Müller.jpg")):
        asset = upload_ready(
            s3,
            client,
            studio,
            gallery,
            django_capture_on_commit_callbacks,
            name=name,
            data=jpeg(64, 48, colour=(shade * 100, 0, 0)),
        )
        response = client.get(_media(studio, gallery, asset, "original") + "?download=1")
        assert response.status_code == 302, response.content
        assert _query(response["Location"])["response-content-disposition"] == content_disposition_header(True, name)


def test_media_of_another_studio_is_not_found(
    s3, studio, owner, other_studio, client_for, django_capture_on_commit_callbacks
):
    gallery = make_gallery(studio)
    asset = upload_ready(s3, client_for(owner), studio, gallery, django_capture_on_commit_callbacks)
    stranger = client_for(factories.owner_membership(other_studio))
    assert stranger.get(_media(studio, gallery, asset, "thumb")).status_code in (403, 404)
    assert stranger.get(_media(other_studio, gallery, asset, "thumb")).status_code == 404


def test_portal_media_redirects_until_the_gallery_is_unpublished(
    s3, studio, owner, client_for, api, settings, django_capture_on_commit_callbacks
):
    client = client_for(owner)
    gallery = make_gallery(studio, access_code="S3PORTAL")
    asset = upload_ready(s3, client, studio, gallery, django_capture_on_commit_callbacks)
    assert client.post(gallery_url(studio, gallery, "publish/")).status_code == 200
    opened = api.post("/api/v1/portal/access/", {"studio": studio.slug, "code": "s3portal"}, format="json")
    assert opened.status_code == 200, opened.content
    url = f"/api/v1/portal/galleries/{gallery.pk}/assets/{asset.pk}/media/thumb/"

    response = api.get(url)
    assert response.status_code == 302, response.content
    assert response["Location"].startswith(f"{s3.url}/{BUCKET}/{asset.derivatives['thumb']['key']}?")
    assert _query(response["Location"])["X-Amz-Expires"] == str(settings.MEDIA_URL_TTL_SECONDS)
    assert requests.get(response["Location"], timeout=10).status_code == 200

    assert client.post(gallery_url(studio, gallery, "unpublish/")).status_code == 200
    cut = api.get(url)
    assert cut.status_code in (401, 403), cut.content
    assert "Location" not in cut


# --- 5. deletion ----------------------------------------------------------------------------------------


def test_deleting_an_asset_removes_its_original_and_derivatives(
    s3, studio, owner, client_for, django_capture_on_commit_callbacks
):
    client = client_for(owner)
    gallery = make_gallery(studio)
    doomed = upload_ready(s3, client, studio, gallery, django_capture_on_commit_callbacks, name="doomed.jpg")
    kept = upload_ready(
        s3, client, studio, gallery, django_capture_on_commit_callbacks, name="kept.jpg", data=jpeg(48, 64)
    )
    assert len(asset_keys(doomed)) == 4 and all(s3.exists(k) for k in asset_keys(doomed))

    response = client.delete(gallery_url(studio, gallery, f"assets/{doomed.pk}/"))
    assert response.status_code == 204, response.content  # to the bin: bytes kept
    assert all(s3.exists(k) for k in asset_keys(doomed))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(gallery_url(studio, gallery, f"assets/{doomed.pk}/purge/"))
    assert response.status_code == 204, response.content
    assert all(s3.exists(k) for k in asset_keys(doomed))  # not before commit
    with django_capture_on_commit_callbacks(execute=True):
        for callback in callbacks:
            callback()

    assert not [k for k in asset_keys(doomed) if s3.exists(k)]
    assert s3.keys(prefix_of(gallery)) == set(asset_keys(kept))


def test_deleting_a_gallery_removes_all_its_objects_and_only_those(
    s3, studio, owner, client_for, django_capture_on_commit_callbacks
):
    client = client_for(owner)
    gallery = make_gallery(studio)
    neighbour = make_gallery(studio, title="Neighbour")
    upload_ready(s3, client, studio, gallery, django_capture_on_commit_callbacks, name="one.jpg")
    upload_ready(s3, client, studio, gallery, django_capture_on_commit_callbacks, name="two.jpg", data=jpeg(48, 64))
    # An original uploaded but never completed belongs to the gallery too.
    data = jpeg(32, 32)
    pending = presign(client, studio, gallery, [("pending.jpg", len(data), "image/jpeg")])
    post_file(s3, pending["targets"][0], data)
    survivor = upload_ready(s3, client, studio, neighbour, django_capture_on_commit_callbacks)
    assert len(s3.keys(prefix_of(gallery))) == 9

    with django_capture_on_commit_callbacks(execute=True):
        response = client.delete(gallery_url(studio, gallery))
    assert response.status_code == 204, response.content

    assert s3.keys(prefix_of(gallery)) == set()
    assert s3.keys(prefix_of(neighbour)) == set(asset_keys(survivor))


def test_delete_objects_task_refuses_keys_outside_its_studio(s3, studio, other_studio):
    from galleries.tasks import delete_objects

    own = f"studios/{studio.pk}/galleries/g/originals/own.jpg"
    foreign = f"studios/{other_studio.pk}/galleries/g/originals/foreign.jpg"
    lookalike = f"studios/{studio.pk}x/galleries/g/originals/lookalike.jpg"
    outside = "backups/everything.tar"
    for key in (own, foreign, lookalike, outside):
        s3.client.put_object(Bucket=BUCKET, Key=key, Body=b"x")

    result = delete_objects.delay(str(studio.pk), [own, foreign, lookalike, outside])

    assert result.get() == 1
    assert not s3.exists(own)
    assert s3.exists(foreign) and s3.exists(lookalike) and s3.exists(outside)
    s3.client.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in (foreign, lookalike, outside)]})


# --- 6. storage errors -----------------------------------------------------------------------------------


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound but not listening: connections are refused at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


def test_connection_errors_become_storage_errors(s3, settings, closed_port):
    store = _use_storage(
        settings,
        s3_storage(f"http://127.0.0.1:{closed_port}", client_config=_one_attempt(connect_timeout=2)),
    )
    calls: list[Callable[[], Any]] = [
        lambda: store.head("studios/x/a.jpg"),
        lambda: store.read_head("studios/x/a.jpg", 16),
        lambda: store.download("studios/x/a.jpg", io.BytesIO()),
        lambda: store.put("studios/x/a.webp", b"data", "image/webp"),
        lambda: store.delete(["studios/x/a.jpg"]),
    ]
    for call in calls:
        with pytest.raises(StorageError):
            call()


class FlakyS3:
    """A proxy in front of moto that injects the failures real S3 has:

    * ``fail``: the next requests answer 503 SlowDown, as S3 does under load;
    * ``truncate``: the next GETs announce the whole object but the
      connection drops halfway through the body;
    * ``delete_errors``: the next DeleteObjects calls answer 200 with an
      InternalError for every key, as S3 reports per-key failures.

    Everything else is forwarded to moto as is."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.fail = self.truncate = self.delete_errors = 0
        self.failed = self.truncated = self.delete_errored = self.forwarded = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # answers botocore's "Expect: 100-continue" at once

            def log_message(self, *args: Any) -> None:
                pass

            def _fault(self) -> str:
                with proxy.lock:
                    if proxy.fail > 0:
                        proxy.fail -= 1
                        proxy.failed += 1
                        return "fail"
                    if proxy.truncate > 0 and self.command == "GET":
                        proxy.truncate -= 1
                        proxy.truncated += 1
                        return "truncate"
                    if proxy.delete_errors > 0 and self.command == "POST" and "delete" in urlsplit(self.path).query:
                        proxy.delete_errors -= 1
                        proxy.delete_errored += 1
                        return "delete_errors"
                    proxy.forwarded += 1
                    return ""

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fault = self._fault()
                if fault == "fail":
                    self._answer(503, SLOW_DOWN)
                    return
                if fault == "delete_errors":
                    errors = "".join(
                        f"<Error><Key>{key}</Key><Code>InternalError</Code>"
                        "<Message>We encountered an internal error. Please try again.</Message></Error>"
                        for key in re.findall(r"<Key>(.*?)</Key>", body.decode())
                    )
                    self._answer(
                        200, f'<?xml version="1.0" encoding="UTF-8"?><DeleteResult>{errors}</DeleteResult>'.encode()
                    )
                    return
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=10)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "expect")}
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                payload = answer.read()
                conn.close()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                        self.send_header(name, value)
                # A HEAD answer has no body but tells the object's length.
                length = answer.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length or str(len(payload)))
                if fault == "truncate":
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(payload[: len(payload) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> FlakyS3:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def flaky(moto_url) -> Iterator[FlakyS3]:
    with FlakyS3(moto_url) as proxy:
        yield proxy


def test_server_errors_become_storage_errors_and_missing_objects_none(s3, settings, flaky):
    store = _use_storage(settings, s3_storage(flaky.url, client_config=_one_attempt()))
    store.put("probe/flaky.txt", b"ok", "text/plain")
    flaky.fail = 3
    with pytest.raises(StorageError, match="SlowDown"):
        store.download("probe/flaky.txt", io.BytesIO())
    with pytest.raises(StorageError):
        store.put("probe/flaky.txt", b"ok", "text/plain")
    with pytest.raises(StorageError):
        store.head("probe/flaky.txt")  # a 503 on HEAD is not "missing"
    assert flaky.failed == 3
    assert store.head("probe/flaky.txt").size == 2
    assert store.head("probe/nothing.txt") is None
    with pytest.raises(FileNotFoundError):
        store.download("probe/nothing.txt", io.BytesIO())
    store.delete(["probe/flaky.txt"])


def test_task_options_retry_storage_errors():
    from galleries.tasks import delete_objects, make_derivatives

    for task in (make_derivatives, delete_objects):
        assert tuple(task.autoretry_for) == (StorageError,), task.name
        assert task.acks_late is True
        assert task.reject_on_worker_lost is True
        assert task.max_retries == 12
        # A floor, not Celery's full jitter from 0 s (tests/test_faults.py).
        assert (task.retry_backoff, task.retry_jitter) == (10, False)
        assert task.retry_backoff_max == 300


def _processing_asset(s3: Bucket, client: Any, studio: Any, gallery: Any, capture: Any) -> Asset:
    """An asset whose original is uploaded and checked, derivatives not made yet."""
    data = jpeg(64, 48)
    presigned = presign(client, studio, gallery, [("a.jpg", len(data), "image/jpeg")])
    post_file(s3, presigned["targets"][0], data)
    with capture(execute=False):  # the derivative job is dropped
        complete(client, studio, gallery, presigned["batch"])
    asset = get_asset(studio, presigned["targets"][0]["asset"])
    assert asset.status == AssetStatus.PROCESSING
    return asset


def test_make_derivatives_retries_transient_storage_errors(
    s3, studio, owner, client_for, settings, flaky, django_capture_on_commit_callbacks
):
    from galleries.tasks import make_derivatives

    asset = _processing_asset(s3, client_for(owner), studio, make_gallery(studio), django_capture_on_commit_callbacks)
    _use_storage(settings, s3_storage(flaky.url, client_config=_one_attempt()))
    # Eager tasks raise celery's Retry instead of retrying when errors propagate;
    # without propagation, apply() runs each retry in turn, as a worker would.
    settings.CELERY_TASK_EAGER_PROPAGATES = False
    flaky.fail = 2  # the first two downloads fail with 503

    with django_capture_on_commit_callbacks(execute=True):
        result = make_derivatives.delay(str(studio.pk), str(asset.pk))

    assert result.successful() and result.get() == AssetStatus.READY
    assert flaky.failed == 2
    asset = get_asset(studio, asset.pk)
    assert asset.status == AssetStatus.READY
    assert all(s3.exists(k) for k in asset_keys(asset))


def test_make_derivatives_gives_up_after_max_retries_and_keeps_the_asset(
    s3, studio, owner, client_for, settings, flaky, django_capture_on_commit_callbacks
):
    from galleries.tasks import make_derivatives

    asset = _processing_asset(s3, client_for(owner), studio, make_gallery(studio), django_capture_on_commit_callbacks)
    _use_storage(settings, s3_storage(flaky.url, client_config=_one_attempt()))
    settings.CELERY_TASK_EAGER_PROPAGATES = False  # see above
    flaky.fail = 1000

    with django_capture_on_commit_callbacks(execute=True):
        result = make_derivatives.delay(str(studio.pk), str(asset.pk))

    assert result.failed()
    with pytest.raises(StorageError):
        result.get()

    assert flaky.failed == 1 + make_derivatives.max_retries
    asset = get_asset(studio, asset.pk)
    # A storage outage is not the file's fault: nothing was made, nothing deleted.
    assert asset.status != AssetStatus.READY and asset.derivatives in ({}, None)
    # The checked upload waits at its one-time key for the job's copy.
    assert asset.upload_etag and s3.exists(asset.upload_key)
    assert not s3.keys(f"{prefix_of(asset.gallery)}derivatives/")


def test_a_connection_dropped_mid_body_is_a_storage_error(s3, settings, flaky):
    key = "probe/streamed.bin"
    s3.client.put_object(Bucket=BUCKET, Key=key, Body=b"\xff\xd8\xff" + bytes(range(256)) * 8)
    store = _use_storage(settings, s3_storage(flaky.url, client_config=_one_attempt()))
    try:
        flaky.truncate = 1
        with pytest.raises(StorageError):
            store.download(key, io.BytesIO())
        assert flaky.truncated == 1
        flaky.truncate = 1
        with pytest.raises(StorageError):
            store.read_head(key, 1000)
    finally:
        s3.client.delete_object(Bucket=BUCKET, Key=key)


def test_make_derivatives_retries_a_download_cut_short(
    s3, studio, owner, client_for, settings, flaky, django_capture_on_commit_callbacks
):
    from galleries.tasks import make_derivatives

    asset = _processing_asset(s3, client_for(owner), studio, make_gallery(studio), django_capture_on_commit_callbacks)
    _use_storage(settings, s3_storage(flaky.url, client_config=_one_attempt()))
    settings.CELERY_TASK_EAGER_PROPAGATES = False  # retries run in turn (see above)
    flaky.truncate = 1

    with django_capture_on_commit_callbacks(execute=True):
        result = make_derivatives.delay(str(studio.pk), str(asset.pk))

    assert flaky.truncated == 1
    assert get_asset(studio, asset.pk).status == AssetStatus.READY
    assert result.successful(), result.result


def test_delete_objects_retries_keys_s3_failed_to_delete(s3, studio, settings, flaky):
    from galleries.tasks import delete_objects

    key = f"studios/{studio.pk}/galleries/g/originals/stubborn.jpg"
    s3.client.put_object(Bucket=BUCKET, Key=key, Body=b"x")
    _use_storage(settings, s3_storage(flaky.url, client_config=_one_attempt()))
    settings.CELERY_TASK_EAGER_PROPAGATES = False  # retries run in turn (see above)
    flaky.delete_errors = 1

    result = delete_objects.delay(str(studio.pk), [key])

    assert flaky.delete_errored == 1
    assert not s3.exists(key), "S3 said it could not delete the key, and nobody tried again"
    assert result.successful() and result.get() == 1


# --- a second POST between the check and the copy ---------------------------------------------------------


def test_a_file_replaced_between_check_and_copy_is_refused_not_copied(
    s3, studio, owner, client_for, monkeypatch, django_capture_on_commit_callbacks
):
    """The upload target stays valid for minutes: bytes posted again after
    complete read them must not become the original unchecked. The copy
    names the ETag that was checked, and S3 refuses it otherwise."""
    from galleries.services import uploads

    client = client_for(owner)
    gallery = make_gallery(studio)
    data = jpeg(64, 48)
    presigned = presign(client, studio, gallery, [("a.jpg", len(data), "image/jpeg")])
    target = presigned["targets"][0]
    post_file(s3, target, data)
    checked = uploads._problem

    def swap_after_check(asset: Any, info: Any, head: bytes) -> Any:
        verdict = checked(asset, info, head)
        # Same size and type, as the target's policy demands, other bytes.
        s3.client.put_object(Bucket=BUCKET, Key=asset.upload_key, Body=b"\x00" * len(data), ContentType="image/jpeg")
        return verdict

    monkeypatch.setattr(uploads, "_problem", swap_after_check)
    with django_capture_on_commit_callbacks(execute=True):
        result = complete(client, studio, gallery, presigned["batch"])
    asset = get_asset(studio, target["asset"])
    assert asset.status == AssetStatus.FAILED, result
    assert "replaced after it was checked" in asset.failure_reason
    assert asset.storage_key not in s3.keys(prefix_of(gallery))


def test_a_copy_whose_etag_differs_for_the_same_bytes_is_kept(
    s3, studio, owner, client_for, monkeypatch, django_capture_on_commit_callbacks
):
    """SSE-KMS and SSE-C ETags are not an MD5 of the data: a bucket may give
    a faithful copy another ETag than its source. The copy stands when the
    source is still the object that was checked."""
    from galleries.storage import S3MediaStore

    client = client_for(owner)
    gallery = make_gallery(studio)
    data = jpeg(64, 48)
    presigned = presign(client, studio, gallery, [("a.jpg", len(data), "image/jpeg")])
    post_file(s3, presigned["targets"][0], data)
    real_call = S3MediaStore._call

    def encrypted_bucket(self: Any, method: str, **kwargs: Any) -> Any:
        answer = real_call(self, method, **kwargs)
        if method == "copy_object":
            answer["CopyObjectResult"]["ETag"] = '"0123456789abcdef0123456789abcdef"'
        return answer

    monkeypatch.setattr(S3MediaStore, "_call", encrypted_bucket)
    with django_capture_on_commit_callbacks(execute=True):
        complete(client, studio, gallery, presigned["batch"])
    asset = get_asset(studio, presigned["targets"][0]["asset"])
    assert asset.status == AssetStatus.READY, asset.failure_reason
    assert asset.storage_key in s3.keys(prefix_of(gallery))


# --- the job's copy off the one-time key ---------------------------------------------------------------------


def _completed_not_processed(s3, client, studio, gallery, data, django_capture_on_commit_callbacks):
    """A photo complete checked, with its derivatives job (complete's
    on-commit work) held back: returns the target and that work."""
    presigned = presign(client, studio, gallery, [("a.jpg", len(data), "image/jpeg")])
    target = presigned["targets"][0]
    post_file(s3, target, data)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert complete(client, studio, gallery, presigned["batch"])["processing"] == [target["asset"]]
    return target, callbacks


def _run(callbacks, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        for callback in callbacks:
            callback()


def test_a_second_post_after_complete_and_before_the_job_fails_the_photo_never_its_original(
    s3, studio, owner, client_for, django_capture_on_commit_callbacks
):
    """The target is still valid when complete answers: bytes posted again
    before the job copies the checked file change the object's ETag, and
    the copy that names the checked one is refused."""
    client = client_for(owner)
    gallery = make_gallery(studio)
    data = jpeg(64, 48)
    target, callbacks = _completed_not_processed(s3, client, studio, gallery, data, django_capture_on_commit_callbacks)
    impostor = png(64, 48)[: len(data)].ljust(len(data), b"\0")
    post_file(s3, target, impostor)  # same size and type: the policy lets it through
    _run(callbacks, django_capture_on_commit_callbacks)
    asset = get_asset(studio, target["asset"])
    assert asset.status == AssetStatus.FAILED
    assert "replaced after it was checked" in asset.failure_reason
    assert not s3.exists(asset.storage_key)
    # The impostor stays at the one-time key until the cleanup's retention.
    assert s3.get(asset.upload_key) == impostor
    assert asset.upload_key in effects.asset_keys([asset])


def test_a_twin_delivery_of_the_job_after_the_copy_proceeds_from_the_original(
    s3, studio, owner, client_for, django_capture_on_commit_callbacks
):
    """Celery may deliver a job twice: the second, holding the row as it was
    before the first copied and deleted the upload key, finds the original."""
    from galleries.services.processing import _take_upload

    client = client_for(owner)
    gallery = make_gallery(studio)
    data = jpeg(64, 48)
    target, callbacks = _completed_not_processed(s3, client, studio, gallery, data, django_capture_on_commit_callbacks)
    stale = get_asset(studio, target["asset"])
    assert stale.upload_etag
    _run(callbacks, django_capture_on_commit_callbacks)
    assert not s3.exists(stale.upload_key)
    with django_capture_on_commit_callbacks(execute=True), studio_scope(studio):
        assert _take_upload(stale, media_store()) is None
    assert s3.get(stale.storage_key) == data
    assert get_asset(studio, stale.pk).status == AssetStatus.READY


def test_staff_original_is_404_until_the_job_has_copied_it(
    s3, studio, owner, client_for, django_capture_on_commit_callbacks
):
    client = client_for(owner)
    gallery = make_gallery(studio)
    data = jpeg(64, 48)
    target, callbacks = _completed_not_processed(s3, client, studio, gallery, data, django_capture_on_commit_callbacks)
    url = gallery_url(studio, gallery, f"assets/{target['asset']}/media/original/")
    waiting = client.get(url)
    assert waiting.status_code == 404, waiting.content
    assert "still being stored" in waiting.json()["error"]["message"]
    _run(callbacks, django_capture_on_commit_callbacks)
    stored = client.get(url)
    assert stored.status_code == 302, stored.content
    assert requests.get(stored["Location"], timeout=10).content == data


def test_complete_reads_each_file_once_and_copies_nothing(
    s3, studio, owner, client_for, monkeypatch, django_capture_on_commit_callbacks
):
    """One ranged GET a file (size, type, first bytes and ETag): the copy of
    a camera file is S3's slow call, and it is the job's, after complete
    answered. The rule breaker alone is copied (kept as a failed photo)."""
    client = client_for(owner)
    gallery = make_gallery(studio)
    good = [jpeg(64, 48), jpeg(32, 24)]
    bad = png(16, 16)
    presigned = presign(
        client,
        studio,
        gallery,
        [
            ("a.jpg", len(good[0]), "image/jpeg"),
            ("b.jpg", len(good[1]), "image/jpeg"),
            ("c.jpg", len(bad), "image/jpeg"),
        ],
    )
    for target, data in zip(presigned["targets"], [*good, bad], strict=True):
        post_file(s3, target, data)
    calls: list[str] = []
    real_call = S3MediaStore._call

    def counted(self: Any, method: str, **kwargs: Any) -> Any:
        calls.append(method)
        return real_call(self, method, **kwargs)

    monkeypatch.setattr(S3MediaStore, "_call", counted)
    with django_capture_on_commit_callbacks(execute=False):
        done = complete(client, studio, gallery, presigned["batch"])
    assert len(done["processing"]) == 2 and len(done["failed"]) == 1
    assert sorted(calls) == ["copy_object", "get_object", "get_object", "get_object"]


def test_a_twin_job_after_the_copy_and_a_late_post_keeps_the_ready_photo(
    s3, studio, owner, client_for, django_capture_on_commit_callbacks
):
    """The first delivery copied, made the previews and deleted the upload
    key; a late POST to the still-valid target wrote there again. The twin,
    holding the row as it was, must not take the changed upload key for a
    swap and fail a ready photo whose original is the checked one."""
    from galleries.services.processing import _take_upload

    client = client_for(owner)
    gallery = make_gallery(studio)
    data = jpeg(64, 48)
    target, callbacks = _completed_not_processed(s3, client, studio, gallery, data, django_capture_on_commit_callbacks)
    stale = get_asset(studio, target["asset"])
    _run(callbacks, django_capture_on_commit_callbacks)
    post_file(s3, target, png(64, 48)[: len(data)].ljust(len(data), b"\0"))
    with django_capture_on_commit_callbacks(execute=True), studio_scope(studio):
        assert _take_upload(stale, media_store()) is None
    ready = get_asset(studio, stale.pk)
    assert (ready.status, ready.failure_reason) == (AssetStatus.READY, "")
    assert s3.get(ready.storage_key) == data


def test_retrying_failed_photos_skips_one_whose_upload_was_replaced(
    s3, studio, owner, client_for, django_capture_on_commit_callbacks
):
    """A photo failed because its upload was replaced before the copy would
    fail the same way again: retry_failed leaves it (its upload's ETag is
    not the checked one)."""
    from galleries.services.maintenance import assets_retry_failed
    from studio.context import acting_as

    client = client_for(owner)
    gallery = make_gallery(studio)
    data = jpeg(64, 48)
    target, callbacks = _completed_not_processed(s3, client, studio, gallery, data, django_capture_on_commit_callbacks)
    post_file(s3, target, png(64, 48)[: len(data)].ljust(len(data), b"\0"))
    _run(callbacks, django_capture_on_commit_callbacks)
    assert get_asset(studio, target["asset"]).status == AssetStatus.FAILED
    with acting_as(factories.TEST_ACTOR), studio_scope(studio):
        assert assets_retry_failed(gallery=gallery, store=media_store()) == []
