"""shipyard.deps's public surface: the names other layers may import."""

from __future__ import annotations

import shipyard.deps


def test_public_names_are_pinned() -> None:
    assert sorted(shipyard.deps.__all__) == [
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
    for name in shipyard.deps.__all__:
        assert getattr(shipyard.deps, name) is not None


def test_the_superseded_modules_are_gone() -> None:
    import importlib.util

    assert importlib.util.find_spec("shipyard.deps.updates") is None
    assert importlib.util.find_spec("shipyard.deps.requirements") is None
