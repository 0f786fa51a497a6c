"""Build a Python environment for a tree inside the sandbox, offline, from the run's wheelhouse.

The host only downloads wheels (no package code runs on the host); creating the virtual environment and
installing into it happen in the sandbox with no network, using uv for speed. ``environment_key`` names a
dependency set so the harness can take a prepared environment from the pool (shipyard.sandbox.pool)
instead of installing it again.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from shipyard.errors import SandboxUnavailable
from shipyard.sandbox.base import WORKSPACE, CommandResult, Limits, Mount, Sandbox

ENV_DIR = "/env"
"""Harness-owned scratch inside the sandbox: the virtual environment and the reports live here."""
WHEELHOUSE_DIR = "/wheelhouse"
UV_PATH = "/opt/shipyard/bin/uv"
VENV = f"{ENV_DIR}/venv"
KEY_FORMAT = 1
"""Bumped whenever the way an environment is built changes, so older pool entries are not reused."""
_INCLUDE = re.compile(r"(?:-r|--requirement|-c|--constraint)(?:\s*=\s*|\s+|(?<=-[rc]))(\S+)")
_FROM_TREE = ("-e", "--editable", ".", "/", "file:")
_LINKS = re.compile(r"(?:-f|--find-links)(?:\s*=\s*|\s+|(?<=-f))(\S+)")
_LOCAL_ARCHIVE = re.compile(r"(^|[\s=@])[^\s:]*\.(whl|zip|tar\.gz|tgz)\b", re.IGNORECASE)
SANDBOX_ENV = {
    "HOME": "/tmp",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONHASHSEED": "0",
}
"""What every gate command sees besides its tools' variables: nothing of the host, reproducible hashing."""


def sandbox_python() -> str:
    """The interpreter the sandbox exposes read-only: the base installation shipyard itself runs on."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return str(Path(sys.base_prefix) / "bin" / version)


def uv_binary() -> Path:
    """The uv executable shipped with shipyard's own environment."""
    try:
        import uv

        return Path(uv.find_uv_bin())
    except (ImportError, FileNotFoundError) as exc:  # pragma: no cover - uv is a pinned dependency
        found = shutil.which("uv")
        if found:
            return Path(found)
        raise SandboxUnavailable(
            "uv is not installed in shipyard's environment; reinstall shipyard (`make setup`)."
        ) from exc


@dataclass(frozen=True, kw_only=True)
class PythonEnv:
    """Mounts and environment variables that give sandboxed commands the tree's Python environment."""

    mounts: tuple[Mount, ...]
    env: dict[str, str]
    python: str = f"{VENV}/bin/python"
    prepared: bool = False
    """The scratch already holds the environment (lent by the pool): install only checks it."""


def python_env(*, scratch: Path, wheelhouse: Path) -> PythonEnv:
    """The view of scratch, wheelhouse and uv that every sandboxed step of a gate shares.

    A virtual environment already at ``scratch/venv`` (the harness puts the pooled one there) is used
    as it is.
    """
    mounts = (
        Mount(source=scratch, target=ENV_DIR, writable=True),
        Mount(source=wheelhouse, target=WHEELHOUSE_DIR),
        Mount(source=uv_binary(), target=UV_PATH),
    )
    env = {
        **SANDBOX_ENV,
        "PATH": f"{VENV}/bin:/usr/local/bin:/usr/bin:/bin",
        "UV_NO_CACHE": "1",
        "UV_OFFLINE": "1",
        "UV_PYTHON_DOWNLOADS": "never",
        "VIRTUAL_ENV": VENV,
    }
    return PythonEnv(mounts=mounts, env=env, prepared=(scratch / "venv" / "pyvenv.cfg").is_file())


def gate_limits(*, timeout_seconds: float, memory_mb: int) -> Limits:
    """The limits of a gate command: wall time, twice that in CPU time, and an address-space cap."""
    return Limits(
        wall_seconds=float(timeout_seconds),
        cpu_seconds=max(1, int(timeout_seconds * 2)),
        memory_bytes=memory_mb * 1024**2,
    )


def requirement_files(tree: Path, names: Sequence[str]) -> list[str]:
    """The configured requirement files that exist in the tree, in order."""
    return [name for name in names if (tree / name).is_file()]


def missing_requirements(tree: Path, files: Sequence[str], wanted: Sequence[str]) -> list[str]:
    """Those of ``wanted`` (e.g. pytest, coverage) that no requirement file already names."""
    named: set[str] = set()
    for name in files:
        for line in (tree / name).read_text(encoding="utf-8", errors="replace").splitlines():
            line = line.split("#", 1)[0].strip()
            if not line or line.startswith("-"):
                continue
            try:
                named.add(canonicalize_name(Requirement(line).name))
            except InvalidRequirement:
                continue
    return [w for w in wanted if canonicalize_name(Requirement(w).name) not in named]


def install(
    sandbox: Sandbox,
    *,
    tree: Path,
    env: PythonEnv,
    python: str,
    files: Sequence[str],
    extra: Sequence[str],
    limits: Limits,
    compile_bytecode: bool = False,
) -> CommandResult:
    """Create the venv and install the requirements offline; returns the failing step's result or the last.

    With ``env.prepared`` the venv is not created again and the install only confirms (in well under a
    second) that it satisfies the requirements. ``compile_bytecode`` is for environments built once and
    used many times: every later import skips compiling.
    """
    if not env.prepared:
        create = sandbox.run(
            [UV_PATH, "venv", "--quiet", "--python", python, VENV],
            workspace=tree,
            env=env.env,
            mounts=env.mounts,
            limits=limits,
        )
        if not create.ok:
            return create
    argv = [UV_PATH, "pip", "install", "--quiet", "--python", f"{VENV}/bin/python"]
    argv += ["--no-index", "--find-links", WHEELHOUSE_DIR]
    argv += ["--compile-bytecode"] if compile_bytecode else []
    for name in files:
        argv += ["-r", f"{WORKSPACE}/{name}"]
    argv += list(extra)
    return sandbox.run(argv, workspace=tree, env=env.env, mounts=env.mounts, limits=limits)


def environment_key(
    tree: Path, *, files: Sequence[str], extra: Sequence[str], wheelhouse: Path, python: str
) -> str | None:
    """A digest of everything an installed environment depends on, or None when it depends on the tree.

    The inputs: the requirement files (and the files they include), the added requirements, the wheels
    (by content), the interpreter and the installer. Requirements installed from the tree itself (``-e .``,
    local paths) would make the environment differ per commit, so those sets are not pooled.
    """
    contents = requirement_contents(tree, files)
    if contents is None:
        return None
    try:
        uv_version = version("uv")
    except PackageNotFoundError:  # pragma: no cover - uv is a pinned dependency
        uv_version = str(uv_binary())
    wheels = {
        wheel.name: hashlib.sha256(wheel.read_bytes()).hexdigest()
        for wheel in sorted(wheelhouse.glob("*.whl"))
    }
    inputs = {
        "format": KEY_FORMAT,
        "requirements": contents,
        "extra": list(extra),
        "wheels": wheels,
        "python": [python, sys.version],
        "uv": uv_version,
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:32]


def requirement_contents(tree: Path, files: Sequence[str]) -> dict[str, str] | None:
    """Each requirement file's text, following includes; None if a line installs from the tree."""
    contents: dict[str, str] = {}
    pending = list(files)
    while pending:
        name = pending.pop()
        path = (tree / name).resolve()
        if name in contents or not path.is_relative_to(tree.resolve()) or not path.is_file():
            contents.setdefault(name, "")
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        contents[name] = text
        for raw in text.splitlines():
            line = raw.split(" #", 1)[0].strip()
            include = _INCLUDE.fullmatch(line)
            if include:
                pending.append(str(Path(name).parent / include[1]))
            elif line.startswith(_FROM_TREE) or "@ file:" in line or _local_files(line):
                return None
    return contents


def _local_files(line: str) -> bool:
    """Whether a requirement line draws on files of the tree: ``--find-links`` to a directory
    (relative to the requirement file) or a wheel or archive named by its path."""
    links = _LINKS.match(line)
    if links:
        return not links[1].startswith(("http://", "https://"))
    return bool(_LOCAL_ARCHIVE.search(line)) and "://" not in line
