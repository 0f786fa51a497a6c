"""The Gate protocol and what every gate is handed: a fresh tree, a sandbox and an offline wheelhouse."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from shipyard.config import GatesConfig
from shipyard.model import GateResult
from shipyard.sandbox.base import Sandbox


@dataclass(frozen=True, kw_only=True)
class GateContext:
    """Inputs of one gate run.

    ``tree`` is a fresh export of the committed tree (no ``.git``, nothing left over from the change
    step); ``scratch`` is a harness-owned directory for the environment and reports; ``wheelhouse`` holds
    every distribution the tree's requirements need, so the sandbox installs with no network.
    """

    tree: Path
    scratch: Path
    wheelhouse: Path
    sandbox: Sandbox
    config: GatesConfig
    phase: str  # "baseline" or "change"


class Gate(Protocol):
    """A check run by the harness. It returns facts; it never decides what happens to the change."""

    name: str

    def run(self, ctx: GateContext) -> GateResult: ...
