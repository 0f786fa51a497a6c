"""shipyard.deps.manifests's public surface: the names the planner and the blueprint may import."""

from __future__ import annotations

import shipyard.deps.manifests


def test_public_names_are_pinned() -> None:
    assert sorted(shipyard.deps.manifests.__all__) == [
        "Change",
        "Dependency",
        "HashSource",
        "LOCK_KINDS",
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
    for name in shipyard.deps.manifests.__all__:
        assert getattr(shipyard.deps.manifests, name) is not None
