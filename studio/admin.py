"""ModelAdmins of the platform core, and the base for studio-owned models.

The site itself (studio scope per request, studio switcher) is
studio.admin_site.StudioAdminSite. What a member may do in the admin follows
their role's scopes, as in the API.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.utils.html import format_html_join

from studio import services
from studio.errors import DomainError
from studio.models import EmailLog, Studio, User
from studio.roles import scopes_for
from studio.tenancy import studio_scope

# Roles are data (studio.roles), not Django groups.
admin.site.unregister(Group)


def has_scope(request: HttpRequest, scope: str) -> bool:
    if request.user.is_superuser:
        return True
    membership = getattr(request, "admin_membership", None)
    return membership is not None and scope in scopes_for(membership.role)


def actor_of(request: HttpRequest) -> Any:
    """The acting member for services (``actor=``): the admin studio's
    membership, or None for a platform operator (superuser)."""
    return getattr(request, "admin_membership", None)


class ServiceAdmin(admin.ModelAdmin):
    """Admin writes go through services, as the API's do, so they are checked,
    audited and refused the same way.

    A ModelAdmin implements :meth:`save_through_service`. It runs as the
    form's last validation step, inside the admin's transaction (a savepoint):
    a refused change (DomainError, or the model's validation) becomes a form
    error on the field it names, nothing is saved, and Django shows the form
    again instead of "changed successfully". Refused deletions and actions
    call :meth:`refuse`, which also keeps the success message away."""

    def save_through_service(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must save through its app's service.")

    @contextlib.contextmanager
    def write_scope_for(self, request: HttpRequest, obj: Any) -> Any:
        yield

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form_class = super().get_form(request, obj, change=change, **kwargs)
        model_admin = self

        class ThroughService(form_class):  # type: ignore[valid-type, misc]
            saved: Any = None

            def _post_clean(self) -> None:
                super()._post_clean()
                if self._errors:
                    return
                try:
                    with model_admin.write_scope_for(request, self.instance), transaction.atomic():
                        self.saved = model_admin.save_through_service(request, self.instance, self, change)
                except DomainError as exc:
                    _form_errors(self, exc.fields, exc.message)
                except ValidationError as exc:
                    fields = exc.message_dict if hasattr(exc, "error_dict") else {}
                    _form_errors(self, fields, " ".join(exc.messages))

        ThroughService.__name__ = form_class.__name__
        return ThroughService

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        # The service saved it while the form was validated; the admin's
        # response needs the saved row's id (a new row got it there).
        if form.saved is not None:
            obj.pk = form.saved.pk
            obj._state.adding = False

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """The service saved the relations too."""

    def refuse(self, request: HttpRequest, exc: DomainError, prefix: str = "") -> None:
        request._admin_refused = True  # type: ignore[attr-defined]
        messages.error(request, f"{prefix}{exc.message}")

    def message_user(
        self, request: HttpRequest, message: str, level: int = messages.INFO, *args: Any, **kw: Any
    ) -> None:
        if level == messages.SUCCESS and getattr(request, "_admin_refused", False):
            return  # "deleted successfully" after a refusal would be a lie
        super().message_user(request, message, level, *args, **kw)


def _form_errors(form: Any, fields: dict[str, Any], message: str) -> None:
    """Each error on the field it names; the rest above the form (the error's
    own sentence when it names no field of this form)."""
    placed = [name for name in fields if name in form.fields]
    for name in placed:
        form.add_error(name, fields[name])
    unplaced = [error for name, errors in fields.items() if name not in form.fields for error in errors]
    if not placed:
        form.add_error(None, message)
    elif unplaced:
        form.add_error(None, unplaced)


class StudioModelAdmin(ServiceAdmin):
    """Base for admins of studio-owned models: role scopes decide what a member
    may do; the studio is set from the admin studio and never chosen by staff.
    Writes go through services (``save_through_service``/``delete_model``) so
    they are checked and audited like API calls."""

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


# Read-only panels on the studio's page, added by apps from their admin
# module: (label, callable(studio) -> HTML). The core imports no app.
STUDIO_PANELS: list[tuple[str, Callable[[Studio], str]]] = []


def register_studio_panel(label: str, render: Callable[[Studio], str]) -> None:
    STUDIO_PANELS.append((label, render))


@admin.register(Studio)
class StudioAdmin(ServiceAdmin):
    list_display = ["name", "slug", "timezone", "is_active", "created_at"]
    search_fields = ["name", "slug"]
    readonly_fields = ["slug", "is_active", "created_at", "panels"]
    fields = ["slug", *Studio.EDITABLE_FIELDS, "is_active", "created_at", "panels"]

    @admin.display(description="At a glance")
    def panels(self, studio: Studio) -> str:
        if not STUDIO_PANELS:
            return "–"
        return format_html_join(
            "", "<div><strong>{}</strong>: {}</div>", ((label, render(studio)) for label, render in STUDIO_PANELS)
        )

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

    def save_through_service(self, request: HttpRequest, obj: Studio, form: Any, change: bool) -> Studio:
        changes = {name: form.cleaned_data[name] for name in Studio.EDITABLE_FIELDS if name in form.changed_data}
        if changes.get("logo") is False:  # the file input's "Clear" box
            changes["logo"] = ""
        return services.studio_update(studio=Studio.objects.get(pk=obj.pk), **changes)


@admin.register(EmailLog)
class EmailLogAdmin(ReadOnlyStudioModelAdmin):
    """What the platform sent or is trying to send, and why not (last error).
    Bodies with one-time links are cleared once sent."""

    read_scope = "audit:read"
    write_scope = "studio:admin"
    list_display = ["created_at", "kind", "recipient", "subject", "status", "attempts", "sent_at", "last_error"]
    list_filter = ["status", "kind"]
    search_fields = ["recipient", "subject", "idempotency_key"]
    date_hierarchy = "created_at"


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

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """Unticking "active" is a deactivation: the service ends the user's
        tokens and sessions and records it; a bare save would leave them."""
        deactivating = change and "is_active" in form.changed_data and not obj.is_active
        if deactivating:
            obj.is_active = True  # the service makes this change, under its lock
        super().save_model(request, obj, form, change)
        if deactivating:
            services.user_deactivate(user=obj)
            obj.is_active = False
