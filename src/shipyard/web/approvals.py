"""Approvals that continue after the request: checked at once, merged in the background.

Approving can take minutes: when the target branch moved since the change was verified, the merge
queue rebases the change and runs the gates again before it merges. The API and the dashboard
therefore check what can be checked at once (the run waits for review, the approver may approve
it) and answer; ``App.approve`` then runs on a small thread pool of the server and the run's page
follows it live. One approval per run is in progress at a time: a second click while it is under
way is told so and starts nothing. Whatever happens, the merge goes through the merge queue, which
merges a run at most once.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from shipyard.app import App, check_reviewer
from shipyard.config import load_config
from shipyard.errors import NotFound, ShipyardError
from shipyard.events import EventType, RunState
from shipyard.model import RunStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Started:
    """What an approval request did: ``started`` is false when one was already under way."""

    state: RunState
    started: bool


class Approvals:
    """Approvals under way in this server, each on one of ``threads`` background threads."""

    def __init__(self, app: App, *, threads: int = 2) -> None:
        self.app = app
        self.threads = threads
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._running: dict[str, Future[None]] = {}

    def start(self, run_id: str, *, by: str, comment: str) -> Started:
        """Check the approval, then let it continue in the background; raises what ``check`` raises."""
        with self._lock:
            state = self.app.run(run_id)
            if state.run_id in self._running:
                return Started(state=state, started=False)
            self.check(state, by=by)
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="shipyard-approve")
            future = self._pool.submit(self._approve, state.run_id, by, comment)
            self._running[state.run_id] = future
        return Started(state=state, started=True)

    def check(self, state: RunState, *, by: str) -> None:
        """What can be refused at once: a run not waiting for review, or its requester approving."""
        if state.status is not RunStatus.AWAITING_REVIEW:
            raise NotFound(
                f"run {state.run_id} is {state.status.value}, not waiting for review; "
                "`shipyard review list` shows the runs that are."
            )
        loaded = load_config(Path(str(state.task.get("repo", "."))))
        check_reviewer(
            requested_by=str(state.task.get("requested_by") or ""),
            reviewer=by,
            allow_self=loaded.config.review.allow_self_approval,
            source=loaded.source_name,
        )

    def approving(self, run_id: str) -> bool:
        """Whether an approval of ``run_id`` is under way in this server."""
        with self._lock:
            return run_id in self._running

    def wait(self, run_id: str, timeout: float | None = None) -> None:
        """Wait until the approval of ``run_id`` under way (if any) ended (for tests and shutdown)."""
        with self._lock:
            future = self._running.get(run_id)
        if future is not None:
            future.exception(timeout=timeout)

    def shutdown(self, *, wait: bool = True) -> None:
        """Let approvals under way finish (with ``wait``), then stop the threads."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=wait)

    def _approve(self, run_id: str, by: str, comment: str) -> None:
        try:
            self.app.approve(run_id, by=by, comment=comment)
        except ShipyardError as exc:
            # The request that started it has answered already: the run's record says what happened.
            self.app.store.append(
                run_id, EventType.LOG, {"message": f"the approval by {by} did not complete: {exc}"}
            )
        except Exception:
            log.exception("approving run %s failed", run_id)
            raise
        finally:
            with self._lock:
                self._running.pop(run_id, None)


__all__ = ["Approvals", "Started"]
