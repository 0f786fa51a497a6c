"""From dependencies, index data, rules and the time to the runs worth starting. Pure: no I/O.

Security fixes come first, each to the smallest release that fixes every advisory affecting the
current version, bypassing release age, update types, schedule and the open-run limit (they respect
``ignore`` and ``allowed_versions``). Regular updates follow, grouped as configured; lock file
maintenance, when due, is a run of its own.

Nothing found is hidden: regular updates held back by the open-run limit, by their schedule or by a
cooldown are planned as *deferred* runs that carry the reason they would not start now. The real run
starts only ``Plan.runs``; ``--dry-run`` lists both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from shipyard.deps.index import Release
from shipyard.deps.manifests.model import LOCK_KINDS, Change, Dependency
from shipyard.deps.manifests.ranges import range_for
from shipyard.deps.rules import DepsConfig, Effective, due, group_for, resolve, update_kind
from shipyard.deps.security import Vulnerability, smallest_fix
from shipyard.errors import DependencyError

RunKind = Literal["security", "update", "lock"]
_LOCK_FILES = frozenset(str(k) for k in LOCK_KINDS)


@dataclass(frozen=True)
class PackageData:
    """What the index knows about one project: releases, advisories by version, project links."""

    name: str
    releases: tuple[Release, ...]
    vulnerabilities: Mapping[Version, tuple[Vulnerability, ...]] = field(default_factory=dict)
    links: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PlannedUpdate:
    """One package moving from ``current`` to ``target`` in one or more manifests."""

    package: str
    manifest: str
    current: Version
    target: Version
    update_type: str
    reason: str
    release_age_days: float | None
    changes: tuple[Change, ...]
    manifests: tuple[str, ...] = ()
    links: Mapping[str, str] = field(default_factory=dict)
    vulnerabilities: tuple[Vulnerability, ...] = ()
    current_specifier: str = ""
    yanked_between: tuple[str, ...] = ()
    """Yanked releases after ``current`` up to the target's release line: a sign of trouble."""

    @property
    def security(self) -> bool:
        return bool(self.vulnerabilities)

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape shown by ``--dry-run --json`` and carried in task parameters."""
        return {
            "package": self.package,
            "manifest": self.manifest,
            "manifests": list(self.manifests or (self.manifest,)),
            "current": str(self.current),
            "target": str(self.target),
            "update_type": self.update_type,
            "security": self.security,
            "reason": self.reason,
            "release_age_days": (
                None if self.release_age_days is None else round(self.release_age_days, 1)
            ),
            "links": dict(self.links),
            "vulnerabilities": [v.as_dict() for v in self.vulnerabilities],
            "yanked_between": list(self.yanked_between),
            "changes": [
                {
                    "canonical_name": c.canonical_name,
                    "manifest": c.manifest,
                    "new_version": str(c.new_version),
                    "new_specifier": c.new_specifier,
                    "section": c.section,
                }
                for c in self.changes
            ],
        }


@dataclass(frozen=True)
class PlannedRun:
    """One run to start: its kind, the group (or package) it is named after, and its updates."""

    kind: RunKind
    name: str
    updates: tuple[PlannedUpdate, ...]
    deferred: str = ""
    """Why this run would not start now (``"deferred: open-run limit 10 reached"``); empty if it would."""

    @property
    def change_type(self) -> str:
        return "security_patch" if self.kind == "security" else "dependency_update"

    @property
    def title(self) -> str:
        if self.kind == "lock":
            return "Lock file maintenance: refresh transitive pins"
        if len(self.updates) == 1:
            u = self.updates[0]
            verb = "Fix" if self.kind == "security" else "Update"
            ids = ", ".join(v.id for v in u.vulnerabilities)
            return f"{verb} {u.package} from {u.current} to {u.target}" + (
                f" ({ids})" if ids else ""
            )
        return f"Update {self.name} group ({len(self.updates)} packages)"


@dataclass(frozen=True)
class Skipped:
    """A dependency left alone, and why (shown by ``--dry-run``)."""

    package: str
    manifest: str
    reason: str
    vulnerabilities: tuple[Vulnerability, ...] = ()


@dataclass(frozen=True)
class Plan:
    """The runs to start now, the runs found but deferred (each saying why), and what was skipped."""

    runs: tuple[PlannedRun, ...]
    skipped: tuple[Skipped, ...] = ()
    deferred: tuple[PlannedRun, ...] = ()

    @property
    def updates(self) -> list[PlannedUpdate]:
        return [u for run in self.runs for u in run.updates]


@dataclass(frozen=True)
class History:
    """What the store says about earlier runs: when deps last ran, and how many wait for review."""

    last_run: datetime | None = None
    last_lock_maintenance: datetime | None = None
    open_runs: int = 0


def plan(
    dependencies: Sequence[Dependency],
    packages: Mapping[str, PackageData],
    config: DepsConfig,
    *,
    now: datetime,
    history: History = History(),
    locks: Sequence[str] | None = None,
) -> Plan:
    """The runs to start now, security first, the runs deferred, and the dependencies skipped.

    ``locks`` names the lock files and compiled requirements lock file maintenance would refresh;
    without it, any lock file or transitive pin among the dependencies counts."""
    by_name: dict[str, list[Dependency]] = {}
    for dep in dependencies:
        by_name.setdefault(dep.canonical_name, []).append(dep)
    security: list[PlannedRun] = []
    regular: list[tuple[str | None, str, PlannedUpdate]] = []
    held: list[tuple[str | None, str, PlannedUpdate]] = []
    skipped: list[Skipped] = []
    for name, occurrences in by_name.items():
        data = packages.get(name)
        rule = resolve(config, name)
        first = _primary(occurrences)
        if rule.ignore:
            skipped.append(Skipped(first.name, first.manifest, "ignored by the rules"))
            continue
        if data is None or not data.releases:
            skipped.append(Skipped(first.name, first.manifest, "not found on the package index"))
            continue
        current = current_version(occurrences, data.releases)
        if current is None:
            skipped.append(
                Skipped(first.name, first.manifest, "no pinned or resolvable current version")
            )
            continue
        vulns = tuple(data.vulnerabilities.get(current, ()))
        if vulns and config.security:
            fix = smallest_fix(
                data.releases,
                current,
                vulns,
                allowed=rule.allowed_versions,
                prereleases=rule.prereleases or current.is_prerelease,
            )
            if fix is None:
                skipped.append(
                    Skipped(
                        first.name,
                        first.manifest,
                        f"vulnerable ({', '.join(v.id for v in vulns)}) and no release "
                        "within the allowed versions fixes it",
                        vulns,
                    )
                )
            else:
                update = _update(
                    occurrences, data, rule, current, fix, now=now, vulns=vulns, transitive=True
                )
                if update is not None:
                    security.append(PlannedRun("security", update.package, (update,)))
                    continue
        direct = [d for d in occurrences if d.direct]
        if not direct:
            continue  # a transitive pin: lock file maintenance refreshes it
        target, why, cooling = _target(data.releases, current, rule, now)
        chosen = target or cooling
        if chosen is None:
            if why:
                skipped.append(Skipped(first.name, first.manifest, why))
            continue
        update = _update(occurrences, data, rule, current, chosen, now=now)
        if update is None:
            continue
        group = group_for(config, name, update.update_type, rule)
        if target is None:
            held.append((group, f"deferred: {why}", update))
        elif not due(rule.schedule, now, history.last_run):
            schedule = str(rule.schedule).lstrip("@")
            held.append((group, f"deferred: not due by its schedule ({schedule})", update))
        else:
            regular.append((group, "", update))
    runs = _grouped(regular)
    deferred: list[PlannedRun] = []
    if config.max_open_runs:
        room = max(config.max_open_runs - history.open_runs, 0)
        waiting = f", {history.open_runs} waiting for review" if history.open_runs else ""
        reason = f"deferred: open-run limit {config.max_open_runs} reached{waiting}"
        deferred = [replace(run, deferred=reason) for run in runs[room:]]
        runs = runs[:room]
    lock = _lock_run(dependencies, config, now, history, locks)
    return Plan(
        runs=tuple(security + runs + lock),
        skipped=tuple(skipped),
        deferred=tuple(deferred + _grouped(held)),
    )


def _primary(occurrences: Sequence[Dependency]) -> Dependency:
    """The occurrence named in output: a hand-written manifest's before a lock file's."""
    return min(occurrences, key=lambda d: (not d.direct, _is_lock(d.manifest), d.manifest))


def _is_lock(manifest: str) -> bool:
    return manifest.rsplit("/", 1)[-1] in _LOCK_FILES


def current_version(
    occurrences: Sequence[Dependency], releases: Sequence[Release]
) -> Version | None:
    """The version in use: the lowest pin, else the newest release a range admits."""
    pins = [d.pinned for d in occurrences if d.pinned is not None]
    if pins:
        return min(pins)
    for dep in occurrences:
        spec = _specifier(dep.specifier)
        if spec is None:
            continue
        admitted = [r.version for r in releases if not r.yanked and spec.contains(r.version)]
        if admitted:
            return max(admitted)
    return None


def _specifier(text: str) -> SpecifierSet | None:
    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        return None


def _age_days(release: Release, now: datetime) -> float | None:
    if release.upload_time is None:
        return None
    return (now - release.upload_time) / timedelta(days=1)


def _target(
    releases: Sequence[Release], current: Version, rule: Effective, now: datetime
) -> tuple[Release | None, str, Release | None]:
    """The newest release the rule allows, or None and why nothing was chosen ('' if up to date);
    third, when every allowed release is still cooling down, the newest of them."""
    prereleases = rule.prereleases or current.is_prerelease
    newer = [
        r
        for r in releases
        if r.version > current
        and not r.yanked
        and r.has_wheel
        and (prereleases or not r.version.is_prerelease)
    ]
    if not newer:
        return None, "", None
    allowed = [
        r
        for r in newer
        if update_kind(current, r.version) in rule.update_types
        and (rule.allowed_versions is None or rule.allowed_versions.contains(r.version, True))
    ]
    if not allowed:
        newest = max(newer, key=lambda r: r.version).version
        return None, f"{newest} is not allowed by the rules (update types, allowed versions)", None
    old_enough = []
    for r in allowed:
        days = rule.cooldown(update_kind(current, r.version))
        age = _age_days(r, now)
        if days == 0 or (age is not None and age >= days):
            old_enough.append(r)
    if not old_enough:
        youngest = max(allowed, key=lambda r: r.version)
        kind = update_kind(current, youngest.version)
        age = _age_days(youngest, now)
        shown = "unknown age" if age is None else f"{age:.1f} days old"
        why = (
            f"{youngest.version} is in its {kind} cooldown ({shown}, "
            f"{rule.cooldown(kind)} days required)"
        )
        return None, why, youngest
    return max(old_enough, key=lambda r: r.version), "", None


def _update(
    occurrences: Sequence[Dependency],
    data: PackageData,
    rule: Effective,
    current: Version,
    target: Release,
    *,
    now: datetime,
    vulns: tuple[Vulnerability, ...] = (),
    transitive: bool = False,
) -> PlannedUpdate | None:
    changes: list[Change] = []
    for dep in occurrences:
        if not dep.direct and not transitive:
            continue
        if dep.pinned is not None:
            if dep.pinned < target.version:
                changes.append(
                    Change(
                        canonical_name=dep.canonical_name,
                        manifest=dep.manifest,
                        new_version=target.version,
                        section=dep.section,
                    )
                )
            continue
        new_spec = _new_specifier(rule, dep.specifier, target.version)
        if new_spec is not None and new_spec != dep.specifier:
            changes.append(
                Change(
                    canonical_name=dep.canonical_name,
                    manifest=dep.manifest,
                    new_version=target.version,
                    new_specifier=new_spec,
                    section=dep.section,
                )
            )
    if not changes:
        return None
    first = _primary(occurrences)
    kind = update_kind(current, target.version)
    if vulns:
        reason = (
            f"security: {', '.join(v.id for v in vulns)} affect{'s' if len(vulns) == 1 else ''} "
            f"{current}; {target.version} is the smallest release fixing "
            f"{'it' if len(vulns) == 1 else 'them all'}"
        )
    else:
        reason = f"{kind} update: {target.version} is the newest release the rules allow"
    return PlannedUpdate(
        package=first.name,
        manifest=first.manifest,
        manifests=tuple(dict.fromkeys(c.manifest for c in changes)),
        current=current,
        target=target.version,
        update_type=kind,
        reason=reason,
        release_age_days=_age_days(target, now),
        changes=tuple(changes),
        links=dict(data.links),
        vulnerabilities=vulns,
        current_specifier=first.specifier,
        yanked_between=tuple(
            str(r.version)
            for r in data.releases
            if r.yanked
            and r.version > current
            and (r.version <= target.version or r.version.release[:2] == target.version.release[:2])
        ),
    )


def _new_specifier(rule: Effective, specifier: str, target: Version) -> str | None:
    """A range's new text, or None to leave it: ``auto`` only widens when ``target`` is outside."""
    strategy = rule.range_strategy
    if strategy == "auto":
        spec = _specifier(specifier)
        if spec is not None and spec.contains(target, prereleases=True):
            return None
        strategy = "widen"
    try:
        return range_for(strategy, specifier, target)
    except DependencyError:
        return None


def _grouped(regular: Sequence[tuple[str | None, str, PlannedUpdate]]) -> list[PlannedRun]:
    """Update runs: one per group (and reason for deferring), then one per ungrouped update."""
    groups: dict[tuple[str, str], list[PlannedUpdate]] = {}
    runs: list[PlannedRun] = []
    for group, deferred, update in regular:
        if group is None:
            runs.append(PlannedRun("update", update.package, (update,), deferred))
        else:
            groups.setdefault((group, deferred), []).append(update)
    grouped = [
        PlannedRun("update", name, tuple(items), why) for (name, why), items in groups.items()
    ]
    return grouped + runs


def _lock_run(
    dependencies: Sequence[Dependency],
    config: DepsConfig,
    now: datetime,
    history: History,
    locks: Sequence[str] | None,
) -> list[PlannedRun]:
    if config.lock_maintenance is None:
        return []
    has_locks = (
        bool(locks)
        if locks is not None
        else any(_is_lock(d.manifest) or not d.direct for d in dependencies)
    )
    if not has_locks:
        return []
    if not due(config.lock_maintenance, now, history.last_lock_maintenance):
        return []
    return [PlannedRun("lock", "lock-maintenance", ())]
