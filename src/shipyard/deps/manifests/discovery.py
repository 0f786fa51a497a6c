"""Find a repository's manifests and lock files and load each with the reader for its format."""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Sequence
from pathlib import Path

from shipyard.deps.manifests.locks import LockFile
from shipyard.deps.manifests.model import Manifest, ManifestKind
from shipyard.deps.manifests.pyproject import Pyproject
from shipyard.deps.manifests.requirements import RequirementsFile
from shipyard.errors import DependencyError

LOCKS = {
    "uv.lock": ManifestKind.UV_LOCK,
    "poetry.lock": ManifestKind.POETRY_LOCK,
    "pdm.lock": ManifestKind.PDM_LOCK,
}
_SKIP = frozenset(
    {"node_modules", "venv", "site-packages", "build", "dist", "__pycache__", "htmlcov"}
)


def discover(repo: Path, files: Sequence[str] | None = None) -> list[Manifest]:
    """Every manifest of ``repo`` (or those named in ``files``, repo-relative), includes followed.

    Found: ``*requirements*.txt`` and ``.txt`` files in a ``requirements/`` folder with what they
    ``-r``/``-c`` include, pip-compile ``.in`` sources with their compiled ``.txt`` (any ``X.in``
    beside an ``X.txt``), ``pyproject.toml``,
    ``uv.lock``, ``poetry.lock`` and ``pdm.lock``. Sources come before what is compiled from them.
    A dependency line no reader can parse is left alone and listed in its manifest's
    ``unreadable``; a file that cannot be read at all (not UTF-8, invalid TOML, an include outside
    the repository or missing) raises DependencyError naming file, line and fix.
    """
    root = repo.resolve()
    if files is None:
        wanted = sorted(_candidates(root))
    else:
        wanted = []
        for name in files:
            if not (root / name).is_file():
                raise DependencyError(
                    f"{name}: no such manifest in {repo}; fix the name in [deps] files."
                )
            wanted.append(Path(name).as_posix())
    loaded: dict[str, Manifest] = {}
    queue = list(wanted)
    while queue:
        path = queue.pop(0)
        if path in loaded:
            continue
        manifest = load(root, path)
        loaded[path] = manifest
        if isinstance(manifest, RequirementsFile):
            for include in manifest.includes:
                target = _relative(root, path, include.path, include.line)
                if target is not None and target not in loaded:
                    queue.append(target)
    order = {ManifestKind.PYPROJECT: 1, **dict.fromkeys(LOCKS.values(), 2)}
    return sorted(
        loaded.values(),
        key=lambda m: (order.get(m.kind, 0), m.compiled_from is not None, m.path),
    )


def load(repo: Path, path: str) -> Manifest:
    """The manifest at repo-relative ``path``, read with the reader its name calls for."""
    file = repo / path
    try:
        text = file.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DependencyError(f"{path}: cannot be read as UTF-8 text ({exc}).") from exc
    name = posixpath.basename(path)
    if name == "pyproject.toml":
        return Pyproject(path=path, text=text)
    if name in LOCKS:
        return _lock(repo, path, text, LOCKS[name])
    manifest = RequirementsFile(path=path, text=text)
    if manifest.header is not None:
        manifest.compiled_from, manifest.compile_dir = _source(repo, path, manifest.header.sources)
    elif path.endswith(".txt") and (repo / (path[:-4] + ".in")).is_file():
        manifest.compiled_from = path[:-4] + ".in"  # compiled with --no-header
        manifest.compile_dir = posixpath.dirname(path)
    return manifest


def _lock(repo: Path, path: str, text: str, kind: ManifestKind) -> LockFile:
    pyproject = posixpath.join(posixpath.dirname(path), "pyproject.toml")
    direct: frozenset[str] = frozenset()
    source = None
    if (repo / pyproject).is_file():
        source = pyproject
        project = load(repo, pyproject)
        direct = frozenset(d.canonical_name for d in project.dependencies())
    return LockFile(path=path, text=text, kind=kind, compiled_from=source, direct=direct)


def _source(repo: Path, path: str, sources: Sequence[str]) -> tuple[str | None, str]:
    """The first source of a compiled file that exists, and the folder its command ran in: the
    file's own folder or the repository root."""
    folder = posixpath.dirname(path)
    for source in sources:
        for base in dict.fromkeys((folder, "")):
            normal = posixpath.normpath(posixpath.join(base, source))
            if not normal.startswith("..") and (repo / normal).is_file():
                return normal, base
    return None, folder


def _relative(repo: Path, path: str, include: str, line: int) -> str | None:
    if "://" in include:
        return None  # a URL include: pip fetches it, shipyard does not edit it
    target = posixpath.normpath(posixpath.join(posixpath.dirname(path), include))
    if target.startswith("..") or posixpath.isabs(target):
        raise DependencyError(
            f"{path}:{line}: includes {include!r}, which is outside the repository; "
            "include files from inside it."
        )
    if not (repo / target).is_file():
        raise DependencyError(
            f"{path}:{line}: includes {include!r}, but {target} does not exist; "
            "fix the path or remove the line."
        )
    return target


def _candidates(root: Path) -> Iterator[str]:
    for file in _walk(root):
        if _is_manifest(file):
            yield file.relative_to(root).as_posix()


def _is_manifest(file: Path) -> bool:
    name = file.name
    if name == "pyproject.toml" or name in LOCKS:
        return True
    named = "requirements" in name or "requirements" in file.parent.name
    if name.endswith(".txt"):
        return named or file.with_suffix(".in").is_file()
    return name.endswith(".in") and (named or file.with_suffix(".txt").is_file())


def _walk(folder: Path) -> Iterator[Path]:
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or entry.name in _SKIP or entry.is_symlink():
            continue
        if entry.is_dir():
            yield from _walk(entry)
        elif entry.is_file():
            yield entry
