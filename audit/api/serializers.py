from rest_framework import serializers

from audit.models import AuditEvent
from audit.selectors import EVENT_FIELDS


class AuditEventSerializer(serializers.ModelSerializer):
    actor_user = serializers.UUIDField(source="actor_user_id", read_only=True, allow_null=True)

    class Meta:
        model = AuditEvent
        fields = EVENT_FIELDS
        read_only_fields = fields
