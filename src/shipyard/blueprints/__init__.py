"""Blueprints: named node graphs that turn a task into a delivered (or halted) change."""

from __future__ import annotations

from importlib import import_module

from shipyard.blueprints.engine import Blueprint, RunContext, Step, StopRun, execute
from shipyard.errors import BlueprintError

BLUEPRINTS = {
    "deps": "shipyard.blueprints.deps:DEPS",
    "submit": "shipyard.blueprints.submit:SUBMIT",
    "task": "shipyard.blueprints.task:TASK",
    "fix-tests": "shipyard.blueprints.task:FIX_TESTS",
    "lint-fix": "shipyard.blueprints.task:LINT_FIX",
    "ci-fix": "shipyard.blueprints.task:CI_FIX",
    "agent": "shipyard.blueprints.external:EXTERNAL",
}


def get_blueprint(name: str) -> Blueprint:
    """The blueprint registered under ``name``, imported on first use."""
    try:
        target = BLUEPRINTS[name]
    except KeyError:
        valid = ", ".join(sorted(BLUEPRINTS))
        raise BlueprintError(f"Unknown blueprint {name!r}. Valid blueprints: {valid}.") from None
    module, attr = target.split(":")
    blueprint: Blueprint = getattr(import_module(module), attr)
    return blueprint


__all__ = ["BLUEPRINTS", "Blueprint", "RunContext", "Step", "StopRun", "execute", "get_blueprint"]
