"""Shared by the sandbox tests: one sandbox per module, a fresh workspace per test, a shell helper."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.sandbox import BwrapSandbox, CommandResult


@pytest.fixture(scope="module")
def sandbox() -> BwrapSandbox:
    return BwrapSandbox()


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    return path


def sh(sandbox: BwrapSandbox, ws: Path, script: str, **kw: object) -> CommandResult:
    """Run a shell script in the sandbox over ``ws``; keyword arguments go to ``run``."""
    return sandbox.run(["/bin/sh", "-c", script], workspace=ws, **kw)  # type: ignore[arg-type]
