"""Run ids: short, unique, sortable by creation time, and usable in a git branch name."""

from __future__ import annotations

import os
import re
import subprocess
from datetime import UTC, datetime, timedelta, timezone

from shipyard.store import new_run_id


def test_run_id_shape_and_time() -> None:
    run_id = new_run_id(datetime(2026, 11, 25, 5, 51, 7, tzinfo=UTC))
    assert re.fullmatch(r"20261125-055107-[0-9a-f]{6}", run_id)
    # Given in another zone, the id still reads in UTC.
    assert new_run_id(
        datetime(2026, 11, 25, 6, 51, 7, tzinfo=timezone(timedelta(hours=1)))
    ).startswith("20261125-055107-")


def test_run_ids_sort_by_creation_time_and_do_not_repeat() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    times = [start + timedelta(seconds=n * 37) for n in range(200)]
    ids = [new_run_id(t) for t in times]
    assert sorted(ids) == ids
    # Random within a second; the store redraws on the rare clash, so allow one or two here.
    assert len({new_run_id(start) for _ in range(200)}) >= 198


def test_run_id_is_a_valid_git_branch_name() -> None:
    run_id = new_run_id()
    checked = subprocess.run(
        ["git", "check-ref-format", "--branch", f"shipyard/{run_id}"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.strip() == f"shipyard/{run_id}"
