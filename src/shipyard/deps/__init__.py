"""Python dependencies: manifests and lock files, the package index, rules, planning and security.

- ``shipyard.deps.manifests``: read every manifest format and change versions (its own surface).
- ``plan_repository(repo, config, index_url=..., cache_dir=...)`` reads a repository's manifests, asks
  the index and returns a ``Plan``: the runs to start now (security fixes first), the runs deferred
  with their reason, and what was left alone. ``plan(...)`` is the same decision without I/O.
- ``PackageIndex`` is the simple-API client; ``update_kind`` says patch, minor or major.
"""

from shipyard.deps.index import DistFile, PackageIndex, Release, redact
from shipyard.deps.lookup import plan_repository
from shipyard.deps.planning import (
    History,
    PackageData,
    Plan,
    PlannedRun,
    PlannedUpdate,
    Skipped,
    plan,
)
from shipyard.deps.rules import DepsConfig, UpdateType, update_kind
from shipyard.deps.security import Vulnerability

__all__ = [
    "DepsConfig",
    "DistFile",
    "History",
    "PackageData",
    "PackageIndex",
    "Plan",
    "PlannedRun",
    "PlannedUpdate",
    "Release",
    "Skipped",
    "UpdateType",
    "Vulnerability",
    "plan",
    "plan_repository",
    "redact",
    "update_kind",
]
