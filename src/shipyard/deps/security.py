"""Known vulnerabilities of a release, and the smallest release that fixes them all.

Advisories come from the index's JSON API (PyPI's ``vulnerabilities``: OSV ids, aliases, summary and
``fixed_in`` versions). The logic here is pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from packaging.version import InvalidVersion, Version

from shipyard.deps.index import Release


@dataclass(frozen=True)
class Vulnerability:
    """One advisory affecting a release: its OSV id (``PYSEC-…``, ``GHSA-…``) and what fixes it."""

    id: str
    summary: str = ""
    aliases: tuple[str, ...] = ()
    fixed_in: tuple[Version, ...] = ()
    link: str = ""
    details: str = field(default="", compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "aliases": list(self.aliases),
            "summary": self.summary,
            "fixed_in": [str(v) for v in self.fixed_in],
            "link": self.link,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Vulnerability | None:
        """From one entry of PyPI's ``vulnerabilities`` list; None for a withdrawn or nameless one."""
        if data.get("withdrawn") or not data.get("id"):
            return None
        fixed = []
        for text in data.get("fixed_in") or ():
            try:
                fixed.append(Version(str(text)))
            except InvalidVersion:
                continue
        summary = str(data.get("summary") or "").strip()
        details = str(data.get("details") or "").strip()
        return cls(
            id=str(data["id"]),
            summary=summary or details.split("\n", 1)[0][:200],
            aliases=tuple(str(a) for a in data.get("aliases") or ()),
            fixed_in=tuple(sorted(fixed)),
            link=str(data.get("link") or ""),
            details=details,
        )


def fixes(vulnerability: Vulnerability, version: Version) -> bool:
    """Whether ``version`` carries a fix for ``vulnerability``.

    A fix on the same release line (same first segment) must be at or below ``version``: 4.0.0 is
    not fixed by 3.2.25 when 4.2.14 is the 4.x fix. Without a fix on its line, any listed fix at
    or below ``version`` counts (later lines are assumed to include it). No ``fixed_in``: no fix.
    """
    if not vulnerability.fixed_in:
        return False
    same_line = [f for f in vulnerability.fixed_in if f.release[:1] == version.release[:1]]
    if same_line:
        return any(f <= version for f in same_line)
    return any(f <= version for f in vulnerability.fixed_in)


def smallest_fix(
    releases: Sequence[Release],
    current: Version,
    vulnerabilities: Sequence[Vulnerability],
    *,
    allowed: Any = None,
    prereleases: bool = False,
) -> Release | None:
    """The lowest installable release above ``current`` that fixes every one of ``vulnerabilities``.

    Yanked releases, releases without a wheel, pre-releases (unless asked for) and versions outside
    ``allowed`` (a SpecifierSet) are passed over. None when no release fixes them all.
    """
    for release in sorted(releases, key=lambda r: r.version):
        version = release.version
        if version <= current or release.yanked or not release.has_wheel:
            continue
        if version.is_prerelease and not prereleases:
            continue
        if allowed is not None and not allowed.contains(version, prereleases=True):
            continue
        if all(fixes(v, version) for v in vulnerabilities):
            return release
    return None
