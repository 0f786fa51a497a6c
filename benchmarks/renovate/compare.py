"""Both tools' updates in one shape, the sets compared, and each difference explained.

An update is (manifest, package, target). Renovate lists the newest release within the current
major and the newest major as separate entries of one dependency; shipyard proposes one target per
package (its newest allowed release), applied in every manifest that names the package. So the
comparison is made at three levels: packages with an update, (manifest, package) pairs with an
update, and update entries.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .logparse import RenovateDep

PYTHON_DATASOURCES = frozenset({"pypi"})


@dataclass(frozen=True, order=True)
class Finding:
    manifest: str
    package: str
    target: str
    current: str = field(default="", compare=False)
    update_type: str = field(default="", compare=False)

    @property
    def pair(self) -> tuple[str, str]:
        return (self.manifest, self.package)


@dataclass(frozen=True)
class Difference:
    """One (manifest, package) pair the tools disagree on, classified and explained."""

    kind: str
    """``renovate_only``, ``shipyard_only`` or ``different_target``."""
    manifest: str
    package: str
    renovate: tuple[str, ...]
    shipyard: tuple[str, ...]
    category: str
    explanation: str


@dataclass
class ShipyardOutput:
    updates: list[Finding]
    skipped: list[dict[str, Any]]
    records: list[dict[str, Any]]


def _objects(text: str) -> list[dict[str, Any]]:
    """The JSON objects of ``--dry-run --json`` output: JSON lines, one array, or one document."""
    text = text.strip()
    if not text:
        return []
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, list):
        return [o for o in whole if isinstance(o, dict)]
    if isinstance(whole, dict):
        for key in ("updates", "planned"):
            if isinstance(whole.get(key), list):
                extra = [o for o in whole.get("skipped") or [] if isinstance(o, dict)]
                return [o for o in whole[key] if isinstance(o, dict)] + [
                    {**o, "_skipped": True} for o in extra
                ]
        return [whole]
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                found.append(obj)
    return found


def shipyard_findings(stdout: str) -> ShipyardOutput:
    """Updates (one per manifest the update changes) and skipped dependencies of shipyard's output."""
    updates: list[Finding] = []
    skipped: list[dict[str, Any]] = []
    records = _objects(stdout)
    for obj in records:
        if obj.get("_skipped") or not obj.get("target") or not obj.get("package"):
            skipped.append(obj)
            continue
        package = str(canonicalize_name(str(obj["package"])))
        manifests = [str(c["manifest"]) for c in obj.get("changes") or [] if c.get("manifest")]
        manifests = manifests or [str(m) for m in obj.get("manifests") or []]
        manifests = manifests or [str(obj.get("manifest", ""))]
        for manifest in dict.fromkeys(manifests):
            updates.append(
                Finding(
                    manifest=manifest,
                    package=package,
                    target=str(obj["target"]),
                    current=str(obj.get("current", "")),
                    update_type=str(obj.get("update_type", obj.get("type", ""))),
                )
            )
    return ShipyardOutput(sorted(set(updates)), skipped, records)


def python_deps(deps: Iterable[RenovateDep]) -> list[RenovateDep]:
    """The dependencies Renovate looks up on a Python package index."""
    return [d for d in deps if d.datasource in PYTHON_DATASOURCES]


def renovate_findings(deps: Iterable[RenovateDep]) -> list[Finding]:
    """Every update entry of every Python dependency."""
    found = {
        Finding(
            manifest=d.package_file,
            package=d.name,
            target=u.new_version,
            current=d.current_version or d.current_value,
            update_type=u.update_type,
        )
        for d in python_deps(deps)
        for u in d.updates
    }
    return sorted(found)


def counts(findings: Iterable[Finding]) -> dict[str, int]:
    findings = list(findings)
    return {
        "packages_with_update": len({f.package for f in findings}),
        "manifest_package_pairs": len({f.pair for f in findings}),
        "update_entries": len(findings),
        "manifests_with_update": len({f.manifest for f in findings}),
    }


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _newest(targets: Iterable[str]) -> str:
    parsed = [(v, t) for t in targets if (v := _version(t)) is not None]
    return str(max(parsed)[1]) if parsed else ""


ReleaseFacts = Callable[[str, str], Mapping[str, Any]]
"""(package, version) → facts from the index: ``prerelease``, ``yanked``, ``age_days``,
``requires_python``; empty when unknown."""


def compare(
    renovate_deps: list[RenovateDep],
    shipyard: ShipyardOutput,
    facts: ReleaseFacts | None = None,
    held: frozenset[tuple[str, str]] = frozenset(),
) -> dict[str, Any]:
    """Counts per tool, what each found that the other did not, and every difference explained.

    ``held``: (manifest, package) pairs shipyard finds when its open-run limit is lifted; a pair
    missing here but in ``held`` was left out by the limit, not missed."""
    rdeps = python_deps(renovate_deps)
    rfind = renovate_findings(rdeps)
    sfind = shipyard.updates
    by_pair_r: dict[tuple[str, str], list[Finding]] = {}
    for f in rfind:
        by_pair_r.setdefault(f.pair, []).append(f)
    by_pair_s: dict[tuple[str, str], list[Finding]] = {}
    for f in sfind:
        by_pair_s.setdefault(f.pair, []).append(f)
    scanned_r = {d.package_file for d in rdeps}
    dep_r = {(d.package_file, d.name): d for d in rdeps}
    skipped_s = {
        (str(o.get("manifest", "")), str(canonicalize_name(str(o.get("package", ""))))): o
        for o in shipyard.skipped
    }
    shipyard_manifests = {f.manifest for f in sfind} | {m for m, _ in skipped_s}
    differences: list[Difference] = []
    for pair in sorted(set(by_pair_r) | set(by_pair_s)):
        manifest, package = pair
        r = tuple(sorted({f.target for f in by_pair_r.get(pair, [])}, key=_sortkey))
        s = tuple(sorted({f.target for f in by_pair_s.get(pair, [])}, key=_sortkey))
        if r and s:
            if _newest(r) == _newest(s):
                continue
            category, why = _different(package, r, s, facts)
            differences.append(
                Difference("different_target", manifest, package, r, s, category, why)
            )
        elif r and pair in held:
            category = "held back by shipyard's open-run limit"
            why = "shipyard finds it with max_open_runs = 0; by default a dry run lists 10 runs"
            differences.append(Difference("renovate_only", manifest, package, r, s, category, why))
        elif r:
            category, why = _renovate_only(
                package, r, by_pair_r[pair][0].current, manifest in shipyard_manifests,
                skipped_s.get(pair), facts,
            )  # fmt: skip
            differences.append(Difference("renovate_only", manifest, package, r, s, category, why))
        else:
            category, why = _shipyard_only(
                manifest in scanned_r, dep_r.get(pair), by_pair_s[pair][0]
            )
            differences.append(Difference("shipyard_only", manifest, package, r, s, category, why))
    r_pairs, s_pairs = set(by_pair_r), set(by_pair_s)
    r_newest = {p: _newest(f.target for f in fs) for p, fs in by_pair_r.items()}
    s_newest = {p: _newest(f.target for f in fs) for p, fs in by_pair_s.items()}
    categories: dict[str, int] = {}
    for d in differences:
        key = f"{d.kind}: {d.category}"
        categories[key] = categories.get(key, 0) + 1
    return {
        "renovate": counts(rfind),
        "shipyard": counts(sfind),
        "renovate_scanned_manifests": len(scanned_r),
        "renovate_python_deps": len(rdeps),
        "shipyard_skipped": len(shipyard.skipped),
        "both": {
            "packages": len({p for _, p in r_pairs} & {p for _, p in s_pairs}),
            "pairs": len(r_pairs & s_pairs),
            "pairs_same_newest_target": sum(
                1 for p in r_pairs & s_pairs if r_newest[p] == s_newest[p]
            ),
            "entries": len(set(rfind) & set(sfind)),
        },
        "renovate_pairs_missed_by_shipyard": len(r_pairs - s_pairs),
        "renovate_packages_missed_by_shipyard": len(
            {p for _, p in r_pairs} - {p for _, p in s_pairs}
        ),
        "categories": dict(sorted(categories.items())),
        "differences": [asdict(d) for d in differences],
    }


def _sortkey(text: str) -> tuple[int, Version | str]:
    v = _version(text)
    return (0, v) if v is not None else (1, text)


def _facts(facts: ReleaseFacts | None, package: str, version: str) -> Mapping[str, Any]:
    if facts is None or not version:
        return {}
    try:
        return facts(package, version)
    except Exception as exc:  # the explanation is best effort; the counts do not depend on it
        return {"error": str(exc)}


def _release_reason(package: str, version: str, facts: ReleaseFacts | None) -> tuple[str, str]:
    """Why a tool might not propose ``version``: pre-release, yanked, too new, Python too old."""
    info = _facts(facts, package, version)
    if info.get("prerelease"):
        return "pre-release", f"{version} is a pre-release"
    if info.get("yanked"):
        return "yanked", f"{version} is yanked on the index"
    age = info.get("age_days")
    if isinstance(age, (int, float)) and age < 14:
        return "release age", f"{version} was uploaded {age:.1f} days ago"
    requires = str(info.get("requires_python") or "")
    if requires and not _admits(requires, platform.python_version()):
        return "requires-python", f"{version} requires Python {requires}"
    return "", ""


def _admits(specifier: str, version: str) -> bool:
    try:
        return SpecifierSet(specifier).contains(version, prereleases=True)
    except InvalidSpecifier:
        return True


def _renovate_only(
    package: str,
    targets: tuple[str, ...],
    current: str,
    manifest_seen: bool,
    skipped: Mapping[str, Any] | None,
    facts: ReleaseFacts | None,
) -> tuple[str, str]:
    if skipped is not None:
        return "skipped by shipyard", f"shipyard skipped it: {skipped.get('reason', '')}"
    category, why = _release_reason(package, _newest(targets), facts)
    if category:
        return category, f"{why}; shipyard does not propose it"
    if not manifest_seen:
        return (
            "manifest not read by shipyard",
            "shipyard reports nothing for this manifest (no update and no skipped dependency)",
        )
    return "not proposed by shipyard", f"Renovate proposes {', '.join(targets)} from {current}"


def _shipyard_only(
    manifest_scanned: bool,
    dep: RenovateDep | None,
    finding: Finding,
    held: bool = False,
) -> tuple[str, str]:
    if not manifest_scanned:
        return (
            "manifest not scanned by Renovate",
            "no Renovate manager's file pattern matches this file",
        )
    if dep is None:
        return "dependency not extracted by Renovate", "Renovate read the file but not this line"
    if dep.skip_reason:
        return (
            f"Renovate skip: {dep.skip_reason}",
            f"Renovate skips {dep.current_value or 'the unversioned requirement'!s} "
            f"({dep.skip_reason}); shipyard resolves it to {finding.current}",
        )
    spec = dep.current_value
    if spec and not spec.startswith("=="):
        if _admits(spec, finding.target):
            return (
                "range already admits the target",
                f"{spec} already allows {finding.target}: Renovate's rangeStrategy 'auto' "
                "leaves such a range alone; shipyard proposes moving it",
            )
        extra = " (it combines bounds with an exclusion, !=)" if "!=" in spec else ""
        return (
            "range Renovate does not widen",
            f"{spec} excludes {finding.target}, yet Renovate lists no update for it{extra}; "
            f"shipyard widens it to admit {finding.target}",
        )
    return "not proposed by Renovate", f"Renovate found no update from {spec}"


def _different(
    package: str,
    renovate: tuple[str, ...],
    shipyard: tuple[str, ...],
    facts: ReleaseFacts | None,
) -> tuple[str, str]:
    r, s = _newest(renovate), _newest(shipyard)
    rv, sv = _version(r), _version(s)
    if rv is not None and sv is not None and rv > sv:
        category, why = _release_reason(package, r, facts)
        if category:
            return category, f"{why}: shipyard stops at {s}"
        return "older target in shipyard", f"Renovate's newest is {r}, shipyard's {s}"
    category, why = _release_reason(package, s, facts)
    if category:
        return category, f"{why}: Renovate stops at {r}"
    return "newer target in shipyard", f"shipyard's target is {s}, Renovate's newest {r}"
