"""The Sandbox protocol: run a command over a workspace with nothing of the host leaking in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

WORKSPACE = "/workspace"
"""Where the workspace appears inside every sandbox."""


@dataclass(frozen=True, kw_only=True)
class Mount:
    """A host path made visible inside the sandbox at ``target``; read-only unless ``writable``."""

    source: Path
    target: str
    writable: bool = False


@dataclass(frozen=True, kw_only=True)
class Limits:
    """Resource limits for one sandboxed command. ``None`` leaves a limit unset."""

    wall_seconds: float = 600.0
    cpu_seconds: int | None = 600
    memory_bytes: int | None = 4 * 1024**3
    max_processes: int | None = 512
    file_size_bytes: int | None = 1024**3
    output_bytes: int = 4 * 1024**2
    tmp_bytes: int = 512 * 1024**2
    disk_bytes: int | None = 8 * 1024**3
    """How much the workspace and writable mounts may grow; polled, so a burst can overshoot briefly."""


@dataclass(frozen=True, kw_only=True)
class CommandResult:
    """What a sandboxed command did."""

    argv: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str
    duration_seconds: float
    timed_out: bool = False
    output_truncated: bool = False
    limits_applied: tuple[str, ...] = field(default=())
    violations: tuple[str, ...] = field(default=())
    """Limits the command hit, each ``"<limit>: <what happened>"`` (e.g. ``"disk: ..."``)."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


class Sandbox(Protocol):
    """Runs one command in isolation over a workspace.

    The workspace is mounted writable at ``/workspace`` (its ``.git`` read-only); ``mounts`` add more
    paths. The command sees only ``env``; there is no network unless ``network`` is true.
    """

    name: str

    def run(
        self,
        argv: Sequence[str],
        *,
        workspace: Path,
        env: Mapping[str, str] | None = None,
        mounts: Sequence[Mount] = (),
        limits: Limits | None = None,
        cwd: str = WORKSPACE,
        network: bool = False,
    ) -> CommandResult: ...
