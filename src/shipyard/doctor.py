"""``shipyard doctor``: can this host run shipyard safely? Each check says what it found and how to fix it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from shipyard.errors import ShipyardError
from shipyard.gates.environment import uv_binary
from shipyard.sandbox import BwrapSandbox, Limits
from shipyard.store import Store


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _version(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    return (done.stdout or done.stderr).strip().splitlines()[0] if done.returncode == 0 else ""


def run_checks(home: Path) -> list[Check]:
    checks = [
        Check("python", sys.version_info >= (3, 11), sys.version.split()[0]),
        Check(
            "git",
            bool(shutil.which("git")),
            _version(["git", "--version"]) or "missing: apt-get install git",
        ),
    ]
    if shutil.which("bwrap") is None:
        checks.append(
            Check("bubblewrap", False, "missing: apt-get install bubblewrap (or `make setup`)")
        )
    else:
        sandbox = BwrapSandbox()
        with tempfile.TemporaryDirectory(prefix="shipyard-doctor-") as tmp:
            result = sandbox.run(
                ["/bin/sh", "-c", "id -u"],
                workspace=Path(tmp),
                limits=Limits(wall_seconds=30, max_processes=64),
            )
        started = result.ok and result.stdout.strip() == "1000"
        checks.append(
            Check(
                "sandbox",
                started,
                f"{_version(['bwrap', '--version'])}, started in {result.duration_seconds * 1000:.0f} ms"
                if started
                else f"bubblewrap could not start a sandbox: {result.stderr.strip()[:200]}",
            )
        )
        process_limit = [a for a in result.limits_applied if a.startswith("processes")]
        checks.append(
            Check(
                "limits",
                not any("NOT limited" in a for a in result.limits_applied),
                "; ".join(
                    process_limit + [a for a in result.limits_applied if a.startswith("memory")]
                ),
            )
        )
    try:
        uv = uv_binary()
        checks.append(Check("uv", True, f"{_version([str(uv), '--version'])} at {uv}"))
    except ShipyardError as exc:
        checks.append(Check("uv", False, str(exc)))
    try:
        Store.open(home=home).close()
        checks.append(Check("store", True, f"{home / 'shipyard.db'}"))
    except ShipyardError as exc:
        checks.append(Check("store", False, str(exc)))
    return checks
