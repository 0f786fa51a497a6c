"""What an adapter declares about an external agent CLI: how its tool is installed, how it is started
non-interactively on a task, and which variables point it at the model endpoint.

Adapters are pure descriptions; ``toolenv.py`` installs tools on the host, ``run.py`` starts them in
the run's sandbox with egress only to the model endpoint.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from shipyard.errors import ShipyardError

TOOL_DIR = "/opt/shipyard/agent"
"""Where the adapter's tool environment is mounted, read-only, inside the sandbox."""
OUT_DIR = "/run/shipyard-agent"
"""A writable directory inside the sandbox for what the tool writes besides the workspace (its
trajectory or session log); shipyard keeps it in the run's directory, redacted."""
HOME = "/tmp/home"
"""The tool's home inside the sandbox (on the sandbox's own tmpfs, gone when it ends)."""
SANDBOX_PYTHON = f"python{sys.version_info.major}.{sys.version_info.minor}"
"""Python tool environments are made with the interpreter shipyard runs on, which every sandbox
sees read-only, so their ``bin/python`` works inside."""

Wire = Literal["openai", "anthropic"]
"""The API an adapter's tool speaks to its model endpoint."""


class AdapterError(ShipyardError):
    """An external agent cannot be run: unknown adapter, its tool not installed, a bad option."""

    exit_code = 12


class ToolEnvMissing(AdapterError):
    """The adapter's tool environment is not installed on this host."""


@dataclass(frozen=True, kw_only=True)
class ToolSpec:
    """How an adapter's tool is installed on the host: a Python package into a uv-made virtual
    environment, or an npm package into its own prefix."""

    kind: Literal["python", "npm"]
    package: str
    version: str

    @property
    def requirement(self) -> str:
        """What the installer is given: ``name==version`` for pip, ``name@version`` for npm."""
        sep = "==" if self.kind == "python" else "@"
        return f"{self.package}{sep}{self.version}"


@dataclass(frozen=True, kw_only=True)
class LaunchRequest:
    """Everything an adapter needs to build its command line; the same for every adapter."""

    task: str
    model: str
    """The model's name as the endpoint knows it (adapters add their own prefixes)."""
    base_url: str
    """The endpoint's base URL, as the tool should use it (through the egress proxy)."""
    max_steps: int
    max_cost_usd: float
    out_dir: str = OUT_DIR


@dataclass(frozen=True, kw_only=True)
class Launch:
    """A tool's command line and environment inside the sandbox. ``secret_env`` names variables
    whose values are the API key: they are handed to the sandboxed process only (never on a
    command line, where other host users could read them) and masked in every record."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    secret_env: tuple[str, ...] = ()
    log_files: tuple[str, ...] = ()
    """Files the tool writes under ``out_dir`` worth keeping with the run (redacted)."""


@dataclass(frozen=True, kw_only=True)
class ToolOutcome:
    """How the tool says its work ended, read from its exit code, output or logs."""

    finished: bool
    """It completed the task as it understands it (not a limit, a crash or a refusal)."""
    reason: str
    summary: str = ""
    steps: int | None = None
    """Model calls, when the tool reports them."""
    cost_usd: float | None = None
    """What the tool computed the calls cost, when it reports it."""


class Adapter(Protocol):
    """An external coding agent CLI shipyard can run in a sandbox over the workspace."""

    name: str
    wire: Wire
    tool: ToolSpec
    description: str

    def launch(self, request: LaunchRequest) -> Launch:
        """The command line running the tool once, unattended, on ``request.task``."""
        ...

    def version_argv(self) -> tuple[str, ...]:
        """A command printing the installed tool's version (checked after installing)."""
        ...

    def outcome(self, exit_code: int, stdout: str, out_dir: Path) -> ToolOutcome:
        """How the run ended, from what the tool left (``out_dir`` holds its kept, redacted logs)."""
        ...


def exit_outcome(exit_code: int, stdout: str) -> ToolOutcome:
    """The outcome of a tool that says nothing more than its exit code and output."""
    tail = stdout.strip()[-600:]
    if exit_code == 0:
        return ToolOutcome(finished=True, reason="finished", summary=tail)
    return ToolOutcome(
        finished=False, reason=f"the tool exited with status {exit_code}", summary=tail
    )


def read_json(path: Path) -> object:
    """A JSON file the tool wrote, or None when it is missing or not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def python_module(module: str, *args: str) -> tuple[str, ...]:
    """``python -m module args`` with the tool environment's interpreter (console scripts carry the
    host path in their shebang, which does not exist inside the sandbox)."""
    return (f"{TOOL_DIR}/bin/python", "-I", "-m", module, *args)


def python_version(distribution: str) -> tuple[str, ...]:
    """A command printing an installed distribution's version with the tool's interpreter."""
    code = f"import importlib.metadata as m; print(m.version({distribution!r}))"
    return (f"{TOOL_DIR}/bin/python", "-I", "-c", code)


def site_packages(package_dir: str) -> str:
    """A path inside the tool environment's site-packages, as the sandbox sees it."""
    return f"{TOOL_DIR}/lib/{SANDBOX_PYTHON}/site-packages/{package_dir}"


def node_bin(relative: str) -> str:
    """A file inside the npm prefix's ``node_modules``, as the sandbox sees it."""
    return f"{TOOL_DIR}/node_modules/{relative}"


BASE_ENV = {
    "HOME": HOME,
    "XDG_CONFIG_HOME": f"{HOME}/.config",
    "XDG_CACHE_HOME": f"{HOME}/.cache",
    "XDG_DATA_HOME": f"{HOME}/.local/share",
    "TERM": "dumb",
    "NO_COLOR": "1",
    "CI": "1",
}
"""What every tool sees besides its own variables: a private home, no colours, no prompts."""
