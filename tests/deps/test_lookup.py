"""The host side of planning: the history read from earlier runs, and planning a real repository
against the local index."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shipyard.deps.localindex import LocalIndex
from shipyard.deps.lookup import history, plan_repository
from shipyard.deps.rules import DepsConfig
from shipyard.events import RunState
from shipyard.model import RunStatus

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def run(kind: str | None, status: RunStatus, days: int, blueprint: str = "deps") -> RunState:
    params = {"run_kind": kind} if kind else {}
    return RunState(
        run_id=f"{kind}-{days}",
        task={"blueprint": blueprint, "params": params},
        status=status,
        created_at=T0 + timedelta(days=days),
    )


def test_history_counts_waiting_update_runs_and_the_last_run_of_each_kind() -> None:
    found = history(
        [
            run("update", RunStatus.AWAITING_REVIEW, 1),
            run(None, RunStatus.AWAITING_REVIEW, 2),  # runs recorded before run kinds existed
            run("security", RunStatus.AWAITING_REVIEW, 5),  # security runs are never limited
            run("lock", RunStatus.MERGED, 3),
            run("update", RunStatus.MERGED, 4),
            run("update", RunStatus.AWAITING_REVIEW, 9, blueprint="task"),
        ]
    )
    assert found.open_runs == 2
    assert found.last_run == T0 + timedelta(days=4)
    assert found.last_lock_maintenance == T0 + timedelta(days=3)


def test_plan_a_repository_from_its_files_against_the_index(
    tmp_path: Path, index: LocalIndex
) -> None:
    (tmp_path / "requirements.txt").write_text("alpha==1.0.0\nbeta==0.3.0\n")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, timeout=30)
    plan = plan_repository(
        tmp_path,
        DepsConfig(files=["requirements.txt", "absent.txt"], update_types=["patch", "minor"]),
        index_url=index.url,
        cache_dir=tmp_path / "cache",
    )
    assert [(u.package, str(u.target)) for u in plan.updates] == [("alpha", "1.1.0")]
    assert any((tmp_path / "cache").iterdir())


def test_an_unreadable_requirement_is_left_alone_and_the_rest_is_planned(
    tmp_path: Path, index: LocalIndex
) -> None:
    (tmp_path / "requirements").mkdir()
    (tmp_path / "requirements" / "dev.txt").write_text("pytz>dev\nalpha==1.0.0\n")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, timeout=30)
    plan = plan_repository(
        tmp_path,
        DepsConfig(update_types=["patch", "minor"]),
        index_url=index.url,
        cache_dir=None,
    )
    assert [(u.package, str(u.target)) for u in plan.updates] == [("alpha", "1.1.0")]
    [skipped] = [s for s in plan.skipped if s.package == "pytz"]
    assert skipped.manifest == "requirements/dev.txt:1"
    assert skipped.reason.startswith("cannot read requirement 'pytz>dev': ")
    assert "PEP 508" in skipped.reason
