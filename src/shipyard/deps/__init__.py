"""Python dependencies: requirement pins, the package index, updates and the offline wheelhouse."""

from shipyard.deps.index import DistFile, PackageIndex, Release, redact
from shipyard.deps.requirements import (
    OtherLine,
    Pin,
    Requirements,
    parse_requirements,
    parse_text,
    read_requirements,
    set_pin,
)
from shipyard.deps.updates import Update, UpdateKind, find_updates, update_kind

__all__ = [
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
