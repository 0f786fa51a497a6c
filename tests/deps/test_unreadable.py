"""One unreadable requirement line does not stop a dependency run: it is left alone and said so."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from shipyard.app import DepsPlan, deps_tasks
from shipyard.deps.localindex import LocalIndex
from shipyard.deps.lookup import plan_repository
from shipyard.deps.rules import DepsConfig
from tests.blueprints.test_deps_runs import deps_index, git, index_dir, make_project
from tests.conftest import needs_bwrap, shipyard_cli

__all__ = ["deps_index", "index_dir"]  # the example tools and packages, served for real runs

DEV = "pytz>dev\r\nalpha==1.0.0  # pinned\r\n"


def make_repo(root: Path) -> Path:
    (root / "requirements").mkdir(parents=True)
    (root / "requirements" / "dev.txt").write_bytes(DEV.encode())
    (root / "shipyard.toml").write_text('[deps]\nupdate_types = ["patch", "minor"]\n')
    for args in (
        ("init", "-q", "-b", "main"),
        ("add", "-A"),
        ("-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "start"),
    ):
        subprocess.run(["git", *args], cwd=root, check=True, timeout=30)  # fmt: skip
    return root


def test_the_dry_run_plans_the_rest_and_shows_the_line_left_alone(
    tmp_path: Path, index: LocalIndex
) -> None:
    repo = make_repo(tmp_path / "repo")
    home = tmp_path / "home"
    out = shipyard_cli(home, "run", "deps", "--repo", str(repo), "--index-url", index.url,
                       "--dry-run", "--json").stdout  # fmt: skip
    records = [json.loads(line) for line in out.splitlines()]
    assert [(r["package"], r["target"]) for r in records] == [("alpha", "1.1.0")]
    table = shipyard_cli(home, "run", "deps", "--repo", str(repo), "--index-url", index.url,
                         "--dry-run").stdout  # fmt: skip
    left_alone = table[table.index("Left alone") :]
    assert "requirements/dev.txt:1" in left_alone
    assert "cannot read requirement 'pytz>dev'" in left_alone
    assert (repo / "requirements" / "dev.txt").read_bytes() == DEV.encode()


def test_the_runs_carry_what_was_left_alone_into_their_events(
    tmp_path: Path, index: LocalIndex
) -> None:
    repo = make_repo(tmp_path / "repo")
    plan = plan_repository(repo, DepsConfig(update_types=["patch", "minor"]),
                           index_url=index.url, cache_dir=None)  # fmt: skip
    [task] = deps_tasks(DepsPlan(repo=repo, plan=plan), index_url=index.url)
    [entry] = task.params["left_alone"]
    assert entry["package"] == "pytz"
    assert entry["manifest"] == "requirements/dev.txt:1"
    assert "PEP 508" in entry["reason"]


@pytest.mark.slow
@needs_bwrap
@pytest.mark.xdist_group("test_deps_runs")
def test_a_real_run_records_the_line_left_alone_and_never_rewrites_it(
    tmp_path: Path, deps_index: str
) -> None:
    repo = make_project(tmp_path / "repo", {"beta": "0.3.0"})
    (repo / "requirements").mkdir()
    (repo / "requirements" / "dev.txt").write_bytes(
        DEV.replace("alpha==1.0.0", "beta==0.3.0").encode()
    )
    config = (repo / "shipyard.toml").read_text()
    (repo / "shipyard.toml").write_text(
        config.replace(
            'files = ["requirements.txt"]', 'files = ["requirements.txt", "requirements/dev.txt"]'
        )
    )
    git(repo, "add", "--all")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "--quiet", "-m", "dev")
    home = tmp_path / "home"
    done = shipyard_cli(
        home, "run", "deps", "--repo", str(repo), "--index-url", deps_index, "--json"
    )
    [run] = json.loads(done.stdout)
    assert run["task"]["title"] == "Update beta from 0.3.0 to 0.3.1"
    # Verified and delivered: merged, or waiting for review on its branch as the policy decides.
    assert run["status"] in ("merged", "awaiting_review"), done.stdout
    delivered = "main" if run["status"] == "merged" else run["branch"]
    assert "requirements/dev.txt:1: cannot read requirement 'pytz>dev'" in done.stderr
    shown = json.loads(shipyard_cli(home, "runs", "show", run["run_id"], "--json").stdout)
    [updates] = [e["data"] for e in shown["events"] if e["type"] == "deps.updates"]
    [left] = updates["left_alone"]
    assert (left["package"], left["manifest"]) == ("pytz", "requirements/dev.txt:1")
    # The other requirement of that file moved; the unreadable line is as it was, CRLF and all.
    written = subprocess.run(
        ["git", "show", f"{delivered}:requirements/dev.txt"],
        cwd=repo, capture_output=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    assert written == DEV.replace("alpha==1.0.0", "beta==0.3.1").encode()
