"""Rate limits that keep the API up when Redis is down.

An ordinary throttle (requests per minute per address or user) protects
capacity, not secrets: with the cache unreachable it lets the request
through, with a logged warning, rather than answer every call 500. Limits
that guard secrets (portal codes and PINs in galleries.access, invitation
tokens) keep DRF's classes or the cache directly, and fail closed: the
outage reaches studio.errors, which answers 503 SERVICE_UNAVAILABLE.
"""

from __future__ import annotations

import logging
from typing import Any

from rest_framework import throttling

from studio.cache import CACHE_DOWN

logger = logging.getLogger(__name__)


class DegradingThrottle:
    """Mixin over a DRF throttle: an unreachable cache lets the request in."""

    def allow_request(self, request: Any, view: Any) -> bool:
        try:
            return super().allow_request(request, view)  # type: ignore[misc]
        except CACHE_DOWN as exc:
            logger.warning("rate limit %s not applied: the cache is unreachable (%s)", type(self).__name__, exc)
            return True


class AnonRateThrottle(DegradingThrottle, throttling.AnonRateThrottle):
    pass


class UserRateThrottle(DegradingThrottle, throttling.UserRateThrottle):
    pass


class ScopedRateThrottle(DegradingThrottle, throttling.ScopedRateThrottle):
    pass


class SimpleRateThrottle(DegradingThrottle, throttling.SimpleRateThrottle):
    pass
