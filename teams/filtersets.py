import django_filters

from studio.models import Membership
from studio.roles import Role
from teams.models import Invitation, Team


class MembershipFilterSet(django_filters.FilterSet):
    role = django_filters.MultipleChoiceFilter(choices=Role.choices)
    email = django_filters.CharFilter(field_name="user__email", lookup_expr="icontains")

    class Meta:
        model = Membership
        fields = ["role", "email"]


class TeamFilterSet(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Team
        fields = ["name"]


class InvitationFilterSet(django_filters.FilterSet):
    # Filters are declared, never generated: generating one queries the
    # default manager at import time, outside any studio scope.
    role = django_filters.MultipleChoiceFilter(choices=Role.choices)
    email = django_filters.CharFilter(lookup_expr="icontains")
    pending = django_filters.BooleanFilter(method="filter_pending", label="Only pending invitations")

    class Meta:
        model = Invitation
        fields = ["email", "role"]

    def filter_pending(self, queryset, name, value):  # noqa: ANN001, ANN201 - django-filter signature
        from django.utils import timezone

        pending = queryset.filter(accepted_at=None, revoked_at=None, expires_at__gt=timezone.now())
        return pending if value else queryset.exclude(pk__in=pending.values("pk"))
