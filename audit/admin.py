from __future__ import annotations

from django.contrib import admin

from audit.models import AuditEvent
from studio.admin import ReadOnlyStudioModelAdmin


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyStudioModelAdmin):
    """Read-only: the log is append-only everywhere, the admin included."""

    read_scope = "audit:read"
    write_scope = "audit:read"
    list_display = ["created_at", "action", "actor_label", "target_type", "target_label", "ip"]
    list_filter = ["action", "actor_type"]
    search_fields = ["actor_label", "target_id", "target_label", "request_id"]
    date_hierarchy = "created_at"
    ordering = ["-created_at", "-seq"]
