"""The local executor: runs a task's blueprint in this process, one node after another."""

from __future__ import annotations

import logging
import platform
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import shipyard
from shipyard.blueprints import RunContext, execute, get_blueprint
from shipyard.blueprints.engine import EventListener
from shipyard.events import EventType, RunState
from shipyard.model import Task
from shipyard.store import Store

log = logging.getLogger(__name__)


def begin_run(store: Store, task: Task, listener: EventListener | None = None) -> str:
    """Record a new run for ``task`` with its reproducibility line; the id of the run.

    Every executor starts runs this way, so a run reads the same whoever executes it.
    """
    blueprint = get_blueprint(task.blueprint)
    run_id = store.create_run(task)
    if listener is not None:
        listener(run_id, EventType.RUN_CREATED.value, {"task": task.title})
    ctx = RunContext(run_id=run_id, task=task, store=store, home=Path("."), listener=listener)
    ctx.emit(
        EventType.LOG,
        {
            "message": f"blueprint {blueprint.name} v{blueprint.version}",
            "reproducibility": {
                "blueprint": blueprint.name,
                "blueprint_version": blueprint.version,
                "shipyard": shipyard.__version__,
                "python": sys.version.split()[0],
                "platform": platform.platform(),
            },
        },
    )
    return run_id


class LocalExecutor:
    """Creates the run record, then walks the blueprint in this process.

    ``run`` walks it synchronously (the CLI); ``submit`` returns at once and walks it on one of
    ``threads`` background threads (the service).
    """

    name = "local"

    def __init__(
        self,
        *,
        store: Store,
        home: Path,
        listener: EventListener | None = None,
        threads: int = 2,
    ) -> None:
        self.store = store
        self.home = home
        self.listener = listener
        self.threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def run(self, task: Task) -> RunState:
        run_id = begin_run(self.store, task, self.listener)
        self._walk(run_id, task)
        return self.store.state(run_id)

    def submit(self, task: Task) -> str:
        run_id = begin_run(self.store, task, self.listener)
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self.threads, thread_name_prefix="shipyard-run"
                )
            future: Future[None] = self._pool.submit(self._walk, run_id, task)
        future.add_done_callback(_log_crash)
        return run_id

    def shutdown(self, *, wait: bool = True) -> None:
        """Wait for submitted runs to finish (with ``wait``), then stop the background threads."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=wait)

    def _walk(self, run_id: str, task: Task) -> None:
        ctx = RunContext(
            run_id=run_id, task=task, store=self.store, home=self.home, listener=self.listener
        )
        execute(get_blueprint(task.blueprint), ctx)


def _log_crash(future: Future[None]) -> None:
    exc = future.exception()
    if exc is not None:  # the run's record already says it failed; keep the traceback for us
        log.error("a submitted run crashed", exc_info=exc)


__all__ = ["EventListener", "LocalExecutor", "begin_run"]
