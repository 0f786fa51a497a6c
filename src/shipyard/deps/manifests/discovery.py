"""Find a repository's manifests and lock files and load each with the reader for its format."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from shipyard.deps.manifests.model import Manifest


def discover(repo: Path, files: Sequence[str] | None = None) -> list[Manifest]:
    """Every manifest of ``repo`` (or those named in ``files``, repo-relative), includes followed.

    Found: ``requirements*.txt`` and ``requirements/*.txt`` with what they ``-r``/``-c`` include,
    pip-compile ``*.in`` sources with their compiled ``.txt``, ``pyproject.toml``, ``uv.lock``,
    ``poetry.lock`` and ``pdm.lock``. Raises DependencyError naming file, line and fix for broken input.
    """
    raise NotImplementedError


def load(repo: Path, path: str) -> Manifest:
    """The manifest at repo-relative ``path``, read with the reader its name calls for."""
    raise NotImplementedError
