"""Management commands: cleanup_galleries (dry run, studio scoping, the lock,
empty batches, archiving, the bucket's orphans on local storage and on S3),
and the daily beat entries."""

from __future__ import annotations

import io
import json
import os
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from audit.models import AuditEvent
from galleries.management.commands.cleanup_galleries import cleanup_lock
from galleries.models import Asset, AssetStatus, Export, Gallery, GalleryStatus, UploadBatch
from galleries.storage import media_store
from studio import context
from studio.tenancy import studio_scope, unscoped
from tests import factories
from tests import test_galleries_s3 as _s3_setup
from tests.test_galleries_cleanup import _asset

# The moto server and the production-configured S3 storage, one definition.
moto_url = _s3_setup.moto_url
s3 = _s3_setup.s3


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def _old_empty_batch(studio, gallery):
    with studio_scope(studio):
        batch = UploadBatch.objects.create(studio=studio, gallery=gallery)
        UploadBatch.objects.filter(pk=batch.pk).update(created_at=timezone.now() - timedelta(days=3))
    return batch


def _long_expired(studio, days_ago: int):
    gallery = factories.gallery(studio)
    with studio_scope(studio):
        Gallery.objects.filter(pk=gallery.pk).update(
            status=GalleryStatus.PUBLISHED, expires_at=timezone.now() - timedelta(days=days_ago)
        )
    return gallery


def _binned(studio, gallery, *, days: int):
    """A ready photo staff deleted ``days`` ago."""
    asset = factories.ready_asset(studio, gallery)
    with studio_scope(studio):
        Asset.with_deleted.filter(pk=asset.pk).update(deleted_at=timezone.now() - timedelta(days=days))
    return asset


def _keys(store, studio) -> set[str]:
    return set(store.list_keys(f"studios/{studio.pk}/"))


def _snapshot(studio) -> dict:
    with unscoped():
        return {
            "assets": Asset.with_deleted.count(),
            "batches": UploadBatch.objects.count(),
            "galleries": list(Gallery.objects.order_by("pk").values_list("pk", "status")),
            "events": AuditEvent.objects.count(),
        }


def test_dry_run_reports_everything_and_changes_nothing(studio, django_capture_on_commit_callbacks):
    studio.archive_expired_after_days = 30
    studio.save(update_fields=["archive_expired_after_days"])
    gallery = factories.gallery(studio)
    ready = factories.ready_asset(studio, gallery)
    _asset(studio, gallery, AssetStatus.AWAITING_UPLOAD, 72, with_bytes=True)
    _old_empty_batch(studio, gallery)
    _long_expired(studio, 40)
    _binned(studio, gallery, days=31)
    _binned(studio, gallery, days=29)  # not yet
    store = media_store()
    store.put(f"studios/{studio.pk}/galleries/{gallery.pk}/originals/nobody.jpg", b"x", "image/jpeg")
    before, keys_before = _snapshot(studio), _keys(store, studio)

    with django_capture_on_commit_callbacks(execute=True):
        out = run("cleanup_galleries", "--dry-run", "--delete-orphans")

    assert _snapshot(studio) == before
    assert _keys(store, studio) == keys_before
    assert ready.storage_key in keys_before
    assert f"orphan {studio.slug}: studios/{studio.pk}/galleries/{gallery.pk}/originals/nobody.jpg" in out
    row = next(line for line in out.splitlines() if line.startswith(studio.slug))
    assert row.split()[1:] == ["1", "1", "1", "1", "1"]  # uploads, purged, batches, archived, orphans
    assert "Dry run: nothing was changed." in out


def test_cleanup_removes_batches_archives_and_lists_orphans_audited(
    studio, other_studio, django_capture_on_commit_callbacks
):
    studio.archive_expired_after_days = 30
    studio.save(update_fields=["archive_expired_after_days"])
    gallery = factories.gallery(studio)
    asset = factories.ready_asset(studio, gallery)
    empty = _old_empty_batch(studio, gallery)
    with studio_scope(studio):
        fresh_empty = UploadBatch.objects.create(studio=studio, gallery=gallery)
    old = _long_expired(studio, 40)
    recent = _long_expired(studio, 5)
    # other_studio has no archive setting: its long-expired gallery stays.
    untouched = _long_expired(other_studio, 400)
    store = media_store()
    orphan = f"studios/{studio.pk}/galleries/{gallery.pk}/derivatives/not-a-photo/thumb.webp"
    late_post = f"studios/{studio.pk}/galleries/{gallery.pk}/uploads/{asset.pk}-late.jpg"
    store.put(orphan, b"x", "image/webp")
    store.put(late_post, b"x", "image/jpeg")

    with django_capture_on_commit_callbacks(execute=True):
        out = run("cleanup_galleries")

    with studio_scope(studio):
        assert not UploadBatch.objects.filter(pk=empty.pk).exists()
        assert UploadBatch.objects.filter(pk=fresh_empty.pk).exists()
        assert Gallery.objects.get(pk=old.pk).status == GalleryStatus.ARCHIVED
        assert Gallery.objects.get(pk=recent.pk).status == GalleryStatus.PUBLISHED
        events = {e.action: e for e in AuditEvent.objects.filter(actor_label="command:cleanup_galleries")}
    with studio_scope(other_studio):
        assert Gallery.objects.get(pk=untouched.pk).status == GalleryStatus.PUBLISHED
    assert set(events) >= {"upload_batches.cleaned_up", "gallery.unpublished"}
    assert "storage.orphans_deleted" not in events
    # Listed, not deleted, without --delete-orphans; the photo's own files are no orphans.
    assert {orphan, late_post} <= _keys(store, studio)
    assert f"orphan {studio.slug}: {orphan}" in out
    assert asset.storage_key not in out
    assert "--delete-orphans deletes them" in out

    with django_capture_on_commit_callbacks(execute=True):
        run("cleanup_galleries", "--delete-orphans")

    keys = _keys(store, studio)
    assert orphan not in keys and late_post not in keys
    assert asset.storage_key in keys
    assert {d["key"] for d in asset.derivatives.values()} <= keys
    with studio_scope(studio):
        event = AuditEvent.objects.get(action="storage.orphans_deleted")
    assert event.actor_label == "command:cleanup_galleries"
    assert sorted(event.after["keys"]) == sorted([orphan, late_post])


def test_cleanup_purges_the_bin_after_its_retention_with_the_bytes(
    studio, settings, django_capture_on_commit_callbacks
):
    gallery = factories.gallery(studio)
    due = _binned(studio, gallery, days=31)
    young = _binned(studio, gallery, days=29)
    live = factories.ready_asset(studio, gallery)
    store = media_store()
    due_keys = {due.storage_key, *(d["key"] for d in due.derivatives.values())}
    assert due_keys <= _keys(store, studio)

    with django_capture_on_commit_callbacks(execute=True):
        out = run("cleanup_galleries", "--delete-orphans")

    keys = _keys(store, studio)
    assert not due_keys & keys
    # A photo still in the bin is no orphan: its bytes wait for restore or purge.
    for kept in (young, live):
        assert {kept.storage_key, *(d["key"] for d in kept.derivatives.values())} <= keys
    with studio_scope(studio):
        assert not Asset.with_deleted.filter(pk=due.pk).exists()
        assert Asset.with_deleted.filter(pk=young.pk).exists()
        event = AuditEvent.objects.get(action="asset.purged", target_id=str(due.pk))
    assert event.actor_label == "command:cleanup_galleries"
    row = next(line for line in out.splitlines() if line.startswith(studio.slug))
    assert row.split()[2] == "1"  # purged

    # The retention is a setting.
    settings.STAFF_BIN_RETENTION_DAYS = 7
    with django_capture_on_commit_callbacks(execute=True):
        run("cleanup_galleries")
    with studio_scope(studio):
        assert not Asset.with_deleted.filter(pk=young.pk).exists()
        assert Asset.objects.filter(pk=live.pk).exists()


def test_files_of_an_export_being_built_are_not_orphans(studio):
    gallery = factories.gallery(studio)
    export = factories.export(studio, gallery, run=False)
    with studio_scope(studio):
        assert Export.objects.get(pk=export.pk).file_key == ""
    building = f"studios/{studio.pk}/galleries/{gallery.pk}/exports/{export.pk}.zip"
    media_store().put(building, b"PK", "application/zip")

    out = run("cleanup_galleries", "--delete-orphans")

    assert building in _keys(media_store(), studio)
    assert "orphan " not in out


def test_a_dead_writes_leftover_beside_a_live_photo_is_an_orphan_once_old(studio, django_capture_on_commit_callbacks):
    """A worker killed between writing "<key>.tmp" and renaming it leaves a
    file under a live photo's folder: its owner exists, yet nothing will read
    it. Old ones are orphans; a fresh one may be a write in progress."""
    gallery = factories.gallery(studio)
    live = _asset(studio, gallery, AssetStatus.READY, 1, with_bytes=True)
    store = media_store()
    base = f"studios/{studio.pk}/galleries/{gallery.pk}/derivatives/{live.pk}"
    dead, fresh, streamed = f"{base}/large.webp.tmp", f"{base}/medium.webp.tmp", f"{base}/x.zip.0a1b2c3d.part"
    kept = f"{base}/thumb.webp"
    for key in (dead, fresh, streamed, kept):
        store.put(key, b"RIFF", "image/webp")
    old = timezone.now().timestamp() - 25 * 3600
    for key in (dead, streamed):
        path = Path(store.storage.path(key))
        os.utime(path, (old, old))

    with django_capture_on_commit_callbacks(execute=True):
        out = run("cleanup_galleries", "--delete-orphans")

    keys = _keys(store, studio)
    assert dead not in keys and streamed not in keys
    assert {fresh, kept, live.storage_key} <= keys
    assert "orphan" in out


def test_studio_option_scopes_the_work(studio, other_studio, django_capture_on_commit_callbacks):
    mine = _old_empty_batch(studio, factories.gallery(studio))
    theirs = _old_empty_batch(other_studio, factories.gallery(other_studio))
    stray = f"studios/{other_studio.pk}/galleries/x/originals/y.jpg"
    media_store().put(stray, b"x", "image/jpeg")

    with django_capture_on_commit_callbacks(execute=True):
        out = run("cleanup_galleries", "--studio", studio.slug, "--delete-orphans")

    with studio_scope(studio):
        assert not UploadBatch.objects.filter(pk=mine.pk).exists()
    with studio_scope(other_studio):
        assert UploadBatch.objects.filter(pk=theirs.pk).exists()
    assert stray in _keys(media_store(), other_studio)
    assert other_studio.slug not in out
    with pytest.raises(CommandError, match="No active studio"):
        run("cleanup_galleries", "--studio", "no-such-studio")


def test_a_second_run_refuses_while_one_holds_the_lock(studio):
    """The lock held by another thread, so on PostgreSQL by another database
    session (an advisory lock is re-entrant within one session)."""
    _old_empty_batch(studio, factories.gallery(studio))
    holding, release, outcome = threading.Event(), threading.Event(), []

    def other_run() -> None:
        try:
            with cleanup_lock() as held:
                outcome.append(held)
                holding.set()
                release.wait(10)
        finally:
            holding.set()
            connection.close()

    thread = threading.Thread(target=other_run)
    thread.start()
    try:
        assert holding.wait(10) and outcome == [True]
        with pytest.raises(CommandError, match="Another cleanup_galleries is running"):
            run("cleanup_galleries")
        with unscoped():
            assert UploadBatch.objects.count() == 1  # the refused run did nothing
    finally:
        release.set()
        thread.join(10)
    run("cleanup_galleries")  # released: the next run works
    with unscoped():
        assert UploadBatch.objects.count() == 0


def test_stuck_photos_are_swept(studio, settings):
    settings.DERIVATIVE_MAX_SWEEPS = 0  # the next sweep gives up: failed, with the reason
    gallery = factories.gallery(studio)
    with context.acting_as(context.Actor.system("test")), studio_scope(studio):
        stuck = _asset(studio, gallery, AssetStatus.PROCESSING, 1)
        Asset.objects.filter(pk=stuck.pk).update(updated_at=timezone.now() - timedelta(hours=1))

    dry = run("cleanup_galleries", "--dry-run")
    with studio_scope(studio):
        assert Asset.objects.get(pk=stuck.pk).status == AssetStatus.PROCESSING
    assert "1 photo(s) stuck in processing" in dry

    run("cleanup_galleries")
    with studio_scope(studio):
        assert Asset.objects.get(pk=stuck.pk).status == AssetStatus.FAILED


def test_progress_bar_only_on_a_terminal(studio):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Terminal()
    call_command("cleanup_galleries", stdout=tty)
    assert "\r[" in tty.getvalue()
    assert "\r[" not in run("cleanup_galleries")


def test_orphans_on_s3_listed_then_deleted(s3, studio, django_capture_on_commit_callbacks):
    gallery = factories.gallery(studio)
    asset = factories.ready_asset(studio, gallery)
    orphan = f"studios/{studio.pk}/galleries/{gallery.pk}/originals/lost.jpg"
    s3.store.put(orphan, b"x", "image/jpeg")
    assert orphan in set(s3.store.list_keys(f"studios/{studio.pk}/"))

    out = run("cleanup_galleries", "--studio", studio.slug)
    assert f"orphan {studio.slug}: {orphan}" in out
    assert s3.exists(orphan)

    with django_capture_on_commit_callbacks(execute=True):
        run("cleanup_galleries", "--studio", studio.slug, "--delete-orphans")
    assert not s3.exists(orphan)
    assert s3.exists(asset.storage_key)
    assert s3.keys(f"studios/{studio.pk}/") == {asset.storage_key, *(d["key"] for d in asset.derivatives.values())}


def test_local_list_keys_skips_type_sidecars(settings):
    store = media_store()
    store.put("studios/s/galleries/g/originals/a.jpg", b"x", "image/jpeg")
    Path(settings.MEDIA_ROOT, "studios/s/galleries/g/originals/a.jpg.type").write_text("image/jpeg")
    assert list(store.list_keys("studios/s/")) == ["studios/s/galleries/g/originals/a.jpg"]
    assert list(store.list_keys("studios/none/")) == []


def test_daily_beat_entries_run_cleanup_and_clearsessions(studio, monkeypatch):
    from galleries import maintenance

    schedule = {e["task"]: e["schedule"] for e in django_settings.CELERY_BEAT_SCHEDULE.values()}
    assert schedule["galleries.cleanup"] == schedule["studio.clearsessions"] == 24 * 60 * 60.0
    called = []
    monkeypatch.setattr(maintenance, "call_command", lambda *a: called.append(a))
    maintenance.cleanup_galleries.delay()
    maintenance.clear_sessions.delay()
    assert called == [("cleanup_galleries",), ("clearsessions",)]


# --- regenerate_derivatives ---------------------------------------------------------------------------------


def test_regenerate_derivatives_of_a_gallery_by_code_a_studio_or_all(studio, other_studio):
    gallery = factories.gallery(studio)
    asset = factories.ready_asset(studio, gallery)
    theirs = factories.ready_asset(other_studio)

    out = run("regenerate_derivatives", "--gallery", gallery.access_code.lower(), "--studio", studio.slug)
    assert "1 photo(s) queued" in out
    with studio_scope(studio):
        event = AuditEvent.objects.filter(action="asset.regenerate_requested").latest("created_at")
        assert Asset.objects.get(pk=asset.pk).status == AssetStatus.READY
    assert event.actor_label == "command:regenerate_derivatives"
    assert "1 photo(s)" in run("regenerate_derivatives", "--gallery", str(gallery.pk))
    assert "1 photo(s) queued" in run("regenerate_derivatives", "--studio", other_studio.slug)
    assert "2 photo(s) queued" in run("regenerate_derivatives", "--all")
    with pytest.raises(CommandError, match="needs --studio"):
        run("regenerate_derivatives", "--gallery", gallery.access_code)
    with pytest.raises(CommandError, match="No gallery"):
        run("regenerate_derivatives", "--gallery", str(theirs.gallery_id), "--studio", studio.slug)
    with pytest.raises(CommandError, match="Say which"):
        run("regenerate_derivatives")


def test_regenerate_failed_only_retries_failed_photos_with_an_original(studio, django_capture_on_commit_callbacks):
    gallery = factories.gallery(studio)
    ready = factories.ready_asset(studio, gallery)
    retried = factories.ready_asset(studio, gallery)
    never_arrived = _asset(studio, gallery, AssetStatus.FAILED, 1)
    with studio_scope(studio):
        Asset.objects.filter(pk=retried.pk).update(status=AssetStatus.FAILED, failure_reason="storage was down")

    with django_capture_on_commit_callbacks(execute=True):  # the jobs are queued on commit, run eagerly
        out = run("regenerate_derivatives", "--gallery", str(gallery.pk), "--failed-only")

    assert "1 failed photo(s) retried" in out
    with studio_scope(studio):
        statuses = dict(Asset.objects.values_list("pk", "status"))
        event = AuditEvent.objects.filter(action="asset.regenerate_requested").latest("created_at")
    assert statuses == {ready.pk: "ready", retried.pk: "ready", never_arrived.pk: "failed"}
    assert event.after["assets"] == [str(retried.pk)]


# --- import_photos --------------------------------------------------------------------------------------


def _jpeg(seed: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (40, 30), (seed * 50 % 256, 90, 10)).save(out, "JPEG")
    return out.getvalue()


def test_import_photos_stores_processes_and_skips_known_checksums(studio, tmp_path, django_capture_on_commit_callbacks):
    gallery = factories.gallery(studio)
    folder = tmp_path / "shoot"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(_jpeg(1))
    (folder / "b.JPG").write_bytes(_jpeg(2))
    (folder / "notes.txt").write_text("not a photo")
    (folder / ".DS_Store").write_bytes(b"\0")

    with django_capture_on_commit_callbacks(execute=True):
        out = run("import_photos", str(folder), "--gallery", gallery.access_code, "--studio", studio.slug)

    assert "2 imported, 1 skipped" in out
    assert "skipped notes.txt" in out
    with studio_scope(studio):
        assets = list(Asset.objects.filter(gallery=gallery).order_by("sort_order"))
        event = AuditEvent.objects.filter(action="upload.completed").latest("created_at")
    assert [a.original_filename for a in assets] == ["a.jpg", "b.JPG"]
    assert all(a.status == AssetStatus.READY and a.derivatives for a in assets)
    assert all(media_store().head(a.storage_key) is not None for a in assets)
    assert event.actor_label == "command:import_photos"

    (folder / "c.jpg").write_bytes(_jpeg(3))
    (folder / "copy-of-a.jpg").write_bytes(_jpeg(1))
    with django_capture_on_commit_callbacks(execute=True):
        again = run("import_photos", str(folder), "--gallery", str(gallery.pk))
    assert "1 imported, 4 skipped" in again
    assert "skipped copy-of-a.jpg: Already in this gallery" in again


def test_import_photos_stops_at_the_quota(studio, tmp_path):
    studio.storage_quota_bytes = 10
    studio.save(update_fields=["storage_quota_bytes"])
    gallery = factories.gallery(studio)
    (tmp_path / "a.jpg").write_bytes(_jpeg(1))
    with pytest.raises(CommandError, match="Stopped at a.jpg"):
        run("import_photos", str(tmp_path), "--gallery", str(gallery.pk))
    with pytest.raises(CommandError, match="is not a folder"):
        run("import_photos", str(tmp_path / "nope"), "--gallery", str(gallery.pk))


# --- seed_demo ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_seed_demo_prints_links_from_site_url(settings):
    settings.SITE_URL = "https://photos.example.com/"
    out = run("seed_demo")
    assert "127.0.0.1" not in out
    for path in ("/accounts/login/", "/admin/", "/api/docs/", "/g/DEMO2025/", "/s/blakely/"):
        assert f"https://photos.example.com{path}" in out


# --- setup_storage --------------------------------------------------------------------------------------


def test_setup_storage_on_the_embedded_default_has_nothing_to_do():
    assert "there is nothing to set up" in run("setup_storage")


def test_setup_storage_applies_cors_for_the_site_and_keeps_other_rules(s3, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://admin.example.com", "http://django-site.invalid"]
    s3.client.put_bucket_cors(
        Bucket=_s3_setup.BUCKET,
        CORSConfiguration={"CORSRules": [{"ID": "cdn", "AllowedOrigins": ["*"], "AllowedMethods": ["GET"]}]},
    )

    out = run("setup_storage")

    assert "Applied CORS rule" in out and "is ready" in out
    rules = {r.get("ID"): r for r in s3.client.get_bucket_cors(Bucket=_s3_setup.BUCKET)["CORSRules"]}
    assert set(rules) == {"cdn", "studio-browser-uploads"}
    ours = rules["studio-browser-uploads"]
    assert ours["AllowedOrigins"] == ["http://django-site.invalid", "https://admin.example.com"]
    assert "POST" in ours["AllowedMethods"]
    assert "is up to date" in run("setup_storage")


def test_setup_storage_creates_the_bucket_only_when_asked(s3, settings, moto_url):
    settings.STORAGES = {**settings.STORAGES, "default": _s3_setup.s3_storage(moto_url, bucket_name="made-by-setup")}
    with pytest.raises(CommandError, match="--create"):
        run("setup_storage")
    out = run("setup_storage", "--create")
    assert "Created bucket made-by-setup" in out
    assert s3.client.get_bucket_cors(Bucket="made-by-setup")["CORSRules"]


def test_setup_storage_refuses_a_public_bucket(s3, settings, moto_url):
    settings.STORAGES = {**settings.STORAGES, "default": _s3_setup.s3_storage(moto_url, bucket_name="too-open")}
    s3.client.create_bucket(Bucket="too-open")
    public = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "everyone",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::too-open/*",
            }
        ],
    }
    s3.client.put_bucket_policy(Bucket="too-open", Policy=json.dumps(public))
    err = io.StringIO()
    with pytest.raises(CommandError, match="readable by the public"):
        call_command("setup_storage", stdout=io.StringIO(), stderr=err)
    assert "everyone" in err.getvalue()


def test_a_photo_created_while_the_bucket_is_listed_keeps_its_upload(studio, monkeypatch):
    """Listing a big bucket takes a while: a photo completed meanwhile has
    its checked file at its one-time upload key only (its job has yet to
    copy it). The rows are read again after the listing, so that key is no
    orphan; a key no row names stays one."""
    from galleries.services.maintenance import orphan_keys

    gallery = factories.gallery(studio)
    factories.ready_asset(studio, gallery)
    store = media_store()
    stray = f"studios/{studio.pk}/galleries/{gallery.pk}/uploads/nobody-x.jpg"
    store.put(stray, b"stray", "image/jpeg")
    real_listing = type(store).list_keys
    pending: list[Asset] = []

    def listing_while_a_photo_completes(self, prefix):
        keys = list(real_listing(self, prefix))
        new = _asset(studio, gallery, AssetStatus.PROCESSING, 0)
        new.upload_key = f"studios/{studio.pk}/galleries/{gallery.pk}/uploads/{new.pk}-abc.jpg"
        store.put(new.upload_key, b"checked", "image/jpeg")
        with studio_scope(studio):
            Asset.objects.filter(pk=new.pk).update(upload_key=new.upload_key, upload_etag="etag")
        pending.append(new)
        return [*keys, new.upload_key]

    monkeypatch.setattr(type(store), "list_keys", listing_while_a_photo_completes)
    with studio_scope(studio):
        orphans = orphan_keys(store)
    assert pending and pending[0].upload_key not in orphans
    assert stray in orphans
