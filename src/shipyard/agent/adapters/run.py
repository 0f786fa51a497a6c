"""Run an adapter's tool once in the run's sandbox over the workspace, with egress only to its model.

The tool environment is mounted read-only, an output directory writable, and the API key reaches the
tool through a file only the sandbox sees (sourced by ``/bin/sh`` before the tool starts), never on a
command line. Everything kept afterwards (output, the tool's logs, the command) has the key masked.
"""

from __future__ import annotations

import shlex
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shipyard.agent.adapters.base import (
    BASE_ENV,
    OUT_DIR,
    TOOL_DIR,
    Adapter,
    Launch,
    LaunchRequest,
)
from shipyard.agent.adapters.endpoint import ModelEndpoint
from shipyard.agent.adapters.toolenv import InstalledTool
from shipyard.redaction import MASK, redact_text
from shipyard.sandbox.base import Limits, Mount
from shipyard.sandbox.bwrap import DEFAULT_ENV
from shipyard.sandbox.egress import EgressSandbox, run_with_egress

SECRETS_DIR = "/run/shipyard-secrets"
OUTPUT_TAIL = 20_000
_LAUNCHER = f'mkdir -p "$HOME" && set -a && . {SECRETS_DIR}/env && set +a && exec "$@"'
"""Exports the key file's variables, then becomes the tool: no secret on any command line."""


@dataclass(frozen=True, kw_only=True)
class AdapterRun:
    """What one run of an external tool did, with the key masked everywhere."""

    adapter: str
    version: str
    command: tuple[str, ...]
    exit_code: int
    timed_out: bool
    seconds: float
    stdout: str
    stderr: str
    violations: tuple[str, ...] = ()
    egress: tuple[dict[str, object], ...] = ()
    logs: tuple[Path, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    @property
    def requests(self) -> int:
        """Connections the proxy let through to the model endpoint."""
        return sum(1 for e in self.egress if e.get("type") == "egress.allowed")


class Masker:
    """Masks one key (and every recognisable credential) in text."""

    def __init__(self, key: str) -> None:
        self.key = key if len(key) >= 6 else ""  # shorter is no real key and would mangle text

    def __call__(self, text: str) -> str:
        return redact_text(text.replace(self.key, MASK) if self.key else text)


def run_adapter(
    adapter: Adapter,
    tool: InstalledTool,
    endpoint: ModelEndpoint,
    request: LaunchRequest,
    *,
    sandbox: EgressSandbox,
    workspace: Path,
    out_dir: Path,
    limits: Limits,
    on_egress: Callable[[dict[str, object]], None] | None = None,
) -> AdapterRun:
    """Run the tool on ``request`` over ``workspace``; its kept logs end up redacted in ``out_dir``."""
    launch = adapter.launch(request)
    mask = Masker(endpoint.api_key)
    out_dir.mkdir(parents=True, exist_ok=True)
    events: list[dict[str, object]] = []
    lock = threading.Lock()

    def collect(event: dict[str, object]) -> None:
        with lock:
            events.append(event)
        if on_egress is not None:
            on_egress(event)

    secrets = Path(tempfile.mkdtemp(prefix="shipyard-secrets-"))
    try:
        (secrets / "env").write_text(secret_file(launch, endpoint.api_key), encoding="utf-8")
        (secrets / "env").chmod(0o600)
        started = time.monotonic()
        result = run_with_egress(
            sandbox, ["/bin/sh", "-c", _LAUNCHER, "shipyard-agent", *launch.argv],
            workspace=workspace, grants=[endpoint.grant], on_event=collect,
            env=tool_env(launch), limits=limits,
            mounts=[Mount(source=tool.path, target=TOOL_DIR),
                    Mount(source=out_dir, target=OUT_DIR, writable=True),
                    Mount(source=secrets, target=SECRETS_DIR)],
        )  # fmt: skip
        seconds = time.monotonic() - started
    finally:
        shutil.rmtree(secrets, ignore_errors=True)
    logs = keep_logs(out_dir, launch.log_files, mask)
    return AdapterRun(
        adapter=adapter.name, version=tool.version, command=masked_command(launch.argv, mask),
        exit_code=result.exit_code, timed_out=result.timed_out, seconds=seconds,
        stdout=mask(result.stdout[-OUTPUT_TAIL:]), stderr=mask(result.stderr[-OUTPUT_TAIL:]),
        violations=result.violations, egress=tuple(events), logs=logs,
    )  # fmt: skip


def secret_file(launch: Launch, key: str) -> str:
    """The shell-quoted assignments of the key to each of the tool's secret variables."""
    return "".join(f"{name}={shlex.quote(key)}\n" for name in launch.secret_env)


def tool_env(launch: Launch) -> dict[str, str]:
    """The tool's environment inside the sandbox: a private home, a plain PATH, its own variables."""
    return {**DEFAULT_ENV, **BASE_ENV, **launch.env}


def masked_command(argv: Sequence[str], mask: Callable[[str], str]) -> tuple[str, ...]:
    return tuple(mask(arg) for arg in argv)


def keep_logs(out_dir: Path, names: Sequence[str], mask: Callable[[str], str]) -> tuple[Path, ...]:
    """Keep the tool's declared logs, redacted; remove everything else it left (caches, config)."""
    kept = []
    for child in out_dir.iterdir():
        if child.name in names and child.is_file() and not child.is_symlink():
            child.write_text(mask(child.read_text(encoding="utf-8", errors="replace")),
                             encoding="utf-8")  # fmt: skip
            kept.append(child)
        elif child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
    return tuple(sorted(kept))
