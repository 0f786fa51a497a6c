"""pyproject.toml: PEP 621 dependencies and extras, PEP 735 groups, poetry and PDM tables.

Edited with tomlkit, which keeps comments, quoting, spacing and order: only the changed strings differ.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import tomlkit
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Array, InlineTable, String, Table

from shipyard.deps.manifests.model import (
    Change,
    Dependency,
    HashSource,
    ManifestKind,
    Unreadable,
)
from shipyard.deps.manifests.ranges import poetry_to_pep440
from shipyard.deps.manifests.requirements import _exact, _first_line, new_constraint, specifier_span
from shipyard.errors import DependencyError

_Container = Array | Table | InlineTable | AoT
log = logging.getLogger(__name__)


@dataclass
class Pyproject:
    """A pyproject.toml's dependency tables. ``lock`` is set by discovery to the lock beside it."""

    path: str
    text: str
    compiled_from: str | None = None
    kind: ManifestKind = ManifestKind.PYPROJECT
    unreadable: list[Unreadable] = field(default_factory=list)
    """Dependency strings that are not PEP 508: skipped with a warning, never rewritten."""
    _doc: tomlkit.TOMLDocument = field(init=False, repr=False)
    _deps: list[Dependency] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        try:
            self._doc = tomlkit.parse(self.text)
        except TOMLKitError as exc:
            raise DependencyError(
                f"{self.path}: not valid TOML ({exc}); fix the file so that `python -c "
                "\"import tomllib; tomllib.load(open('pyproject.toml','rb'))\"` accepts it."
            ) from exc
        self._deps = [dep for dep, _, _ in self._entries(self._doc, self.unreadable)]
        for problem in self.unreadable:
            log.warning("%s; left alone", problem.message())

    @property
    def uses_poetry(self) -> bool:
        return "poetry" in self._tool()

    def dependencies(self) -> list[Dependency]:
        return list(self._deps)

    def apply(self, changes: Sequence[Change], *, hashes: HashSource) -> str:
        doc = tomlkit.parse(self.text)
        entries = list(self._entries(doc, []))
        for change in changes:
            if change.manifest != self.path:
                continue
            hits = [
                e for e in entries
                if e[0].canonical_name == change.canonical_name
                and change.section in (None, e[0].section)
            ]  # fmt: skip
            if not hits:
                raise DependencyError(
                    f"{self.path}: {change.canonical_name} is not a dependency here"
                    + (f" (in {change.section})" if change.section else "")
                    + "; was the file changed meanwhile? Plan the update again."
                )
            for dep, container, key in hits:
                _set(dep, container, key, change)
        return tomlkit.dumps(doc)

    # -- reading

    def _tool(self) -> dict[str, Any]:
        tool = self._doc.get("tool", {})
        return tool if isinstance(tool, dict) else {}

    def _entries(
        self, doc: tomlkit.TOMLDocument, unreadable: list[Unreadable]
    ) -> Iterator[tuple[Dependency, _Container, int | str]]:
        project = doc.get("project", {})
        yield from self._pep508(project.get("dependencies"), "project.dependencies", unreadable)
        for extra, items in _table(project.get("optional-dependencies")).items():
            yield from self._pep508(items, f"project.optional-dependencies.{extra}", unreadable)
        for group, items in _table(doc.get("dependency-groups")).items():
            yield from self._pep508(items, f"dependency-groups.{group}", unreadable)
        tool = _table(doc.get("tool"))
        pdm = _table(tool.get("pdm"))
        for group, items in _table(pdm.get("dev-dependencies")).items():
            yield from self._pep508(items, f"tool.pdm.dev-dependencies.{group}", unreadable)
        poetry = _table(tool.get("poetry"))
        yield from self._poetry(poetry.get("dependencies"), "tool.poetry.dependencies")
        yield from self._poetry(poetry.get("dev-dependencies"), "tool.poetry.dev-dependencies")
        for group, table in _table(poetry.get("group")).items():
            yield from self._poetry(
                _table(table).get("dependencies"), f"tool.poetry.group.{group}.dependencies"
            )

    def _pep508(
        self, items: object, section: str, unreadable: list[Unreadable]
    ) -> Iterator[tuple[Dependency, _Container, int | str]]:
        if items is None:
            return
        if not isinstance(items, Array):
            raise DependencyError(
                f"{self.path}: [{section}] must be an array of requirement strings, "
                'e.g. ["requests>=2.31"].'
            )
        for index, item in enumerate(items):
            if not isinstance(item, str):
                continue  # PEP 735 {include-group = "..."}
            try:
                req = Requirement(item)
            except InvalidRequirement as exc:
                unreadable.append(
                    Unreadable(
                        manifest=self.path,
                        section=section,
                        text=str(item),
                        reason=f"{_first_line(exc)}; write it as PEP 508: name[extras]<constraint>; marker",
                    )
                )
                continue
            if req.url:
                continue
            start, end = specifier_span(item)
            dep = Dependency(
                name=req.name,
                specifier=item[start:end],
                pinned=_exact(req.specifier),
                manifest=self.path,
                section=section,
                extras=tuple(sorted(req.extras)),
                marker=str(req.marker) if req.marker else None,
            )
            yield dep, items, index

    def _poetry(
        self, table: object, section: str
    ) -> Iterator[tuple[Dependency, _Container, int | str]]:
        for name, value in _table(table).items():
            if name.lower() == "python":
                continue
            spec: object = value
            extras: tuple[str, ...] = ()
            marker = None
            if isinstance(value, dict):
                if "version" not in value:
                    continue  # path, git or url dependency
                spec = value["version"]
                extras = tuple(sorted(str(e) for e in value.get("extras", [])))
                marker = str(value["markers"]) if "markers" in value else None
            if not isinstance(spec, str):
                continue  # several constraints by python version: left alone
            dep = Dependency(
                name=name,
                specifier=spec,
                pinned=_poetry_pin(spec),
                manifest=self.path,
                section=section,
                extras=extras,
                marker=marker,
            )
            yield dep, table, name  # type: ignore[misc]


def _table(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _poetry_pin(spec: str) -> Version | None:
    text = spec.strip().removeprefix("==").strip()
    if not text or not text[0].isdigit() or any(c in text for c in "*,<>=!^~ "):
        return None
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _set(dep: Dependency, container: _Container, key: int | str, change: Change) -> None:
    old = container[key]  # type: ignore[index]
    if dep.section.startswith("tool.poetry."):
        new_spec = _poetry_constraint(dep, change)
        if isinstance(old, dict):
            old["version"] = _like(old["version"], new_spec)
        else:
            container[key] = _like(old, new_spec)  # type: ignore[index]
        return
    text = str(old)
    start, end = specifier_span(text)
    new_spec = new_constraint(dep, change)
    container[key] = _like(old, text[:start] + new_spec + text[end:])  # type: ignore[index]


def _poetry_constraint(dep: Dependency, change: Change) -> str:
    if change.new_specifier is not None:
        return change.new_specifier
    if dep.pinned is not None:
        prefix = "==" if dep.specifier.strip().startswith("==") else ""
        return f"{prefix}{change.new_version}"
    if SpecifierSet(poetry_to_pep440(dep.specifier)).contains(change.new_version, prereleases=True):
        return dep.specifier
    raise DependencyError(
        f"{dep.location}: {dep.name} = {dep.specifier!r} does not admit {change.new_version}; "
        "give the change a new specifier (range strategy)."
    )


def _like(old: object, value: str) -> String | str:
    """``value`` as a TOML string quoted the way ``old`` was."""
    if isinstance(old, String):
        return String.from_raw(value, type_=old.type)
    return value
