from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest
from celery._state import _set_task_join_will_block
from django.core.cache import cache
from rest_framework.test import APIClient

from studio.models import Membership, Studio
from studio.roles import Role
from tests import factories

ON_POSTGRES = os.environ.get("DATABASE_URL", "").startswith(("postgres", "postgresql", "pgsql"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "postgres" in item.keywords and not ON_POSTGRES:
            item.add_marker(pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL"))
        if "redis" in item.keywords and not os.environ.get("REDIS_URL"):
            item.add_marker(pytest.mark.skip(reason="needs Redis: set REDIS_URL"))


@pytest.fixture(autouse=True)
def _isolated(settings, tmp_path) -> None:
    # Throttle counters must not leak between tests. The in-memory cache is
    # cleared; on Redis each test gets its own key prefix (flushing would wipe
    # other workers' keys), and the keys expire with their throttle windows.
    if "locmem" in settings.CACHES["default"]["BACKEND"].lower():
        cache.clear()
    else:
        settings.CACHES = {"default": {**settings.CACHES["default"], "KEY_PREFIX": f"test-{uuid.uuid4().hex}"}}
    settings.CELERY_TASK_ALWAYS_EAGER = True
    # Real hashers cost ~100 ms per user; tests create hundreds of users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    # Every list page run from a compiled template is checked against the
    # SQL the ORM compiles for the same values (studio.sql_templates).
    settings.SQL_TEMPLATES_VERIFY = True
    # Celery marks "a task is running, joining would block" in a process-wide
    # flag around every eager task; two eager tasks at once on a live
    # server's threads can leave it set, and the next test's .get() then
    # refuses. Each test starts from a process with no task running.
    _set_task_join_will_block(False)


@pytest.fixture
def studio(db) -> Studio:
    return factories.studio()


@pytest.fixture
def other_studio(db) -> Studio:
    return factories.studio()


@pytest.fixture
def owner(studio) -> Membership:
    return factories.owner_membership(studio)


@pytest.fixture
def make_member(studio) -> Callable[..., Membership]:
    def make(role: str = Role.VIEWER, studio_: Studio | None = None) -> Membership:
        return factories.member(studio_ or studio, role)

    return make


@pytest.fixture
def client_for() -> Callable[[Membership], APIClient]:
    """An API client signed in (by token) as the given member's user."""

    def make(membership_or_user) -> APIClient:
        from studio import context, services

        user = getattr(membership_or_user, "user", membership_or_user)
        with context.acting_as(factories.TEST_ACTOR):
            _, raw = services.api_token_create(user=user, name="tests")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        return client

    return make


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def threaded_db(tmp_path, monkeypatch) -> Iterator[None]:
    """Nothing to do on PostgreSQL. On SQLite, the threaded tests run on a
    database file configured as in production (WAL, BEGIN IMMEDIATE, 20 s busy
    timeout) rather than on pytest-django's shared-cache in-memory database:
    there locking is per table, and a writer that finds the cache locked fails
    at once ("database table is locked", SQLITE_LOCKED) instead of waiting out
    the busy timeout, which says nothing about the real setup.

    The migrated, empty in-memory schema is copied into the file; this thread's
    connection and every new thread's connection use the file until the test
    ends (pytest-django then flushes the untouched in-memory database as usual).
    """
    import sqlite3

    from django.db import connections

    if ON_POSTGRES:
        yield
        return
    path = tmp_path / "bookings.sqlite3"
    memory = connections["default"]
    memory.ensure_connection()
    target = sqlite3.connect(path)
    memory.connection.backup(target)
    target.close()
    file_settings = {**connections.settings["default"], "NAME": str(path)}
    monkeypatch.setitem(connections.settings, "default", file_settings)
    on_file = memory.__class__(file_settings, "default")
    connections["default"] = on_file
    try:
        yield
    finally:
        on_file.close()
        connections["default"] = memory


@pytest.fixture
def forget_heif_opener(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Call it to have Pillow as the web process has it, unable to open HEIC
    itself: reading scikit-image's sample images (imageio) registers
    pillow-heif's opener, again at each read, so call it after the test's
    images are made. Undone after the test."""
    from PIL import Image

    def forget() -> None:
        Image.init()
        monkeypatch.setattr(Image, "ID", [name for name in Image.ID if name != "HEIF"])
        monkeypatch.delitem(Image.OPEN, "HEIF", raising=False)

    return forget
