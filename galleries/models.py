"""Galleries, their assets, and what clients do with them: ratings, folders,
trash, and the finalised selection."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.hashers import check_password
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from studio.models import TimestampedModel
from studio.tenancy import StudioOwnedModel, StudioScopedManager


class GalleryStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    PUBLISHED = "published", "Published"
    ARCHIVED = "archived", "Archived"


class Visibility(models.TextChoices):
    PRIVATE = "private", "Private: code (and PIN) required"
    UNLISTED = "unlisted", "Unlisted: anyone with the link"
    PUBLIC = "public", "Public: listed, no code"


class DownloadPermission(models.TextChoices):
    NONE = "none", "No downloads"
    WEB = "web", "Web size (2048 px)"
    ORIGINALS = "originals", "Originals"


class Gallery(StudioOwnedModel, TimestampedModel):
    studio = models.ForeignKey("studio.Studio", on_delete=models.CASCADE, related_name="galleries")
    title = models.CharField(max_length=200)
    client_name = models.CharField(max_length=200, blank=True)
    client_email = models.EmailField(blank=True)
    event_date = models.DateField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=GalleryStatus.choices, default=GalleryStatus.DRAFT)
    # Human-friendly, e.g. DEMO2025; stored upper-case, unique per studio.
    access_code = models.CharField(max_length=32)
    pin_hash = models.CharField(max_length=128, blank=True)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="After this the gallery is hidden, never deleted."
    )
    visibility = models.CharField(max_length=10, choices=Visibility.choices, default=Visibility.PRIVATE)
    cover = models.ForeignKey("Asset", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    download_permission = models.CharField(
        max_length=10, choices=DownloadPermission.choices, default=DownloadPermission.WEB
    )
    selection_limit = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)], help_text='"Choose up to N" (empty: no limit).'
    )
    ask_visitor_identity = models.BooleanField(default=False, help_text="Ask visitors for name and email first.")
    # Off: each visitor sees the studio's folders (read-only) and their own.
    # On: visitors see and change each other's folders (a couple choosing together).
    shared_selection = models.BooleanField(
        default=False, help_text="Visitors see and change each other's folders, e.g. a couple choosing together."
    )
    assigned_members = models.ManyToManyField("studio.Membership", blank=True, related_name="assigned_galleries")
    assigned_team = models.ForeignKey(
        "teams.Team", on_delete=models.SET_NULL, null=True, blank=True, related_name="galleries"
    )
    # Bumped by unpublishing and by rotating the code: every visitor session
    # and media link issued before carries the old value and stops working.
    access_version = models.PositiveIntegerField(default=1)
    # People in photos, per gallery, once the studio turned it on. Changed
    # only through galleries.services.faces (turning it off deletes faces).
    faces_enabled = models.BooleanField(default=False, help_text="Group the faces in this gallery's photos.")
    find_me_enabled = models.BooleanField(
        default=False, help_text='Clients may search the gallery with a selfie ("find me").'
    )
    # Bumped in the transaction that changes any face or person of the
    # gallery: the search matrix cached per gallery is keyed by it.
    faces_version = models.PositiveIntegerField(default=0)

    # What staff edit with gallery:write (API, admin, audit snapshots), listed
    # once. The code, the PIN and opening the gallery (visibility) need
    # gallery:admin: services.galleries checks that against the actor.
    EDITABLE_FIELDS = (
        "title",
        "client_name",
        "client_email",
        "event_date",
        "expires_at",
        "visibility",
        "download_permission",
        "selection_limit",
        "ask_visitor_identity",
        "shared_selection",
        "assigned_team",
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "galleries"
        constraints = [models.UniqueConstraint(fields=["studio", "access_code"], name="gallery_unique_code")]

    def __str__(self) -> str:
        return self.title

    def clean(self) -> None:
        if self.assigned_team is not None and self.assigned_team.studio_id != self.studio_id:
            raise ValidationError({"assigned_team": ValidationError("Not a team of this studio.", code="foreign_team")})

    @property
    def has_pin(self) -> bool:
        return bool(self.pin_hash)

    def check_pin(self, pin: str) -> bool:
        return bool(self.pin_hash) and check_password(pin, self.pin_hash)

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()


class UploadBatch(StudioOwnedModel, TimestampedModel):
    studio = models.ForeignKey("studio.Studio", on_delete=models.CASCADE, related_name="+")
    gallery = models.ForeignKey(Gallery, on_delete=models.CASCADE, related_name="upload_batches")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Upload to {self.gallery_id} at {self.created_at:%Y-%m-%d %H:%M}"


class AssetStatus(models.TextChoices):
    AWAITING_UPLOAD = "awaiting_upload", "Awaiting upload"
    PROCESSING = "processing", "Processing"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class LiveAssetManager(StudioScopedManager):
    """``Asset.objects``: the photos not in the staff bin. Everything that
    shows, counts, exports or zips photos reads through it, so a photo staff
    deleted disappears everywhere at once without each query remembering to
    exclude it. Code about bytes and rows whatever their state (storage
    totals, the bucket's reconciliation, processing, deleting a gallery,
    the bin itself) uses ``Asset.with_deleted``."""

    def get_queryset(self) -> models.QuerySet:
        return super().get_queryset().filter(deleted_at=None)


class Asset(StudioOwnedModel, TimestampedModel):
    studio = models.ForeignKey("studio.Studio", on_delete=models.CASCADE, related_name="+")
    gallery = models.ForeignKey(Gallery, on_delete=models.CASCADE, related_name="assets")
    batch = models.ForeignKey(UploadBatch, on_delete=models.SET_NULL, null=True, blank=True, related_name="assets")
    original_filename = models.CharField(max_length=255)
    # Where the original lives once checked. Nothing is ever uploaded there:
    # the browser posts to upload_key, a one-time key whose object is copied
    # here, so a second POST with a still-valid target cannot replace an
    # original after it was checked.
    storage_key = models.CharField(max_length=500, unique=True)
    upload_key = models.CharField(max_length=500, blank=True)
    # The entity tag complete read at upload_key, until the derivatives job
    # has copied that object to storage_key (empty after, and for photos that
    # never came through an upload target). The copy names it, so the bytes
    # the job copies are the bytes complete checked; complete itself makes one
    # storage call a file instead of two (the copy of a camera file is the
    # slow one on S3, and 500 of them do not belong in a request).
    upload_etag = models.CharField(max_length=200, blank=True)
    content_type = models.CharField(max_length=50)
    size = models.PositiveBigIntegerField(help_text="Bytes of the original.")
    # Of the stored original, recorded when it is first processed and checked
    # again before every later processing.
    sha256 = models.CharField(max_length=64, blank=True)
    # What the client announced when asking for the upload target, if anything.
    expected_sha256 = models.CharField(max_length=64, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    captured_at = models.DateTimeField(null=True, blank=True)
    orientation = models.PositiveSmallIntegerField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=AssetStatus.choices, default=AssetStatus.AWAITING_UPLOAD)
    failure_reason = models.CharField(max_length=300, blank=True)
    # When the derivative job reached the broker. Empty while processing: it
    # did not (the broker was down), and the sweeper queues it again.
    derivatives_queued_at = models.DateTimeField(null=True, blank=True)
    # Set when a derivative job starts; with the two fields around it, the
    # sweeper tells a job that never started from one whose worker died.
    processing_started_at = models.DateTimeField(null=True, blank=True)
    # How often the sweeper queued the job again: it gives up (failed, with
    # the reason) after DERIVATIVE_MAX_SWEEPS.
    sweeps = models.PositiveSmallIntegerField(default=0)
    # {"large": {"key", "width", "height", "bytes"}, "medium": {...}, "thumb": {...}}
    derivatives = models.JSONField(default=dict, blank=True)
    derivative_bytes = models.PositiveBigIntegerField(default=0)
    sort_order = models.PositiveIntegerField(default=0)
    # The client's trash: hidden from the client's choice, restorable by the
    # client, never purged (it is part of how they choose).
    trashed_at = models.DateTimeField(null=True, blank=True)
    # The staff bin: set when staff delete a photo. The photo is gone from
    # every list, count, export and the portal, but its row and bytes stay
    # for STAFF_BIN_RETENTION_DAYS so a wrong click can be undone; then
    # cleanup_galleries purges it with its bytes.
    deleted_at = models.DateTimeField(null=True, blank=True)
    deleted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    objects = LiveAssetManager()
    with_deleted = StudioScopedManager()

    class Meta:
        default_manager_name = "objects"
        ordering = ["sort_order", "created_at"]
        constraints = [
            # A second copy of the same picture in one gallery is refused;
            # failed uploads and photos in the bin do not count (restoring
            # one checks for a copy uploaded since).
            models.UniqueConstraint(
                fields=["gallery", "sha256"],
                condition=~Q(sha256="") & ~Q(status="failed") & Q(deleted_at=None),
                name="asset_unique_content_per_gallery",
            )
        ]
        indexes = [
            models.Index(fields=["gallery", "sort_order", "created_at"], name="asset_gallery_order"),
            # The client's list: ready photos of a gallery in order, read
            # straight off this index up to the page's LIMIT (no sort of the
            # whole gallery); also serves counts by status.
            models.Index(fields=["gallery", "status", "sort_order", "created_at"], name="asset_gallery_status_order"),
            # The sweeper's question across studios: which photos are still processing?
            models.Index(fields=["updated_at"], condition=Q(status="processing"), name="asset_processing"),
            # The purge's question: which photos have been in the bin long enough?
            models.Index(fields=["deleted_at"], condition=Q(deleted_at__isnull=False), name="asset_in_bin"),
        ]

    def __str__(self) -> str:
        return self.original_filename


class Visitor(StudioOwnedModel, TimestampedModel):
    """A gallery client: whoever opened the gallery with its code. Not a User."""

    studio = models.ForeignKey("studio.Studio", on_delete=models.CASCADE, related_name="+")
    gallery = models.ForeignKey(Gallery, on_delete=models.CASCADE, related_name="visitors")
    name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(blank=True)
    last_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        who = self.name or self.email or "Anonymous visitor"
        return f"{who} ({self.email})" if self.name and self.email else who


class Rating(StudioOwnedModel, TimestampedModel):
    studio = models.ForeignKey("studio.Studio", on_delete=models.CASCADE, related_name="+")
    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="ratings")
    visitor = models.ForeignKey(Visitor, on_delete=models.CASCADE, related_name="ratings")
    stars = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(fields=["asset", "visitor"], name="rating_one_per_visitor"),
            models.CheckConstraint(condition=Q(stars__gte=1, stars__lte=5), name="rating_stars_1_to_5"),
        ]

    def __str__(self) -> str:
        return f"{self.stars}★"


class Folder(StudioOwnedModel, TimestampedModel):
    studio = models.ForeignKey("studio.Studio", on_delete=models.CASCADE, related_name="+")
    gallery = models.ForeignKey(Gallery, on_delete=models.CASCADE, related_name="folders")
    name = models.CharField(max_length=100)
    sort_order = models.PositiveIntegerField(default=0)
    created_by_visitor = models.ForeignKey(Visitor, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    assets = models.ManyToManyField(Asset, through="Placement", related_name="folders")

    class Meta:
        ordering = ["sort_order", "created_at"]
        constraints = [
            # Names are unique among the studio's folders, and among each
            # visitor's own: another visitor's private folder names are
            # none of your business, not even as a "name taken".
            models.UniqueConstraint(
                fields=["gallery", "name"], condition=Q(created_by_visitor__isnull=True), name="folder_unique_name"
            ),
            models.UniqueConstraint(
                fields=["gallery", "created_by_visitor", "name"],
                condition=Q(created_by_visitor__isnull=False),
                name="folder_unique_name_per_visitor",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Placement(StudioOwnedModel, TimestampedModel):
    """An asset in a folder, at a position. An asset may sit in several folders."""

    studio = models.ForeignKey("studio.Studio", on_delete=models.CASCADE, related_name="+")
    folder = models.ForeignKey(Folder, on_delete=models.CASCADE, related_name="placements")
    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="placements")
    sort_order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["sort_order", "created_at"]
        constraints = [models.UniqueConstraint(fields=["folder", "asset"], name="placement_unique")]

    def __str__(self) -> str:
        return f"{self.asset_id} in {self.folder_id}"


class SelectionStatus(models.TextChoices):
    FINALIZED = "finalized", "Finalised"
    REOPENED = "reopened", "Reopened by staff"


class Selection(StudioOwnedModel, TimestampedModel):
    """A frozen picture of the client's choice. Reopening keeps it as history;
    finalising again makes a new one."""

    studio = models.ForeignKey("studio.Studio", on_delete=models.CASCADE, related_name="+")
    gallery = models.ForeignKey(Gallery, on_delete=models.CASCADE, related_name="selections")
    status = models.CharField(max_length=10, choices=SelectionStatus.choices, default=SelectionStatus.FINALIZED)
    finalized_by = models.ForeignKey(Visitor, on_delete=models.SET_NULL, null=True, related_name="+")
    finalized_by_label = models.CharField(max_length=255)
    finalized_at = models.DateTimeField(default=timezone.now)
    reopened_at = models.DateTimeField(null=True, blank=True)
    reopened_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    asset_count = models.PositiveIntegerField()
    # [{"asset": id, "filename", "stars": {visitor: n}, "average", "folders": [names]}...]
    snapshot = models.JSONField()

    class Meta:
        ordering = ["-finalized_at"]
        constraints = [
            # At most one live (finalised) selection per gallery: finalising twice is harmless.
            models.UniqueConstraint(
                fields=["gallery"], condition=Q(status="finalized"), name="selection_one_live_per_gallery"
            )
        ]

    def __str__(self) -> str:
        return f"Selection of {self.asset_count} ({self.get_status_display()})"


class ExportKind(models.TextChoices):
    CSV = "csv", "Selection CSV"
    LIGHTROOM = "lightroom", "Lightroom filename list"
    CONTACT_SHEET = "contact_sheet", "PDF contact sheet"
    ZIP = "zip", "ZIP of photos"


class ExportScope(models.TextChoices):
    GALLERY = "gallery", "Whole gallery"
    FOLDER = "folder", "A folder"
    SELECTION = "selection", "The finalised selection"


class ExportSize(models.TextChoices):
    WEB = "web", "Web size (2048 px)"
    ORIGINAL = "original", "Originals"


class ExportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    EXPIRED = "expired", "Expired"


EXPORT_ACTIVE = (ExportStatus.QUEUED, ExportStatus.RUNNING)


class Export(StudioOwnedModel, TimestampedModel):
    """A file built from a gallery (CSV, Lightroom list, PDF, ZIP) by the
    exports.run task, kept EXPORT_TTL_HOURS, then deleted by exports.expire.
    Written only by galleries.services.exports."""

    studio = models.ForeignKey("studio.Studio", on_delete=models.CASCADE, related_name="+")
    gallery = models.ForeignKey(Gallery, on_delete=models.CASCADE, related_name="exports")
    kind = models.CharField(max_length=20, choices=ExportKind.choices)
    scope = models.CharField(max_length=10, choices=ExportScope.choices, default=ExportScope.GALLERY)
    # SET_NULL: deleting a folder must not delete the history of its exports;
    # a queued export of a deleted folder fails with the reason.
    folder = models.ForeignKey(Folder, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    # ZIPs only; empty for the other kinds.
    size = models.CharField(max_length=10, choices=ExportSize.choices, blank=True)
    status = models.CharField(max_length=10, choices=ExportStatus.choices, default=ExportStatus.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    failure_reason = models.CharField(max_length=300, blank=True)
    # Asked for while running: the runner stops at the next member and deletes its partial output.
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    file_key = models.CharField(max_length=500, blank=True)
    file_size = models.PositiveBigIntegerField(null=True, blank=True)
    filename = models.CharField(max_length=255, blank=True)
    requested_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    requested_by_visitor = models.ForeignKey(
        Visitor, on_delete=models.SET_NULL, null=True, blank=True, related_name="exports"
    )
    # kind, scope, folder, size and requester in one column: the partial
    # unique constraint below cannot use the nullable columns themselves
    # (NULLs are distinct in unique indexes on SQLite and PostgreSQL).
    dedupe_key = models.CharField(max_length=200)
    # When the run task reached the broker. Empty while queued: it did not
    # (the broker was down), and exports.expire queues it again.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # One identical export queued or running at a time: two requests
            # racing each other get the same row (the loser reads the winner's).
            models.UniqueConstraint(
                fields=["gallery", "dedupe_key"],
                condition=Q(status__in=["queued", "running"]),
                name="export_one_active_per_request",
            ),
            models.CheckConstraint(condition=Q(progress__lte=100), name="export_progress_0_to_100"),
        ]
        indexes = [
            models.Index(fields=["studio", "-created_at"], name="export_studio_newest"),
            # The beat job's question across studios: which files are past their life?
            models.Index(fields=["expires_at"], condition=Q(status__in=["done", "failed"]), name="export_expiring"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.gallery_id} ({self.status})"


class PendingDeletion(StudioOwnedModel, TimestampedModel):
    """Stored objects to delete, written in the transaction that let go of
    them (a photo or gallery deleted, a derivative replaced, a one-time key
    used). The row, not the broker message, is the record of the work: a
    broker that is down when the change commits, or a message lost on the
    way, leaves the row, and galleries.sweep_pending_deletions queues it
    again. The task deletes the objects and then the row."""

    studio = models.ForeignKey("studio.Studio", on_delete=models.CASCADE, related_name="+")
    keys = models.JSONField(default=list)
    # When the task last reached the broker; empty while it never did.
    queued_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["queued_at"], name="pending_deletion_queued")]

    def __str__(self) -> str:
        return f"{len(self.keys)} objects of studio {self.studio_id}"


# --- People in photos (issue 13) -------------------------------------------------------------


class FaceScanStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class FaceScan(StudioOwnedModel, TimestampedModel):
    """Face detection of one photo: whether it ran and why not. A row of its
    own, not columns on Asset, so the photo's life (and its list queries)
    know nothing about faces. ``pending`` always ends: the task ends it done
    or failed with a reason, and galleries.sweep_face_scans queues lost jobs
    again, then fails them after FACES_MAX_SWEEPS."""

    studio = models.ForeignKey("studio.Studio", on_delete=models.CASCADE, related_name="+")
    asset = models.OneToOneField(Asset, on_delete=models.CASCADE, related_name="face_scan")
    status = models.CharField(max_length=10, choices=FaceScanStatus.choices, default=FaceScanStatus.PENDING)
    reason = models.CharField(max_length=300, blank=True)
    # When the job reached the broker; empty while it never did.
    queued_at = models.DateTimeField(null=True, blank=True)
    sweeps = models.PositiveSmallIntegerField(default=0)
    face_count = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["updated_at"], condition=Q(status="pending"), name="face_scan_pending")]

    def __str__(self) -> str:
        return f"Faces of {self.asset_id}: {self.status}"


class Person(StudioOwnedModel, TimestampedModel):
    """A cluster of faces in one gallery, named (or not) by staff."""

    studio = models.ForeignKey("studio.Studio", on_delete=models.CASCADE, related_name="+")
    gallery = models.ForeignKey(Gallery, on_delete=models.CASCADE, related_name="persons")
    name = models.CharField(max_length=200, blank=True)
    # Hidden: kept (new faces still join it, so they do not reappear as a
    # new person), but not offered to clients and listed last.
    hidden = models.BooleanField(default=False)
    cover = models.ForeignKey("Face", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    # Mean descriptor (512 float32 bytes) and how many faces it averages, so a
    # merge updates it without reading the faces (galleries.faces.merge_centroids).
    centroid = models.BinaryField(max_length=512)
    face_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["hidden", "-face_count", "created_at"]
        verbose_name_plural = "people"

    def __str__(self) -> str:
        return self.name or f"Person {str(self.pk)[-6:]}"


class Face(StudioOwnedModel, TimestampedModel):
    """One face found in one photo. The descriptor is biometric data: it
    exists only while the studio and the gallery have faces on."""

    studio = models.ForeignKey("studio.Studio", on_delete=models.CASCADE, related_name="+")
    # The gallery, denormalised from the asset: search loads a gallery's
    # descriptors in one indexed read, without joining the photos.
    gallery = models.ForeignKey(Gallery, on_delete=models.CASCADE, related_name="faces")
    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="faces")
    person = models.ForeignKey(Person, on_delete=models.SET_NULL, null=True, blank=True, related_name="faces")
    # Position in the photo, largest first; fixes the crop's storage key, so
    # a rerun overwrites rather than adds.
    index = models.PositiveSmallIntegerField()
    left = models.PositiveIntegerField()
    top = models.PositiveIntegerField()
    right = models.PositiveIntegerField()
    bottom = models.PositiveIntegerField()
    score = models.FloatField(help_text="Detector confidence (HOG margin).")
    quality = models.FloatField(help_text="0-1: size x sharpness x pose; ranks cover faces.")
    descriptor = models.BinaryField(max_length=512)
    thumb_key = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["asset", "index"]
        constraints = [models.UniqueConstraint(fields=["asset", "index"], name="face_unique_index_per_asset")]
        indexes = [models.Index(fields=["gallery", "person"], name="face_gallery_person")]

    def __str__(self) -> str:
        return f"Face {self.index} of {self.asset_id}"
