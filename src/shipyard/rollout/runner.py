"""Carry rollouts forward: baseline, stages, health readings, and the revert when health breaches.

``RolloutRunner.advance`` does every step that is due for one run and records each as an event;
``watch`` keeps advancing every rollout under way until none is left (or a time limit passes).
What is due comes from ``plan.next_step``, a pure function of the recorded events, so a runner
that crashed, or a second machine taking over, resumes from the record: a stage deployed is not
deployed again, and a revert already made is found by its ``Shipyard-Rollback`` trailer instead
of being made twice. One runner advances a run at a time (a lock file per run).

Irreversible steps are deterministic host code (DESIGN invariant 7): the revert commit goes
through the merge queue's lock for its target and the forge's compare-and-swap, and is recorded
as a rollback, outside the policy's type routing but not outside the record.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.blueprints.engine import EventListener
from shipyard.delivery.queue import MergeQueue
from shipyard.delivery.report import write_run_report
from shipyard.errors import (
    DeliveryError,
    HealthSourceError,
    NotFound,
    RepositoryError,
    RolloutError,
)
from shipyard.events import EventType, RunState
from shipyard.forge import get_forge
from shipyard.model import RunStatus
from shipyard.rollout.deploy import StageCall, deploy_hook, notify
from shipyard.rollout.health import health_source
from shipyard.rollout.plan import (
    Baseline,
    Check,
    Complete,
    Deploy,
    Progress,
    Revert,
    Wait,
    is_breach,
    next_step,
    progress,
)
from shipyard.rollout.start import trusted_tree
from shipyard.store import Store

log = logging.getLogger(__name__)

MAX_STEPS_PER_ADVANCE = 50
"""Steps one ``advance`` takes at most before yielding to the other rollouts."""


@dataclass(frozen=True)
class Advanced:
    """Where one run's rollout stands after ``advance``: finished, or due again at ``due``."""

    run_id: str
    status: RunStatus
    due: float | None
    summary: str


class RolloutRunner:
    """Advances the rollouts recorded in a store; the deploy hook and health source come from each
    rollout's configuration snapshot, the forge from the run's repository."""

    def __init__(
        self,
        store: Store,
        *,
        home: Path,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        environ: Mapping[str, str] | None = None,
        listener: EventListener | None = None,
    ) -> None:
        self.store = store
        self.home = home
        self.clock = clock
        self.sleep = sleep
        self.environ = os.environ if environ is None else environ
        self.listener = listener

    # -- what is under way -----------------------------------------------------------------------

    def active(self) -> list[RunState]:
        """Runs whose rollout is under way (not stopped, not finished)."""
        return self.store.list_runs(status=RunStatus.ROLLING_OUT, limit=10_000)

    def progress_of(self, run_id: str) -> Progress:
        found = progress(self.store.events(run_id))
        if found is None:
            raise NotFound(f"run {run_id} has no rollout; rollouts start when a change is merged "
                           "into a repository whose shipyard.toml enables [rollout].")  # fmt: skip
        return found

    # -- advancing -------------------------------------------------------------------------------

    def watch(
        self,
        run_ids: Sequence[str] | None = None,
        *,
        max_seconds: float | None = None,
    ) -> list[Advanced]:
        """Advance rollouts until none is under way (or ``max_seconds`` passed); the last states."""
        started = self.clock()
        last: dict[str, Advanced] = {}
        while True:
            ids = list(run_ids) if run_ids is not None else [s.run_id for s in self.active()]
            pending = []
            for run_id in ids:
                result = self.advance(run_id)
                last[run_id] = result
                if result.due is not None:
                    pending.append(result.due)
            if not pending:
                return list(last.values())
            now = self.clock()
            if max_seconds is not None and now - started >= max_seconds:
                return list(last.values())
            until = min(pending)
            if max_seconds is not None:
                until = min(until, started + max_seconds)
            self.sleep(max(0.0, min(until - now, 60.0)))

    def advance(self, run_id: str) -> Advanced:
        """Do every step of ``run_id``'s rollout that is due now; where it stands afterwards."""
        with self._lock(run_id) as held:
            if not held:
                return Advanced(run_id, self.store.state(run_id).status, self.clock() + 1,
                                "another runner is advancing it")  # fmt: skip
            steps = 0
            try:
                while steps < MAX_STEPS_PER_ADVANCE:
                    state = self.store.state(run_id)
                    p = progress(self.store.events(run_id))
                    under_way = p is not None and state.status is RunStatus.ROLLING_OUT
                    step = next_step(p, self.clock()) if p is not None and under_way else None
                    if p is None or step is None:
                        return Advanced(run_id, state.status, None, _summary(state))
                    if isinstance(step, Wait):
                        return Advanced(run_id, state.status, step.until, _summary(state))
                    try:
                        self._do(run_id, state, p, step)
                    except Exception as exc:  # one broken rollout must not stall the others
                        log.exception("rollout of run %s failed at %s", run_id, step)
                        self._stop(run_id, f"the rollout could not go on ({step}): {exc}")
                    steps += 1
                return Advanced(run_id, self.store.state(run_id).status, self.clock(), "busy")
            finally:
                if steps:  # the report follows the rollout
                    write_run_report(self.store, self.home / "runs" / run_id, run_id)

    def _do(
        self,
        run_id: str,
        state: RunState,
        p: Progress,
        step: Baseline | Deploy | Check | Revert | Complete,
    ) -> None:
        repo = Path(str(state.task["repo"]))
        if isinstance(step, Baseline):
            self._baseline(run_id, repo, p, step)
        elif isinstance(step, Deploy):
            self._deploy(run_id, repo, p, step)
        elif isinstance(step, Check):
            self._check(run_id, repo, p)
        elif isinstance(step, Revert):
            self._revert(run_id, repo, p, step.reason)
        else:
            self._emit(run_id, EventType.ROLLOUT_COMPLETED,
                       {"stages": p.stage, "checks": len(p.readings), "at": self.clock()})  # fmt: skip

    def _trusted(self, run_id: str, repo: Path, p: Progress) -> Path:
        """The target's files before the merge, exported once per rollout: the hooks' working
        directory, so the programs they name are never the change's own versions."""
        tree = self.home / "rollouts" / run_id / "tree"
        done = tree.parent / ".exported"
        if not done.exists():
            trusted_tree(repo, p.previous_commit, tree)
            done.touch()
        return tree

    def _baseline(self, run_id: str, repo: Path, p: Progress, step: Baseline) -> None:
        try:
            source = health_source(p.config.health, repo=self._trusted(run_id, repo, p))
            value = source.baseline(start=step.start, end=step.end)
        except HealthSourceError as exc:
            self._stop(run_id, f"the baseline could not be measured: {exc}")
            return
        self._emit(run_id, EventType.ROLLOUT_BASELINE,
                   {"value": value, "start": step.start, "end": step.end,
                    "source": source.description})  # fmt: skip

    def _deploy(self, run_id: str, repo: Path, p: Progress, step: Deploy) -> None:
        try:
            hook = deploy_hook(
                p.config.deploy, repo=self._trusted(run_id, repo, p), environ=self.environ
            )
        except RolloutError as exc:
            self._stop(run_id, f"stage {step.stage} was not deployed: {exc}")
            return
        result = hook.call(self._call(run_id, repo, p, stage=step.stage, percent=step.percent))
        self._emit(run_id, EventType.ROLLOUT_STAGE,
                   {"stage": step.stage, "percent": step.percent, "ok": result.ok,
                    "detail": result.detail, "seconds": result.seconds, "hook": hook.description,
                    "at": self.clock()})  # fmt: skip
        if not result.ok:
            self._stop(run_id, f"deploying stage {step.stage} ({step.percent:g} %) failed: "
                       f"{result.detail}")  # fmt: skip

    def _check(self, run_id: str, repo: Path, p: Progress) -> None:
        now = self.clock()
        try:
            source = health_source(p.config.health, repo=self._trusted(run_id, repo, p))
            value = source.read(now=now)
        except HealthSourceError as exc:
            self._stop(run_id, f"the health signal could not be read at stage {p.stage} "
                       f"({p.percent:g} %): {exc}")  # fmt: skip
            return
        breach = is_breach(p, value)
        self._emit(run_id, EventType.ROLLOUT_CHECK,
                   {"value": value, "baseline": p.baseline, "threshold": p.threshold,
                    "breach": breach, "stage": p.stage, "percent": p.percent, "at": now})  # fmt: skip

    def _revert(self, run_id: str, repo: Path, p: Progress, reason: str) -> None:
        if not p.revert_started:
            self._emit(run_id, EventType.ROLLOUT_BREACHED,
                       {"reason": reason, "value": p.last_value, "baseline": p.baseline,
                        "threshold": p.threshold, "stage": p.stage, "at": self.clock()})  # fmt: skip
            p = self.progress_of(run_id)
        breached_at = p.breached_at if p.breached_at is not None else self.clock()
        # First take the traffic back (fast), then undo the merge (durable).
        rollback = "no deploy hook called"
        try:
            hook = deploy_hook(
                p.config.deploy, repo=self._trusted(run_id, repo, p), environ=self.environ
            )
            result = hook.call(self._call(run_id, repo, p, stage=0, percent=0.0, rollback=True))
            rollback = ("rolled back" if result.ok else "rollback failed") + f": {result.detail}"
        except RolloutError as exc:
            rollback = f"rollback not called: {exc}"
        forge = get_forge("local", repo)
        message = (
            f"Revert {p.commit[:12]}: rolled back by shipyard\n\n{reason}\n\n"
            f"Reverted-Merge: {p.commit}"
        )
        try:
            with MergeQueue(forge, home=self.home, store=self.store).lock(p.target):
                revert = forge.revert(p.target, p.commit, message=message, run_id=run_id)
        except (DeliveryError, RepositoryError) as exc:
            self._stop(run_id, f"the change breached its health threshold ({reason}) but could "
                       f"not be reverted: {exc}; revert it by hand. {rollback}")  # fmt: skip
            return
        seconds = round(self.clock() - breached_at, 3)
        self._emit(run_id, EventType.ROLLOUT_REVERTED,
                   {"revert_commit": revert, "target": p.target, "seconds_to_revert": seconds,
                    "manual": p.manual,
                    "rollback": rollback, "reason": reason})  # fmt: skip
        self._notify(run_id, repo, p, revert=revert, reason=reason, seconds=seconds)

    def _notify(
        self, run_id: str, repo: Path, p: Progress, *, revert: str, reason: str, seconds: float
    ) -> None:
        url = p.config.notify_webhook
        if not url:
            return
        secret = self.environ.get(p.config.deploy.secret_env) or None
        if secret is None:
            self._emit(run_id, EventType.LOG, {"message": "the rollback notification is sent "
                       f"unsigned: set {p.config.deploy.secret_env} to sign it"})  # fmt: skip
        result = notify(url, secret=secret, event="rollout.reverted", payload={
            "run_id": run_id, "repo": str(repo), "target": p.target, "commit": p.commit,
            "revert_commit": revert, "reason": reason, "seconds_to_revert": seconds,
        })  # fmt: skip
        self._emit(run_id, EventType.LOG, {"message": f"rollback notification: {result.detail}",
                                           "ok": result.ok})  # fmt: skip

    # -- people ----------------------------------------------------------------------------------

    def resume(self, run_id: str, *, by: str) -> RunState:
        """Let a stopped rollout go on (a person fixed its health source or deploy hook)."""
        state = self.store.state(run_id)
        if state.status is not RunStatus.ROLLOUT_STOPPED:
            raise RolloutError(f"run {run_id} is {state.status.value}, not a stopped rollout; "
                               "only a stopped rollout can be resumed.")  # fmt: skip
        self._emit(run_id, EventType.ROLLOUT_RESUMED, {"by": by})
        return self.store.state(run_id)

    def revert_now(self, run_id: str, *, by: str, reason: str) -> RunState:
        """Roll back a rollout under way or stopped, at a person's request."""
        with self._lock(run_id) as held:
            if not held:
                raise RolloutError(f"another runner is advancing run {run_id}; try again shortly.")
            state = self.store.state(run_id)  # under the lock: a watcher may just have finished it
            if state.status not in (RunStatus.ROLLING_OUT, RunStatus.ROLLOUT_STOPPED):
                raise RolloutError(f"run {run_id} is {state.status.value}; only a rollout under "
                                   "way or stopped can be rolled back.")  # fmt: skip
            p = self.progress_of(run_id)
            if not p.revert_started:
                self._emit(run_id, EventType.ROLLOUT_BREACHED,
                           {"reason": f"{reason} (by {by})", "manual": True, "by": by,
                            "at": self.clock()})  # fmt: skip
                p = self.progress_of(run_id)
            self._revert(run_id, Path(str(state.task["repo"])), p, f"{reason} (by {by})")
        return self.store.state(run_id)

    # -- plumbing --------------------------------------------------------------------------------

    def _call(
        self, run_id: str, repo: Path, p: Progress, *, stage: int, percent: float,
        rollback: bool = False,
    ) -> StageCall:  # fmt: skip
        return StageCall(
            run_id=run_id, repo=repo, target=p.target, commit=p.commit,
            previous_commit=p.previous_commit, stage=stage, percent=percent,
            action="rollback" if rollback else "deploy",
        )  # fmt: skip

    def _stop(self, run_id: str, reason: str) -> None:
        self._emit(run_id, EventType.ROLLOUT_STOPPED, {"reason": reason, "at": self.clock()})

    def _emit(self, run_id: str, kind: EventType, data: dict[str, Any]) -> None:
        event = self.store.append(run_id, kind, data)
        if self.listener is not None:
            self.listener(run_id, kind.value, event.data)

    @contextlib.contextmanager
    def _lock(self, run_id: str) -> Iterator[bool]:
        path = self.home / "locks" / f"rollout-{run_id}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def _summary(state: RunState) -> str:
    r = state.rollout or {}
    if state.status is RunStatus.ROLLING_OUT:
        return f"stage {r.get('stage', 0)} ({r.get('percent', 0):g} %)"
    if state.status is RunStatus.ROLLED_BACK:
        return f"rolled back as {str(r.get('revert_commit', ''))[:12]}: {r.get('reason', '')}"
    if state.status is RunStatus.ROLLOUT_STOPPED:
        return f"stopped: {r.get('reason', '')}"
    return "rolled out to every stage" if r else state.status.value
