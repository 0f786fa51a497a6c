"""The environment pool's locking under contention: real flocks, threads paused at chosen points.

Threads of one process each open their own descriptor on a key's lock file, so the kernel treats them
like separate processes; what this file pins down is that no ordering of them can wait forever.
"""

from __future__ import annotations

import fcntl
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shipyard.errors import SandboxError
from shipyard.sandbox import pool as pool_module
from shipyard.sandbox.base import CommandResult
from shipyard.sandbox.pool import EnvPool

HANG = 60.0
"""How long a step may take before the test calls it a hang (nothing here takes a second)."""


def builder(*, ok: bool = True, calls: list[str] | None = None) -> Callable[[Path], CommandResult]:
    def build(staging: Path) -> CommandResult:
        if calls is not None:
            calls.append(threading.current_thread().name)
        (staging / "venv").mkdir()
        (staging / "venv" / "pyvenv.cfg").write_text("built\n")
        return CommandResult(
            argv=("build",), exit_code=0 if ok else 1, stdout="", stderr="no wheel",
            duration_seconds=0.0,
        )  # fmt: skip

    return build


class Run(threading.Thread):
    """One tree's checkout of ``key``, held open until ``release`` is set (like ``verify``'s stack)."""

    def __init__(
        self, pool: EnvPool, key: str, where: Path, *, name: str, build: Callable[..., Any]
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.pool, self.key, self.where, self.build = pool, key, where, build
        self.holding = threading.Event()
        self.release = threading.Event()
        self.outcome: tuple[bool, bool] | None = None
        """(hit, got a layer) once checked out."""
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.pool.checkout(
                self.key, build=self.build, target=self.where / "venv",
                workdir=self.where / "layer",
            ) as out:  # fmt: skip
                self.outcome = (out.hit, out.layer is not None)
                self.holding.set()
                self.release.wait(HANG)
        except BaseException as exc:  # reported by the test
            self.error = exc
            self.holding.set()


def pause_first_exclusive(
    monkeypatch: pytest.MonkeyPatch, thread_name: str, until: threading.Event
) -> threading.Event:
    """Failpoint: the first time ``thread_name`` asks for a key exclusively (it saw the entry
    missing), stop it there until ``until`` is set. Returns the event set when it got there."""
    reached = threading.Event()
    real = pool_module._KeyLock.acquire

    def acquire(self: Any, *, exclusive: bool, **kwargs: Any) -> bool:
        if exclusive and threading.current_thread().name == thread_name and not reached.is_set():
            reached.set()
            assert until.wait(HANG), "failpoint never released"
        return real(self, exclusive=exclusive, **kwargs)

    monkeypatch.setattr(pool_module._KeyLock, "acquire", acquire)
    return reached


def finish(*runs: Run) -> None:
    for run in runs:
        run.release.set()
    for run in runs:
        run.join(HANG)


def test_a_run_that_saw_the_entry_missing_uses_the_one_its_sibling_built_and_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The verify hang: the baseline and change trees of one run need the same missing key. The
    change saw it missing and went for the exclusive lock; the baseline built it first and keeps it
    shared until ``verify`` ends, which waits for the change. Waiting for the exclusive lock there
    deadlocked the process on its own flock; the change must use the published entry instead."""
    pool = EnvPool(tmp_path / "pool", mechanism="copy")
    calls: list[str] = []
    baseline = Run(pool, "k1", tmp_path / "base", name="baseline", build=builder(calls=calls))
    change = Run(pool, "k1", tmp_path / "change", name="change", build=builder(calls=calls))
    saw_missing = pause_first_exclusive(monkeypatch, "change", until=baseline.holding)
    try:
        change.start()
        assert saw_missing.wait(HANG)
        baseline.start()
        assert baseline.holding.wait(HANG)
        assert baseline.error is None
        assert baseline.outcome == (False, True)
        assert change.holding.wait(HANG), "the change waited for a lock its own process holds"
        assert change.error is None, change.error
        assert change.outcome == (True, True)
        assert calls == ["baseline"]
    finally:
        finish(change, baseline)


def test_a_failed_build_releases_the_key_while_its_run_goes_on(tmp_path: Path) -> None:
    """A run whose build failed installs by itself and keeps its checkout open for its whole tree;
    its sibling must not wait for that run to end before it may build."""
    pool = EnvPool(tmp_path / "pool", mechanism="copy")
    failed = Run(pool, "k1", tmp_path / "a", name="failed", build=builder(ok=False))
    other = Run(pool, "k1", tmp_path / "b", name="other", build=builder())
    try:
        failed.start()
        assert failed.holding.wait(HANG)
        assert failed.error is None
        assert failed.outcome == (False, False)
        other.start()
        assert other.holding.wait(HANG), "waited for a failed build's run to end"
        assert other.error is None, other.error
        assert other.outcome == (False, True)
    finally:
        finish(other, failed)


def test_a_build_that_never_ends_elsewhere_is_given_up_on_naming_the_lock(tmp_path: Path) -> None:
    pool = EnvPool(tmp_path / "pool", mechanism="copy")
    lock = pool.root / "locks" / "k1.lock"
    lock.parent.mkdir(parents=True)
    with lock.open("w") as builder_elsewhere:  # another process building k1, stuck
        fcntl.flock(builder_elsewhere, fcntl.LOCK_EX)
        with (
            pytest.raises(SandboxError, match="another process is building it") as raised,
            pool.checkout(
                "k1",
                build=builder(),
                target=tmp_path / "v",
                workdir=tmp_path / "l",
                wait_seconds=0.2,
            ),  # fmt: skip
        ):
            pass
    assert str(lock) in str(raised.value)
    assert "fuser -v" in str(raised.value)
    assert not (tmp_path / "v").exists()
    # Once the holder is gone the key is free again.
    with pool.checkout("k1", build=builder(), target=tmp_path / "v", workdir=tmp_path / "l") as out:
        assert out.layer is not None


def test_an_entry_deleted_under_a_run_using_it_is_reported_not_waited_on_forever(
    tmp_path: Path,
) -> None:
    """The state the hang showed: the key held shared by this process, the entry missing. No run
    can build it until the user leaves, so the next run gives up and says who holds it."""
    pool = EnvPool(tmp_path / "pool", mechanism="copy", wait_seconds=0.2)
    user = Run(pool, "k1", tmp_path / "a", name="user", build=builder())
    try:
        user.start()
        assert user.holding.wait(HANG)
        shutil.rmtree(pool.entry("k1"))  # by hand, while a run uses it
        with (
            pytest.raises(SandboxError, match="a run in this process uses it") as raised,
            pool.checkout("k1", build=builder(), target=tmp_path / "v", workdir=tmp_path / "l"),
        ):
            pass
        assert "is missing" in str(raised.value)
        assert str(pool.root / "locks" / "k1.lock") in str(raised.value)
    finally:
        finish(user)
    with pool.checkout("k1", build=builder(), target=tmp_path / "v", workdir=tmp_path / "l") as out:
        assert out.hit is False, "rebuilt once the user left"
