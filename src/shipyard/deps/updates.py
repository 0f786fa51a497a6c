"""Which newer release each pin should move to, and what kind of update that is."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from packaging.version import Version

from shipyard.deps.index import PackageIndex, Release
from shipyard.deps.requirements import Pin
from shipyard.errors import DependencyError


class UpdateKind(StrEnum):
    """How far an update moves a pin, by release segment."""

    PATCH = "patch"
    MINOR = "minor"
    MAJOR = "major"


@dataclass(frozen=True)
class Update:
    """Move ``name`` in ``file`` from ``current`` to ``new``."""

    name: str
    current: Version
    new: Version
    kind: UpdateKind
    file: str


def update_kind(current: Version, new: Version) -> UpdateKind:
    """major when the first release segment grows, minor for the second, patch otherwise.

    For 0.x versions the minor segment is treated as major, as semantic versioning does; a change
    of epoch is always major.
    """
    old, cur = (*current.release, 0, 0), (*new.release, 0, 0)
    if current.epoch != new.epoch or cur[0] != old[0] or (old[0] == 0 and cur[1] != old[1]):
        return UpdateKind.MAJOR
    if cur[1] != old[1]:
        return UpdateKind.MINOR
    return UpdateKind.PATCH


def best_release(
    releases: Sequence[Release],
    current: Version,
    *,
    allow: Sequence[str],
    prereleases: bool = False,
) -> Release | None:
    """The newest release after ``current`` that is not yanked, has a wheel, and is an allowed kind.

    Pre-releases count only when ``prereleases`` is true.
    """
    candidates = [
        r
        for r in releases
        if r.version > current
        and not r.yanked
        and r.has_wheel
        and (prereleases or not r.version.is_prerelease)
        and update_kind(current, r.version).value in allow
    ]
    return max(candidates, key=lambda r: r.version, default=None)


def find_updates(
    pins: Sequence[Pin],
    index: PackageIndex,
    *,
    allow: Sequence[str] = ("patch", "minor", "major"),
    prereleases: bool = False,
) -> list[Update]:
    """One update per outdated pin (the newest suitable release), in file order."""
    unknown = sorted(set(allow) - {k.value for k in UpdateKind})
    if unknown:
        raise DependencyError(
            f"unknown update kind(s) {', '.join(unknown)}; use patch, minor and/or major."
        )
    seen: dict[str, list[Release]] = {}
    updates = []
    for pin in pins:
        if pin.canonical_name not in seen:
            seen[pin.canonical_name] = index.releases(pin.name)
        releases = seen[pin.canonical_name]
        best = best_release(releases, pin.version, allow=allow, prereleases=prereleases)
        if best is not None:
            updates.append(
                Update(
                    name=pin.name,
                    current=pin.version,
                    new=best.version,
                    kind=update_kind(pin.version, best.version),
                    file=pin.file,
                )
            )
    return updates
