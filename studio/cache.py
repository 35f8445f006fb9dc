"""Cache keys always carry the studio, so one studio's cached data can never
be served to another."""

from __future__ import annotations

from typing import Any

from studio.tenancy import current_studio


def studio_cache_key(*parts: Any, studio: Any = None) -> str:
    studio = studio or current_studio()
    return ":".join(["studio", str(studio.pk), *(str(p) for p in parts)])
