"""Approvals through the merge queue with the real CLI: re-verification when main moved, and a kill
in the middle of a merge that recovery settles without merging twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, needs_bwrap
from tests.e2e.test_demo_flow import SHIPYARD, cli, runs_by_title

sys.path.insert(0, str(EXAMPLES))
from scenario import GIT_ENV, PATCHES, branches, make_repo, show

pytestmark = [pytest.mark.slow, needs_bwrap, pytest.mark.xdist_group("test_queue_flow")]


def submit_feature(home: Path, repo: Path, index_url: str) -> str:
    cli(
        home, "submit", "--repo", str(repo), "--patch", str(PATCHES / "feature-low-stock.patch"),
        "--type", "feature", "--title", "feature", "--index-url", index_url, "--as", "agent",
    )  # fmt: skip
    feature = runs_by_title(home)["feature"]
    assert feature["status"] == "awaiting_review"
    return str(feature["run_id"])


def commit_on_main(repo: Path, path: str, content: str) -> None:
    (repo / path).write_text(content)
    for args in (["add", path], ["commit", "--quiet", "-m", f"edit {path}"]):
        subprocess.run(["git", *args], cwd=repo, env=GIT_ENV, check=True, timeout=60)


def merges_of(repo: Path, run_id: str) -> list[str]:
    done = subprocess.run(
        ["git", "log", "--format=%H", f"--grep=^Shipyard-Run: {run_id}$", "main"],
        cwd=repo, env=GIT_ENV, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return done.stdout.split()


def test_approval_after_main_moved_is_verified_again_then_merged(
    tmp_path: Path, index_url: str
) -> None:
    repo = make_repo(tmp_path / "repo")
    home = tmp_path / "home"
    run_id = submit_feature(home, repo, index_url)
    commit_on_main(repo, "NOTES.md", "release notes\n")

    cli(home, "review", "approve", run_id, "-m", "ok")

    state = runs_by_title(home)["feature"]
    assert state["status"] == "merged"
    assert merges_of(repo, run_id) == [state["delivered_commit"]]
    assert show(repo, "main", "NOTES.md").strip() == "release notes"
    assert "def low_stock" in show(repo, "main", "src/inventory/stock.py")
    events = json.loads(cli(home, "runs", "show", run_id, "--json").stdout)["events"]
    decisions = [e["data"] for e in events if e["type"] == "decision.made"]
    assert [d.get("reverified", False) for d in decisions] == [False, True]
    tests_gate = [
        (e["data"]["phase"], e["data"]["commit"])
        for e in events
        if e["type"] == "gate.finished" and e["data"]["gate"] == "tests"
    ]
    phases = [phase for phase, _ in tests_gate]
    assert phases == ["baseline", "change", "verdict"] * 2, (
        "measured twice: before and after main moved"
    )
    assert tests_gate[4][1] != tests_gate[1][1], "the second time on the rebased change"


def test_a_kill_after_the_merge_is_recovered_without_a_second_merge(
    tmp_path: Path, index_url: str
) -> None:
    repo = make_repo(tmp_path / "repo")
    home = tmp_path / "home"
    run_id = submit_feature(home, repo, index_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(SHIPYARD_HOME=str(home), SHIPYARD_FAILPOINTS="merge.after_ref_update")

    killed = subprocess.run(
        [SHIPYARD, "review", "approve", run_id], env=env, capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip

    assert killed.returncode == -9
    merged = merges_of(repo, run_id)
    assert len(merged) == 1  # the merge happened, its outcome was never recorded
    assert runs_by_title(home)["feature"]["status"] == "awaiting_review"
    recovered = cli(home, "recover")
    assert f"{run_id}: found its merge {merged[0][:12]} in main" in recovered.stdout
    state = runs_by_title(home)["feature"]
    assert state["status"] == "merged"
    assert state["delivered_commit"] == merged[0]
    assert f"shipyard/{run_id}" not in branches(repo)
    again = cli(home, "review", "approve", run_id, ok=False)
    assert again.returncode != 0
    assert "not waiting for review" in again.stderr
    assert merges_of(repo, run_id) == merged
