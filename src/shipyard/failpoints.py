"""Named points where a test can kill shipyard, to prove that a crash at any step loses nothing.

``SHIPYARD_FAILPOINTS=merge.after_intent,merge.after_ref_update`` makes the process kill itself with
SIGKILL when it reaches one of those points: no cleanup, no ``finally``, exactly like a power cut.
Points in ``CUTS`` instead end the process's PostgreSQL session from the server's side, as a
network cut or a server restart would, after a commit and before its answer is used.
Unset (always, outside tests), a failpoint does nothing.
"""

from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Connection

ENV = "SHIPYARD_FAILPOINTS"

POINTS = (
    "executor.after_gate",
    "merge.after_intent",
    "merge.after_rebase",
    "merge.after_ref_update",
    "merge.after_outcome",
)
"""Every failpoint in the code base, in the order a run reaches them."""


def failpoint(name: str) -> None:
    """Kill this process here if ``name`` is listed in ``$SHIPYARD_FAILPOINTS``."""
    if name not in POINTS:
        raise ValueError(f"unknown failpoint {name!r}; add it to POINTS")
    armed = os.environ.get(ENV, "")
    if armed and name in armed.split(","):
        os.kill(os.getpid(), signal.SIGKILL)


CUTS = (
    "store.after_create_commit",
    "store.after_append_commit",
    "store.after_lease_commit",
)
"""Every point where the database session can be cut, after the transaction committed."""


_cut: set[str] = set()


def cut_connection(name: str, conn: Connection) -> None:
    """End ``conn``'s PostgreSQL session if ``name`` is listed in ``$SHIPYARD_FAILPOINTS``.

    The server terminates the session itself, so the client sees exactly what a dropped
    connection looks like; the caller's retry then has to cope with a commit it never heard of.
    Each point cuts once per process (one outage, then the retry goes through) until ``rearm``.
    """
    if name not in CUTS:
        raise ValueError(f"unknown failpoint {name!r}; add it to CUTS")
    armed = os.environ.get(ENV, "")
    if name in _cut or not armed or name not in armed.split(","):
        return
    if conn.dialect.name == "postgresql":
        _cut.add(name)
        conn.exec_driver_sql("SELECT pg_terminate_backend(pg_backend_pid())")


def rearm() -> None:
    """Let every cut point fire once more (for tests that cut several times in one process)."""
    _cut.clear()
