"""Gallery admin: thumbnails, asset status, the selection, exports, sending
the gallery to its client, and the actions publish, unpublish and
regenerate derivatives. Writes go through services, so they are audited
like API calls."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.middleware.csrf import get_token
from django.template.defaultfilters import filesizeformat
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, path, reverse
from django.utils import dateformat, timezone
from django.utils.html import format_html, format_html_join

from galleries import notifications, selectors, services, staff_pages
from galleries.models import (
    Asset,
    AssetStatus,
    Export,
    ExportKind,
    ExportScope,
    ExportStatus,
    Folder,
    Gallery,
    GalleryStatus,
    Selection,
)
from galleries.services import sharing
from galleries.services.exports import export_request
from studio.admin import ReadOnlyStudioModelAdmin, StudioModelAdmin, actor_of, has_scope, register_studio_panel
from studio.admin_site import register_notice
from studio.cache import studio_cache_key
from studio.errors import DomainError
from teams.models import Team

THUMBS_SHOWN = 24
SELECTION_PHOTOS_SHOWN = 60
STORAGE_NOTICE_SECONDS = 60  # the banner is on every admin page: one sum a minute


def storage_sentence(report: dict[str, Any]) -> str:
    return (
        f"{report['used_fraction']:.0%} of the storage quota is used: {filesizeformat(report['used_bytes'])} "
        f"of {filesizeformat(report['quota_bytes'])}"
    )


def storage_panel(studio: Any) -> str:
    report = selectors.storage_report(studio)
    return format_html(
        "{} ({} originals, {} derivatives, {} reserved for uploads in progress; {} photos).",
        storage_sentence(report),
        filesizeformat(report["originals_bytes"]),
        filesizeformat(report["derivatives_bytes"]),
        filesizeformat(report["reserved_bytes"]),
        report["photos"],
    )


def storage_notice(request: HttpRequest, studio: Any) -> list[str]:
    """A banner from 80% of the quota (95%: critical), before uploads are refused."""
    key = studio_cache_key("storage-report", studio=studio)
    report = cache.get(key)
    if report is None:
        report = selectors.storage_report(studio)
        cache.set(key, report, STORAGE_NOTICE_SECONDS)
    if report["level"] == "ok":
        return []
    tail = (
        "New uploads are refused once it is full: delete galleries or ask for a larger quota."
        if report["level"] == "critical"
        else "Consider deleting old galleries."
    )
    return [f"{storage_sentence(report)}. {tail}"]


register_studio_panel("Storage", storage_panel)
register_notice(storage_notice)


def thumb_url(asset: Asset) -> str | None:
    if "thumb" not in (asset.derivatives or {}):
        return None
    try:
        return reverse(
            "api:gallery-asset-media",
            kwargs={
                "studio_slug": asset.studio.slug,
                "gallery_pk": asset.gallery_id,
                "pk": asset.pk,
                "variant": "thumb",
            },
        )
    except NoReverseMatch:
        return None


def thumb_tag(asset: Asset, height: int = 80) -> str:
    url = thumb_url(asset)
    if url is None:
        return format_html('<span title="{}">{}</span>', asset.failure_reason, asset.get_status_display())
    # Sized by class (static/staff/staff.css): the CSP refuses style attributes.
    return format_html('<img src="{}" alt="{}" class="admin-thumb admin-thumb-{}" loading="lazy">', url, asset, height)


def client_message(gallery: Gallery, link: str) -> str:
    """A ready-to-paste message for the client until the platform sends it
    by email itself."""
    greeting = f"Hello {gallery.client_name}," if gallery.client_name else "Hello,"
    lines = [greeting, "", f"Your photos from {gallery.title} are ready to view and choose from:", link, ""]
    lines.append(f"If the page asks for a code, it is {gallery.access_code}.")
    if gallery.has_pin:
        lines.append("You will also need the PIN we give you separately.")
    if gallery.selection_limit:
        lines.append(f"Please choose up to {gallery.selection_limit} photos.")
    if gallery.expires_at:
        expires = dateformat.format(timezone.localtime(gallery.expires_at), "j F Y")
        lines.append(f"The gallery is open until {expires}.")
    lines += ["", gallery.studio.name]
    return "\n".join(lines)


def send_blocked(gallery: Gallery) -> str:
    """Why "Send to client" cannot work yet, said before the click (the
    service refuses the same cases; this only spares a failed attempt)."""
    if gallery.status != GalleryStatus.PUBLISHED:
        return "Publish the gallery first: the link of a draft does not open."
    if not gallery.client_email:
        return "Add the client's email (above) to send them the gallery."
    if gallery.is_expired:
        return "The gallery has expired: move its expiry date to send it again."
    return ""


def share_context(request: HttpRequest, gallery: Gallery) -> dict[str, Any]:
    """The share panel. Viewers never see the code, so not the link either
    (it carries the code), nor the email that carries both."""
    may_share = has_scope(request, "gallery:write")
    link = notifications.gallery_link(gallery) if may_share else ""
    return {
        "gallery": gallery,
        "may_share": may_share,
        "link": link,
        "message": client_message(gallery, link) if may_share else "",
        "send_blocked": send_blocked(gallery) if may_share else "",
        "published": gallery.status == GalleryStatus.PUBLISHED,
        "expired": gallery.is_expired,
    }


def staff_exports_url(gallery: Gallery) -> str:
    return reverse("api:gallery-export-list", kwargs={"studio_slug": gallery.studio.slug, "gallery_pk": gallery.pk})


def exports_context(request: HttpRequest, gallery: Gallery) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Exports panel (what can be exported) and the data its module
    gets: the staff API's URL, the CSRF token, the folders' names."""
    folders = list(
        Folder.objects.filter(gallery=gallery)
        .annotate(asset_count=Count("placements", filter=selectors.IN_FOLDER_NOT_BINNED))
        .order_by("created_by_visitor", "sort_order", "created_at")
    )
    finalized = selectors.live_selection(gallery)
    panel = {
        "gallery": gallery,
        "finalized": finalized,
        # Without a finalised selection, "the selection" is what the clients chose so far.
        "chosen": finalized.asset_count if finalized else selectors.chosen_assets(gallery).count(),
        "photos": Asset.objects.filter(gallery=gallery, status=AssetStatus.READY, trashed_at=None).count(),
        "folders": folders,
        "all_exports_url": reverse("admin:galleries_export_changelist") + f"?gallery__id__exact={gallery.pk}",
    }
    data = {
        "exports": staff_exports_url(gallery),
        # get_token also sets the CSRF cookie the API's session auth checks against.
        "csrfToken": get_token(request),
        "folders": {str(folder.pk): folder.name for folder in folders},
    }
    return panel, data


def selection_context(gallery: Gallery) -> dict[str, Any]:
    overview = selectors.selection_overview(gallery, limit=SELECTION_PHOTOS_SHOWN)
    overview["photos"] = [
        {
            "asset": asset,
            "thumb": thumb_tag(asset, 80),
            "ratings": [
                {"stars": r.stars, "shown": "★" * r.stars + "☆" * (5 - r.stars), "by": r.visitor.name or "A visitor"}
                for r in asset.ratings.all()
            ],
            "folders": [p.folder.name for p in asset.client_placements],
        }
        for asset in overview["photos"]
    ]
    overview["more"] = max(overview["chosen"] - SELECTION_PHOTOS_SHOWN, 0)
    overview["gallery"] = gallery
    return overview


class GalleryForm(forms.ModelForm):
    pin = forms.RegexField(
        regex=r"^\d{4,8}$", required=False, help_text="4-8 digits. Leave empty to keep the current PIN."
    )
    remove_pin = forms.BooleanField(required=False)
    # Declared here, filled per request in __init__: a model form would query
    # the studio-scoped Team manager at import time, outside any scope.
    assigned_team = forms.ModelChoiceField(queryset=Team._base_manager.none(), required=False)

    class Meta:
        model = Gallery
        fields = ["studio", "access_code", *Gallery.EDITABLE_FIELDS]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "assigned_team" in self.fields:
            self.fields["assigned_team"].queryset = Team.objects.select_related("studio")
        if "expires_at" in self.fields and hasattr(self.fields["expires_at"].widget, "widgets"):
            # The admin's split widget labels only its first box: name both.
            date, time = self.fields["expires_at"].widget.widgets
            date.attrs["aria-label"] = "Expires on (date)"
            time.attrs["aria-label"] = "Expires at (time)"
        if "access_code" in self.fields:
            self.fields["access_code"].required = False
            self.fields["access_code"].help_text = "Generated when empty. Changing it signs every client out."


@admin.register(Gallery)
class GalleryAdmin(StudioModelAdmin):
    form = GalleryForm
    read_scope = "gallery:read"
    write_scope = "gallery:write"
    list_display = [
        "cover_thumb",
        "title",
        "client_name",
        "status",
        "visibility",
        "asset_count",
        "event_date",
        "created_at",
    ]
    list_display_links = ["cover_thumb", "title"]
    list_filter = ["status", "visibility", "download_permission"]
    search_fields = ["title", "client_name", "client_email", "access_code"]
    readonly_fields = ["status", "asset_summary", "recent_assets", "selection_summary"]
    actions = ["publish", "unpublish", "regenerate_derivatives", "export_selection_csv", "export_contact_sheet"]
    # Adds the upload button, and the share and selection panels.
    change_form_template = "admin/galleries/gallery/change_form.html"

    class Media:
        css = {"all": ["staff/staff.css"]}  # thumbnail sizes and the panels

    def get_urls(self) -> list[Any]:
        upload = path(
            "<path:object_id>/upload/",
            self.admin_site.admin_view(self.upload_view),
            name="galleries_gallery_upload",
        )
        send = path(
            "<path:object_id>/send/",
            self.admin_site.admin_view(self.send_view),
            name="galleries_gallery_send",
        )
        return [upload, send, *super().get_urls()]

    def upload_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return staff_pages.upload(self, request, object_id)

    def may_upload(self, request: HttpRequest) -> bool:
        # The upload API acts as a member: a platform operator has no role to act with.
        return has_scope(request, "gallery:write") and getattr(request, "admin_membership", None) is not None

    def may_export(self, request: HttpRequest) -> bool:
        # The panel calls the staff exports API, which acts as a member, as the uploader does.
        return has_scope(request, "gallery:write") and getattr(request, "admin_membership", None) is not None

    def send_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """ "Send to client" (the share panel): emails the client the gallery's
        link and code through the sharing service, as the API's send action
        does. Another studio's gallery is not there (404); sending shows the
        code, so it needs gallery:write, like seeing it."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        gallery = self.get_object(request, object_id)
        if gallery is None:
            raise Http404("No such gallery.")
        if not has_scope(request, "gallery:write"):
            raise PermissionDenied
        note = request.POST.get("note", "").strip()[:2000]
        try:
            with self.write_scope_for(request, gallery), transaction.atomic():
                logs = sharing.gallery_send(gallery=gallery, actor=actor_of(request), note=note)
        except DomainError as exc:
            messages.error(request, f"Not sent: {exc.message}")
        else:
            recipients = ", ".join(sorted({log.recipient for log in logs})) or gallery.client_email
            messages.success(request, f"Sent “{gallery.title}” to {recipients}.")
        change = reverse(f"{self.admin_site.name}:galleries_gallery_change", args=[gallery.pk])
        return HttpResponseRedirect(f"{change}#share-panel")

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        gallery = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if gallery is not None:
            extra["share_panel"] = render_to_string(
                "galleries/staff/share_panel.html", share_context(request, gallery), request=request
            )
            extra["selection_panel"] = render_to_string(
                "galleries/staff/selection_panel.html", selection_context(gallery), request=request
            )
            if self.may_upload(request):
                extra["upload_url"] = reverse("admin:galleries_gallery_upload", args=[gallery.pk])
            if has_scope(request, "gallery:write"):
                extra["send_url"] = reverse("admin:galleries_gallery_send", args=[gallery.pk])
            if self.may_export(request):
                panel, extra["exports_data"] = exports_context(request, gallery)
                extra["exports_panel"] = render_to_string("galleries/staff/exports_panel.html", panel, request=request)
        return super().change_view(request, object_id, form_url, extra)

    def get_list_display(self, request: HttpRequest) -> Any:
        display = list(super().get_list_display(request))
        return [*display, "upload_link"] if self.may_upload(request) else display

    @admin.display(description="Upload")
    def upload_link(self, gallery: Gallery) -> str:
        url = reverse("admin:galleries_gallery_upload", args=[gallery.pk])
        return format_html('<a href="{}" aria-label="Upload photos to {}">Upload</a>', url, gallery.title)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .select_related("cover", "cover__studio", "studio")
            .annotate(n_assets=Count("assets", filter=Q(assets__status=AssetStatus.READY, assets__deleted_at=None)))
        )

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        """Each field once. The code, the PIN and the visibility need
        gallery:admin (the service checks it); members who may share a gallery
        (gallery:write) see the code read-only; a viewer never sees it."""
        ours = (*self.readonly_fields, "pin", "remove_pin", "access_code_shown", "visibility_shown")
        fields = [f for f in super().get_fields(request, obj) if f not in ours]
        if obj is None:
            return [*fields, "pin"]
        if not has_scope(request, "gallery:admin"):
            fields = [f for f in fields if f not in ("access_code", "visibility")]
            shown = ["access_code_shown"] if has_scope(request, "gallery:write") else []
            return [*fields, *shown, "visibility_shown", *self.readonly_fields]
        return [*fields, "pin", "remove_pin", *self.readonly_fields]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        readonly = list(super().get_readonly_fields(request, obj))
        if obj is not None and not has_scope(request, "gallery:admin"):
            readonly += ["access_code_shown", "visibility_shown"]
        return readonly

    def get_search_fields(self, request: HttpRequest) -> Any:
        # Searching by code would confirm a guessed code to a viewer.
        fields = super().get_search_fields(request)
        return fields if has_scope(request, "gallery:write") else [f for f in fields if f != "access_code"]

    @admin.display(description="Visibility")
    def visibility_shown(self, gallery: Gallery) -> str:
        return gallery.get_visibility_display()

    @admin.display(description="Access code")
    def access_code_shown(self, gallery: Gallery) -> str:
        return gallery.access_code

    @admin.display(description="Cover")
    def cover_thumb(self, gallery: Gallery) -> str:
        return thumb_tag(gallery.cover, 48) if gallery.cover else "–"

    @admin.display(description="Photos", ordering="n_assets")
    def asset_count(self, gallery: Gallery) -> int:
        return gallery.n_assets

    @admin.display(description="Photos by status")
    def asset_summary(self, gallery: Gallery) -> str:
        counts = selectors.asset_counts_by_status(gallery)
        parts = [(label, counts.get(value, 0)) for value, label in AssetStatus.choices]
        link = reverse("admin:galleries_asset_changelist") + f"?gallery__id__exact={gallery.pk}"
        return format_html("{} · <a href='{}'>all photos</a>", format_html_join(" · ", "{}: {}", parts), link)

    @admin.display(description=f"First {THUMBS_SHOWN} photos")
    def recent_assets(self, gallery: Gallery) -> str:
        assets = Asset.objects.filter(gallery=gallery).select_related("studio").order_by("sort_order")[:THUMBS_SHOWN]
        return format_html_join(" ", "{}", ((thumb_tag(a),) for a in assets)) or "No photos yet."

    @admin.display(description="Selection")
    def selection_summary(self, gallery: Gallery) -> str:
        live = selectors.live_selection(gallery)
        if live is None:
            return "Open: the client has not finalised."
        names = ", ".join(row["filename"] for row in live.snapshot[:50])
        more = f" and {live.asset_count - 50} more" if live.asset_count > 50 else ""
        return format_html(
            "<strong>Finalised</strong> by {} on {}: {} photos ({}{}).",
            live.finalized_by_label,
            live.finalized_at.strftime("%Y-%m-%d %H:%M"),
            live.asset_count,
            names,
            more,
        )

    def save_through_service(self, request: HttpRequest, obj: Gallery, form: Any, change: bool) -> Gallery:
        data = form.cleaned_data
        fields = {name: data[name] for name in Gallery.EDITABLE_FIELDS if name in form.fields}
        if not change:
            return services.gallery_create(
                actor=actor_of(request), access_code=data.get("access_code") or "", pin=data.get("pin") or "", **fields
            )
        if "access_code" in form.fields:
            fields["access_code"] = data.get("access_code") or ""
        if data.get("remove_pin"):
            fields["pin"] = ""
        elif data.get("pin"):
            fields["pin"] = data["pin"]
        return services.gallery_update(actor=actor_of(request), gallery=Gallery.objects.get(pk=obj.pk), **fields)

    def delete_model(self, request: HttpRequest, obj: Gallery) -> None:
        with self.write_scope_for(request, obj):
            services.gallery_delete(gallery=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for gallery in queryset:
            self.delete_model(request, gallery)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return has_scope(request, "gallery:admin")

    def has_publish_permission(self, request: HttpRequest) -> bool:
        return has_scope(request, "gallery:admin")

    @admin.action(description="Publish selected galleries", permissions=["publish"])
    def publish(self, request: HttpRequest, queryset: QuerySet) -> None:
        for gallery in queryset:
            with self.write_scope_for(request, gallery):
                services.gallery_publish(gallery=gallery)
        messages.success(request, f"Published {queryset.count()} galleries.")

    @admin.action(description="Unpublish selected galleries (signs clients out)", permissions=["publish"])
    def unpublish(self, request: HttpRequest, queryset: QuerySet) -> None:
        for gallery in queryset:
            with self.write_scope_for(request, gallery):
                services.gallery_unpublish(gallery=gallery)
        messages.success(request, f"Unpublished {queryset.count()} galleries.")

    @admin.action(description="Regenerate derivatives", permissions=["change"])
    def regenerate_derivatives(self, request: HttpRequest, queryset: QuerySet) -> None:
        total = 0
        for gallery in queryset:
            with self.write_scope_for(request, gallery):
                total += len(services.assets_regenerate(gallery=gallery))
        messages.success(request, f"Queued {total} photos for new derivatives.")

    def _export(self, request: HttpRequest, queryset: QuerySet, kind: str, what: str) -> None:
        asked = 0
        for gallery in queryset:
            try:
                with self.write_scope_for(request, gallery):
                    export_request(gallery=gallery, kind=kind, scope=ExportScope.SELECTION, user=request.user)
            except DomainError as exc:
                messages.error(request, f"{gallery.title}: {exc.message}")
            else:
                asked += 1
        if asked:
            url = reverse("admin:galleries_export_changelist")
            messages.success(
                request,
                format_html(
                    'Asked for {} {}{}: follow {} under <a href="{}">Exports</a>.',
                    asked,
                    what,
                    "" if asked == 1 else "s",
                    "it" if asked == 1 else "them",
                    url,
                ),
            )

    @admin.action(description="Export selection CSV", permissions=["change"])
    def export_selection_csv(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._export(request, queryset, ExportKind.CSV, "selection CSV")

    @admin.action(description="Export contact sheet of the selection (PDF)", permissions=["change"])
    def export_contact_sheet(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._export(request, queryset, ExportKind.CONTACT_SHEET, "contact sheet")


class BinFilter(admin.SimpleListFilter):
    """Photos staff deleted sit in the bin, out of every other list; this
    filter is the way in (restore, or delete for good)."""

    title = "bin"
    parameter_name = "bin"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        return [("in", "In the bin")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "in":
            return queryset.filter(deleted_at__isnull=False)
        return queryset.filter(deleted_at=None)


@admin.register(Asset)
class AssetAdmin(StudioModelAdmin):
    read_scope = "gallery:read"
    write_scope = "gallery:write"
    list_display = ["thumb", "original_filename", "gallery", "status", "failure_reason", "size_shown", "created_at"]

    class Media:
        css = {"all": ["staff/staff.css"]}  # thumbnail sizes

    list_filter = ["status", BinFilter]
    search_fields = ["original_filename", "sha256"]
    list_select_related = ["gallery", "studio"]
    list_per_page = 50
    actions = ["regenerate_derivatives", "restore_from_bin", "purge_from_bin"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # The bin's rows too (Asset.objects hides them): BinFilter shows
        # either the bin or everything else, never both.
        queryset = Asset.with_deleted.get_queryset()
        ordering = self.get_ordering(request)
        return queryset.order_by(*ordering) if ordering else queryset

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [f.name for f in Asset._meta.fields] + ["thumb"]

    def save_through_service(self, request: HttpRequest, obj: Asset, form: Any, change: bool) -> Asset:
        return obj  # every field is read-only: photos change through uploads and actions

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # photos arrive through uploads

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        # The gallery page links here filtered by gallery; a gallery list filter
        # would list every gallery of the studio.
        return lookup == "gallery__id__exact" or super().lookup_allowed(lookup, value, request)

    @admin.display(description="Photo")
    def thumb(self, asset: Asset) -> str:
        return thumb_tag(asset, 60)

    @admin.display(description="Size", ordering="size")
    def size_shown(self, asset: Asset) -> str:
        return filesizeformat(asset.size)

    def delete_model(self, request: HttpRequest, obj: Asset) -> None:
        with self.write_scope_for(request, obj):
            services.asset_delete(asset=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for asset in queryset:
            self.delete_model(request, asset)

    @admin.action(description="Restore from the bin", permissions=["delete"])
    def restore_from_bin(self, request: HttpRequest, queryset: QuerySet) -> None:
        restored = 0
        for asset in queryset.filter(deleted_at__isnull=False):
            try:
                with self.write_scope_for(request, asset):
                    services.asset_restore(asset=asset)
                restored += 1
            except DomainError as exc:
                self.refuse(request, exc, prefix=f"{asset.original_filename}: ")
        messages.success(request, f"Restored {restored} photo(s) from the bin.")

    @admin.action(description="Delete for good (photos in the bin)", permissions=["delete"])
    def purge_from_bin(self, request: HttpRequest, queryset: QuerySet) -> None:
        binned = list(queryset.filter(deleted_at__isnull=False))
        for asset in binned:
            with self.write_scope_for(request, asset):
                services.asset_purge(asset=asset)
        messages.success(request, f"Deleted {len(binned)} photo(s) and their files for good.")

    @admin.action(description="Regenerate derivatives", permissions=["change"])
    def regenerate_derivatives(self, request: HttpRequest, queryset: QuerySet) -> None:
        by_gallery: dict[Any, list[Asset]] = {}
        for asset in queryset.select_related("gallery"):
            by_gallery.setdefault(asset.gallery, []).append(asset)
        total = 0
        for gallery, assets in by_gallery.items():
            with self.write_scope_for(request, gallery):
                total += len(services.assets_regenerate(gallery=gallery, assets=assets))
        messages.success(request, f"Queued {total} photos for new derivatives.")


@admin.register(Selection)
class SelectionAdmin(ReadOnlyStudioModelAdmin):
    read_scope = "gallery:read"
    write_scope = "gallery:admin"
    list_display = ["gallery", "status", "asset_count", "finalized_by_label", "finalized_at", "reopened_at"]
    list_filter = ["status"]
    list_select_related = ["gallery", "studio"]


@admin.register(Export)
class ExportAdmin(ReadOnlyStudioModelAdmin):
    """The studio's download queue, read-only: exports are asked for from a
    gallery's page (or the API and the portal) and written only by the
    exports service. Done ones link to the staff API's download, which hands
    out a short-lived URL and audits the download."""

    read_scope = "gallery:read"
    write_scope = "gallery:write"
    list_display = [
        "gallery",
        "kind",
        "scope_shown",
        "status",
        "progress_shown",
        "requested_by",
        "file_size_shown",
        "created_at",
        "expires_at",
        "download_link",
    ]
    list_filter = ["status", "kind"]
    list_select_related = ["gallery", "studio", "folder", "requested_by_user", "requested_by_visitor"]
    search_fields = ["gallery__title", "filename"]
    date_hierarchy = "created_at"
    list_per_page = 50

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # The file's storage key is an implementation detail; the link is what staff use.
        hidden = {"file_key", "dedupe_key"}
        fields = [f.name for f in Export._meta.fields if f.name not in hidden]
        return [*fields, "download_link"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [f for f in self.get_readonly_fields(request, obj) if f != "id"]

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        # The gallery page links here filtered by gallery (see AssetAdmin).
        return lookup == "gallery__id__exact" or super().lookup_allowed(lookup, value, request)

    def save_through_service(self, request: HttpRequest, obj: Export, form: Any, change: bool) -> Export:
        return obj  # read-only: exports change through the exports service only

    @admin.display(description="Photos", ordering="scope")
    def scope_shown(self, export: Export) -> str:
        if export.scope == "folder":
            return f"Folder: {export.folder.name}" if export.folder else "A deleted folder"
        size = f" ({export.get_size_display()})" if export.size else ""
        return f"{export.get_scope_display()}{size}"

    @admin.display(description="Progress", ordering="progress")
    def progress_shown(self, export: Export) -> str:
        if export.status == ExportStatus.FAILED:
            return format_html('<span title="{}">failed: {}</span>', export.failure_reason, export.failure_reason)
        return f"{export.progress}%"

    @admin.display(description="Requested by")
    def requested_by(self, export: Export) -> str:
        if export.requested_by_user_id:
            return str(export.requested_by_user)
        if export.requested_by_visitor_id:
            visitor = export.requested_by_visitor
            return f"Client: {visitor.name or visitor.email or 'a visitor'}"
        return "–"

    @admin.display(description="Size", ordering="file_size")
    def file_size_shown(self, export: Export) -> str:
        return filesizeformat(export.file_size) if export.file_size is not None else "–"

    @admin.display(description="File")
    def download_link(self, export: Export) -> str:
        if export.status != ExportStatus.DONE:
            return "–"
        url = reverse(
            "api:gallery-export-download",
            kwargs={"studio_slug": export.studio.slug, "gallery_pk": export.gallery_id, "pk": export.pk},
        )
        return format_html('<a href="{}" download>Download {}</a>', url, export.filename or "the file")


# --- People in photos (issue 13) ----------------------------------------------------------------------

from galleries.models import Face, Person  # noqa: E402 - appended section, kept together
from galleries.services import faces as face_services  # noqa: E402
from galleries.services import persons as person_services  # noqa: E402

PERSON_PHOTOS_SHOWN = 120


def face_thumb_tag(face: Face | None, height: int = 64) -> str:
    if face is None:
        return "–"
    url = reverse(
        "api:gallery-face-thumb",
        kwargs={"studio_slug": face.studio.slug, "gallery_pk": face.gallery_id, "pk": face.pk},
    )
    return format_html('<img src="{}" height="{}" width="{}" alt="" loading="lazy">', url, height, height)


def faces_panel(studio: Any) -> str:
    """On the studio's page: whether people in photos is on, and how much it holds."""
    if not studio.faces_enabled:
        return "Off. Turn it on from a gallery's actions (“People in photos: on”); clients see the consent text."
    with studio_scope_of(studio):
        faces_n, persons_n = Face.objects.count(), Person.objects.count()
    return format_html("On: {} faces in {} people. Consent text: “{}”", faces_n, persons_n, studio.faces_consent_text)


def studio_scope_of(studio: Any) -> Any:
    from studio.tenancy import studio_scope

    return studio_scope(studio)


register_studio_panel("People in photos", faces_panel)

DEFAULT_CONSENT = (
    "To find your photos, your selfie is compared with the faces in this gallery, then discarded: "
    "it is never stored. You can use the gallery without it."
)


@admin.action(description="People in photos: on (studio and these galleries)", permissions=["publish"])
def faces_on(modeladmin: Any, request: HttpRequest, queryset: QuerySet) -> None:
    galleries = list(queryset.select_related("studio"))
    # A platform operator's selection can span studios: each gallery follows
    # its own studio's switch and consent, and is audited in its studio.
    studios = {gallery.studio_id: gallery.studio for gallery in galleries}
    if any(not studio.faces_enabled for studio in studios.values()) and not has_scope(request, "studio:admin"):
        # The studio's switch (and its consent text) is the owner's decision.
        messages.error(request, "Only an owner can turn people in photos on for the studio.")
        return
    with transaction.atomic():
        for gallery in galleries:
            studio = studios[gallery.studio_id]
            with modeladmin.write_scope_for(request, gallery):
                if not studio.faces_enabled:
                    face_services.studio_faces_enable(studio=studio, consent_text=DEFAULT_CONSENT)
                gallery.studio = studio  # the instance whose switch was just turned on
                face_services.gallery_faces_set(gallery=gallery, faces_enabled=True)
    messages.success(request, f"People in photos is on for {len(galleries)} galleries; their photos are being scanned.")


@admin.action(description="People in photos: off (deletes these galleries' faces)", permissions=["publish"])
def faces_off(modeladmin: Any, request: HttpRequest, queryset: QuerySet) -> None:
    with transaction.atomic():
        for gallery in queryset:
            with modeladmin.write_scope_for(request, gallery):
                face_services.gallery_faces_set(gallery=gallery, faces_enabled=False)
    messages.success(request, "People in photos is off for those galleries; their faces are deleted.")


@admin.action(description="“Find me” for clients: on", permissions=["publish"])
def find_me_on(modeladmin: Any, request: HttpRequest, queryset: QuerySet) -> None:
    try:
        with transaction.atomic():
            for gallery in queryset:
                with modeladmin.write_scope_for(request, gallery):
                    face_services.gallery_faces_set(gallery=gallery, faces_enabled=True, find_me_enabled=True)
    except DomainError as exc:
        messages.error(request, exc.message)
        return
    messages.success(request, "Clients of those galleries can now search with a selfie.")


@admin.action(description="People in photos: off for the WHOLE studio (deletes every face)", permissions=["publish"])
def faces_off_studio(modeladmin: Any, request: HttpRequest, queryset: QuerySet) -> None:
    if not has_scope(request, "studio:admin"):
        messages.error(request, "Only an owner can turn people in photos off for the whole studio.")
        return
    first = queryset.first()
    if first is not None:
        with modeladmin.write_scope_for(request, first):
            counts = face_services.studio_faces_disable(studio=first.studio)
        messages.success(
            request, f"Off for the studio: {counts['faces']} faces and {counts['persons']} people deleted."
        )


GalleryAdmin.actions = [*GalleryAdmin.actions, faces_on, find_me_on, faces_off, faces_off_studio]


class PersonForm(forms.ModelForm):
    class Meta:
        model = Person
        fields = ["name", "hidden"]


@admin.register(Person)
class PersonAdmin(StudioModelAdmin):
    """A gallery's people: filter by gallery; the change page shows every
    photo they are in. Edits go through the persons service (audited)."""

    form = PersonForm
    read_scope = "gallery:read"
    write_scope = "gallery:write"
    list_display = ["cover_crop", "label", "gallery", "faces", "photo_count", "hidden"]
    list_display_links = ["cover_crop", "label"]
    list_filter = ["hidden"]
    search_fields = ["name", "gallery__title"]
    readonly_fields = ["gallery", "cover_crop", "faces", "photos"]
    actions = ["merge_selected", "hide_selected"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # persons come from the photos

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        live = Q(faces__asset__deleted_at=None)
        return (
            super()
            .get_queryset(request)
            .select_related("gallery", "cover__studio")
            .annotate(
                n_photos=Count("faces__asset", filter=live, distinct=True),
                n_faces=Count("faces", filter=live, distinct=True),
            )
        )

    @admin.display(description="Faces", ordering="n_faces")
    def faces(self, person: Person) -> int:
        # Faces in photos not in the staff bin, as the photo count: the
        # stored face_count (ordering, covers) includes binned ones.
        return person.n_faces

    @admin.display(description="")
    def cover_crop(self, person: Person) -> str:
        return face_thumb_tag(person.cover)

    @admin.display(description="Name")
    def label(self, person: Person) -> str:
        return str(person)

    @admin.display(description="Photos", ordering="n_photos")
    def photo_count(self, person: Person) -> int:
        return person.n_photos

    @admin.display(description="Their photos")
    def photos(self, person: Person) -> str:
        assets = (
            Asset.objects.filter(pk__in=Face.objects.filter(person=person).values("asset_id"))
            .select_related("studio")
            .order_by("sort_order", "created_at")[:PERSON_PHOTOS_SHOWN]
        )
        return format_html_join(" ", "{}", ((thumb_tag(asset, 80),) for asset in assets)) or "–"

    def save_through_service(self, request: HttpRequest, obj: Person, form: Any, change: bool) -> Person:
        # The form already wrote its values onto obj; the service compares
        # them with the stored row for the audit event's before/after.
        fresh = Person.objects.get(pk=obj.pk)
        data = form.cleaned_data
        return person_services.person_update(
            person=fresh, name=data.get("name", fresh.name), hidden=data.get("hidden", fresh.hidden)
        )

    def delete_model(self, request: HttpRequest, obj: Person) -> None:
        raise PermissionDenied  # hide instead: faces would only come back as a new person

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Merge the selected people into the most photographed one", permissions=["change"])
    def merge_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        persons = sorted(queryset, key=lambda p: -p.face_count)
        if len({p.gallery_id for p in persons}) != 1 or len(persons) < 2:
            messages.error(request, "Choose two or more people of one gallery.")
            return
        with transaction.atomic():
            into = persons[0]
            for person in persons[1:]:
                into = person_services.person_merge(person=person, into=into)
        messages.success(request, f"Merged {len(persons)} people into {into}.")

    @admin.action(description="Hide the selected people", permissions=["change"])
    def hide_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        with transaction.atomic():
            for person in queryset:
                person_services.person_update(person=person, hidden=True)
        messages.success(request, "Hidden: kept for grouping, not offered to clients.")
