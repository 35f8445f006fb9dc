"""Serializer fields that resolve ids from request bodies inside the studio."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import models
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


@extend_schema_field({"type": "array", "items": {"type": "string", "format": "uuid"}})
class StudioObjectsField(serializers.Field):
    """A list of ids of ``model`` rows of the request's studio, resolved in one
    query. Ids of other studios are reported exactly like ids that do not
    exist, so they cannot be probed."""

    default_error_messages = {
        "not_a_list": "Expected a list of ids.",
        "invalid": "'{value}' is not a valid id.",
        "unknown": "Unknown ids: {ids}.",
        "too_many": "At most {max} ids at once.",
    }

    def __init__(self, *, model: type[models.Model], max_length: int = 1000, **kwargs: Any) -> None:
        self.model = model
        self.max_length = max_length
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> list[models.Model]:
        if not isinstance(data, list):
            self.fail("not_a_list")
        if len(data) > self.max_length:
            self.fail("too_many", max=self.max_length)
        ids: list[uuid.UUID] = []
        for value in data:
            try:
                ids.append(uuid.UUID(str(value)))
            except ValueError:
                self.fail("invalid", value=value)
        studio = self.context["studio"]
        found = {obj.pk: obj for obj in self.model._default_manager.filter(studio=studio, pk__in=ids)}
        missing = [str(i) for i in dict.fromkeys(ids) if i not in found]
        if missing:
            self.fail("unknown", ids=", ".join(missing))
        return [found[i] for i in dict.fromkeys(ids)]

    def to_representation(self, value: Any) -> list[str]:
        items = value.all() if hasattr(value, "all") else value
        return [str(obj.pk) for obj in items]


@extend_schema_field(OpenApiTypes.UUID)
class StudioObjectField(StudioObjectsField):
    """One id of a ``model`` row of the request's studio."""

    def to_internal_value(self, data: Any) -> models.Model:
        return super().to_internal_value([data])[0]

    def to_representation(self, value: Any) -> str:
        return str(value.pk)
