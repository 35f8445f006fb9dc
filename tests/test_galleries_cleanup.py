from datetime import timedelta
from pathlib import Path

from django.core.management import call_command
from django.utils import timezone

from audit.models import AuditEvent
from galleries.models import Asset, AssetStatus
from galleries.storage import media_store, original_key
from studio.tenancy import studio_scope
from tests import factories


def _asset(studio, gallery, status, age_hours, *, with_bytes=False):
    with studio_scope(studio):
        asset = Asset(
            studio=studio,
            gallery=gallery,
            original_filename="x.jpg",
            content_type="image/jpeg",
            size=3,
            status=status,
        )
        asset.storage_key = original_key(asset, "jpg")
        asset.save()
        Asset.objects.filter(pk=asset.pk).update(created_at=timezone.now() - timedelta(hours=age_hours))
    if with_bytes:
        media_store().put(asset.storage_key, b"abc", "image/jpeg")
    return asset


def test_cleanup_forgets_old_abandoned_and_failed_uploads_only(
    studio, other_studio, settings, django_capture_on_commit_callbacks
):
    gallery = factories.gallery(studio)
    old_waiting = _asset(studio, gallery, AssetStatus.AWAITING_UPLOAD, 72, with_bytes=True)
    old_failed = _asset(studio, gallery, AssetStatus.FAILED, 72)
    fresh_waiting = _asset(studio, gallery, AssetStatus.AWAITING_UPLOAD, 1)
    ready = factories.ready_asset(studio, gallery)
    with studio_scope(studio):
        Asset.objects.filter(pk=ready.pk).update(created_at=timezone.now() - timedelta(days=30))
    elsewhere = _asset(other_studio, factories.gallery(other_studio), AssetStatus.AWAITING_UPLOAD, 72)
    stray = Path(settings.MEDIA_ROOT) / old_waiting.storage_key
    assert stray.exists()

    call_command("cleanup_galleries", "--dry-run", "--studio", studio.slug)
    with studio_scope(studio):
        assert Asset.objects.filter(pk=old_waiting.pk).exists()

    with django_capture_on_commit_callbacks(execute=True):
        call_command("cleanup_galleries", "--studio", studio.slug)
    with studio_scope(studio):
        remaining = set(Asset.objects.values_list("pk", flat=True))
        event = AuditEvent.objects.get(action="uploads.cleaned_up")
    assert remaining == {fresh_waiting.pk, ready.pk}
    assert old_failed.pk not in remaining
    assert not stray.exists()
    assert event.actor_label == "command:cleanup_galleries"
    assert event.after["assets"] == 2
    with studio_scope(other_studio):
        assert Asset.objects.filter(pk=elsewhere.pk).exists()  # --studio limits the sweep


def test_cleanup_deletes_what_a_late_post_left_on_a_one_time_key(studio, settings, django_capture_on_commit_callbacks):
    """A target stays valid for 15 minutes after complete copied the file
    away: a late POST stores bytes there that nothing uses. The cleanup
    deletes them once, and keeps the photo and its original."""
    gallery = factories.gallery(studio)
    ready = factories.ready_asset(studio, gallery)
    late = f"studios/{studio.pk}/galleries/{gallery.pk}/uploads/{ready.pk}-late.jpg"
    with studio_scope(studio):
        Asset.objects.filter(pk=ready.pk).update(upload_key=late, created_at=timezone.now() - timedelta(days=3))
        media_store().put(late, b"late bytes", "image/jpeg")
    assert (Path(settings.MEDIA_ROOT) / late).exists()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("cleanup_galleries", "--studio", studio.slug)
    assert not (Path(settings.MEDIA_ROOT) / late).exists()
    with studio_scope(studio):
        kept = Asset.objects.get(pk=ready.pk)
    assert (kept.status, kept.upload_key) == ("ready", "")
    assert (Path(settings.MEDIA_ROOT) / kept.storage_key).exists()


def test_cleanup_keeps_a_checked_upload_its_job_has_not_copied_yet(
    studio, settings, django_capture_on_commit_callbacks
):
    """complete leaves the checked file at its one-time key for the
    derivatives job to copy: a queue stalled past the retention must not
    cost the photo its only copy."""
    gallery = factories.gallery(studio)
    waiting = _asset(studio, gallery, AssetStatus.PROCESSING, 72)
    pending = f"studios/{studio.pk}/galleries/{gallery.pk}/uploads/{waiting.pk}-pending.jpg"
    with studio_scope(studio):
        media_store().put(pending, b"checked bytes", "image/jpeg")
        etag = media_store().head(pending).etag
        Asset.objects.filter(pk=waiting.pk).update(upload_key=pending, upload_etag=etag)
    with django_capture_on_commit_callbacks(execute=True):
        call_command("cleanup_galleries", "--studio", studio.slug)
    assert (Path(settings.MEDIA_ROOT) / pending).read_bytes() == b"checked bytes"
    with studio_scope(studio):
        kept = Asset.objects.get(pk=waiting.pk)
    assert (kept.upload_key, kept.upload_etag) == (pending, etag)
