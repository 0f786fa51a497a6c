"""Where the lock tools come from: shipyard's side, never the repository under change.

pip-tools and uv are part of shipyard's own environment. poetry and pdm are not (their dependencies
would clash with ours): each gets a tool environment created on the host on first use, from wheels
only (no package code runs on the host), cached under ``cache_dir`` by tool and version, and bound
read-only into the sandbox.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from shipyard.errors import DependencyError

log = logging.getLogger(__name__)

TOOL_VERSIONS = {"poetry": "2.5.1", "pdm": "2.29.4"}
"""The versions shipyard locks with; pinned so a refresh is reproducible (invariant 10)."""
RESOLVED_AS_OF = "2026-11-01T00:00:00Z"
"""Tool environments resolve their dependencies as the index stood then (uv's ``--exclude-newer``):
a later release of a dependency cannot break a pinned tool (hishel 2 broke pdm 2.29)."""


def base_python() -> Path:
    """The interpreter shipyard runs on, which the sandbox binds read-only."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return Path(sys.base_prefix) / "bin" / version


def uv_path() -> Path:
    """The uv executable of shipyard's environment."""
    from uv import find_uv_bin

    return Path(find_uv_bin())


@dataclass(frozen=True, kw_only=True)
class LockTools:
    """The tool environments for poetry and pdm under ``cache_dir`` (created when first needed).

    ``index_url`` is where the tools themselves are installed from (None: uv's default, PyPI); it is
    unrelated to the index a project resolves against.
    """

    cache_dir: Path
    poetry: str = TOOL_VERSIONS["poetry"]
    pdm: str = TOOL_VERSIONS["pdm"]
    index_url: str | None = None
    timeout: float = 600.0

    def version(self, tool: str) -> str:
        if tool not in TOOL_VERSIONS:
            raise DependencyError(f"unknown lock tool {tool!r}; shipyard runs poetry and pdm.")
        return str(getattr(self, tool))

    def environment(self, tool: str) -> Path:
        """The tool environment's folder (a virtual environment), created on first use."""
        version = self.version(tool)
        env = self.cache_dir / f"{tool}-{version}"
        if (env / ".complete").is_file():
            return env
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        partial = self.cache_dir / f".{tool}-{version}.{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        uv = str(uv_path())
        env_vars = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/nonexistent"),
            "UV_PYTHON_DOWNLOADS": "never",
            **({"UV_INDEX_URL": self.index_url} if self.index_url else {}),
        }
        for k in ("SSL_CERT_FILE", "SSL_CERT_DIR", "UV_CACHE_DIR"):
            if k in os.environ:
                env_vars[k] = os.environ[k]
        steps = [
            [uv, "venv", "--quiet", "--python", str(base_python()), str(partial)],
            [uv, "pip", "install", "--quiet", "--only-binary", ":all:",
             "--exclude-newer", RESOLVED_AS_OF,
             "--python", str(partial / "bin" / "python"), f"{tool}=={version}"],
        ]  # fmt: skip
        log.info("creating the %s %s tool environment in %s", tool, version, env)
        for argv in steps:
            try:
                done = subprocess.run(
                    argv, env=env_vars, capture_output=True, text=True, timeout=self.timeout,
                    check=False, stdin=subprocess.DEVNULL,
                )  # fmt: skip
            except (OSError, subprocess.TimeoutExpired) as exc:
                shutil.rmtree(partial, ignore_errors=True)
                raise DependencyError(f"cannot install {tool} {version}: {exc}") from exc
            if done.returncode != 0:
                shutil.rmtree(partial, ignore_errors=True)
                tail = " | ".join(done.stderr.strip().splitlines()[-3:])
                raise DependencyError(
                    f"cannot install {tool} {version} into {partial} for lock refreshes: {tail}. "
                    "Is the package index for tools reachable?"
                )
        (partial / ".complete").write_text(f"{tool}=={version}\n")
        try:
            partial.rename(env)
        except OSError:  # another process finished first: use theirs
            shutil.rmtree(partial, ignore_errors=True)
        return env

    def python(self, tool: str) -> Path:
        """The tool environment's interpreter (run the tool as ``python -m TOOL``)."""
        return self.environment(tool) / "bin" / "python"
