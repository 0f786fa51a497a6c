"""Shared test fixtures: the example package index and markers for real parts that may be missing."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

needs_bwrap = pytest.mark.skipif(
    shutil.which("bwrap") is None,
    reason="bubblewrap is not installed (`make setup` installs it with apt-get)",
)


def example_index() -> Path:
    """The example packages' wheels plus the test tools, built once (by `make`) and reused."""
    prebuilt = os.environ.get("SHIPYARD_EXAMPLE_INDEX")
    if prebuilt and (Path(prebuilt) / ".built").exists():
        return Path(prebuilt)
    sys.path.insert(0, str(EXAMPLES))
    from scenario import build_index

    return build_index(ROOT / "build" / "example-index")
