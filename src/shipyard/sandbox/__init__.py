"""Sandboxes: run a command over a workspace with nothing of the host leaking in (bubblewrap)."""

from __future__ import annotations

from importlib import import_module

from shipyard.errors import ConfigError
from shipyard.sandbox.base import WORKSPACE, CommandResult, Limits, Mount, Sandbox
from shipyard.sandbox.bwrap import BwrapSandbox, ensure_available

SANDBOXES = {"bwrap": "shipyard.sandbox.bwrap:BwrapSandbox"}


def get_sandbox(name: str = "bwrap") -> Sandbox:
    """The sandbox backend registered under ``name``. There is deliberately no 'none' backend."""
    try:
        module, attr = SANDBOXES[name].split(":")
    except KeyError:
        raise ConfigError(
            f"Unknown sandbox {name!r}. Valid sandboxes: {', '.join(sorted(SANDBOXES))}."
        ) from None
    sandbox: Sandbox = getattr(import_module(module), attr)()
    return sandbox


__all__ = [
    "SANDBOXES",
    "WORKSPACE",
    "BwrapSandbox",
    "CommandResult",
    "Limits",
    "Mount",
    "Sandbox",
    "ensure_available",
    "get_sandbox",
]
