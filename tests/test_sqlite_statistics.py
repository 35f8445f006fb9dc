"""studio.sqlite: the embedded default's connections leave statistics for
SQLite's planner when they close, so a tenant-scoped query with an IN list
stops reading the whole studio through the studio_id index."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import DEFAULT_DB_ALIAS, connections

from studio.sqlite import base
from studio.sqlite.base import DatabaseWrapper

pytestmark = pytest.mark.skipif(
    connections[DEFAULT_DB_ALIAS].vendor != "sqlite", reason="the embedded default's backend"
)

# The shape of galleries_placement: a tenant column, a unique pair, a FK.
SCHEMA = (
    "CREATE TABLE placement (id INTEGER PRIMARY KEY, studio_id INTEGER, folder_id INTEGER, asset_id INTEGER)",
    "CREATE INDEX placement_studio ON placement (studio_id)",
    "CREATE INDEX placement_asset ON placement (asset_id)",
    "CREATE UNIQUE INDEX placement_unique ON placement (folder_id, asset_id)",
)
PAGE = list(range(100))
QUERY = (
    f"SELECT asset_id, folder_id FROM placement WHERE studio_id = 1 "
    f"AND asset_id IN ({', '.join(map(str, PAGE))}) AND folder_id IN (1, 2, 3)"
)


def _copy(path: Path, to: Path) -> Path:
    with sqlite3.connect(path) as source, sqlite3.connect(to) as target:
        source.backup(target)
    return to


def _queried_and_closed(path: Path) -> None:
    wrapper = _wrapper(path)
    with wrapper.cursor() as cursor:
        cursor.execute(QUERY)
        cursor.fetchall()
    wrapper.close()


def _wrapper(path: Path) -> DatabaseWrapper:
    settings = {**connections[DEFAULT_DB_ALIAS].settings_dict, "NAME": str(path), "OPTIONS": {"timeout": 20}}
    return DatabaseWrapper(settings, alias="statistics")


def _plan(path: Path) -> str:
    with sqlite3.connect(path) as raw:
        return " ".join(row[-1] for row in raw.execute(f"EXPLAIN QUERY PLAN {QUERY}"))


@pytest.fixture(autouse=True)
def _due(monkeypatch):
    """This process has not gathered statistics yet."""
    monkeypatch.setattr(base, "_last_optimized", float("-inf"))


@pytest.fixture
def studio_db(tmp_path: Path, django_db_blocker) -> Iterator[Path]:
    """One studio's placements, 300 folders of 200 photos: 60,000 rows (a
    file of its own, not the test database: the wrappers here are ours)."""
    path = tmp_path / "embedded.sqlite3"
    with sqlite3.connect(path) as raw:
        for statement in SCHEMA:
            raw.execute(statement)
        raw.executemany(
            "INSERT INTO placement (studio_id, folder_id, asset_id) VALUES (1, ?, ?)",
            ((folder, asset) for folder in range(1, 301) for asset in range(folder * 1000, folder * 1000 + 200)),
        )
    with django_db_blocker.unblock():
        yield path


def test_a_closing_connection_leaves_statistics_the_planner_uses(studio_db):
    assert "placement_studio" in _plan(studio_db)  # no statistics: the whole studio is read
    _queried_and_closed(studio_db)
    plan = _plan(studio_db)
    assert "placement_unique" in plan or "placement_asset" in plan, plan
    with sqlite3.connect(studio_db) as raw:
        assert raw.execute("SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'placement'").fetchone()[0] >= 3


def test_statistics_are_gathered_once_per_interval_not_at_every_close(studio_db, tmp_path):
    other = _copy(studio_db, tmp_path / "other.sqlite3")
    _queried_and_closed(studio_db)
    _queried_and_closed(other)  # soon after: not again
    assert "placement_studio" in _plan(other)
    base._last_optimized -= base.OPTIMIZE_INTERVAL  # the interval has passed
    _queried_and_closed(other)
    assert "placement_studio" not in _plan(other)


def test_a_connection_that_queried_nothing_worth_it_leaves_the_turn(studio_db):
    probe = _wrapper(studio_db)  # a health check's connection
    with probe.cursor() as cursor:
        cursor.execute("SELECT 1")
    probe.close()
    _queried_and_closed(studio_db)  # right after: still its turn
    assert "placement_studio" not in _plan(studio_db)


def test_closing_beside_another_writer_neither_waits_nor_fails_and_the_next_close_gathers(studio_db):
    wrapper = _wrapper(studio_db)
    with wrapper.cursor() as cursor:
        cursor.execute(QUERY)
        cursor.fetchall()
    writer = sqlite3.connect(studio_db, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # holds the write lock the statistics need
    try:
        started = time.monotonic()
        wrapper.close()  # "database is locked" stays inside
        assert time.monotonic() - started < 5  # not the 20 s busy timeout
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert wrapper.connection is None
    assert "placement_studio" in _plan(studio_db)  # nothing written
    _queried_and_closed(studio_db)  # the writer gone: the turn was not spent on the failure
    assert "placement_studio" not in _plan(studio_db)


def test_a_connection_closed_inside_a_transaction_writes_nothing(studio_db):
    wrapper = _wrapper(studio_db)
    wrapper.set_autocommit(False)
    with wrapper.cursor() as cursor:
        cursor.execute(QUERY)
        cursor.fetchall()
    wrapper.in_atomic_block = True
    wrapper.close()
    assert "placement_studio" in _plan(studio_db)
