from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any
from urllib import parse

from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.utils import timezone
from rest_framework import pagination

from studio.error_codes import ErrorCode
from studio.errors import DomainError


class InvalidCursor(DomainError):
    code = ErrorCode.INVALID_CURSOR
    default_message = "The cursor is not one this list gave out: start again without it."


class CursorPagination(pagination.CursorPagination):
    """Cursor pagination everywhere: stable under inserts, no COUNT(*) on big
    tables. A view's ``ordering`` (a field or a tuple, the first one unique
    enough to page on) wins over the default, newest first. DRF's own class
    reads only an OrderingFilter's ordering, so a view's would be ignored.

    A cursor is opaque to clients but not signed, so one that was edited or
    made up is refused with 400 ``INVALID_CURSOR``: DRF answers 404 for bad
    base64, and a position that is not a value of the ordering field reached
    the database (a 500, or a date message about a field the client never sent)."""

    ordering = "-created_at"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_ordering(self, request: Any, queryset: Any, view: Any) -> tuple[str, ...]:
        ordering = getattr(view, "ordering", None) or self.ordering
        return (ordering,) if isinstance(ordering, str) else tuple(ordering)

    def paginate_queryset(self, queryset: Any, request: Any, view: Any = None) -> list[Any] | None:
        self._model = getattr(queryset, "model", None)
        # Orderings on annotations (no model field to check against) name
        # their check in the view: {"folder_position": cursor_int}.
        self._position_checks = getattr(view, "cursor_positions", {})
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request: Any) -> pagination.Cursor | None:
        encoded = request.query_params.get(self.cursor_query_param)
        if not encoded:
            return None
        try:
            # Strict base64: DRF's lenient decoding skips stray characters, so
            # "%%%" decoded to nothing and silently meant the first page.
            querystring = base64.b64decode(encoded.encode("ascii"), validate=True).decode("ascii")
            tokens = parse.parse_qs(querystring, keep_blank_values=True)
            offset = pagination._positive_int(tokens.get("o", ["0"])[0], cutoff=self.offset_cutoff)
            reverse = bool(int(tokens.get("r", ["0"])[0]))
            position = tokens.get("p", [None])[0]
        except (TypeError, ValueError, UnicodeError, binascii.Error) as exc:
            raise InvalidCursor() from exc
        if not tokens:
            raise InvalidCursor()
        if position is not None:
            self._check_position(position)
        return pagination.Cursor(offset=offset, reverse=reverse, position=position)

    def _check_position(self, position: str) -> None:
        """The position must be a value the ordering field can hold, as the
        database will be asked to compare it."""
        name = self.ordering[0].lstrip("-")
        if name in getattr(self, "_position_checks", {}):
            self._position_checks[name](position)
            return
        if self._model is None:
            return
        try:
            field = self._model._meta.get_field(name)
        except FieldDoesNotExist:
            return
        try:
            value = field.to_python(position)
            field.run_validators(value)
        except (ValidationError, ValueError, TypeError, OverflowError) as exc:
            raise InvalidCursor() from exc
        if value is None or (isinstance(value, datetime) and timezone.is_naive(value)):
            raise InvalidCursor()


def cursor_int(position: str) -> int:
    """A cursor's position on an integer annotation (no model field to
    check it against; a view names it in ``cursor_positions``): refused
    unless a 32-bit column could hold it."""
    try:
        value = int(position)
    except (TypeError, ValueError) as exc:
        raise InvalidCursor() from exc
    if not -(2**31) <= value < 2**31:
        raise InvalidCursor()
    return value
