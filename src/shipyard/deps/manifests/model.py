"""The value types every manifest format shares: a dependency as written, a change to make, a manifest.

A manifest reads its dependencies without changing anything and applies changes as a pure text
transformation that leaves every byte outside the changed versions (and their hashes) as it was.
Lock files are rewritten by their own tool inside the sandbox (``shipyard.deps.manifests.refresh``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

HashSource = Callable[[str, Version], Sequence[str]]
"""``hashes(name, version)``: the sha256 digests of every file of that release on the index.

Each digest is hex (``"ab12…"``) or prefixed (``"sha256:ab12…"``). Called only for requirements that
carry ``--hash`` options; an empty result for a hashed requirement is an error (pip would refuse it).
"""


class ManifestKind(StrEnum):
    """The formats shipyard reads and writes."""

    REQUIREMENTS = "requirements"
    """A requirements file (``requirements*.txt``, a pip-compile ``.in`` source, or its output)."""
    PYPROJECT = "pyproject"
    """pyproject.toml: PEP 621, PEP 735, ``[tool.poetry]`` and ``[tool.pdm]`` dependency tables."""
    UV_LOCK = "uv.lock"
    POETRY_LOCK = "poetry.lock"
    PDM_LOCK = "pdm.lock"


LOCK_KINDS = frozenset({ManifestKind.UV_LOCK, ManifestKind.POETRY_LOCK, ManifestKind.PDM_LOCK})


@dataclass(frozen=True, kw_only=True)
class Dependency:
    """One dependency as a manifest states it.

    ``specifier`` is the version constraint exactly as written (``"==1.2.3"``, ``">=1.2,<2"``, poetry's
    ``"^1.2"``, ``""`` for none); ``pinned`` is the exact version when the manifest fixes one (an ``==``
    pin, or the version a lock file records). ``section`` says where it was found:
    ``"requirements"``, ``"project.dependencies"``, ``"project.optional-dependencies.dev"``,
    ``"dependency-groups.test"``, ``"tool.poetry.dependencies"``,
    ``"tool.poetry.group.dev.dependencies"``, ``"tool.pdm.dev-dependencies.lint"`` or ``"lock"``.
    ``direct`` is False for lock entries nothing in the project asks for by name (transitive pins).
    """

    name: str
    specifier: str
    pinned: Version | None
    manifest: str
    section: str
    extras: tuple[str, ...] = ()
    marker: str | None = None
    direct: bool = True
    hashed: bool = False
    line: int | None = None
    canonical_name: NormalizedName = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "canonical_name", canonicalize_name(self.name))

    @property
    def location(self) -> str:
        """``file:line`` (or ``file [section]``) for messages."""
        if self.line is not None:
            return f"{self.manifest}:{self.line}"
        return f"{self.manifest} [{self.section}]"


@dataclass(frozen=True, kw_only=True)
class Unreadable:
    """A dependency line (or pyproject item) shipyard cannot read: left alone, never rewritten.

    ``line`` is 1-based for requirements files; pyproject items name their ``section`` instead.
    ``reason`` says what is wrong and how to fix it.
    """

    manifest: str
    text: str
    reason: str
    line: int | None = None
    section: str | None = None

    @property
    def location(self) -> str:
        """``file:line`` (or ``file [section]``) for messages."""
        if self.line is not None:
            return f"{self.manifest}:{self.line}"
        return f"{self.manifest} [{self.section}]" if self.section else self.manifest

    @property
    def name(self) -> str:
        """The project name the text starts with, or the text itself when it has none."""
        head = _NAME.match(self.text)
        return head.group(0) if head else self.text

    def message(self) -> str:
        return f"{self.location}: cannot read requirement {self.text!r} ({self.reason})"


_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")


@dataclass(frozen=True, kw_only=True)
class Change:
    """Move ``canonical_name`` in ``manifest`` to ``new_version``.

    ``new_specifier`` replaces the written constraint of a range (computed with ``range_for``); None
    keeps ranges as written and updates exact pins and lock entries only. ``section`` (optional)
    limits the change to one section when a name appears in several.
    """

    canonical_name: str
    manifest: str
    new_version: Version
    new_specifier: str | None = None
    section: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "canonical_name", canonicalize_name(self.canonical_name))


class Manifest(Protocol):
    """One manifest or lock file of a repository.

    ``path`` is repo-relative (posix); ``compiled_from`` names the manifest a lock or compiled
    requirements file is generated from (``requirements.in`` for ``requirements.txt``,
    ``pyproject.toml`` for ``uv.lock``), None for a hand-written manifest.
    """

    path: str
    kind: ManifestKind
    compiled_from: str | None
    text: str
    """The file's content as read (for ``apply``'s comparisons; never re-read)."""
    unreadable: list[Unreadable]
    """Dependency lines the reader could not parse: reported, skipped, and never edited."""

    def dependencies(self) -> list[Dependency]:
        """Every dependency the file states, in file order."""
        ...

    def apply(self, changes: Sequence[Change], *, hashes: HashSource) -> str:
        """The file's new text with ``changes`` made; every other byte stays as it was.

        Changes for other manifests are ignored. Raises DependencyError when a change names a
        package the file does not have. Lock files (uv, poetry, pdm) return their text unchanged:
        their tool rewrites them in the sandbox.
        """
        ...
