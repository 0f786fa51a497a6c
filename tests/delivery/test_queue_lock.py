"""The merge queue's lock on a PostgreSQL store, between processes that share no home (as on two
hosts): they take turns, a holder killed with SIGKILL releases it, and every run merges once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.blueprints.engine import RunContext
from shipyard.forge.local import LocalForge
from shipyard.gitcmd import git
from shipyard.store import Store
from shipyard.store.locks import AdvisoryLock, advisory_key, shared_locks
from tests.delivery.test_queue import merges_of, run_branch, types
from tests.store.conftest import postgres_url  # noqa: F401 - a fixture

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from shipyard.delivery.queue import MergeQueue
    from shipyard.forge.local import LocalForge
    from shipyard.store import Store

    url, repo, home, signals, name = sys.argv[1:6]
    signals = Path(signals)
    with Store.open(url) as store:
        queue = MergeQueue(LocalForge(Path(repo)), home=Path(home), store=store)
        with queue.lock("main", on_wait=lambda: (signals / f"waiting-{name}").touch()):
            (signals / f"held-{name}").touch()
            while not (signals / f"release-{name}").exists():
                time.sleep(0.05)
    """
)

LANDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from shipyard.blueprints.engine import RunContext
    from shipyard.delivery.queue import MergeQueue, Verified
    from shipyard.forge.local import LocalForge
    from shipyard.model import Action, Decision, Reason, Task
    from shipyard.store import Store

    url, repo, home, run_id, base, go = sys.argv[1:7]
    merge = Decision(action=Action.MERGE, reasons=(Reason(rule="t", action=Action.MERGE, message="ok"),))
    with Store.open(url) as store:
        forge = LocalForge(Path(repo))
        ctx = RunContext(run_id=run_id, task=Task(blueprint="submit", repo=repo), store=store,
                         home=Path(home))
        branch = f"shipyard/{run_id}"
        head = forge.branch_head(branch)
        verified = Verified(base=base, head=head, tree=forge.tree_of(head))
        Path(f"{go}-ready-{sys.argv[7]}").touch()
        while not Path(go).exists():
            time.sleep(0.01)
        MergeQueue(forge, home=Path(home), store=store).land(
            ctx, branch=branch, into="main", verified=verified, message="shipyard: change",
            proceed=frozenset({Action.MERGE}), reverify=lambda b, h: merge,
        )
    """
)


@pytest.fixture
def pg_store(postgres_url: str) -> Iterator[Store]:  # noqa: F811
    opened = Store.open(postgres_url)
    try:
        yield opened
    finally:
        opened.close()


def wait_for(path: Path, procs: list[subprocess.Popen[str]], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        for proc in procs:
            if proc.poll() not in (None, 0, -signal.SIGKILL):
                raise AssertionError(proc.communicate()[1])
        if time.monotonic() > deadline:
            raise AssertionError(f"{path.name} did not appear within {timeout} s")
        time.sleep(0.05)


def test_processes_without_a_shared_home_take_turns_and_a_killed_holder_releases_the_lock(
    user_repo: Path, pg_store: Store, tmp_path: Path
) -> None:
    signals = tmp_path / "signals"
    signals.mkdir()
    url = pg_store.engine.url.render_as_string(hide_password=False)
    procs: dict[str, subprocess.Popen[str]] = {}

    def start(name: str) -> subprocess.Popen[str]:
        procs[name] = subprocess.Popen(
            [sys.executable, "-c", HOLDER, url, str(user_repo), str(tmp_path / f"home-{name}"),
             str(signals), name],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        return procs[name]

    try:
        start("a")
        wait_for(signals / "held-a", list(procs.values()))
        start("b")
        wait_for(signals / "waiting-b", list(procs.values()))
        start("c")
        wait_for(signals / "waiting-c", list(procs.values()))
        # Their file locks are in different homes: only the database keeps them out.
        assert not (signals / "held-b").exists()
        assert not (signals / "held-c").exists()

        (signals / "release-a").touch()
        assert procs["a"].wait(timeout=60) == 0
        # Whichever waiter asks first gets it; the other keeps waiting.
        deadline = time.monotonic() + 60
        while not [n for n in "bc" if (signals / f"held-{n}").exists()]:
            assert time.monotonic() < deadline, "neither waiter took the released lock"
            time.sleep(0.05)
        time.sleep(1)  # time enough for the other to take it too, were it not excluded
        holders = [n for n in "bc" if (signals / f"held-{n}").exists()]
        assert len(holders) == 1, holders
        winner, other = holders[0], "c" if holders[0] == "b" else "b"

        os.kill(procs[winner].pid, signal.SIGKILL)  # its session ends with it, and the lock
        assert procs[winner].wait(timeout=60) == -signal.SIGKILL
        wait_for(signals / f"held-{other}", [procs[other]])
        (signals / f"release-{other}").touch()
        assert procs[other].wait(timeout=60) == 0
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=30)


def test_two_processes_landing_two_runs_each_twice_at_once_merge_each_run_once(
    user_repo: Path, pg_store: Store, tmp_path: Path
) -> None:
    url = pg_store.engine.url.render_as_string(hide_password=False)
    home = tmp_path / "home"
    first = run_branch(
        user_repo, pg_store, home, "first", {"src/app.py": "zero\none\ntwo\nthree\n"}
    )
    second = run_branch(
        user_repo, pg_store, home, "second", {"src/app.py": "one\ntwo\nthree\nfour\n"}
    )
    go = tmp_path / "go"

    def lander(i: int, ctx: RunContext) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-c", LANDER, url, str(user_repo), str(tmp_path / f"home-{i}"),
             ctx.run_id, ctx.values["base"], str(go), str(i)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    procs = [lander(i, ctx) for i, ctx in enumerate([first, second, first, second])]
    try:
        for i in range(len(procs)):
            wait_for(tmp_path / f"go-ready-{i}", procs)  # all four are waiting for the start
        go.touch()
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=30)
    assert git("show", "main:src/app.py", cwd=user_repo).stdout == "zero\none\ntwo\nthree\nfour\n"
    for ctx in (first, second):
        merged = merges_of(user_repo, ctx.run_id)
        assert len(merged) == 1, ctx.run_id
        assert pg_store.state(ctx.run_id).delivered_commit == merged[0]
        assert types(pg_store, ctx.run_id).count("delivery.intent") == 1  # one merge attempted
    assert LocalForge(user_repo).branch_head(first.values["branch"]) is None


def test_advisory_locks_need_postgresql_and_keys_are_stable(tmp_path: Path) -> None:
    with Store.open(home=tmp_path) as sqlite:
        assert not shared_locks(sqlite)
        with pytest.raises(ValueError, match="PostgreSQL"):
            AdvisoryLock(sqlite, "x")
    assert advisory_key("repo\0main") == advisory_key("repo\0main")
    assert advisory_key("repo\0main") != advisory_key("repo\0staging")
    assert -(2**63) <= advisory_key("repo\0main") < 2**63
