"""shipyard.deps's public surface: the names other layers may import."""

from __future__ import annotations

import shipyard.deps


def test_public_names_are_pinned() -> None:
    assert sorted(shipyard.deps.__all__) == [
        "DistFile",
        "OtherLine",
        "PackageIndex",
        "Pin",
        "Release",
        "Requirements",
        "Update",
        "UpdateKind",
        "find_updates",
        "parse_requirements",
        "parse_text",
        "read_requirements",
        "redact",
        "set_pin",
        "update_kind",
    ]
    for name in shipyard.deps.__all__:
        assert getattr(shipyard.deps, name) is not None
