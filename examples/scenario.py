"""The bundled example as a scenario: a scratch git repository and a local package index.

Used by ``make demo`` (examples/demo.py), the end-to-end tests and the benchmarks, so all three run
the very same setup.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent
PROJECT = EXAMPLES / "project"
PATCHES = EXAMPLES / "patches"
PACKAGES = EXAMPLES / "packages"

GIT_ENV = {
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    "HOME": str(EXAMPLES),
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "Example Developer",
    "GIT_AUTHOR_EMAIL": "dev@example.invalid",
    "GIT_COMMITTER_NAME": "Example Developer",
    "GIT_COMMITTER_EMAIL": "dev@example.invalid",
}


def _git(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.strip()


def make_repo(dest: Path) -> Path:
    """Copy the example project into ``dest`` as a git repository with one commit on main."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(
        PROJECT, dest, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache", ".coverage")
    )
    _git("init", "--quiet", "--initial-branch=main", cwd=dest)
    _git("add", "--all", cwd=dest)
    _git("commit", "--quiet", "-m", "Example project", cwd=dest)
    return dest


def build_index(out_dir: Path) -> Path:
    """Build the example packages' wheels (and fetch the test tools) into ``out_dir`` once."""
    marker = out_dir / ".built"
    if not marker.exists():
        subprocess.run(
            [sys.executable, str(PACKAGES / "build.py"), str(out_dir)], check=True, timeout=600
        )
        marker.touch()
    return out_dir


def branches(repo: Path) -> dict[str, str]:
    """Every branch of ``repo`` and the commit it points at."""
    out = _git("for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads", cwd=repo)
    return dict(line.split(" ", 1) for line in out.splitlines() if line)


def head(repo: Path, ref: str = "main") -> str:
    return _git("rev-parse", ref, cwd=repo)


def show(repo: Path, ref: str, path: str) -> str:
    return _git("show", f"{ref}:{path}", cwd=repo)
