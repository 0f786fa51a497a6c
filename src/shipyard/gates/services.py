"""Throwaway PostgreSQL and Redis for a tree's integration tests, started inside the test sandbox.

A project lists the servers its tests need under ``[gates.tests]`` in shipyard.toml
(``services = ["postgresql", "redis"]``). The test command is then wrapped by ``services_launcher.py``,
mounted read-only into the same sandbox and run on the sandbox's bare interpreter: it starts fresh
instances of the host's Debian server binaries (visible read-only through ``/usr``) with their data in
the sandbox's temporary space, waits until they accept connections, runs the tests with
``DATABASE_URL`` (and ``PGHOST``, ``PGPORT``, ``PGUSER``, ``PGDATABASE``) and ``REDIS_URL`` set, and
stops the servers afterwards whatever happened.

The servers share the sandbox's private network namespace, so they listen on a loopback nobody else
sees; the host's own servers are unreachable from there. Every run starts from empty data: nothing a
test writes survives into the next run or reaches the host.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from shipyard.gates.environment import ENV_DIR, sandbox_python
from shipyard.gates.services_launcher import (
    EXIT_FAILED,
    EXIT_MISSING,
    PACKAGES,
    POSTGRESQL_ROOT,
    PREFIX,
    READY,
    REDIS_SERVER,
    missing,
)
from shipyard.sandbox.base import CommandResult, Mount

LAUNCHER = Path(__file__).with_name("services_launcher.py")
LAUNCHER_INSIDE = "/opt/shipyard/services_launcher.py"

__all__ = [
    "EXIT_FAILED",
    "EXIT_MISSING",
    "LAUNCHER_INSIDE",
    "PACKAGES",
    "available",
    "launcher_error",
    "wrap",
]


def wrap(
    argv: Sequence[str],
    services: Sequence[str],
    *,
    python: str | None = None,
    postgresql_root: str = POSTGRESQL_ROOT,
    redis_server: str = REDIS_SERVER,
) -> tuple[list[str], tuple[Mount, ...]]:
    """The test command wrapped by the launcher, and the mount the launcher needs.

    With no services, ``argv`` is returned unchanged with no mounts. ``python`` is an interpreter
    visible inside the sandbox (by default the base installation shipyard runs on); the servers'
    data spills over to ``ENV_DIR`` when the sandbox's /tmp is too small. The paths of the server
    binaries can be overridden for hosts that install them elsewhere.
    """
    if not services:
        return list(argv), ()
    if python is None:
        python = sandbox_python()
    command = [python, "-I", LAUNCHER_INSIDE]
    for name in dict.fromkeys(services):
        command += ["--service", name]
    command += ["--spill", ENV_DIR]
    if postgresql_root != POSTGRESQL_ROOT:
        command += ["--postgresql-root", postgresql_root]
    if redis_server != REDIS_SERVER:
        command += ["--redis-server", redis_server]
    return [*command, "--", *argv], (Mount(source=LAUNCHER, target=LAUNCHER_INSIDE),)


def available(
    services: Sequence[str],
    *,
    postgresql_root: str = POSTGRESQL_ROOT,
    redis_server: str = REDIS_SERVER,
) -> list[str]:
    """Problems that keep ``services`` from starting: one line per server whose binaries are missing on
    the host, naming the Debian package to install (``postgresql``, ``redis-server``). Empty when all
    can start; the sandbox sees the host's ``/usr``, so what is installed here is what runs there."""
    return missing(services, postgresql_root=postgresql_root, redis_server=redis_server)


def launcher_error(result: CommandResult) -> str | None:
    """Why the services could not start, when that is why a wrapped command failed; otherwise None.

    A run that ended this way never ran the tests: report it as an environment problem, not as failing
    tests. Only what the launcher printed before the tests started counts, so tests cannot pass their
    own failures off as a services problem.
    """
    if result.exit_code not in (EXIT_MISSING, EXIT_FAILED):
        return None
    lines = []
    for line in result.stderr.splitlines():
        if not line.startswith(PREFIX):
            continue
        text = line.removeprefix(PREFIX).strip()
        if text.startswith(READY):
            return None
        lines.append(text)
    return "\n".join(lines) or None
