"""Every error shipyard raises on purpose.

    ShipyardError                     base; the CLI prints its message without a traceback
    ├── ConfigError                   a shipyard.toml or setting is wrong (names file and field)
    ├── RepositoryError               a path is not a usable git repository, or git failed
    │   ├── DirtyRepositoryError      uncommitted changes are in the way
    │   └── PatchError                a patch does not apply
    ├── SandboxError                  the sandbox could not start or misbehaved
    │   └── SandboxUnavailable        bubblewrap is missing or not permitted on this host
    ├── PackageIndexError             the package index is unreachable or answered nonsense
    ├── DependencyError               manifests could not be read, edited or resolved
    │   └── DependencyConflict        the requirements contradict each other (``conflicts``)
    ├── GateError                     a gate could not run (not: a gate that ran and failed)
    ├── StoreError                    the run store is unreadable or a record is missing
    │   └── NotFound                  a run, review or other record does not exist
    ├── DeliveryError                 a merge or other delivery step could not be done
    └── BlueprintError                an unknown blueprint, or a blueprint used wrongly

Third-party errors (subprocess, httpx, SQLAlchemy, pydantic) are mapped to these at the boundary
with ``raise ... from exc``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class ShipyardError(Exception):
    """Base class. The message says what happened and what to do about it."""

    exit_code = 1


class ConfigError(ShipyardError):
    """A configuration file or setting is invalid."""

    exit_code = 2


class RepositoryError(ShipyardError):
    """A path is not a usable git repository, or a git command failed."""

    exit_code = 3


class DirtyRepositoryError(RepositoryError):
    """The repository has uncommitted changes that would be in the way."""


class PatchError(RepositoryError):
    """A patch file is unreadable or does not apply to the base commit."""


class SandboxError(ShipyardError):
    """The sandbox failed to start or behaved unexpectedly."""

    exit_code = 4


class SandboxUnavailable(SandboxError):
    """No usable sandbox backend on this host."""


class PackageIndexError(ShipyardError):
    """The package index could not be reached or returned an unusable answer."""

    exit_code = 5


class DependencyError(ShipyardError):
    """Manifests could not be parsed, edited or resolved."""

    exit_code = 5


class DependencyConflict(DependencyError):
    """The requirements cannot all hold at once; ``conflicts`` explains each clash in one sentence.

    For example ``"a 2.0 requires b>=3, but the requirements pin b==2.5"``.
    """

    def __init__(self, message: str, conflicts: tuple[str, ...]) -> None:
        super().__init__(message)
        self.conflicts = conflicts


class GateError(ShipyardError):
    """A gate could not be run at all."""

    exit_code = 6


class StoreError(ShipyardError):
    """The run store failed."""

    exit_code = 7


class NotFound(StoreError):
    """A run, review or other record does not exist."""


class DeliveryError(ShipyardError):
    """A delivery step (merge, branch update) could not be done."""

    exit_code = 8


class MergeConflict(DeliveryError):
    """A run's branch no longer merges cleanly into its target; ``paths`` are the conflicting files."""

    def __init__(self, message: str, paths: list[str]) -> None:
        super().__init__(message)
        self.paths = paths


class ReviewError(ShipyardError):
    """A review action is not allowed (for example, approving a run one requested oneself)."""

    exit_code = 9


class BlueprintError(ShipyardError):
    """An unknown blueprint, or parameters it cannot use."""

    exit_code = 2


class RolloutError(ShipyardError):
    """A staged rollout could not go on: its health source or deploy hook failed."""

    exit_code = 10


class HealthSourceError(RolloutError):
    """The health signal could not be read (unreachable, no data, not a number)."""


class DeployError(RolloutError):
    """A deploy hook failed or took too long."""


def format_validation_error(exc: ValidationError, source: Path | str, *, prefix: str = "") -> str:
    """One line per problem: ``file: dotted.field: what is wrong — how to fix``."""
    lines = []
    for err in exc.errors():
        field = prefix + ".".join(str(p) for p in err["loc"])
        hint = _HINTS.get(err["type"], "")
        lines.append(f"{source}: {field}: {err['msg']}{hint}")
    return "\n".join(lines)


_HINTS = {
    "extra_forbidden": " — remove it or check its spelling (see docs/configuration.md)",
    "missing": " — add this field",
    "int_parsing": " — use a whole number",
    "float_parsing": " — use a number",
    "list_type": ' — use a list, for example ["a", "b"]',
    "string_type": " — use a quoted string",
}


__all__ = [
    "BlueprintError",
    "ConfigError",
    "DeliveryError",
    "DependencyConflict",
    "DependencyError",
    "DirtyRepositoryError",
    "GateError",
    "NotFound",
    "PackageIndexError",
    "PatchError",
    "RepositoryError",
    "SandboxError",
    "SandboxUnavailable",
    "ShipyardError",
    "StoreError",
    "format_validation_error",
]
