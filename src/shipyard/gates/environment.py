"""Build a Python environment for a tree inside the sandbox, offline, from the run's wheelhouse.

The host only downloads wheels (no package code runs on the host); creating the virtual environment and
installing into it happen in the sandbox with no network, using uv for speed.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
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


def python_env(*, scratch: Path, wheelhouse: Path) -> PythonEnv:
    """The view of scratch, wheelhouse and uv that every sandboxed step of a gate shares."""
    mounts = (
        Mount(source=scratch, target=ENV_DIR, writable=True),
        Mount(source=wheelhouse, target=WHEELHOUSE_DIR),
        Mount(source=uv_binary(), target=UV_PATH),
    )
    env = {
        "PATH": f"{VENV}/bin:/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "UV_NO_CACHE": "1",
        "UV_OFFLINE": "1",
        "UV_PYTHON_DOWNLOADS": "never",
        "VIRTUAL_ENV": VENV,
    }
    return PythonEnv(mounts=mounts, env=env)


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
) -> CommandResult:
    """Create the venv and install the requirements offline; returns the failing step's result or the last."""
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
    for name in files:
        argv += ["-r", f"{WORKSPACE}/{name}"]
    argv += list(extra)
    return sandbox.run(argv, workspace=tree, env=env.env, mounts=env.mounts, limits=limits)
