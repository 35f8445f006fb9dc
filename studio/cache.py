"""Cache keys always carry the studio, so one studio's cached data can never
be served to another."""

from __future__ import annotations

import logging
from typing import Any

from django.core.cache import cache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from studio.tenancy import current_studio

logger = logging.getLogger(__name__)

# What an unreachable Redis raises through Django's cache.
CACHE_DOWN = (RedisConnectionError, RedisTimeoutError)


def studio_cache_key(*parts: Any, studio: Any = None) -> str:
    studio = studio or current_studio()
    return ":".join(["studio", str(studio.pk), *(str(p) for p in parts)])


def cache_get_or_none(key: str) -> Any:
    """A cached value for an optimisation (never a limit): with Redis down
    it is a miss, logged, and the caller computes the value."""
    try:
        return cache.get(key)
    except CACHE_DOWN as exc:
        logger.warning("cache unreachable, %s computed afresh (%s)", key, exc)
        return None


def cache_set_quietly(key: str, value: Any, timeout: int) -> None:
    try:
        cache.set(key, value, timeout=timeout)
    except CACHE_DOWN as exc:
        logger.warning("cache unreachable, %s not stored (%s)", key, exc)
