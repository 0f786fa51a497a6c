"""Write changed manifests into a workspace and refresh their lock files inside the sandbox.

Resolvers (pip-compile, uv, poetry, pdm) run in the sandbox with egress only to the package index's
``host:port`` through the host's egress proxy; index credentials never enter the sandbox, so an index
URL that carries them is refused here. The tools come from shipyard's side, never from the repository.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from shipyard.deps.manifests.model import Change, HashSource
from shipyard.deps.manifests.tools import LockTools
from shipyard.sandbox.base import Sandbox


def apply_changes(
    workspace: Path,
    changes: Sequence[Change],
    *,
    sandbox: Sandbox,
    index_url: str,
    hashes: HashSource,
    tools: LockTools,
    on_event: Callable[[dict[str, object]], None] | None = None,
) -> list[str]:
    """Make ``changes`` in the workspace: edit manifests, then refresh every lock they affect.

    Returns the repo-relative paths of the files that changed. Raises DependencyError (naming the
    file and the tool's own explanation) when a manifest cannot be edited or a lock cannot be
    resolved; the workspace may then hold partial edits, which the caller discards.
    """
    raise NotImplementedError


def refresh_locks(
    workspace: Path,
    *,
    sandbox: Sandbox,
    index_url: str,
    tools: LockTools,
    files: Sequence[str] | None = None,
    on_event: Callable[[dict[str, object]], None] | None = None,
) -> list[str]:
    """Lock file maintenance: re-resolve every lock file (or ``files``), refreshing transitive pins.

    Returns the repo-relative paths of the lock files that changed.
    """
    raise NotImplementedError
