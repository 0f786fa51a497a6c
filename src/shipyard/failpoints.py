"""Named points where a test can kill shipyard, to prove that a crash at any step loses nothing.

``SHIPYARD_FAILPOINTS=merge.after_intent,merge.after_ref_update`` makes the process kill itself with
SIGKILL when it reaches one of those points: no cleanup, no ``finally``, exactly like a power cut.
Unset (always, outside tests), a failpoint does nothing.
"""

from __future__ import annotations

import os
import signal

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
