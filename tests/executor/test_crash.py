"""Crash tests of the Celery executor on PostgreSQL: workers killed with SIGKILL during the gates
and during a merge, the broker restarted empty, the database's connections terminated. Every run
completes, none is lost, and the real repository's history holds exactly one merge per merged run."""

from __future__ import annotations

import secrets
import subprocess
import time
from pathlib import Path

import pytest

from scenario import GIT_ENV, make_repo  # type: ignore[import-not-found]
from shipyard.app import App
from shipyard.app import deps_tasks as build_deps_tasks
from shipyard.events import EventType
from shipyard.executor.celery import CeleryExecutor
from shipyard.model import RunStatus, Task
from shipyard.store import Store
from tests.conftest import needs_bwrap
from tests.executor.conftest import Cluster, merges_of

pytestmark = [pytest.mark.slow, needs_bwrap]


def fresh_repo(dest: Path) -> Path:
    """The example with a commit of its own: no tree in it was measured before, so the gates of
    these runs really run (the workers' home, with its measurement cache, is shared)."""
    repo = Path(make_repo(dest))
    (repo / "NOTES.md").write_text(f"crash test {secrets.token_hex(4)}\n")
    for args in (["add", "NOTES.md"], ["commit", "-q", "-m", "notes"]):
        subprocess.run(["git", *args], cwd=repo, env=GIT_ENV, check=True, timeout=60)
    return repo


def deps_tasks(repo: Path, index_url: str, home: Path) -> list[Task]:
    """One task per planned update of the example, as ``run deps`` builds them."""
    with App(home) as app:
        plan = app.plan_deps(repo=repo, index_url=index_url)
    return list(build_deps_tasks(plan, index_url=index_url, requested_by="ci"))


def count_events(store: Store, run_ids: list[str], kind: str) -> int:
    return sum(e.type == kind for r in run_ids for e in store.events(r))


def wait_for_event(
    store: Store, run_ids: list[str], kind: str, *, after: int = 0, timeout: float = 180
) -> None:
    """Until there are more than ``after`` events of ``kind`` in ``run_ids``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if count_events(store, run_ids, kind) > after:
            return
        time.sleep(0.2)
    raise AssertionError(f"no new {kind} event within {timeout} s")


def check_outcomes(store: Store, repo: Path, run_ids: list[str]) -> dict[str, RunStatus]:
    """Every run ended as the example says; each merged run merged exactly once."""
    by_title = {}
    for run_id in run_ids:
        state = store.state(run_id)
        by_title[str(state.task["title"]).split(" from ")[0]] = state.status
        merged_events = [e for e in store.events(run_id) if e.type == EventType.DELIVERY_MERGED]
        if state.status is RunStatus.MERGED:
            assert len(merges_of(repo, run_id)) == 1, run_id
            assert len(merged_events) == 1
            assert state.delivered_commit == merges_of(repo, run_id)[0]
        else:
            assert merges_of(repo, run_id) == []
        assert any("report" in e.data for e in store.events(run_id) if e.type == "log")
    assert by_title == {"Update slugkit": RunStatus.MERGED, "Update moneyfmt": RunStatus.HALTED}
    return by_title


def cut_connections(store_url: str) -> int:
    """Terminate every session on the store's database but this one; how many were cut."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(store_url)
    with psycopg.connect(
        host=url.host, port=url.port or 5432, user=url.username, dbname="postgres", autocommit=True
    ) as admin:
        cut = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (url.database,),
        ).fetchone()
    assert cut is not None
    return int(cut[0])


def test_kills_a_broker_restart_and_cut_connections_lose_nothing_and_merge_once(
    cluster: Cluster, index_url: str
) -> None:
    repo = fresh_repo(cluster.tmp / "repo")
    store = Store.open(cluster.store_url)
    try:
        executor = CeleryExecutor(store=store, home=cluster.home, settings=cluster.settings)
        run_ids = [executor.submit(t) for t in deps_tasks(repo, index_url, cluster.home)]
        assert len(run_ids) == 2

        # The first worker dies as soon as a gate result is recorded: in the middle of verify.
        first = cluster.start_worker(failpoints="executor.after_gate", log="gates")
        assert first.wait(timeout=180) == -9, cluster.logs()
        gates_before = count_events(store, run_ids, EventType.GATE_FINISHED.value)

        # The second takes the run over once the lease expires. While it is measuring, the
        # broker restarts empty (every queued message is gone) and every connection to the
        # store's database is cut, its own included; it carries on, and dies just after the
        # merge moved main but before the merge was recorded.
        second = cluster.start_worker(failpoints="merge.after_ref_update", log="merge")
        wait_for_event(store, run_ids, EventType.GATE_FINISHED.value, after=gates_before)
        cluster.restart_broker()
        assert cut_connections(cluster.store_url) >= 1
        assert second.wait(timeout=300) == -9, cluster.logs()
        merged_run = next(r for r in run_ids if merges_of(repo, r))
        assert store.state(merged_run).status is RunStatus.RUNNING  # merged, not yet recorded

        cluster.start_worker(log="rest")
        cluster.wait_done(store, run_ids)

        check_outcomes(store, repo, run_ids)
        resumed = [
            e.data["message"]
            for r in run_ids
            for e in store.events(r)
            if e.type == "log" and str(e.data.get("message", "")).startswith("resuming at node")
        ]
        assert any("verify" in m for m in resumed), resumed
        assert any("deliver" in m for m in resumed), resumed
    finally:
        store.close()
