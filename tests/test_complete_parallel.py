"""Completing an upload batch checks its files side by side (issue 12).

- the checks run at most CHECK_CONCURRENCY at a time, and never more than
  the S3 client's connection pool;
- what complete answers and records is what one check at a time gave, on
  the embedded local storage and on an S3 endpoint;
- a file that fails its checks fails alone;
- an error in a check (storage down, or a bug) is raised to the caller,
  cancels the checks not yet started and records nothing (503 through the
  API, as before);
- a complete that races another records nothing the other recorded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from botocore.config import Config

from galleries import services
from galleries.models import Asset, AssetStatus
from galleries.services import uploads
from galleries.storage import LocalMediaStore, StorageError, media_store
from studio import context
from studio.tenancy import studio_scope
from tests import factories
from tests.gallery_helpers import gallery_url, jpeg, make_gallery, png
from tests.test_galleries_s3 import (  # noqa: F401 - moto_url is a fixture s3 needs
    _use_storage,
    moto_url,
    post_file,
    presign,
    s3,
    s3_storage,
)

pytestmark = pytest.mark.django_db

GOOD = jpeg(64, 48)
PICTURE = png(40, 30)
# name -> (declared size, bytes stored or None for never uploaded, stored type)
FILES: dict[str, tuple[int, bytes | None, str]] = {
    "good-1.jpg": (len(GOOD), GOOD, "image/jpeg"),
    "good-2.jpg": (len(GOOD), GOOD, "image/jpeg"),
    "large.jpg": (len(GOOD), GOOD + b"\0" * 100, "image/jpeg"),
    "typed.jpg": (len(GOOD), GOOD, "text/plain"),
    "hello.jpg": (5, b"hello", "image/jpeg"),
    "png.jpg": (len(PICTURE), PICTURE, "image/jpeg"),
    "never.jpg": (1000, None, "image/jpeg"),
}


def local_batch(studio: Any, files: dict[str, tuple[int, bytes | None, str]] = FILES) -> Any:
    """A batch whose files arrived on the local storage as its upload
    endpoint stores them (bytes at the one-time key, the type beside)."""
    gallery = make_gallery(studio)
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        result = services.upload_presign(
            gallery=gallery,
            files=[
                services.FileRequest(filename=n, size=s, content_type="image/jpeg") for n, (s, _, _) in files.items()
            ],
            user=None,
        )
    store = media_store()
    assert isinstance(store, LocalMediaStore)
    for asset, _target in result.accepted:
        _, data, stored_type = files[asset.original_filename]
        if data is not None:
            store.write_upload(asset.upload_key, iter([data]), stored_type)
    return result.batch


def complete(studio: Any, batch: Any, **kwargs: Any) -> uploads.CompleteResult:
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        return services.upload_complete(batch=batch, **kwargs)


def outcome(studio: Any, batch: Any, result: uploads.CompleteResult) -> dict[str, Any]:
    """What complete answered and recorded, by file name."""
    with studio_scope(studio):
        rows = {a.original_filename: (a.status, a.failure_reason) for a in Asset.objects.filter(batch=batch)}
    return {
        "processing": sorted(a.original_filename for a in result.processing),
        "failed": sorted((a.original_filename, reason) for a, reason in result.failed),
        "missing": sorted(a.original_filename for a in result.missing),
        "rows": rows,
    }


def statuses(studio: Any, batch: Any) -> set[str]:
    with studio_scope(studio):
        return set(Asset.objects.filter(batch=batch).values_list("status", flat=True))


@pytest.fixture
def checks(monkeypatch) -> dict[str, Any]:
    """Wraps each check: counts the calls and the most in flight at once,
    holding each a moment so that checks overlap when they can."""
    seen: dict[str, Any] = {"calls": 0, "in_flight": 0, "most": 0, "threads": set()}
    lock = threading.Lock()
    original = uploads._check_uploaded

    def counted(store: Any, asset: Asset) -> str | None:
        with lock:
            seen["calls"] += 1
            seen["in_flight"] += 1
            seen["most"] = max(seen["most"], seen["in_flight"])
            seen["threads"].add(threading.get_ident())
        try:
            time.sleep(0.05)
            return original(store, asset)
        finally:
            with lock:
                seen["in_flight"] -= 1

    monkeypatch.setattr(uploads, "_check_uploaded", counted)
    return seen


# --- bounded -------------------------------------------------------------------------------------------


def test_checks_run_side_by_side_and_never_more_than_check_concurrency(studio, checks, monkeypatch):
    monkeypatch.setattr(uploads, "CHECK_CONCURRENCY", 3)
    batch = local_batch(studio, {f"p{n}.jpg": (len(GOOD), GOOD, "image/jpeg") for n in range(12)})
    result = complete(studio, batch)
    assert len(result.processing) == 12
    assert checks["calls"] == 12
    assert 1 < checks["most"] <= 3  # side by side, and no more than allowed
    assert threading.get_ident() not in checks["threads"]  # not on the request's thread


def test_never_more_threads_than_files_or_the_s3_clients_connections(settings):
    local = media_store()
    assert uploads._check_concurrency(local, 500) == uploads.CHECK_CONCURRENCY
    assert uploads._check_concurrency(local, 2) == 2
    assert uploads._check_concurrency(local, 0) == 1
    # Built from the production options; no request is made.
    small_pool = _use_storage(settings, s3_storage("http://127.0.0.1:9", client_config=Config(max_pool_connections=3)))
    assert small_pool.client.meta.config.max_pool_connections == 3
    assert uploads._check_concurrency(small_pool, 500) == 3
    default_pool = _use_storage(settings, s3_storage("http://127.0.0.1:9"))
    assert default_pool.client.meta.config.max_pool_connections >= uploads.CHECK_CONCURRENCY
    assert uploads._check_concurrency(default_pool, 500) == uploads.CHECK_CONCURRENCY


# --- the same answers as one at a time ----------------------------------------------------------------------


def test_results_are_those_of_one_check_at_a_time_on_local_storage(studio, monkeypatch):
    monkeypatch.setattr(uploads, "CHECK_CONCURRENCY", 1)
    one_batch = local_batch(studio)
    one_at_a_time = outcome(studio, one_batch, complete(studio, one_batch))
    monkeypatch.setattr(uploads, "CHECK_CONCURRENCY", 8)
    side_batch = local_batch(studio)
    side_by_side = outcome(studio, side_batch, complete(studio, side_batch))

    assert side_by_side == one_at_a_time
    # Each broken file failed alone, for its own reason; the good ones went on.
    assert side_by_side["processing"] == ["good-1.jpg", "good-2.jpg"]
    reasons = dict(side_by_side["failed"])
    assert set(reasons) == {"large.jpg", "typed.jpg", "hello.jpg", "png.jpg"}
    assert "not a JPEG" in reasons["hello.jpg"] and "text/plain" in reasons["typed.jpg"]
    assert side_by_side["missing"] == ["never.jpg"]
    assert side_by_side["rows"]["never.jpg"] == (AssetStatus.AWAITING_UPLOAD, "")


def test_complete_again_is_a_no_op_and_a_late_file_completes_alone(studio, checks):
    batch = local_batch(studio)
    complete(studio, batch)
    checks["calls"] = 0
    again = complete(studio, batch)
    # Only the file still awaited is looked at again: still missing.
    assert checks["calls"] == 1
    assert [a.original_filename for a in again.missing] == ["never.jpg"]
    assert not again.processing and not again.failed


def test_results_are_those_of_one_check_at_a_time_on_s3(s3, studio, owner, client_for, monkeypatch):  # noqa: F811
    client = client_for(owner)

    def run(concurrency: int) -> dict[str, Any]:
        monkeypatch.setattr(uploads, "CHECK_CONCURRENCY", concurrency)
        gallery = make_gallery(studio)
        body = presign(client, studio, gallery, [(n, size, "image/jpeg") for n, (size, _, _) in FILES.items()])
        for target in body["targets"]:
            _, data, stored_type = FILES[target["filename"]]
            if data is not None:
                post_file(s3, target, data, **{"Content-Type": stored_type})
        done = client.post(gallery_url(studio, gallery, f"uploads/{body['batch']}/complete/"), {}, format="json")
        assert done.status_code == 200, done.content
        answer = done.json()
        names = {t["asset"]: t["filename"] for t in body["targets"]}
        return {
            "processing": sorted(names[pk] for pk in answer["processing"]),
            "failed": sorted((f["filename"], f["reason"]) for f in answer["failed"]),
            "missing": sorted(names[pk] for pk in answer["missing"]),
        }

    one_at_a_time = run(1)
    side_by_side = run(8)
    assert side_by_side == one_at_a_time
    assert side_by_side["processing"] == ["good-1.jpg", "good-2.jpg"]
    assert [name for name, _ in side_by_side["failed"]] == ["hello.jpg", "large.jpg", "png.jpg", "typed.jpg"]
    assert side_by_side["missing"] == ["never.jpg"]


# --- errors --------------------------------------------------------------------------------------------


def failing_on(name: str, error: Exception, monkeypatch: Any, checks: dict[str, Any]) -> None:
    """The check of ``name`` raises ``error`` (after the ``checks`` wrapper)."""
    counted: Callable[[Any, Asset], str | None] = uploads._check_uploaded

    def check(store: Any, asset: Asset) -> str | None:
        if asset.original_filename == name:
            checks["calls"] += 1
            raise error
        return counted(store, asset)

    monkeypatch.setattr(uploads, "_check_uploaded", check)


def test_storage_down_in_one_check_is_raised_cancels_the_rest_and_records_nothing(studio, checks, monkeypatch):
    monkeypatch.setattr(uploads, "CHECK_CONCURRENCY", 2)
    files = {f"p{n:02d}.jpg": (len(GOOD), GOOD, "image/jpeg") for n in range(60)}
    batch = local_batch(studio, files)
    failing_on("p01.jpg", StorageError("S3 get_object failed: connection refused"), monkeypatch, checks)

    with pytest.raises(StorageError):
        complete(studio, batch)
    assert checks["calls"] < 30  # the checks not yet started were cancelled, not run (all 60, before)
    assert statuses(studio, batch) == {AssetStatus.AWAITING_UPLOAD}  # nothing recorded: complete again later


def test_a_bug_in_a_check_surfaces_as_itself(studio, checks, monkeypatch):
    batch = local_batch(studio)
    failing_on("good-2.jpg", ZeroDivisionError("a bug"), monkeypatch, checks)
    with pytest.raises(ZeroDivisionError, match="a bug"):
        complete(studio, batch)
    assert statuses(studio, batch) == {AssetStatus.AWAITING_UPLOAD}


def test_storage_down_in_a_check_answers_503_through_the_api(studio, owner, client_for, checks, monkeypatch):
    batch = local_batch(studio)
    failing_on("good-1.jpg", StorageError("S3 get_object failed: timeout"), monkeypatch, checks)
    response = client_for(owner).post(
        gallery_url(studio, batch.gallery, f"uploads/{batch.pk}/complete/"), {}, format="json"
    )
    assert response.status_code == 503, response.content
    assert response.json()["error"]["code"] == "STORAGE_UNAVAILABLE"
    assert "timeout" not in response.content.decode()  # the details stay in the log


# --- a racing complete ---------------------------------------------------------------------------------------


def test_a_complete_that_races_another_records_nothing_twice(studio, monkeypatch):
    """The other call records while ours is still checking: ours finds the
    rows no longer awaiting upload (re-read under select_for_update) and
    leaves them alone."""
    batch = local_batch(studio)
    check_all = uploads._check_all
    inner: list[uploads.CompleteResult] = []
    raced: list[bool] = []
    queued: list[Any] = []
    monkeypatch.setattr(uploads, "queue_derivatives", lambda ids: queued.extend(ids))

    def racing(store: Any, assets: list[Asset]) -> dict[Any, str | None]:
        problems = check_all(store, assets)
        if not raced:  # the other call, start to finish, while ours is between its checks and its transaction
            raced.append(True)
            inner.append(complete(studio, batch))
        return problems

    monkeypatch.setattr(uploads, "_check_all", racing)
    ours = complete(studio, batch)
    (theirs,) = inner
    assert [a.original_filename for a in theirs.processing] == ["good-1.jpg", "good-2.jpg"]
    assert len(theirs.failed) == 4
    assert not ours.processing and not ours.failed
    assert [a.original_filename for a in ours.missing] == ["never.jpg"]  # still awaited: reported by both
    assert sorted(queued) == sorted(a.pk for a in theirs.processing)  # derivatives queued once
