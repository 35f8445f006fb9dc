from typing import Any

from rest_framework import pagination


class CursorPagination(pagination.CursorPagination):
    """Cursor pagination everywhere: stable under inserts, no COUNT(*) on big
    tables. A view's ``ordering`` (a field or a tuple, the first one unique
    enough to page on) wins over the default, newest first. DRF's own class
    reads only an OrderingFilter's ordering, so a view's would be ignored."""

    ordering = "-created_at"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_ordering(self, request: Any, queryset: Any, view: Any) -> tuple[str, ...]:
        ordering = getattr(view, "ordering", None) or self.ordering
        return (ordering,) if isinstance(ordering, str) else tuple(ordering)
