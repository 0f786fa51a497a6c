"""The CLI's own commands: doctor, init, version and JSON output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from shipyard.config import load_config
from tests.conftest import needs_bwrap

SHIPYARD = str(Path(sys.executable).with_name("shipyard"))


def cli(home: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SHIPYARD_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run(
        [SHIPYARD, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
    )


@needs_bwrap
def test_doctor_proves_a_sandbox_starts(tmp_path: Path) -> None:
    done = cli(tmp_path / "home", "doctor")
    assert done.returncode == 0, done.stdout + done.stderr
    sandbox_line = next(line for line in done.stdout.splitlines() if "sandbox" in line)
    assert "ok" in sandbox_line
    assert "bubblewrap" in sandbox_line
    assert (tmp_path / "home" / "shipyard.db").exists()


def test_init_writes_a_valid_config_once(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    assert cli(tmp_path / "home", "init", "--repo", str(repo)).returncode == 0
    loaded = load_config(repo)
    assert loaded.source == repo / "shipyard.toml"
    assert loaded.config.preset == "seed"
    again = cli(tmp_path / "home", "init", "--repo", str(repo))
    assert again.returncode == 2
    assert "already exists" in again.stderr


def test_runs_list_json_on_an_empty_store(tmp_path: Path) -> None:
    done = cli(tmp_path / "home", "runs", "list", "--json")
    assert done.returncode == 0
    assert json.loads(done.stdout) == []
    assert cli(tmp_path / "home", "version").stdout.startswith("shipyard ")
