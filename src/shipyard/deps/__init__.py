"""Python dependencies: manifests and lock files, the package index, rules, planning and security.

- ``shipyard.deps.manifests``: read every manifest format and change versions (its own surface).
- ``plan_repository(repo, config, index_url=..., cache_dir=...)`` reads a repository's manifests, asks
  the index and returns a ``Plan``: the runs to start now (security fixes first), the runs deferred
  with their reason, and what was left alone. ``plan(...)`` is the same decision without I/O.
- ``PackageIndex`` is the simple-API client; ``update_kind`` says patch, minor or major.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Loaded on first use: the configuration needs only the rules, and every command reads the
# configuration, so the index client (httpx) is not paid for by commands that never ask an index.
_HOMES = {
    "index": ("DistFile", "PackageIndex", "Release", "redact"),
    "lookup": ("plan_repository",),
    "planning": (
        "History",
        "PackageData",
        "Plan",
        "PlannedRun",
        "PlannedUpdate",
        "Skipped",
        "plan",
    ),
    "rules": ("DepsConfig", "UpdateType", "update_kind"),
    "security": ("Vulnerability",),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


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
