"""Process and memory limits through cgroups, where the host lets shipyard create them.

RLIMIT_NPROC does not bind processes of host root (the kernel exempts it), so when sandboxes run as root
a pids cgroup is the only real process limit. cgroup v2 is used when delegated, v1 controllers otherwise.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class CgroupLimits:
    """One sandbox's cgroup(s): directories to join and remove afterwards."""

    dirs: tuple[Path, ...]
    applied: tuple[str, ...]

    def join(self) -> None:
        """Move the calling process into the cgroups (runs in the child before exec)."""
        for d in self.dirs:
            (d / "cgroup.procs").write_text(str(os.getpid()))

    def kill(self) -> None:
        """SIGKILL whatever is still in the cgroups: nothing a command started outlives its run."""
        for d in self.dirs:
            if (d / "cgroup.kill").exists():
                (d / "cgroup.kill").write_text("1")
                continue
            for pid in _members(d):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def hits(self) -> tuple[str, ...]:
        """The limits the kernel enforced during the run, as ``CommandResult.violations`` entries."""
        found = []
        for d in self.dirs:
            refused = _counter(d / "pids.events", "max")
            if refused:
                found.append(f"processes: the pids cgroup refused {refused} fork(s)")
            if _counter(d / "memory.events", "oom_kill") or _counter(
                d / "memory.oom_control", "oom_kill"
            ):
                found.append("memory: the memory cgroup's OOM killer ended a process")
        return tuple(found)

    def remove(self) -> None:
        """Kill any member left, then remove the directories (retrying while members exit)."""
        self.kill()
        for d in self.dirs:
            pause = 0.0005
            deadline = time.monotonic() + 2.0
            while True:
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:  # members take a moment to leave after SIGKILL
                    if time.monotonic() > deadline:
                        log.warning("cgroup %s could not be removed: %s", d, exc)
                        break
                    time.sleep(pause)
                    pause = min(pause * 2, 0.05)


def _members(d: Path) -> list[int]:
    try:
        return [int(pid) for pid in (d / "cgroup.procs").read_text().split()]
    except OSError:
        return []


def _counter(path: Path, key: str) -> int:
    """A ``key value`` counter from a cgroup events file; 0 when absent."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return 0
    for line in lines:
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return 0


def create(*, max_processes: int | None, memory_bytes: int | None) -> CgroupLimits | None:
    """A fresh cgroup with the limits set, or None when the host does not allow it."""
    name = f"shipyard-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        if (ROOT / "cgroup.controllers").exists():
            return _v2(ROOT / _current("").lstrip("/") / name, max_processes, memory_bytes)
        return _v1(name, max_processes, memory_bytes)
    except OSError as exc:
        log.debug("cgroups unavailable: %s", exc)
        return None


def _current(controller: str) -> str:
    """This process's cgroup path for a v1 controller ("" for the v2 hierarchy)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        if controller in names.split(",") or (controller == "" and names == ""):
            return path
    return "/"


def _v2(path: Path, max_processes: int | None, memory_bytes: int | None) -> CgroupLimits | None:
    controllers = (path.parent / "cgroup.subtree_control").read_text().split()
    if "pids" not in controllers:
        return None
    path.mkdir()
    applied = []
    if max_processes is not None:
        (path / "pids.max").write_text(str(max_processes))
        applied.append(f"processes={max_processes} (cgroup v2)")
    if memory_bytes is not None and "memory" in controllers:
        (path / "memory.max").write_text(str(memory_bytes))
        applied.append(f"memory={memory_bytes >> 20}MiB (cgroup v2)")
    return CgroupLimits(dirs=(path,), applied=tuple(applied))


def _v1(name: str, max_processes: int | None, memory_bytes: int | None) -> CgroupLimits | None:
    dirs: list[Path] = []
    applied: list[str] = []
    if max_processes is not None and (ROOT / "pids" / "cgroup.procs").exists():
        d = ROOT / "pids" / _current("pids").lstrip("/") / name
        d.mkdir()
        dirs.append(d)
        (d / "pids.max").write_text(str(max_processes))
        applied.append(f"processes={max_processes} (cgroup v1)")
    if memory_bytes is not None and (ROOT / "memory" / "cgroup.procs").exists():
        d = ROOT / "memory" / _current("memory").lstrip("/") / name
        d.mkdir()
        dirs.append(d)
        (d / "memory.limit_in_bytes").write_text(str(memory_bytes))
        applied.append(f"memory={memory_bytes >> 20}MiB (cgroup v1)")
    return CgroupLimits(dirs=tuple(dirs), applied=tuple(applied)) if dirs else None
