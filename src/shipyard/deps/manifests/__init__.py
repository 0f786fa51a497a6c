"""Python manifests and lock files: read every format, write changed versions leaving all else as it was.

- ``discover(repo)`` finds requirements files (and what they include), pip-compile ``.in`` sources with
  their compiled ``.txt``, pyproject.toml (PEP 621, PEP 735, poetry, PDM) and uv/poetry/pdm lock files.
- ``Manifest.dependencies()`` reads; ``Manifest.apply(changes, hashes=...)`` is a pure text edit.
- ``range_for(strategy, specifier, new_version)`` computes a range's new constraint (pin, bump, widen).
- ``apply_changes(...)`` writes the edited manifests into a workspace and refreshes the affected lock
  files with their own tool inside the sandbox; ``refresh_locks(...)`` is lock file maintenance.
"""

from shipyard.deps.manifests.discovery import discover, load
from shipyard.deps.manifests.model import (
    LOCK_KINDS,
    Change,
    Dependency,
    HashSource,
    Manifest,
    ManifestKind,
)
from shipyard.deps.manifests.ranges import RangeStrategy, range_for
from shipyard.deps.manifests.refresh import apply_changes, refresh_locks
from shipyard.deps.manifests.tools import LockTools

__all__ = [
    "LOCK_KINDS",
    "Change",
    "Dependency",
    "HashSource",
    "LockTools",
    "Manifest",
    "ManifestKind",
    "RangeStrategy",
    "apply_changes",
    "discover",
    "load",
    "range_for",
    "refresh_locks",
]
