"""OpenAPI generation: every operation documents the shared error body."""

from __future__ import annotations

from typing import Any

from drf_spectacular import generators, openapi
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers

from studio.error_codes import ErrorCode
from studio.tenancy import unscoped


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.ChoiceField(
        choices=ErrorCode.choices,
        help_text="Stable machine-readable code from the one registry:\n\n"
        + "\n".join(f"- `{code.value}`: {code.label}" for code in ErrorCode),
    )
    message = serializers.CharField(help_text="A sentence for people.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Per-field messages, keyed by dotted field path.",
    )
    details = serializers.DictField(
        help_text="Extra facts: field_codes (each field message's code, e.g. required or invalid), "
        "quota figures, retry_after_seconds..."
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()
    request_id = serializers.CharField()


_ERRORS = {
    "400": "Invalid input or a broken business rule.",
    "401": "Not signed in, or a bad API token.",
    "403": "Your role does not grant the scope this needs.",
    "404": "No such object in this studio (or no such studio for you).",
    "409": "Conflicts with the current state.",
    "429": "Too many requests.",
}


class AutoSchema(openapi.AutoSchema):
    def get_override_parameters(self) -> list[Any]:
        params = list(super().get_override_parameters())
        if "{studio_slug}" in self.path:
            params.append(
                OpenApiParameter(
                    "studio_slug",
                    str,
                    OpenApiParameter.PATH,
                    description="The studio's slug. Studios you are not a member of answer 404.",
                )
            )
        return params

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation = super().get_operation(*args, **kwargs)
        # A read with query parameters (filters, cursor, dates) refuses bad
        # values with 400 like any write; without this the schema promised
        # reads never answer 400.
        queried = operation and any(param.get("in") == "query" for param in operation.get("parameters", []))
        if queried and "400" not in operation["responses"]:
            body = self._get_response_for_code(ErrorSerializer, "400")
            body["description"] = "Invalid query parameters: a filter value, a cursor, a date."
            operation["responses"]["400"] = body
        return operation

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        codes = ["401", "403", "404", "429"]
        if self.method in ("POST", "PUT", "PATCH", "DELETE"):
            codes[:0] = ["400", "409"]
        for code in codes:
            if code not in responses:
                body = self._get_response_for_code(ErrorSerializer, code, direction=direction)
                body["description"] = _ERRORS[code]
                responses[code] = body
        return responses


class SchemaGenerator(generators.SchemaGenerator):
    """Builds the schema unscoped: introspection touches model managers but
    reads no rows, and there is no studio to scope to."""

    def get_schema(self, request: Any = None, public: bool = False) -> Any:
        with unscoped():
            return super().get_schema(request=request, public=public)
