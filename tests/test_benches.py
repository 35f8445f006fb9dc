"""Every benchmark under bench/ still starts: a refactor that breaks one (an
import moved, a renamed service) fails here, not months later when someone
wants the figure. ``--help`` imports the module and parses arguments without
running the measurement."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("*.py") if p.name != "__init__.py"))
def test_benchmark_starts(script, tmp_path):
    result = subprocess.run(
        [sys.executable, str(BENCH / script), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        # Never the suite's databases: a benchmark seeds its own.
        env={k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "usage:" in result.stdout
