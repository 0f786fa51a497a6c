"""Host-side tool environments: each adapter's tool installed once per version, mounted read-only.

A Python tool gets a virtual environment made by uv with the interpreter shipyard runs on (the one
every sandbox sees), an npm tool its own ``npm install --prefix``. Both live in
``$SHIPYARD_TOOLS_DIR`` (default ``$SHIPYARD_HOME/tools``) as ``<adapter>-<version>``, appear only
once complete (built aside, then renamed) and carry ``shipyard-tool.json`` saying what they hold.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from shipyard.agent.adapters.base import Adapter, AdapterError, ToolEnvMissing, ToolSpec
from shipyard.config import shipyard_home

TOOLS_ENV = "SHIPYARD_TOOLS_DIR"
MARKER = "shipyard-tool.json"
INSTALL_TIMEOUT = 1800.0
_PASSED_ENV = ("PATH", "HOME", "LANG", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR", "XDG_CACHE_HOME")
_PASSED_PREFIXES = ("UV_", "PIP_", "NPM_CONFIG_", "npm_config_", "HTTP_PROXY", "HTTPS_PROXY",
                    "http_proxy", "https_proxy", "NO_PROXY", "no_proxy")  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class InstalledTool:
    """An adapter's tool environment on the host, as its marker file describes it."""

    adapter: str
    kind: str
    requirement: str
    version: str
    path: Path

    def record(self) -> dict[str, str]:
        """What the run's reproducibility record keeps about the tool."""
        return {k: str(v) for k, v in asdict(self).items()}


def tools_root(home: Path | None = None) -> Path:
    """Where tool environments live: ``$SHIPYARD_TOOLS_DIR``, else ``<home>/tools``."""
    configured = os.environ.get(TOOLS_ENV)
    return Path(configured).resolve() if configured else (home or shipyard_home()) / "tools"


def tool_path(adapter: Adapter, root: Path) -> Path:
    return root / f"{adapter.name}-{adapter.tool.version}"


def locate(adapter: Adapter, root: Path) -> InstalledTool:
    """The adapter's installed tool; ToolEnvMissing saying how to install it if it is not there."""
    path = tool_path(adapter, root)
    try:
        data = json.loads((path / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ToolEnvMissing(
            f"The {adapter.name} adapter's tool ({adapter.tool.requirement}) is not installed in "
            f"{path}. Install it with `shipyard adapter install {adapter.name}`, or point "
            f"${TOOLS_ENV} at a directory that has it."
        ) from None
    if data.get("requirement") != adapter.tool.requirement:
        raise ToolEnvMissing(
            f"{path} holds {data.get('requirement')!r}, not {adapter.tool.requirement!r}; remove "
            f"it and run `shipyard adapter install {adapter.name}`."
        )
    return InstalledTool(adapter=adapter.name, kind=adapter.tool.kind, path=path,
                         requirement=adapter.tool.requirement, version=adapter.tool.version)  # fmt: skip


def install(adapter: Adapter, root: Path, *, index_url: str | None = None) -> InstalledTool:
    """Install the adapter's tool into ``root`` unless it is there already; safe to run at once from
    several processes (the first installs, the others wait and reuse it)."""
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / f".{adapter.name}-{adapter.tool.version}.lock"):
        with contextlib.suppress(ToolEnvMissing):
            return locate(adapter, root)
        final = tool_path(adapter, root)
        partial = root / f".{final.name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(final, ignore_errors=True)  # a stale or foreign one: replaced whole
        try:
            for argv in install_commands(adapter.tool, partial, index_url=index_url):
                _run(argv, adapter)
            marker = {"adapter": adapter.name, "kind": adapter.tool.kind,
                      "requirement": adapter.tool.requirement, "version": adapter.tool.version}  # fmt: skip
            (partial / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
            partial.rename(final)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        return locate(adapter, root)


def install_commands(
    tool: ToolSpec, dest: Path, *, index_url: str | None = None
) -> list[list[str]]:
    """The host commands that install ``tool`` into ``dest``."""
    if tool.kind == "python":
        uv = _program("uv", Path(sys.executable).with_name("uv"))
        interpreter = (
            Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
        )
        index = ["--index-url", index_url] if index_url else []
        return [
            [uv, "venv", "--quiet", "--python", str(interpreter), str(dest)],
            [uv, "pip", "install", "--quiet", "--python", str(dest / "bin" / "python"), *index,
             tool.requirement],
        ]  # fmt: skip
    npm = _program("npm", None)
    registry = ["--registry", index_url] if index_url else []
    return [[npm, "install", "--prefix", str(dest), "--no-audit", "--no-fund", "--loglevel=error",
             *registry, tool.requirement]]  # fmt: skip


def _program(name: str, preferred: Path | None) -> str:
    if preferred is not None and preferred.exists():
        return str(preferred)
    found = shutil.which(name)
    if found is None:
        raise AdapterError(f"`{name}` is not on PATH; install it to install this adapter's tool.")
    return found


def _run(argv: list[str], adapter: Adapter) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT,
                              env=_install_env(os.environ), check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise AdapterError(
            f"Installing {adapter.tool.requirement} took longer than {INSTALL_TIMEOUT:g} s; check "
            "the network or the package index, then run `shipyard adapter install` again."
        ) from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-2000:]
        raise AdapterError(
            f"Installing {adapter.tool.requirement} for the {adapter.name} adapter failed "
            f"({Path(argv[0]).name} exited {done.returncode}):\n{tail}"
        )


def _install_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The host variables an installer needs (paths, caches, proxies, index settings), no others."""
    return {k: v for k, v in environ.items() if k in _PASSED_ENV or k.startswith(_PASSED_PREFIXES)}


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
