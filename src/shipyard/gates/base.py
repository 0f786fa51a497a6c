"""The Gate protocols and what every gate is handed: a fresh tree, a sandbox and its installed environment.

Three shapes of gate, all returning ``GateResult``:

- a ``TreeGate`` measures one committed tree (``measure``), and turns a baseline and a change
  measurement into the verdict on the change (``compare``). Measurements are cached per tree and
  environment, so a base commit is measured once for many runs.
- a ``PairGate`` needs both trees at once (benchmarks are compared in one gate run, on one machine state).
- a ``DiffGate`` reads only the change itself (the text of each changed file before and after).

Gates never decide what happens to the change: they return facts, and the policy decides.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from shipyard.config import GatesConfig
from shipyard.gates.environment import PythonEnv
from shipyard.model import ChangedFile, GateResult
from shipyard.sandbox.base import WORKSPACE, CommandResult, Limits, Mount, Sandbox

TOOLS_DIR = "/opt/shipyard/tools"
"""Where shipyard's own environment (ruff, mypy, bandit, pip...) is mounted read-only in the sandbox.

Analysis tools come from shipyard's pinned environment, never from the tree under test, so the change
cannot swap the tool that judges it; the baseline and the change are checked by the same versions.
"""
TOOLS_PYTHON = f"{TOOLS_DIR}/bin/python"


def tools_mount() -> Mount:
    """Shipyard's virtual environment, read-only, at ``TOOLS_DIR``."""
    return Mount(source=Path(sys.prefix), target=TOOLS_DIR)


@dataclass(frozen=True, kw_only=True)
class GateContext:
    """Inputs of one gate run on one tree.

    ``tree`` is a fresh export of the committed tree (no ``.git``, nothing left over from the change
    step); ``scratch`` is a harness-owned directory mounted at ``/env`` for reports; ``wheelhouse`` holds
    every distribution the tree's requirements need, so the sandbox installs with no network; ``env`` is
    the tree's installed environment (``None`` when installation failed: gates that need it skip).
    """

    tree: Path
    scratch: Path
    wheelhouse: Path
    sandbox: Sandbox
    config: GatesConfig
    phase: str  # "baseline" or "change"
    env: PythonEnv | None = None

    def run(
        self,
        argv: Sequence[str],
        *,
        limits: Limits,
        env: Mapping[str, str] | None = None,
        mounts: Sequence[Mount] = (),
        tools: bool = False,
        cwd: str = WORKSPACE,
    ) -> CommandResult:
        """Run ``argv`` in a fresh sandbox on the tree with the tree's environment mounted.

        ``tools`` also mounts shipyard's own environment at ``TOOLS_DIR`` (for ``TOOLS_PYTHON -m ruff``
        and friends); ``env`` adds variables to the environment's own.
        """
        base_mounts: tuple[Mount, ...] = self.env.mounts if self.env else ()
        variables = dict(self.env.env) if self.env else {}
        variables.update(env or {})
        extra = (tools_mount(),) if tools else ()
        return self.sandbox.run(
            list(argv),
            workspace=self.tree,
            env=variables,
            mounts=(*base_mounts, *extra, *mounts),
            limits=limits,
            cwd=cwd,
        )


@dataclass(frozen=True, kw_only=True)
class ChangeView:
    """The change as gates that compare need it: each changed file's text before and after.

    ``allowed_removals`` are test ids (or fnmatch patterns) the task explicitly allows removing.
    """

    files: tuple[ChangedFile, ...] = ()
    allowed_removals: tuple[str, ...] = ()
    renames: dict[str, str] = field(default_factory=dict)
    """New path to old path, for findings that moved with their file."""

    @classmethod
    def of(cls, files: Sequence[ChangedFile], allowed_removals: Sequence[str] = ()) -> ChangeView:
        renames = {f.path: f.old_path for f in files if f.old_path and f.old_path != f.path}
        return cls(files=tuple(files), allowed_removals=tuple(allowed_removals), renames=renames)

    def added_lines(self) -> dict[str, set[int]]:
        """For each file present after the change, the 1-based line numbers the change added or edited.

        Files without text (binary, too large, deleted) are left out.
        """
        out: dict[str, set[int]] = {}
        for f in self.files:
            if f.after is None:
                continue
            after = f.after.splitlines()
            before = (f.before or "").splitlines()
            lines: set[int] = set()
            matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
            for tag, _i1, _i2, j1, j2 in matcher.get_opcodes():
                if tag in ("replace", "insert"):
                    lines.update(range(j1 + 1, j2 + 1))
            if lines:
                out[f.path] = lines
        return out


class TreeGate(Protocol):
    """A check run on one committed tree, whose baseline and change results are then compared."""

    name: str

    def applies(self, ctx: GateContext) -> bool:
        """Whether the gate has anything to check in this tree (mypy configured, benchmarks present)."""
        ...

    def measure(self, ctx: GateContext) -> GateResult:
        """Measure one tree. The result must be JSON-serialisable: it is cached and recorded."""
        ...

    def compare(self, baseline: GateResult, change: GateResult, view: ChangeView) -> GateResult:
        """The verdict on the change: what it made worse than the baseline, as facts for the policy."""
        ...


class PairGate(Protocol):
    """A check that needs the baseline and the change side by side in one run."""

    name: str

    def applies(self, ctx: GateContext) -> bool: ...

    def run(self, baseline: GateContext, change: GateContext, view: ChangeView) -> GateResult: ...


class DiffGate(Protocol):
    """A check of the change's text alone; it runs no code of the tree."""

    name: str

    def check(self, view: ChangeView, config: GatesConfig) -> GateResult: ...
