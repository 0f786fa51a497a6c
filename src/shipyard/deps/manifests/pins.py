"""Pin packages in a pyproject.toml for the length of one resolution, then put the file back.

poetry and pdm cannot lock one package at a chosen version. Resolving once with ``name==version``
added to the project's own dependencies, then again with the real file, moves exactly those packages
(direct or transitive) and leaves the lock's hash matching the real pyproject.toml.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import tomlkit
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from tomlkit.items import Array, Table

from shipyard.errors import DependencyError


@contextmanager
def pin_temporarily(pyproject: Path, pins: Mapping[str, Version], *, style: str) -> Iterator[None]:
    """Inside the block, ``pyproject`` pins ``pins`` exactly; after it, the file is as it was.

    ``style`` is ``"poetry"`` (``[tool.poetry.dependencies]``, or ``[project]`` when the project
    declares its dependencies there) or ``"pep621"`` (``[project] dependencies``).
    """
    original = pyproject.read_bytes()
    if not pins:
        yield
        return
    doc = tomlkit.parse(original.decode("utf-8"))
    poetry = doc.get("tool", {}).get("poetry", {}).get("dependencies")
    if style == "poetry" and isinstance(poetry, Table):
        _pin_poetry(poetry, pins)
    else:
        project = doc.get("project")
        if not isinstance(project, Table):
            raise DependencyError(
                f"{pyproject.name} has no [project] table to pin {', '.join(pins)} in."
            )
        _pin_pep621(project, pins)
    pyproject.write_text(tomlkit.dumps(doc), encoding="utf-8")
    try:
        yield
    finally:
        pyproject.write_bytes(original)


def _pin_poetry(table: Table, pins: Mapping[str, Version]) -> None:
    names = {canonicalize_name(k): k for k in table}
    for name, version in pins.items():
        key = names.get(canonicalize_name(name))
        current = table.get(key) if key else None
        if isinstance(current, dict):
            current["version"] = f"=={version}"
        else:
            table[key or name] = f"=={version}"


def _pin_pep621(project: Table, pins: Mapping[str, Version]) -> None:
    deps = project.get("dependencies")
    if not isinstance(deps, Array):
        deps = tomlkit.array()
        project["dependencies"] = deps
    left = dict(pins)
    for index, item in enumerate(list(deps)):
        try:
            req = Requirement(str(item))
        except InvalidRequirement:
            continue
        version = left.pop(canonicalize_name(req.name), None)
        if version is not None:
            extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
            marker = f"; {req.marker}" if req.marker else ""
            deps[index] = f"{req.name}{extras}=={version}{marker}"
    for name, version in left.items():
        deps.append(f"{name}=={version}")
