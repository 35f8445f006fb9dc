import django_filters

from audit.models import AuditEvent
from studio.api.filters import IsoDateTimeFilter
from studio.auditing import Action
from studio.context import ActorType


class AuditEventFilterSet(django_filters.FilterSet):
    actor = django_filters.UUIDFilter(field_name="actor_user_id", label="Actor user id")
    actor_type = django_filters.ChoiceFilter(choices=ActorType.CHOICES)
    action = django_filters.MultipleChoiceFilter(choices=Action.choices)
    target_type = django_filters.CharFilter()
    target_id = django_filters.CharFilter()
    since = IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields = ["actor", "actor_type", "action", "target_type", "target_id", "since", "until"]
