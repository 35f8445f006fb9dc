"""Filters are declared, never generated: generating one queries the default
manager at import time, outside any studio scope."""

from __future__ import annotations

import copy
from typing import Any

import django_filters
from django.db.models import Q, QuerySet
from django_filters.utils import translate_validation

from galleries.face_search import find_me_session_key, person_asset_ids
from galleries.models import Asset, AssetStatus, Gallery, GalleryStatus, Visibility
from galleries.selectors import portal_filter, staff_filter
from galleries.services.faces import faces_active


class GalleryFilterSet(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=GalleryStatus.choices)
    visibility = django_filters.ChoiceFilter(choices=Visibility.choices)
    q = django_filters.CharFilter(method="search", label="Title, client name or email contains")

    class Meta:
        model = Gallery
        fields = ["status", "visibility", "q"]

    def search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(
            Q(title__icontains=value) | Q(client_name__icontains=value) | Q(client_email__icontains=value)
        )


class ListFilterSet(django_filters.FilterSet):
    """A hot list's filters. The list validates them without a FilterSet
    instance (``cleaned``: one deep-copies its filters and makes a form
    class per request, a third of a small list page's fixed cost; the fields
    never depend on the request, so one set of fields serves them all), and
    applies the TEMPLATED ones itself, in a query built from their values
    alone (studio.sql_templates); declared with ``method="applied_later"``,
    they are left alone here. Any other filter on means the plain ORM path."""

    TEMPLATED: tuple[str, ...] = ()

    @classmethod
    def cleaned(cls, data: Any) -> dict[str, Any]:
        """The filters' values, validated as the FilterSet's form would (the
        same fields; its errors as DjangoFilterBackend raises them)."""
        if "_form_fields" not in cls.__dict__:
            # From copies with their model set, as a FilterSet instance's
            # are: the class's own filters stay untouched (a field made
            # before the model is known would lose its label everywhere).
            filters = copy.deepcopy(cls.base_filters)
            for filter_ in filters.values():
                filter_.model = cls._meta.model
            cls._form_fields = {name: filter_.field for name, filter_ in filters.items()}
        form = cls._meta.form(data)
        # The fields are shared, not deep-copied per form (a tenth of a small
        # page's fixed cost): validating reads a field and never changes it.
        form.fields = cls._form_fields
        if not form.is_valid():
            raise translate_validation(form.errors)
        return form.cleaned_data

    @classmethod
    def templated(cls, cleaned: dict[str, Any]) -> bool:
        """Whether only TEMPLATED filters are on."""
        return all(name in cls.TEMPLATED or value in (None, "") for name, value in cleaned.items())

    def applied_later(self, queryset: QuerySet, name: str, value: Any) -> QuerySet:
        return queryset


class StaffAssetFilterSet(ListFilterSet):
    """selectors.staff_filter applies status and trashed (the list builds
    its query from their values alone: AssetViewSet.list); in_bin picks the
    manager (AssetViewSet.tenant_manager)."""

    status = django_filters.MultipleChoiceFilter(choices=AssetStatus.choices, method="applied_later")
    trashed = django_filters.BooleanFilter(method="applied_later", label="In the client's trash")
    in_bin = django_filters.BooleanFilter(
        method="applied_later", label="Photos staff deleted, kept until purged (default: false)"
    )

    person = django_filters.UUIDFilter(method="filter_person", label="Photos with this person (people in photos)")

    TEMPLATED = ("status", "trashed", "in_bin")

    class Meta:
        model = Asset
        fields = ["status", "trashed", "in_bin", "person"]

    def filter_person(self, queryset: QuerySet, name: str, value: Any) -> QuerySet:
        # A subquery, not a join: no duplicate rows, no DISTINCT, and it
        # composes with every other filter and the lean list path.
        view = self.request.parser_context["view"]
        return queryset.filter(pk__in=person_asset_ids(view.gallery, value))

    def filter_queryset(self, queryset: QuerySet) -> Any:
        queryset = super().filter_queryset(queryset)
        cleaned = self.form.cleaned_data
        return staff_filter(queryset, status=cleaned.get("status"), trashed=cleaned.get("trashed"))


class PortalAssetFilterSet(ListFilterSet):
    """Validates the portal list's filters; selectors.portal_filter applies
    min_stars, unrated, folder and trashed (the list builds its query from
    their values alone: see PortalAssetViewSet.list)."""

    min_stars = django_filters.NumberFilter(method="applied_later", label="Your rating at least")
    unrated = django_filters.BooleanFilter(method="applied_later", label="Not rated by you")
    folder = django_filters.UUIDFilter(method="applied_later", label="In this folder (one you see)")
    trashed = django_filters.BooleanFilter(method="applied_later", label="In the trash (default: false)")
    person = django_filters.UUIDFilter(method="filter_person", label="Photos with this person")
    find_me = django_filters.CharFilter(method="filter_find_me", label='Your "find me" results (the key it gave)')

    # What selectors.portal_filter takes; the others filter here.
    TEMPLATED = ("min_stars", "unrated", "folder", "trashed")

    class Meta:
        model = Asset
        fields = ["min_stars", "unrated", "folder", "trashed", "person", "find_me"]

    @classmethod
    def portal_filters(cls, cleaned: dict[str, Any]) -> dict[str, Any]:
        return {name: cleaned.get(name) for name in cls.TEMPLATED}

    def filter_person(self, queryset: QuerySet, name: str, value: Any) -> QuerySet:
        # Persons staff hid are not offered to clients.
        view = self.request.parser_context["view"]
        if not faces_active(view.gallery):
            return queryset.none()
        return queryset.filter(pk__in=person_asset_ids(view.gallery, value, visible_only=True))

    def filter_find_me(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        # The photo ids of this visitor's last search, minus "not me", kept
        # in their portal session (galleries.api.face_views.FindMeView).
        view = self.request.parser_context["view"]
        state = self.request._request.session.get(find_me_session_key(view.gallery)) or {}
        if state.get("key") != value:
            return queryset.none()
        return queryset.filter(pk__in=state.get("assets", []))

    def filter_queryset(self, queryset: QuerySet) -> Any:
        view = self.request.parser_context["view"]
        queryset = super().filter_queryset(queryset)
        filters = self.portal_filters(self.form.cleaned_data)
        return portal_filter(queryset, gallery=view.gallery, visitor=view.visitor, **filters)
