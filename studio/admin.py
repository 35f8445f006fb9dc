"""ModelAdmins of the platform core, and the base for studio-owned models.

The site itself (studio scope per request, studio switcher) is
studio.admin_site.StudioAdminSite. What a member may do in the admin follows
their role's scopes, as in the API.
"""

from __future__ import annotations

import contextlib
from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.http import HttpRequest

from studio import services
from studio.models import Studio, User
from studio.roles import scopes_for
from studio.tenancy import studio_scope

# Roles are data (studio.roles), not Django groups.
admin.site.unregister(Group)


def has_scope(request: HttpRequest, scope: str) -> bool:
    if request.user.is_superuser:
        return True
    membership = getattr(request, "admin_membership", None)
    return membership is not None and scope in scopes_for(membership.role)


class StudioModelAdmin(admin.ModelAdmin):
    """Base for admins of studio-owned models: role scopes decide what a member
    may do; the studio is set from the admin studio and never chosen by staff.
    Writes go through services (``save_model``/``delete_model``) so they are audited."""

    read_scope: str = ""
    write_scope: str = ""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return has_scope(request, self.read_scope)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return has_scope(request, self.read_scope)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return has_scope(request, self.write_scope)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return has_scope(request, self.write_scope)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return has_scope(request, self.write_scope)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = [f for f in super().get_fields(request, obj) if f != "studio"]
        # Superusers work across studios, so they say which one a new row is for.
        return ["studio", *fields] if request.user.is_superuser and obj is None else fields

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> Any:
        exclude = list(super().get_exclude(request, obj) or [])
        if not request.user.is_superuser:
            exclude.append("studio")
        return exclude

    def get_list_display(self, request: HttpRequest) -> Any:
        display = list(super().get_list_display(request))
        return [*display, "studio"] if request.user.is_superuser else display

    def get_list_filter(self, request: HttpRequest) -> Any:
        filters = list(super().get_list_filter(request))
        return [*filters, "studio"] if request.user.is_superuser else filters

    def studio_for(self, request: HttpRequest, obj: Any) -> Studio:
        """The studio a write happens in: the admin studio, or (superusers) the object's."""
        return getattr(request, "admin_studio", None) or obj.studio

    @contextlib.contextmanager
    def write_scope_for(self, request: HttpRequest, obj: Any) -> Any:
        with studio_scope(self.studio_for(request, obj)) as studio:
            yield studio


class ReadOnlyStudioModelAdmin(StudioModelAdmin):
    """For records nobody edits by hand (audit events, frozen selections)."""

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Studio)
class StudioAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "timezone", "is_active", "created_at"]
    search_fields = ["name", "slug"]
    readonly_fields = ["slug", "is_active", "created_at"]
    fields = ["name", "slug", "timezone", "contact_email", "is_active", "created_at"]

    def get_queryset(self, request: HttpRequest) -> Any:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        studio = getattr(request, "admin_studio", None)
        return queryset.filter(pk=studio.pk) if studio else queryset.none()

    def has_module_permission(self, request: HttpRequest) -> bool:
        return has_scope(request, "studio:read")

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return has_scope(request, "studio:read")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return has_scope(request, "studio:admin")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # studios are created with an owner, through the API or seed

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # studios keep their history; deactivate instead

    def save_model(self, request: HttpRequest, obj: Studio, form: Any, change: bool) -> None:
        changes = {
            name: form.cleaned_data[name] for name in services.STUDIO_EDITABLE_FIELDS if name in form.changed_data
        }
        fresh = Studio.objects.get(pk=obj.pk)
        services.studio_update(studio=fresh, **changes)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    """Platform operators only."""

    ordering = ["email"]
    list_display = ["email", "full_name", "is_active", "is_superuser", "date_joined"]
    search_fields = ["email", "full_name"]
    list_filter = ["is_active", "is_superuser"]
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        ("Profile", {"fields": ["full_name"]}),
        ("Access", {"fields": ["is_active", "is_staff", "is_superuser"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "password1", "password2"]})]
    filter_horizontal: list[str] = []

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # deactivate: users with history are kept
