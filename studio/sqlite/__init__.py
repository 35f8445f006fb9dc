"""The embedded default's database backend: Django's SQLite backend plus the
upkeep SQLite asks of connections that live long (CONN_MAX_AGE)."""
