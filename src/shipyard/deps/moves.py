"""What lock file maintenance moved: every pinned version before and after, package by package.

Lock file maintenance asks the resolvers for the newest versions the manifests admit; which pins
moved is only known afterwards. This compares the dependencies read before and after (pure) and
gives each move in the JSON shape of a planned update, so the report and the commit message list
them like any other update.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from packaging.version import Version

from shipyard.deps.manifests.model import Dependency
from shipyard.deps.rules import update_kind


def moved(before: Sequence[Dependency], after: Sequence[Dependency]) -> list[dict[str, Any]]:
    """One record per package whose pinned version changed: package, manifests, from, to, type.

    A package pinned in several files is one record naming every file it moved in; ``current`` is
    the lowest version before, ``target`` the highest after.
    """
    old = _pins(before)
    new = _pins(after)
    by_package: dict[str, dict[str, Any]] = {}
    for key in sorted(old.keys() & new.keys()):
        (was, name), (now, _) = old[key], new[key]
        if was == now:
            continue
        manifest, canonical = key
        record = by_package.setdefault(
            canonical, {"package": name, "manifests": [], "from": [], "to": []}
        )
        record["manifests"].append(manifest)
        record["from"].append(was)
        record["to"].append(now)
    out = []
    for record in by_package.values():
        current, target = min(record["from"]), max(record["to"])
        out.append(
            {
                "package": record["package"],
                "manifest": record["manifests"][0],
                "manifests": record["manifests"],
                "current": str(current),
                "target": str(target),
                "update_type": update_kind(current, target) if target > current else "downgrade",
                "security": False,
                "reason": "lock file maintenance: the newest version the manifests admit",
                "release_age_days": None,
                "links": {},
                "vulnerabilities": [],
                "yanked_between": [],
                "changes": [],
            }
        )
    return out


def _pins(dependencies: Sequence[Dependency]) -> dict[tuple[str, str], tuple[Version, str]]:
    return {
        (d.manifest, d.canonical_name): (d.pinned, d.name)
        for d in dependencies
        if d.pinned is not None
    }
