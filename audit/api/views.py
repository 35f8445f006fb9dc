from __future__ import annotations

from typing import Any

from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins
from rest_framework.decorators import action
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request

from audit.api.serializers import AuditEventSerializer
from audit.filtersets import AuditEventFilterSet
from audit.models import AuditEvent
from audit.selectors import audit_events_csv
from studio import context
from studio.api.base import StudioViewSet
from studio.api.renderers import CSVRenderer
from studio.auditing import Action, audit_record


@extend_schema(tags=["audit"])
class AuditEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, StudioViewSet):
    """The studio's audit log, newest first. Read-only, for ``audit:read``."""

    model = AuditEvent
    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilterSet
    scope_map = {"GET": "audit:read"}

    @extend_schema(
        responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV, one event per row.")},
    )
    @action(detail=False, methods=["get"], url_path="export", renderer_classes=[JSONRenderer, CSVRenderer])
    def export(self, request: Request, *args: Any, **kwargs: Any) -> StreamingHttpResponse:
        """The filtered log as CSV, oldest first. Exporting is itself audited."""
        queryset = self.filter_queryset(self.get_queryset())
        # What the client sent, made storable: PostgreSQL refuses NUL in jsonb.
        filters = {
            context.printable(key): [context.printable(v) for v in values]
            if len(values) > 1
            else context.printable(values[0])
            for key, values in request.query_params.lists()
        }
        audit_record(action=Action.AUDIT_EXPORTED, after={"filters": filters})
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response = StreamingHttpResponse(
            audit_events_csv(studio=self.studio, queryset=queryset), content_type="text/csv"
        )
        response["Content-Disposition"] = f'attachment; filename="audit-{self.studio.slug}-{stamp}.csv"'
        return response
