"""Throttling that holds under concurrency: every guess is counted before it
is checked (the cache's atomic increment), so concurrent wrong PINs from one
address cannot all be checked; and 429 says how long is actually left."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from galleries import services
from galleries.models import Gallery
from studio import context
from studio.tenancy import studio_scope
from tests import factories
from tests.test_audit import assert_error

ACCESS = "/api/v1/portal/access/"


def _published(studio: Any, **fields: Any) -> Gallery:
    gallery = factories.gallery(studio, **fields)
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        services.gallery_publish(gallery=gallery)
    return gallery


def _guess(gallery: Gallery, address: str, pin: str) -> Any:
    body = {"studio": gallery.studio.slug, "code": gallery.access_code, "pin": pin}
    return APIClient(REMOTE_ADDR=address).post(ACCESS, body, format="json")


@pytest.fixture
def slow_pin_check(monkeypatch) -> list[float]:
    """A PIN check as slow as a real password hash (the tests use a fast
    hasher): wide enough for the old read-then-check race to show."""
    checked: list[float] = []
    real = Gallery.check_pin

    def slow(self: Gallery, pin: str) -> bool:
        checked.append(time.monotonic())
        time.sleep(0.15)
        return real(self, pin)

    monkeypatch.setattr(Gallery, "check_pin", slow)
    return checked


@pytest.mark.django_db(transaction=True)
def test_45_concurrent_wrong_pins_from_one_address_are_not_all_checked(
    settings, monkeypatch, slow_pin_check, threaded_db
):
    """Before: all 45 were checked and none throttled (the window was read
    before the slow check and counted after)."""
    settings.PORTAL_FAILURES_PER_IP = 10
    settings.PORTAL_FAILURES_PER_GALLERY = 30
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "anon": "10000/min"},
    }
    from rest_framework.throttling import AnonRateThrottle

    monkeypatch.setattr(AnonRateThrottle, "THROTTLE_RATES", settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"])
    gallery = _published(factories.studio(), pin="4321")
    barrier = threading.Barrier(45)
    statuses: list[int] = []

    def guess(n: int) -> None:
        try:
            barrier.wait()
            statuses.append(_guess(gallery, "10.9.9.9", f"{1000 + n}").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(45)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(statuses) == 45
    assert len(slow_pin_check) <= 10, f"{len(slow_pin_check)} PINs were checked"
    assert statuses.count(403) == len(slow_pin_check)
    assert statuses.count(429) == 45 - len(slow_pin_check) >= 35


@pytest.mark.django_db
def test_a_429_says_how_long_is_actually_left(settings):
    settings.PORTAL_FAILURES_PER_IP = 2
    settings.PORTAL_FAILURE_WINDOW_SECONDS = 600
    gallery = _published(factories.studio())
    for _ in range(2):
        assert_error(_guess_code(gallery, "10.8.8.8", "WRONG1"), 403, "ACCESS_DENIED")
    started = time.time()
    first = _guess_code(gallery, "10.8.8.8", "WRONG1")
    body = assert_error(first, 429, "TOO_MANY_ATTEMPTS")
    left = body["error"]["details"]["retry_after_seconds"]
    assert 590 <= left <= 600
    assert first["Retry-After"] == str(left)

    # Later in the window, less is left (not the whole window again).
    from django.core.cache import cache

    key = "portal:fail:ip:10.8.8.8"
    cache.set(f"{key}:ends", started + 30, timeout=600)
    later = assert_error(_guess_code(gallery, "10.8.8.8", "WRONG1"), 429, "TOO_MANY_ATTEMPTS")
    assert 25 <= later["error"]["details"]["retry_after_seconds"] <= 30


@pytest.mark.django_db
def test_successes_give_their_count_back(settings):
    """A family opening the gallery many times from one address is never
    throttled: only wrong guesses stay counted."""
    settings.PORTAL_FAILURES_PER_IP = 3
    gallery = _published(factories.studio(), pin="4321")
    for _ in range(10):
        assert _guess(gallery, "10.7.7.7", "4321").status_code == 200
    for _ in range(3):
        assert_error(_guess(gallery, "10.7.7.7", "0000"), 403, "ACCESS_DENIED")
    assert_error(_guess(gallery, "10.7.7.7", "4321"), 429, "TOO_MANY_ATTEMPTS")


def _guess_code(gallery: Gallery, address: str, code: str) -> Any:
    body = {"studio": gallery.studio.slug, "code": code}
    return APIClient(REMOTE_ADDR=address).post(ACCESS, body, format="json")
