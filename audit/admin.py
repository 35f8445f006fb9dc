from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from audit.models import AuditEvent
from studio.admin import StudioModelAdmin


@admin.register(AuditEvent)
class AuditEventAdmin(StudioModelAdmin):
    """Read-only: the log is append-only everywhere, the admin included."""

    read_scope = "audit:read"
    write_scope = "audit:read"
    list_display = ["created_at", "action", "actor_label", "target_type", "target_label", "ip"]
    list_filter = ["action", "actor_type"]
    search_fields = ["actor_label", "target_id", "target_label", "request_id"]
    date_hierarchy = "created_at"
    ordering = ["-created_at", "-seq"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
