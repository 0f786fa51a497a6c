"""uv.lock, poetry.lock and pdm.lock: read what they pin. Their tools write them (see ``refresh``)."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from shipyard.deps.manifests.model import (
    Change,
    Dependency,
    HashSource,
    ManifestKind,
    Unreadable,
)
from shipyard.errors import DependencyError

SECTION = "lock"
_NAME_LINE = re.compile(r'^name\s*=\s*"(?P<name>[^"]+)"', re.MULTILINE)
TOOL = {
    ManifestKind.UV_LOCK: "uv",
    ManifestKind.POETRY_LOCK: "poetry",
    ManifestKind.PDM_LOCK: "pdm",
}


@dataclass
class LockFile:
    """A lock file: every package it pins. ``direct`` names what its pyproject asks for by name;
    the rest are transitive pins."""

    path: str
    text: str
    kind: ManifestKind
    compiled_from: str | None = None
    direct: frozenset[str] = frozenset()
    unreadable: list[Unreadable] = field(default_factory=list)
    _deps: list[Dependency] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        try:
            data = tomllib.loads(self.text)
        except tomllib.TOMLDecodeError as exc:
            raise DependencyError(
                f"{self.path}: not valid TOML ({exc}); regenerate it with `{TOOL[self.kind]} lock`."
            ) from exc
        lines = {
            m["name"]: self.text.count("\n", 0, m.start()) + 1
            for m in _NAME_LINE.finditer(self.text)
        }
        seen: set[tuple[str, Version]] = set()
        for package in data.get("package", []):
            dep = self._dependency(package, lines)
            if dep is not None and (dep.canonical_name, dep.pinned) not in seen:
                seen.add((dep.canonical_name, dep.pinned))  # type: ignore[arg-type]
                self._deps.append(dep)

    @property
    def tool(self) -> str:
        return TOOL[self.kind]

    def dependencies(self) -> list[Dependency]:
        return list(self._deps)

    def apply(self, changes: Sequence[Change], *, hashes: HashSource) -> str:
        names = {d.canonical_name for d in self._deps}
        for change in changes:
            if change.manifest == self.path and change.canonical_name not in names:
                raise DependencyError(
                    f"{self.path}: {change.canonical_name} is not locked here; was the lock "
                    "refreshed meanwhile? Plan the update again."
                )
        return self.text

    def _dependency(self, package: dict[str, Any], lines: dict[str, int]) -> Dependency | None:
        name, version = package.get("name"), package.get("version")
        source = package.get("source", {})
        if not isinstance(name, str) or not isinstance(version, str):
            return None
        if isinstance(source, dict) and not _from_index(source):
            return None  # the project itself, or a dependency from a path, git or URL
        try:
            pinned = Version(version)
        except InvalidVersion as exc:
            raise DependencyError(
                f"{self.path}: {name} is locked at {version!r}, which is not a PEP 440 version; "
                f"regenerate the lock with `{self.tool} lock`."
            ) from exc
        files = [*package.get("wheels", []), *([package["sdist"]] if "sdist" in package else []),
                 *package.get("files", [])]  # fmt: skip
        return Dependency(
            name=name,
            specifier=f"=={version}",
            pinned=pinned,
            manifest=self.path,
            section=SECTION,
            direct=canonicalize_name(name) in self.direct,
            hashed=any(isinstance(f, dict) and "hash" in f for f in files),
            line=lines.get(name),
        )


def _from_index(source: dict[str, Any]) -> bool:
    """uv writes ``{registry = URL}`` for index packages; poetry ``type = "legacy"`` or none."""
    if "type" in source:  # poetry
        return source["type"] not in ("directory", "file", "git", "url")
    return not {"virtual", "editable", "directory", "path", "git", "url"} & set(source)
