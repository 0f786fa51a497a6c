"""Advancing a run one node at a time, under a lease, from wherever its record says it stands.

Used by the Celery workers: each message advances a run by one node (more when a node leaves
results that cannot be carried to another process, like a live agent session), then hands the
lease on with a ticket for the next message. After a crash the run resumes after its last node
whose results were checkpointed; a node that had started again begins on a workspace reset to
the state that checkpoint saw, so re-executing it is harmless.
"""

from __future__ import annotations

import enum
import logging
import pickle
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.blueprints import RunContext, get_blueprint
from shipyard.blueprints.engine import Blueprint, EventListener, run_step
from shipyard.errors import ShipyardError
from shipyard.events import Event, EventType, fold
from shipyard.executor.settings import ExecutorSettings
from shipyard.failpoints import failpoint
from shipyard.gitcmd import git
from shipyard.model import RunStatus, Task
from shipyard.store import Store
from shipyard.store.leases import Lease, Leases, Taken
from shipyard.workspace import Workspace

log = logging.getLogger(__name__)

_IN_PROGRESS = (RunStatus.QUEUED, RunStatus.RUNNING)


class LeaseLost(Exception):
    """Another worker took this run over (this one stopped renewing in time): stop writing it.

    Deliberately not a ShipyardError: the run's record is no longer this process's to change.
    """


@dataclass(frozen=True)
class Progress:
    """Where a run stands, read from its events alone."""

    next_index: int | None  # the node to execute next; None once the walk is over
    finished_index: int  # the last node that finished (-1: none)
    started_again: bool  # the next node had started before and never finished
    stop: dict[str, Any] | None  # a final event a stopping node named and nobody recorded
    reported: bool  # the finish hook (the report) ran after the walk ended


def progress(blueprint: Blueprint, events: list[Event]) -> Progress:
    """Pure: the next node of ``blueprint`` for a run with ``events``."""
    names = [s.name for s in blueprint.steps]
    finished, over, reported = -1, False, False
    started: set[str] = set()
    stop: dict[str, Any] | None = None
    for event in events:
        node = str(event.data.get("node", ""))
        if event.type == EventType.NODE_STARTED:
            started.add(node)
        elif event.type == EventType.NODE_FINISHED and node in names:
            finished = max(finished, names.index(node))
            if isinstance(event.data.get("stop"), dict):
                over, stop = True, dict(event.data["stop"])
        elif event.type == EventType.NODE_FAILED:
            over = True
        elif stop is not None and event.type == stop.get("event"):
            stop = None
        if event.type == EventType.LOG and "report" in event.data and over:
            reported = True
    status = fold(events).status
    if status not in _IN_PROGRESS:
        over = True
    if stop is not None and status not in _IN_PROGRESS:
        stop = None  # something else settled the run
    if finished + 1 >= len(names):
        over = True
    if over:
        return Progress(None, finished, False, stop, reported)
    upcoming = finished + 1
    return Progress(upcoming, finished, names[upcoming] in started, None, False)


class Outcome(enum.Enum):
    NEXT = "next"  # hand on: a message with ``ticket`` should advance the run again
    DONE = "done"  # the run is over and reported
    STALE = "stale"  # the message was a duplicate or stale; nothing was done
    BUSY = "busy"  # the repository is at its limit: try the same message again later


@dataclass(frozen=True)
class Advanced:
    outcome: Outcome
    run_id: str
    ticket: int | None = None
    node: str | None = None  # the node the next message will execute


class Heartbeat:
    """Renews a lease every third of its length until stopped; ``check`` raises once it is lost."""

    def __init__(self, leases: Leases, lease: Lease, seconds: float) -> None:
        self.leases, self.lease, self.seconds = leases, lease, seconds
        self.node: str | None = None
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="shipyard-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.seconds)

    def check(self) -> None:
        if self._lost.is_set():
            raise LeaseLost(
                f"run {self.lease.run_id}: the lease of {self.lease.owner} expired and another "
                "worker took the run over; this worker stops writing it."
            )

    def _beat(self) -> None:
        renewed = time.monotonic()
        while not self._stop.wait(self.seconds / 3):
            try:
                if not self.leases.renew(self.lease, seconds=self.seconds, node=self.node):
                    self._lost.set()
                    return
                renewed = time.monotonic()
            except ShipyardError as exc:  # the store is away: keep trying until the lease ends
                log.warning("renewing the lease of run %s: %s", self.lease.run_id, exc)
                if time.monotonic() - renewed > self.seconds:
                    self._lost.set()
                    return


class Stepper:
    """Advances runs of ``store`` as the worker ``owner``."""

    def __init__(
        self,
        store: Store,
        *,
        home: Path,
        owner: str,
        settings: ExecutorSettings,
        listener: EventListener | None = None,
    ) -> None:
        self.store, self.home, self.owner, self.settings = store, home, owner, settings
        self.leases = Leases(store)
        self.listener = listener

    def advance(self, run_id: str, ticket: int) -> Advanced:
        """Execute the run's next node(s) if ``ticket`` is current; see the module docstring."""
        taken = self.leases.acquire(
            run_id,
            ticket,
            owner=self.owner,
            seconds=self.settings.lease_seconds,
            repo_limit=self.settings.repo_concurrency,
        )
        if taken is Taken.STALE:
            return Advanced(Outcome.STALE, run_id)
        if taken is Taken.BUSY:
            return Advanced(Outcome.BUSY, run_id, ticket)
        state = self.store.state(run_id)
        lease = Lease(run_id=run_id, owner=self.owner, repo=str(state.task.get("repo", "")))
        try:
            with Heartbeat(self.leases, lease, self.settings.lease_seconds) as beat:
                return self._advance(lease, beat)
        except LeaseLost as exc:
            log.warning("%s", exc)
            return Advanced(Outcome.STALE, run_id)

    def _advance(self, lease: Lease, beat: Heartbeat) -> Advanced:
        run_id = lease.run_id
        events = self.store.events(run_id)
        task = Task(**fold(events).task)
        blueprint = get_blueprint(task.blueprint)
        ctx = RunContext(
            run_id=run_id, task=task, store=self.store, home=self.home,
            listener=self._listener, fence=beat.check,
        )  # fmt: skip
        where = progress(blueprint, events)
        index = self._restore(ctx, blueprint, where)
        if index is None:
            return self._finish(lease, blueprint, ctx, where)
        if where.started_again or index <= where.finished_index:
            ctx.log(
                f"resuming at node {blueprint.steps[index].name} after an interrupted attempt"
                + (" (from its last checkpoint)" if index <= where.finished_index else "")
            )
        portable = False

        def save(i: int, c: RunContext) -> None:
            nonlocal portable
            portable = self._save(c, blueprint, i)

        while True:
            beat.node = blueprint.steps[index].name
            try:
                goes_on = run_step(blueprint, index, ctx, checkpoint=save)
            except LeaseLost:
                raise
            except Exception:  # a bug: the engine recorded it; end the run with its report
                log.exception("run %s: node %s crashed", run_id, blueprint.steps[index].name)
                goes_on = False
            if not goes_on:
                return self._finish(lease, blueprint, ctx, None)
            index += 1
            if portable:
                break
            portable = False  # carry on here: the next node needs what only this process holds
        ticket = self.leases.hand_off(lease)
        if ticket is None:
            raise LeaseLost(f"run {run_id}: the lease was taken over before it could be handed on")
        return Advanced(Outcome.NEXT, run_id, ticket, blueprint.steps[index].name)

    def _restore(self, ctx: RunContext, blueprint: Blueprint, where: Progress) -> int | None:
        """Load the newest usable checkpoint into ``ctx``; the index of the node to run next."""
        upto = where.finished_index
        saved = self.leases.checkpoint(ctx.run_id, upto=upto) if upto >= 0 else None
        restored = -1
        head: str | None = None
        if saved is not None:
            try:
                # Written by shipyard into its own store, which every worker already trusts.
                data = pickle.loads(saved.data)
                ctx.values.update(data["values"])
                ctx.config = data["config"]
                head = data["head"]
                restored = saved.index
            except Exception:  # written by another version: start over from the first node
                log.warning("run %s: checkpoint unreadable, starting over", ctx.run_id)
                ctx.values.clear()
                restored = -1
        workspace = ctx.values.get("workspace")
        if isinstance(workspace, Workspace) and head is not None:
            if not workspace.path.is_dir():
                if where.next_index is not None:
                    ctx.log(f"workspace {workspace.path} is gone; starting the run over")
                    ctx.values.clear()
                    return 0
            elif where.next_index is not None:
                # Whatever an interrupted node left in the workspace goes; its commits too.
                git("reset", "--quiet", "--hard", head, cwd=workspace.path)
                git("clean", "-q", "-ffdx", cwd=workspace.path)
        if where.next_index is None:
            return None
        return min(where.next_index, restored + 1)

    def _save(self, ctx: RunContext, blueprint: Blueprint, index: int) -> bool:
        """Checkpoint what the run holds after node ``index``; False when it cannot leave this
        process (a live agent session, a server connection)."""
        workspace = ctx.values.get("workspace")
        head = None
        if isinstance(workspace, Workspace) and workspace.path.is_dir():
            head = git("rev-parse", "--verify", "HEAD", cwd=workspace.path).stdout.strip()
        try:
            data = pickle.dumps(
                {"values": dict(ctx.values), "config": ctx.config, "head": head},
                protocol=pickle.HIGHEST_PROTOCOL,
            )
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            log.info("run %s: no checkpoint after %s (%s)", ctx.run_id, index, exc)
            return False
        if ctx.fence is not None:
            ctx.fence()
        self.leases.save_checkpoint(ctx.run_id, index, blueprint.steps[index].name, data)
        return True

    def _finish(
        self, lease: Lease, blueprint: Blueprint, ctx: RunContext, where: Progress | None
    ) -> Advanced:
        if where is not None and where.stop is not None:
            ctx.emit(EventType(where.stop["event"]), dict(where.stop.get("data") or {}))
        if (where is None or not where.reported) and blueprint.finish is not None:
            try:
                blueprint.finish(ctx)
            except LeaseLost:
                raise
            except Exception:  # a report that cannot be written must not hide the outcome
                log.exception("finishing run %s failed", ctx.run_id)
        self.leases.finish(lease)
        return Advanced(Outcome.DONE, lease.run_id)

    def _listener(self, run_id: str, kind: str, data: dict[str, Any]) -> None:
        if kind == EventType.GATE_FINISHED.value:
            failpoint("executor.after_gate")
        if self.listener is not None:
            self.listener(run_id, kind, data)


__all__ = ["Advanced", "LeaseLost", "Outcome", "Progress", "Stepper", "progress"]
