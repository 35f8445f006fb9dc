from rest_framework import pagination


class CursorPagination(pagination.CursorPagination):
    """Cursor pagination everywhere: stable under inserts, no COUNT(*) on big
    tables. Views may set ``ordering``; the default is newest first."""

    ordering = "-created_at"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
