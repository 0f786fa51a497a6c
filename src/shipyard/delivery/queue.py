"""The merge queue: the only way a run's change lands on a protected branch, exactly once.

Merges into one target are serialised by a lock per (repository, target): a PostgreSQL advisory
lock when the store is PostgreSQL (workers on different hosts share it), always with a file lock
under the shipyard home beneath it (one host). Under the lock the queue first looks for the run's
``Shipyard-Run`` trailer in the target's history, so a retry after a crash records the earlier
merge instead of merging again. If the target moved since the change was verified, the change is
rebased onto it; a different tree is verified again and the policy decides again before anything
lands. A conflict becomes a review naming the conflicting files.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from shipyard.blueprints.engine import RunContext
from shipyard.errors import DeliveryError, MergeConflict, ShipyardError
from shipyard.events import EventType, RunState
from shipyard.failpoints import failpoint
from shipyard.forge import Forge, get_forge
from shipyard.forge.local import TRAILER
from shipyard.model import Action, Decision
from shipyard.rollout.start import begin_if_configured
from shipyard.store import Store
from shipyard.store.locks import AdvisoryLock, shared_locks

log = logging.getLogger(__name__)

Reverify = Callable[[str, str], Decision]
"""Measure ``head`` against ``base`` with the gates and return the policy's new decision."""

MAX_ATTEMPTS = 3
"""Times the queue chases a target that keeps moving before it hands the change to a person."""


@dataclass(frozen=True, kw_only=True)
class Verified:
    """What the gates measured: ``head`` against ``base``, which had ``tree`` as its result."""

    base: str
    head: str
    tree: str


@dataclass(frozen=True, kw_only=True)
class Landing:
    """What the queue did with a change: merged it, handed it to review, or halted it."""

    outcome: str  # merged | review | halted
    commit: str | None = None
    detail: str = ""
    reverified: bool = False


def with_trailer(message: str, run_id: str) -> str:
    """``message`` ending in the ``Shipyard-Run`` trailer that makes the merge findable."""
    return f"{message.rstrip()}\n\n{TRAILER}: {run_id}\n"


class MergeQueue:
    """Serialises every merge into a target branch of one forge; see the module docstring."""

    def __init__(
        self,
        forge: Forge,
        *,
        home: Path,
        store: Store | None = None,
        wait_seconds: float = 1800.0,
    ) -> None:
        self.forge = forge
        self.locks = home / "locks"
        self.store = store
        self.wait_seconds = wait_seconds

    @contextlib.contextmanager
    def lock(self, target: str, *, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """Hold the queue of ``target``; waits for another process holding it, up to a limit.

        With a PostgreSQL store the advisory lock comes first (every host), then the file lock
        (this host, and callers that name no store); always in that order, so they cannot
        deadlock.
        """
        self.locks.mkdir(parents=True, exist_ok=True)
        name = f"{self.forge.url}\0{target}"
        deadline = time.monotonic() + self.wait_seconds
        pause = 0.0

        def waiting() -> None:
            nonlocal pause
            if not pause and on_wait is not None:
                on_wait()
            if time.monotonic() > deadline:
                raise DeliveryError(
                    f"the merge queue of {target} stayed busy for {self.wait_seconds:g} s; "
                    "nothing was merged. Check for a stuck shipyard process, then run "
                    "`shipyard recover`."
                )
            pause = min(pause * 1.5 or 0.05, 1.0)  # many waiters do not hammer the database
            time.sleep(pause)

        with contextlib.ExitStack() as held:
            if self.store is not None and shared_locks(self.store):
                shared = held.enter_context(AdvisoryLock(self.store, f"merge-queue\0{name}"))
                while not shared.try_acquire():
                    waiting()
            key = hashlib.sha256(name.encode()).hexdigest()[:24]
            fd = os.open(self.locks / f"merge-{key}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            held.callback(os.close, fd)  # closing releases the lock
            while not _try_flock(fd):
                waiting()
            yield

    def land(
        self,
        ctx: RunContext,
        *,
        branch: str,
        into: str,
        verified: Verified,
        message: str,
        proceed: frozenset[Action],
        reverify: Reverify | None,
        event: EventType = EventType.DELIVERY_MERGED,
        follow: bool = False,
    ) -> Landing:
        """Merge ``branch`` into ``into`` once, re-verifying first if ``into`` moved.

        ``proceed`` lists the actions a new decision may take for the merge to go ahead (an
        approved review proceeds on anything but HALT; an automatic merge only on MERGE). With
        ``follow`` the change lands on whatever ``into`` holds (a staging branch), unverified.
        """
        waiting = f"waiting for the merge queue of {into}: another run is merging"
        with self.lock(into, on_wait=lambda: ctx.log(waiting)):
            reverified = False
            for _ in range(MAX_ATTEMPTS):
                # Again after a lost race too: whoever moved the target may have merged this run.
                done = self.forge.find_merge(into, ctx.run_id)
                if done is not None:
                    return self._merged(ctx, branch=branch, into=into, commit=done, event=event)
                current = self.forge.branch_head(into)
                if current is None:
                    raise DeliveryError(f"there is no branch {into}; nothing was merged.")
                if follow:
                    verified = replace(verified, base=current)
                if current != verified.base:
                    moved = self._catch_up(ctx, branch, into, verified, current, reverify, proceed)
                    if isinstance(moved, Landing):
                        return moved
                    verified, measured = moved
                    reverified = reverified or measured
                ctx.emit(
                    EventType.DELIVERY_INTENT,
                    {
                        "action": "merge",
                        "key": f"{ctx.run_id}:merge:{into}",
                        "branch": branch,
                        "target": into,
                        "expected_target": verified.base,
                        "tree": verified.tree,
                        "outcome_event": event.value,
                    },
                )
                failpoint("merge.after_intent")
                try:
                    commit = self.forge.merge(
                        branch,
                        into,
                        message=with_trailer(message, ctx.run_id),
                        expected_target=verified.base,
                    )
                except MergeConflict as exc:
                    return self._review(ctx, branch, into, str(exc), conflicts=exc.paths)
                except DeliveryError as exc:
                    if self.forge.branch_head(into) == verified.base:
                        raise  # not a race: the target did not move, so retrying will not help
                    ctx.log(f"{into} moved while merging ({exc}); catching up")
                    continue
                failpoint("merge.after_ref_update")
                return self._merged(
                    ctx, branch=branch, into=into, commit=commit, event=event, reverified=reverified
                )
            return self._review(
                ctx,
                branch,
                into,
                f"{into} kept moving during {MAX_ATTEMPTS} attempts to merge; a person should "
                "merge this change",
            )

    def _catch_up(
        self,
        ctx: RunContext,
        branch: str,
        into: str,
        verified: Verified,
        current: str,
        reverify: Reverify | None,
        proceed: frozenset[Action],
    ) -> tuple[Verified, bool] | Landing:
        """Rebase onto the moved target; verify again unless the tree is what was verified.

        Returns the new verified state and whether the gates ran again, or how the change left
        the queue (review, halt)."""
        ctx.log(
            f"{into} moved since verification ({verified.base[:12]} → {current[:12]}); "
            f"rebasing {branch}"
        )
        try:
            head = self.forge.rebase(branch, onto=into)
        except MergeConflict as exc:
            return self._review(
                ctx,
                branch,
                into,
                f"{branch} conflicts with the current {into} in {', '.join(exc.paths)}",
                conflicts=exc.paths,
            )
        failpoint("merge.after_rebase")
        tree = self.forge.tree_of(head)
        if tree == verified.tree:
            ctx.log("the rebased tree is identical to the verified one; reusing the gate results")
            return Verified(base=current, head=head, tree=tree), False
        if reverify is None:
            return self._review(
                ctx, branch, into, f"{into} moved and this change cannot be verified again here"
            )
        decision = reverify(current, head)
        if decision.action not in proceed:
            if decision.action is Action.HALT:
                return self._halt(ctx, branch, into, decision)
            return self._review(
                ctx,
                branch,
                into,
                f"verified again on the current {into}, the policy now says "
                f"{decision.action.value}: {decision.reasons[0].message if decision.reasons else ''}",
            )
        return Verified(base=current, head=head, tree=tree), True

    def _merged(
        self,
        ctx: RunContext,
        *,
        branch: str,
        into: str,
        commit: str,
        event: EventType,
        reverified: bool = False,
    ) -> Landing:
        ctx.emit(
            event, {"target": into, "commit": commit, "branch": branch, "reverified": reverified}
        )
        if event is EventType.DELIVERY_MERGED:  # before anything else can fail: never unwatched
            _start_rollout(ctx, into, commit)
        failpoint("merge.after_outcome")
        self.forge.delete_branch(branch)
        return Landing(outcome="merged", commit=commit, reverified=reverified)

    def _review(
        self,
        ctx: RunContext,
        branch: str,
        into: str,
        reason: str,
        conflicts: list[str] | None = None,
    ) -> Landing:
        data: dict[str, Any] = {"branch": branch, "target": into, "reason": reason}
        head = self.forge.branch_head(into)
        if head is not None:
            data["base"] = head
        if conflicts:
            data["conflicts"] = conflicts
        ctx.emit(EventType.REVIEW_REQUESTED, data)
        return Landing(outcome="review", detail=reason)

    def _halt(self, ctx: RunContext, branch: str, into: str, decision: Decision) -> Landing:
        reason = decision.reasons[0].message if decision.reasons else "halted by policy"
        self.forge.delete_branch(branch)
        ctx.emit(
            EventType.RUN_HALTED,
            {"reason": f"verified again on the current {into}: {reason}", "branch": branch},
        )
        return Landing(outcome="halted", detail=reason)


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _start_rollout(ctx: RunContext, target: str, commit: str) -> None:
    """Begin the staged rollout of a merged change when its repository configures one."""
    try:
        begin_if_configured(ctx.emit, repo=Path(ctx.task.repo), target=target, commit=commit)
    except ShipyardError as exc:  # the merge stands; say why it is not rolled out
        ctx.log(f"rollout not started: {exc}")


def recover(ctx_for: Callable[[str], RunContext], runs: list[RunState], *, home: Path) -> list[str]:
    """Settle every delivery that a crash left between its intent and its outcome.

    Under the target's queue lock (so a delivery still in progress elsewhere finishes first), a
    merge whose trailer is in the target's history is recorded as done; one that never happened
    leaves its verified branch waiting for review. Returns one line per run settled.
    """
    settled: list[str] = []
    for state in runs:
        intent = state.pending_intent
        if not intent:
            continue
        forge = get_forge("local", Path(state.task["repo"]))
        target = str(intent.get("target") or "")
        branch = str(intent.get("branch") or state.branch or "")
        ctx = ctx_for(state.run_id)
        queue = MergeQueue(forge, home=home, store=ctx.store)
        with queue.lock(target):
            fresh = ctx.store.state(state.run_id)
            if not fresh.pending_intent:
                continue  # settled by the process that was still delivering it
            merged = forge.find_merge(target, state.run_id) if target else None
            if merged is not None:
                event = EventType(str(intent.get("outcome_event", EventType.DELIVERY_MERGED.value)))
                ctx.emit(
                    event,
                    {"target": target, "commit": merged, "branch": branch, "recovered": True},
                )
                if event is EventType.DELIVERY_MERGED:
                    _start_rollout(ctx, target, merged)
                if forge.branch_head(branch) is not None:
                    forge.delete_branch(branch)
                settled.append(f"{state.run_id}: found its merge {merged[:12]} in {target}")
            elif branch and forge.branch_head(branch) is not None:
                reason = "interrupted before it merged; nothing was merged"
                ctx.emit(
                    EventType.REVIEW_REQUESTED,
                    {"branch": branch, "target": target, "reason": reason, "recovered": True},
                )
                settled.append(f"{state.run_id}: {reason}; {branch} waits for review")
            else:
                error = f"interrupted during delivery to {target}, and its branch is gone"
                ctx.emit(EventType.RUN_FAILED, {"error": error, "recovered": True})
                settled.append(f"{state.run_id}: {error}")
    return settled
