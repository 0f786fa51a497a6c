"""Shared test fixtures: the example package index, the CLI as a user runs it, and markers for real
parts that may be missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

needs_bwrap = pytest.mark.skipif(
    shutil.which("bwrap") is None,
    reason="bubblewrap is not installed (`make setup` installs it with apt-get)",
)


def pytest_configure(config: pytest.Config) -> None:
    """One environment pool for the whole session, shared by every test's shipyard home (and the
    xdist workers, which inherit it): each dependency set is built once, as it is for homes that
    share ``SHIPYARD_POOL_DIR`` in production. Tests of the pool itself give it a root of its own."""
    if hasattr(config, "workerinput"):
        return
    from shipyard.sandbox.pool import DIR_VARIABLE

    os.environ[DIR_VARIABLE] = tempfile.mkdtemp(prefix="shipyard-test-pool-")


def pytest_unconfigure(config: pytest.Config) -> None:
    from shipyard.sandbox.pool import DIR_VARIABLE

    pool = os.environ.get(DIR_VARIABLE, "")
    if not hasattr(config, "workerinput") and Path(pool).name.startswith("shipyard-test-pool-"):
        shutil.rmtree(pool, ignore_errors=True)


def example_index() -> Path:
    """The example packages' wheels plus the test tools, built once (by `make`) and reused."""
    prebuilt = os.environ.get("SHIPYARD_EXAMPLE_INDEX")
    if prebuilt and (Path(prebuilt) / ".built").exists():
        return Path(prebuilt)
    sys.path.insert(0, str(EXAMPLES))
    from scenario import build_index

    return build_index(ROOT / "build" / "example-index")


@pytest.fixture(scope="module")
def index_url() -> Iterator[str]:
    """The example index served over HTTP on 127.0.0.1 for a test module."""
    from shipyard.deps.localindex import serve

    with serve(example_index()) as index:
        yield index.url


SHIPYARD = str(Path(sys.executable).with_name("shipyard"))


def shipyard_cli(
    home: Path, *args: str, env: Mapping[str, str] | None = None, ok: bool = True
) -> subprocess.CompletedProcess[str]:
    """The real ``shipyard`` command with its own home, none of the host's pip or model settings,
    and ``env`` added; with ``ok`` it must succeed."""
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "OPENAI_", "ANTHROPIC_"))
    }
    # Retrieval loads the embedding model in every process; tests of it turn it back on.
    clean.update(SHIPYARD_HOME=str(home), COLUMNS="200", SHIPYARD_RETRIEVAL="off")
    clean.update(env or {})
    done = subprocess.run(
        [SHIPYARD, *args], env=clean, capture_output=True, text=True, timeout=600, check=False
    )
    if ok:
        assert done.returncode == 0, done.stdout + done.stderr
    return done
