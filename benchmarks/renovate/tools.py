"""Running the two tools: Renovate installed from the npm registry beside the project, and
``shipyard run deps --dry-run --json``; plus release facts from a package index for explanations."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from .logparse import read_records

PRIMARY = ("node@24", "renovate@44")
"""Renovate 44 needs Node 24, which the npm registry ships as the ``node`` package."""
FALLBACK = ("renovate@39",)
"""The last Renovate line that runs on Node 20, the machine's own."""


@dataclass(frozen=True)
class Renovate:
    bin_dir: Path
    node_version: str
    renovate_version: str
    line: str
    """Which install ran: ``node@24 renovate@44`` or the ``renovate@39`` fallback on the system Node."""

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("RENOVATE_", "LOG_", "GITHUB_", "GH_", "NPM_CONFIG_"))
        }
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
        return env


def _out(cmd: list[str], env: dict[str, str], cwd: Path | None = None, timeout: int = 120) -> str:
    done = subprocess.run(
        cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=True
    )
    return done.stdout.strip()


def _probe(dest: Path, line: str) -> Renovate | None:
    bin_dir = dest / "node_modules" / ".bin"
    if not (bin_dir / "renovate").exists():
        return None
    probe = Renovate(bin_dir, "", "", line)
    try:
        node = _out(["node", "--version"], probe.env())
        version = _out(["renovate", "--version"], probe.env())
    except (OSError, subprocess.SubprocessError):
        return None
    return Renovate(bin_dir, node, version.splitlines()[-1].strip(), line)


def _npm_install(dest: Path, packages: tuple[str, ...]) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    # npm 11 runs no install script unless the project allows it; node's preinstall links the
    # platform's binary into node_modules/.bin/node.
    manifest = {"name": "renovate-benchmark", "private": True, "allowScripts": {"node": True}}
    (dest / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", *packages],
        cwd=dest,
        env={k: v for k, v in os.environ.items() if not k.startswith("NPM_CONFIG_")},
        check=True,
        timeout=1800,
    )


def install(cache: Path) -> Renovate:
    """Renovate 44 on Node 24 from npm in ``cache/renovate`` (installed once), or Renovate 39 on
    the machine's Node in ``cache/renovate-39`` when 44 cannot run."""
    primary = cache / "renovate"
    found = _probe(primary, " ".join(PRIMARY))
    if found is None or not found.node_version.startswith("v24"):
        try:
            _npm_install(primary, PRIMARY)
        except (OSError, subprocess.SubprocessError) as exc:
            print(f"npm install {' '.join(PRIMARY)} failed ({exc}); trying {FALLBACK[0]}")
        found = _probe(primary, " ".join(PRIMARY))
    if found is not None and found.node_version.startswith("v24"):
        return found
    fallback = cache / "renovate-39"
    found = _probe(fallback, FALLBACK[0] + " on the system Node")
    if found is None:
        _npm_install(fallback, FALLBACK)
        found = _probe(fallback, FALLBACK[0] + " on the system Node")
    if found is None:
        raise RuntimeError("neither renovate@44 on node@24 nor renovate@39 could be installed")
    return found


@dataclass(frozen=True)
class Timed:
    seconds: float
    """Wall clock around the whole process."""
    cpu_seconds: float
    """User plus system time of the process and its children: less sensitive to a loaded host."""
    returncode: int
    stdout: str
    stderr: str


def _timed_run(cmd: list[str], cwd: Path, env: dict[str, str]) -> Timed:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return Timed(seconds, cpu, done.returncode, done.stdout, done.stderr)


def run_renovate(
    renovate: Renovate, repo: Path, config: Path, cache_dir: Path, log: Path
) -> tuple[Timed, list[dict[str, Any]]]:
    """One lookup-only dry run of Renovate's local platform in ``repo``; its log goes to ``log``."""
    env = renovate.env() | {
        "RENOVATE_CONFIG_FILE": str(config),
        "RENOVATE_ONBOARDING": "false",
        "LOG_LEVEL": "debug",
        "LOG_FORMAT": "json",
    }
    cmd = ["renovate", "--platform=local", "--dry-run=lookup", f"--cache-dir={cache_dir}"]
    timed = _timed_run(cmd, repo, env)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(timed.stdout)
    return timed, read_records(timed.stdout.splitlines())


def run_shipyard(shipyard: list[str], repo: Path, home: Path, index_url: str, out: Path) -> Timed:
    """``shipyard run deps --repo R --dry-run --json`` with its home (store and caches) at ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env["SHIPYARD_HOME"] = str(home)
    cmd = [*shipyard, "run", "deps", "--repo", str(repo), "--dry-run", "--json"]
    cmd += ["--index-url", index_url]
    home.parent.mkdir(parents=True, exist_ok=True)
    timed = _timed_run(cmd, repo, env)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(timed.stdout)
    return timed


class IndexFacts:
    """Release facts from a simple-API index (PEP 691 JSON), one request per package, cached."""

    def __init__(self, index_url: str) -> None:
        self.index_url = index_url.rstrip("/") + "/"
        self._files: dict[str, list[dict[str, Any]]] = {}

    def _project(self, package: str) -> list[dict[str, Any]]:
        name = str(canonicalize_name(package))
        if name not in self._files:
            response = httpx.get(
                f"{self.index_url}{name}/",
                headers={"Accept": "application/vnd.pypi.simple.v1+json"},
                timeout=60,
                follow_redirects=True,
            )
            response.raise_for_status()
            self._files[name] = list(response.json().get("files") or [])
        return self._files[name]

    def __call__(self, package: str, version: str) -> dict[str, Any]:
        try:
            wanted = Version(version)
        except InvalidVersion:
            return {}
        files = []
        for f in self._project(package):
            filename = str(f.get("filename", ""))
            try:
                if filename.endswith(".whl"):
                    v = parse_wheel_filename(filename)[1]
                else:
                    v = parse_sdist_filename(filename)[1]
            except ValueError:
                continue
            if v == wanted:
                files.append(f)
        uploads = [
            datetime.fromisoformat(str(f["upload-time"]).replace("Z", "+00:00"))
            for f in files
            if f.get("upload-time")
        ]
        age = (datetime.now(UTC) - min(uploads)).total_seconds() / 86400 if uploads else None
        return {
            "prerelease": wanted.is_prerelease,
            "yanked": bool(files) and all(bool(f.get("yanked")) for f in files),
            "age_days": age,
            "requires_python": next(
                (f["requires-python"] for f in files if f.get("requires-python")), ""
            ),
        }
