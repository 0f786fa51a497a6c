"""A small version of benchmarks/load.py as a correctness test: runs submitted at once to two
worker processes all complete, none stuck, none failed. No timing is asserted."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, needs_bwrap

pytestmark = [pytest.mark.slow, needs_bwrap]


def test_eight_runs_on_two_workers_all_complete(
    tmp_path: Path, index_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    del postgres_url  # only to skip, saying why, where PostgreSQL is absent
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed; the load test starts its own")
    spec = importlib.util.spec_from_file_location("load", ROOT / "benchmarks" / "load.py")
    assert spec is not None
    assert spec.loader is not None
    load = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, load)  # its dataclasses look themselves up
    spec.loader.exec_module(load)

    result = load.run_load(runs=8, workers=2, index_url=index_url, scratch=tmp_path)

    assert result.stuck == 0
    assert result.completed == 8
    assert result.statuses == {"awaiting_review": 8}
