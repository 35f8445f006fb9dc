"""Django's SQLite backend, and statistics for its query planner.

Without statistics SQLite guesses that an equality on any indexed column
matches about ten rows, so every tenant-scoped query with an IN list
(``studio_id = ? AND asset_id IN (...100 ids...)``) takes the studio_id index
and reads every row of the studio: the portal list's folders-of-the-page
query scanned all the studio's placements. PostgreSQL's autovacuum keeps its
statistics; SQLite gathers them only when told. Its documentation asks a
long-lived connection to run ``PRAGMA optimize`` before closing: it analyzes
the tables this connection's queries could have planned better with
statistics when they have none or have grown 25-fold since, each on a
bounded sample (analysis_limit).

Not at every close: a partial index that no row matches yet (the bin, the
uploads in processing) never gets a statistics row, so its table counts as
unanalyzed and is sampled again each time (~2 ms for the photos table). Once
per process every OPTIMIZE_INTERVAL seconds is plenty for statistics that
only need the tables' rough shape.
"""

from __future__ import annotations

import contextlib
import math
import time

from django.db.backends.sqlite3 import base

# Rows sampled per index: plenty for the planner's choice between indexes,
# a few milliseconds on any table.
ANALYSIS_LIMIT = 1000
OPTIMIZE_INTERVAL = 600.0  # seconds
OPTIMIZE_MASK = 0xFFFE  # what a plain PRAGMA optimize does

_last_optimized = -math.inf  # time.monotonic() of this process's last run


class DatabaseWrapper(base.DatabaseWrapper):
    def _close(self) -> None:
        global _last_optimized
        now = time.monotonic()
        if (
            self.connection is not None
            and not self.in_atomic_block
            and not self.is_in_memory_db()
            and now - _last_optimized >= OPTIMIZE_INTERVAL
        ):
            # Writing the statistics takes the write lock: with another
            # writer at work this fails ("database is locked") and the next
            # close tries again. SQLite 3.40 refuses at once here (the
            # statement would upgrade its read lock); busy_timeout 0 keeps it
            # so whatever the version: a closing connection never waits.
            with contextlib.suppress(base.Database.Error):
                # A dry run first (mask bit 0x01 lists what it would do): a
                # connection that queried nothing worth it (a health probe's
                # SELECT 1) must not take the interval's turn.
                if self.connection.execute(f"PRAGMA optimize({OPTIMIZE_MASK | 0x01})").fetchall():
                    self.connection.execute("PRAGMA busy_timeout = 0")
                    self.connection.execute(f"PRAGMA analysis_limit = {ANALYSIS_LIMIT}")
                    self.connection.execute(f"PRAGMA optimize({OPTIMIZE_MASK})")
                    _last_optimized = now  # two threads closing at once may both run it: harmless
        super()._close()
