"""The local executor: runs a task's blueprint in this process, one node after another."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import shipyard
from shipyard.blueprints import RunContext, execute, get_blueprint
from shipyard.blueprints.engine import EventListener
from shipyard.events import EventType, RunState
from shipyard.model import Task
from shipyard.store import Store


class LocalExecutor:
    """Creates the run record, then walks the blueprint synchronously."""

    name = "local"

    def __init__(self, *, store: Store, home: Path, listener: EventListener | None = None) -> None:
        self.store = store
        self.home = home
        self.listener = listener

    def run(self, task: Task) -> RunState:
        blueprint = get_blueprint(task.blueprint)
        run_id = self.store.create_run(task)
        ctx = RunContext(
            run_id=run_id, task=task, store=self.store, home=self.home, listener=self.listener
        )
        if self.listener is not None:
            self.listener(run_id, EventType.RUN_CREATED.value, {"task": task.title})
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
        execute(blueprint, ctx)
        return self.store.state(run_id)


__all__ = ["EventListener", "LocalExecutor"]
